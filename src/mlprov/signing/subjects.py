"""Checking a verified Statement's subjects against files and trees on disk.

A file matches a subject when one of the subject's digests equals the file's digest
(sha256, sha512 or blake3) and the subject is not a tree; a tree matches when a tree
subject's sha256 is its OMS tree digest (or an OMS signature's resources match it).
When a tree does not match and the attestation lists the tree's files (OMS resources,
or mlprov's per-file subjects `TREE/PATH`), the files that changed, went missing or
were added are named.
"""

from __future__ import annotations

from pathlib import Path

from mlprov.digest import ALGORITHMS, DigestCache, TreeManifest, digest_file, digest_tree
from mlprov.digest.manifest import diff_against
from mlprov.errors import InputError
from mlprov.predicates import OMS_V1
from mlprov.signing.verify import Check
from mlprov.statement import DIGEST_OF, TREE, Statement


def check_subject_path(
    statement: Statement,
    path: Path | str,
    *,
    cache: DigestCache | None = None,
    follow_symlinks: bool = False,
) -> Check:
    """Whether the file or tree at `path` (or an object-store URL) is one of the
    Statement's subjects.

    A directory matches only a subject that says it is a tree (`digestOf: tree`), or an
    OMS signature whose resources match file by file; a file never matches a tree subject:
    a file of concatenated raw digests has a tree's digest as its sha256. A remote prefix
    is a tree, a lone object a file, under the same rule. `cache` is for callers that
    chose to trust it (`--trust-cache`): verification digests afresh. Symlinks follow the
    digest walk's rule (`follow_symlinks`, and hub snapshots' blobs).
    """
    from mlprov.digest.urls import is_remote

    if is_remote(path):
        return _check_remote(statement, str(path), cache)
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        return _check_tree(statement, path, cache, follow_symlinks)
    target = path.resolve() if follow_symlinks and path.is_symlink() else path
    subjects = [(rd.name, rd.digest or {}, rd.digest_of) for rd in statement.subject]
    wanted = {alg for _, digests, _ in subjects for alg in digests}
    computed = {alg: digest_file(target, alg) for alg in ALGORITHMS if alg in wanted}
    trees = []
    for name, digests, kind in subjects:
        for alg, value in digests.items():
            if computed.get(alg) == value.lower():
                if kind == TREE:
                    trees.append(name or "(unnamed)")
                    continue
                return Check("subject", True, f"matches subject {name or '(unnamed)'}", str(path))
    if trees:
        return Check(
            "subject",
            False,
            f"a file, but its digest is that of tree subject {', '.join(trees)}: a file never"
            " matches a directory's tree digest",
            str(path),
        )
    if not computed:
        return Check("subject", False, "no subject uses a digest mlprov computes", str(path))
    shown = ", ".join(f"{a}:{d[:16]}…" for a, d in sorted(computed.items()))
    return Check("subject", False, f"matches no subject (file is {shown})", str(path))


def _check_remote(statement: Statement, url: str, cache: DigestCache | None) -> Check:
    """A remote object or prefix, hashed where it is (as `mlprov digest URL` would): a
    prefix only matches tree subjects, a lone object never one."""
    from mlprov.digest.urls import public_url

    manifest = digest_tree(url, cache=cache)
    lone = len(manifest.files) == 1 and manifest.files[0].path == "."
    other_kind = []
    for rd in statement.subject:
        if (rd.digest or {}).get("sha256", "").lower() != manifest.identity:
            continue
        name = rd.name or "(unnamed)"
        if (rd.digest_of == TREE) != (not lone):
            other_kind.append(name)
            continue
        return Check("subject", True, f"matches subject {name}", public_url(url))
    if other_kind:
        what = "an object" if lone else "a prefix (a tree)"
        return Check(
            "subject",
            False,
            f"{what}, but subject {', '.join(other_kind)} with its digest is not"
            f" {'a file' if lone else 'a tree'}",
            public_url(url),
        )
    detail = f"sha256:{manifest.identity[:16]}… matches no subject"
    return Check("subject", False, detail, public_url(url))


def _check_tree(
    statement: Statement, path: Path, cache: DigestCache | None, follow_symlinks: bool
) -> Check:
    manifest = digest_tree(path, cache=cache, follow_symlinks=follow_symlinks)
    recorded = _recorded_files(statement, path, manifest)
    oms = statement.predicateType == OMS_V1
    not_trees = []
    for rd in statement.subject:
        if (rd.digest or {}).get("sha256", "").lower() != manifest.digest:
            continue
        name = rd.name or "(unnamed)"
        if oms:
            if diff_against(recorded, manifest).ok:
                return Check("subject", True, f"tree matches OMS signature {name}", str(path))
            continue
        if rd.digest_of == TREE:
            return Check("subject", True, f"tree matches subject {name}", str(path))
        not_trees.append(name)
    if not_trees:
        return Check(
            "subject",
            False,
            f"a directory, but subject {', '.join(not_trees)} with its tree digest is not a"
            f" tree ({DIGEST_OF}: {TREE}): a directory only matches a tree subject",
            str(path),
        )
    detail = f"tree sha256:{manifest.digest[:16]}… matches no subject"
    if recorded:
        diff = diff_against(recorded, manifest)
        parts = [
            f"{label}: {', '.join(names[:10])}{' …' if len(names) > 10 else ''}"
            for label, names in (
                ("changed", diff.changed),
                ("missing", diff.missing),
                ("added", diff.added),
            )
            if names
        ]
        if parts:
            detail += " (" + "; ".join(parts) + ")"
    return Check("subject", False, detail, str(path))


def _recorded_files(statement: Statement, path: Path, manifest: TreeManifest) -> dict[str, str]:
    """The tree's files as the attestation recorded them, when it did: OMS resources, or
    per-file subjects `TREE/PATH` (mlprov attest --file-subjects) in the manifest's algorithm."""
    if statement.predicateType == OMS_V1:
        from mlprov.predicates.oms import parse_oms

        try:
            return {r.name: r.digest for r in parse_oms(statement, source=str(path)).resources}
        except InputError:
            return {}
    groups: dict[str, dict[str, str]] = {}
    for name, digests in statement.subject_digests():
        tree, sep, rest = (name or "").partition("/")
        if sep and rest and manifest.algorithm in digests:
            groups.setdefault(tree, {})[rest] = digests[manifest.algorithm].lower()
    if path.name in groups:
        return groups[path.name]
    return next(iter(groups.values())) if len(groups) == 1 else {}
