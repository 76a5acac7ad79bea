"""The Hugging Face hub cache layout, as far as hashing a tree needs it.

A snapshot `…/models--org--name/snapshots/<commit>/` holds symlinks into its
repository's own `blobs/`, each blob named by its content: the sha256 of a Git LFS
file (64 hex digits) or the git blob id of any other file (40 hex digits). The walk
follows those links by default (and no other link out of the tree); after hashing,
every blob whose name is such a digest is checked against its content, so a corrupted
or tampered download is reported instead of attested.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path, PurePosixPath

from mlprov.digest.hashing import hash_file
from mlprov.digest.manifest import TreeManifest
from mlprov.errors import InputError, VerificationError

#: `models--org--name` (also datasets, spaces): a repository's folder in the hub cache.
REPO_DIR = re.compile(r"^(models|datasets|spaces)--(.+)\Z")
_SHA256_NAME = re.compile(r"^[0-9a-f]{64}\Z")
_GIT_BLOB_NAME = re.compile(r"^[0-9a-f]{40}\Z")
#: Non-LFS files are small text files; one larger than this is not re-read to check it.
GIT_BLOB_CHECK_LIMIT = 64 << 20


def snapshot_blobs(real_root: str) -> str:
    """The real path of `blobs/` of the hub repository whose snapshot holds `real_root`
    (the snapshot directory or a folder inside it), or "" when it is not in one."""
    path = Path(real_root)
    for snapshot in (path, *path.parents):
        if snapshot.parent.name != "snapshots":
            continue
        repo = snapshot.parent.parent
        if REPO_DIR.match(repo.name) and (repo / "blobs").is_dir():
            return os.path.realpath(repo / "blobs")
        return ""
    return ""


def git_blob_id(path: str, size: int) -> str:
    """git's id of a file's content: sha1 over `blob SIZE\\0` and the bytes."""
    hasher = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def check_snapshot_blobs(root: Path, manifest: TreeManifest, blobs: str) -> None:
    """Raise VerificationError when a file of a snapshot links to a blob whose content
    does not hash to the blob's name (sha256 for LFS files, git blob id for others)."""
    whole = manifest.method == "files" and manifest.algorithm == "sha256"
    seen: set[str] = set()
    for entry in manifest.files:
        name = entry.path if manifest.method == "files" else entry.path.rsplit(":", 2)[0]
        if name in seen:
            continue
        seen.add(name)
        link = root.joinpath(*PurePosixPath(name).parts)
        target = os.path.realpath(link)
        blob = os.path.basename(target)
        if os.path.dirname(target) != blobs:
            continue
        try:
            if _SHA256_NAME.match(blob):
                actual = entry.digest if whole else hash_file(target, "sha256").digest
                kind = "sha256"
            elif _GIT_BLOB_NAME.match(blob):
                size = os.stat(target).st_size
                if size > GIT_BLOB_CHECK_LIMIT:
                    continue
                actual, kind = git_blob_id(target, size), "git blob id"
            else:
                continue
        except OSError as exc:
            raise InputError(f"{link}: cannot read its blob {blob} ({exc.strerror})") from None
        if actual != blob:
            raise VerificationError(
                f"{link}: corrupted or tampered download: its blob {blob} has {kind}"
                f" {actual[:16]}…, not its name (delete the blob and download it again)"
            )
