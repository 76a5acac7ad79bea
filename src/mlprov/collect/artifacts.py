"""Local files and trees, remote objects and prefixes, and Hugging Face hub snapshots, as
ResourceDescriptors.

A directory is identified by its tree digest (OMS-compatible, as `mlprov digest` prints);
a single file by the sha256 of its bytes. A hub cache snapshot
(`.../datasets--org--name/snapshots/REV/`, or `hf://datasets/org/name@REV` resolved from
the cache) is read offline: its symlinks into its own `blobs/` are followed (the digest
walk's rule), and each blob is checked against its name. A remote URL
(`s3://bucket/prefix/`, `gs://`, `az://`, `https://`) is hashed where it is, as
`mlprov digest` would, and recorded with its URI (without credentials).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mlprov.collect.hf import HubSnapshot, hub_snapshot, is_hub_uri, resolve_hub_uri
from mlprov.digest import DigestCache, TreeManifest, digest_tree
from mlprov.errors import InputError
from mlprov.statement import DIGEST_OF, FILE, TREE, ResourceDescriptor

_DIGEST_SPEC = re.compile(r"^(sha256|sha384|sha512|blake3|gitCommit|sha1)[:=]([0-9a-fA-F]+)\Z")


#: (on_total, advance) callbacks for the digest engine, given the path being hashed: set
#: by a command that shows progress (`mlprov attest` on a terminal); none by default.
Callbacks = tuple[Callable[[int], None], Callable[[int], None]]
ProgressFactory = Callable[[str], AbstractContextManager[Callbacks]]
DIGEST_PROGRESS: ContextVar[ProgressFactory | None] = ContextVar("DIGEST_PROGRESS", default=None)


@dataclass(frozen=True)
class DescribedPath:
    """A path on disk described: its descriptor and, for trees, its manifest."""

    descriptor: ResourceDescriptor
    manifest: TreeManifest
    is_dir: bool


def check_name(name: str, *, what: str) -> str:
    """A descriptor name must be a relative POSIX path without `..` (DESIGN rule)."""
    if not name or name.startswith("/") or "\\" in name or ".." in PurePosixPath(name).parts:
        raise InputError(f"{what} name {name!r} must be a relative path without '..'")
    return name


def describe_path(
    path: str | Path,
    *,
    name: str | None = None,
    cache: DigestCache | None = None,
    annotations: dict[str, Any] | None = None,
    follow_symlinks: bool = False,
    model_facts: bool = False,
) -> DescribedPath:
    """Digest a local file or directory, a hub snapshot, an `hf://` reference (resolved
    offline from the hub cache), or a remote object or prefix into a named
    ResourceDescriptor.

    A hub snapshot is named by its repository id (unless `name` is given) and recorded
    with its `hf://…@COMMIT` URI and the commit as a `gitCommit` digest beside the
    content digest. `model_facts` adds what the model files' headers say (modelFacts).
    """
    if is_remote_url(path):
        return describe_remote(str(path), name=name, cache=cache, annotations=annotations)
    snapshot: HubSnapshot | None
    if is_hub_uri(path):
        snapshot = resolve_hub_uri(str(path))
        path = snapshot.path
    else:
        path = Path(path)
        if not path.exists() and not path.is_symlink():
            raise InputError(f"{path}: no such file or directory")
        snapshot = hub_snapshot(path)
    factory = DIGEST_PROGRESS.get()
    shown = factory(f"hashing {path}") if factory else contextlib.nullcontext((None, None))
    with shown as (on_total, advance):
        manifest = digest_tree(
            path,
            cache=cache,
            follow_symlinks=follow_symlinks,
            progress=advance,
            on_total=on_total,
        )
    is_dir = path.is_dir()
    digest = manifest.digest if is_dir else manifest.files[0].digest
    notes: dict[str, Any] = {
        DIGEST_OF: TREE if is_dir else FILE,
        "fileCount": manifest.file_count,
        "byteSize": manifest.total_size,
    }
    if snapshot is not None:
        hub: dict[str, Any] = {
            "repoType": snapshot.kind,
            "repoId": snapshot.repo_id,
            "revision": snapshot.revision,
        }
        if snapshot.requested and snapshot.requested != snapshot.revision:
            hub["requestedRevision"] = snapshot.requested
        notes["huggingFace"] = hub
    if model_facts:
        from mlprov.collect.model_formats import scan_model

        notes["modelFacts"] = scan_model(path, manifest).to_annotation()
    notes.update(annotations or {})
    digests = {"sha256": digest}
    if snapshot is not None and snapshot.commit:
        digests["gitCommit"] = snapshot.commit  # the snapshot's revision, beside its content
    default_name = snapshot.repo_id if snapshot is not None else manifest.name
    descriptor = ResourceDescriptor(
        name=check_name(name or default_name, what="artifact"),
        uri=snapshot.uri if snapshot else None,
        digest=digests,
        annotations=notes,
    )
    return DescribedPath(descriptor, manifest, is_dir)


def is_remote_url(location: object) -> bool:
    """True for a URL mlprov hashes where it is (s3://, gs://, az://, http(s)://)."""
    from mlprov.digest.urls import is_remote

    return is_remote(location)


def describe_remote(
    url: str,
    *,
    name: str | None = None,
    cache: DigestCache | None = None,
    annotations: dict[str, Any] | None = None,
) -> DescribedPath:
    """Digest a remote object or prefix in place; the descriptor carries its URI."""
    from mlprov.digest.urls import public_url

    manifest = digest_tree(url, cache=cache)
    is_dir = not (len(manifest.files) == 1 and manifest.files[0].path == ".")  # lone object
    notes: dict[str, Any] = {
        DIGEST_OF: TREE if is_dir else FILE,
        "fileCount": manifest.file_count,
        "byteSize": manifest.total_size,
    }
    notes.update(annotations or {})
    descriptor = ResourceDescriptor(
        name=check_name(name or manifest.name, what="artifact"),
        uri=public_url(url),
        digest={"sha256": manifest.identity},
        annotations=notes,
    )
    return DescribedPath(descriptor, manifest, is_dir)


def parse_digest(spec: str, *, what: str) -> dict[str, str]:
    """`sha256:HEX` or `sha256=HEX` to a digest set; raises InputError otherwise."""
    match = _DIGEST_SPEC.match(spec.strip())
    if not match:
        raise InputError(f"{what}: digest {spec!r} is not ALGORITHM:HEX (e.g. sha256:ab12...)")
    algorithm, value = match.groups()
    lengths = {"sha256": 64, "sha384": 96, "sha512": 128, "blake3": 64, "sha1": 40, "gitCommit": 40}
    if len(value) != lengths[algorithm]:
        raise InputError(f"{what}: a {algorithm} digest has {lengths[algorithm]} hex digits")
    return {algorithm: value.lower()}


def split_uri_digest(location: str) -> tuple[str, str | None]:
    """`https://host/x#sha256=HEX` (pip's hash fragment) to (uri, digest spec or None)."""
    uri, sep, fragment = location.rpartition("#")
    if sep and _DIGEST_SPEC.match(fragment):
        return uri, fragment
    return location, None


def is_uri(location: str) -> bool:
    """True for `scheme://...` locations (as opposed to local paths)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*://", location) is not None
