"""Hugging Face hub references (`hf://org/name@REV`) and cache snapshots, read offline.

A reference is resolved from the local hub cache with `huggingface_hub` itself
(`snapshot_download(..., local_files_only=True)`): a branch or tag goes through the
cache's `refs/`, a commit names its `snapshots/` folder, and an incomplete snapshot is
refused. Nothing reaches the network; a reference that is not cached is one line saying
how to download it. `huggingface_hub` is imported only when a reference is resolved.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from mlprov.digest.hub import REPO_DIR
from mlprov.errors import InputError

#: `hf://[datasets/|spaces/]org/name[@REVISION]`, the form huggingface_hub's HfFileSystem reads.
_HF_URI = re.compile(r"^hf://(?:(datasets|spaces)/)?([^@\s]+?)(?:@([^\s]+))?\Z")
_COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]{0,254}\Z")
_KINDS = {"": "model", "datasets": "dataset", "spaces": "space"}


@dataclass(frozen=True)
class HubSnapshot:
    """A snapshot of a hub repository: its type (model, dataset, space), id and commit,
    where it is on disk, and the revision it was asked for by (a branch, tag or commit)."""

    kind: str
    repo_id: str
    revision: str
    repo_dir: Path
    requested: str | None = None

    @property
    def uri(self) -> str:
        """`hf://[datasets/]org/name@COMMIT`: the immutable reference to this snapshot."""
        return hub_uri(self.kind, self.repo_id, self.revision)

    @property
    def commit(self) -> str | None:
        """The git commit the snapshot is of (its folder name), when it is one."""
        return self.revision if _COMMIT.match(self.revision) else None

    @property
    def path(self) -> Path:
        return self.repo_dir / "snapshots" / self.revision


@dataclass(frozen=True)
class HubReference:
    """A parsed `hf://` reference (not yet resolved)."""

    kind: str
    repo_id: str
    revision: str

    @property
    def uri(self) -> str:
        return hub_uri(self.kind, self.repo_id, self.revision)


def hub_uri(kind: str, repo_id: str, revision: str) -> str:
    prefix = {"model": "", "dataset": "datasets/", "space": "spaces/"}[kind]
    return f"hf://{prefix}{repo_id}@{revision}"


def is_hub_uri(location: object) -> bool:
    """True for a string starting with `hf://`."""
    return isinstance(location, str) and location.startswith("hf://")


def parse_hub_uri(text: str) -> HubReference:
    """`hf://org/name@REV` or `hf://datasets/org/name@REV` (default revision `main`)."""
    match = _HF_URI.match(text.strip())
    if not match:
        raise InputError(f"{text!r} is not a hub reference (hf://org/name@REVISION)")
    prefix, repo_id, revision = match.groups()
    revision = unquote(revision) if revision else "main"
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise InputError(f"{text}: {repo_id!r} is not a hub repository id (org/name)") from None
    parts = revision.split("/")
    if not _REVISION.match(revision) or ".." in parts or "" in parts:
        raise InputError(f"{text}: {revision!r} is not a branch, tag or commit")
    return HubReference(_KINDS[prefix or ""], repo_id, revision)


def hub_cache_dir() -> Path:
    """The hub cache, read from the environment now, as huggingface_hub reads it:
    `HF_HUB_CACHE`, else `HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        home = os.path.join(xdg, "huggingface")
    return Path(home).expanduser() / "hub"


def _download_hint(ref: HubReference) -> str:
    kind = "" if ref.kind == "model" else f" --repo-type {ref.kind}"
    return f"hf download {ref.repo_id}{kind} --revision {ref.revision}"


def resolve_hub_uri(text: str) -> HubSnapshot:
    """The cached snapshot an `hf://` reference names; InputError (one line) if not cached."""
    ref = parse_hub_uri(text)
    cache = hub_cache_dir()
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = snapshot_download(
            ref.repo_id,
            repo_type=ref.kind,
            revision=ref.revision,
            cache_dir=cache,
            local_files_only=True,
        )
    except LocalEntryNotFoundError as exc:
        incomplete = "incomplete" in str(exc).lower()
        state = "is incomplete in" if incomplete else "is not in"
        raise InputError(
            f"{text} {state} the Hugging Face cache {cache}; download it first:"
            f" {_download_hint(ref)} (or huggingface-cli download, same arguments)"
        ) from None
    except (HFValidationError, ValueError, OSError) as exc:
        raise InputError(f"{text}: cannot resolve from {cache} ({exc})") from None
    snapshot = Path(str(folder))
    commit = snapshot.name
    if not _COMMIT.match(commit):
        raise InputError(f"{text}: the cache names snapshot {commit!r}, which is not a commit")
    return HubSnapshot(ref.kind, ref.repo_id, commit, snapshot.parent.parent, ref.revision)


def hub_snapshot(path: Path) -> HubSnapshot | None:
    """The hub repo a `snapshots/REV` directory belongs to, or None if it is not one."""
    resolved = Path(path).absolute()
    if resolved.parent.name != "snapshots" or not resolved.is_dir():
        return None
    match = REPO_DIR.match(resolved.parent.parent.name)
    if not match:
        return None
    plural, flat = match.groups()
    repo_dir = resolved.parent.parent
    return HubSnapshot(plural.rstrip("s"), flat.replace("--", "/"), resolved.name, repo_dir)
