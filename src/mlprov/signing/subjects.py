"""Checking a verified Statement's subjects against files and trees on disk.

A file matches a subject when one of the subject's digests equals the file's digest
(sha256, sha512 or blake3); a tree matches when the subject's sha256 is its OMS tree
digest. When a tree does not match and the attestation lists the tree's files (OMS
resources, or mlprov's per-file subjects `TREE/PATH`), the files that changed, went
missing or were added are named.
"""

from __future__ import annotations

from pathlib import Path

from mlprov.digest import ALGORITHMS, DigestCache, TreeManifest, digest_file, digest_tree
from mlprov.digest.manifest import diff_against
from mlprov.errors import InputError
from mlprov.predicates import OMS_V1
from mlprov.signing.verify import Check
from mlprov.statement import Statement


def check_subject_path(
    statement: Statement, path: Path | str, *, cache: DigestCache | None = None
) -> Check:
    """Whether the file or tree at `path` (or an object-store URL) is one of the Statement's
    subjects."""
    from mlprov.digest.remote import is_remote

    if is_remote(path):
        return _check_remote(statement, str(path), cache)
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        return _check_tree(statement, path, cache)
    wanted = {alg for _, digests in statement.subject_digests() for alg in digests}
    computed = {alg: digest_file(path, alg) for alg in ALGORITHMS if alg in wanted}
    for name, digests in statement.subject_digests():
        for alg, value in digests.items():
            if computed.get(alg) == value.lower():
                return Check("subject", True, f"matches subject {name or '(unnamed)'}", str(path))
    if not computed:
        return Check("subject", False, "no subject uses a digest mlprov computes", str(path))
    shown = ", ".join(f"{a}:{d[:16]}…" for a, d in sorted(computed.items()))
    return Check("subject", False, f"matches no subject (file is {shown})", str(path))


def _check_remote(statement: Statement, url: str, cache: DigestCache | None) -> Check:
    """A remote object or prefix, hashed where it is (as mlprov digest URL would)."""
    from mlprov.digest.remote import public_url

    manifest = digest_tree(url, cache=cache)
    for name, digests in statement.subject_digests():
        if digests.get("sha256", "").lower() == manifest.identity:
            return Check("subject", True, f"matches subject {name or '(unnamed)'}", public_url(url))
    detail = f"sha256:{manifest.identity[:16]}… matches no subject"
    return Check("subject", False, detail, public_url(url))


def _check_tree(statement: Statement, path: Path, cache: DigestCache | None) -> Check:
    manifest = digest_tree(path, cache=cache)
    for name, digests in statement.subject_digests():
        if digests.get("sha256", "").lower() == manifest.digest:
            return Check("subject", True, f"tree matches subject {name or '(unnamed)'}", str(path))
    detail = f"tree sha256:{manifest.digest[:16]}… matches no subject"
    recorded = _recorded_files(statement, path, manifest)
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
