"""Tree manifests: every file of a model or dataset with its digest, and the tree digest.

The tree digest follows OpenSSF Model Signing (`files` and `shards` methods): sha256 over
the raw digests of the entries concatenated in path-component order, so one model has
one identity in mlprov and in model_signing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mlprov.errors import InputError
from mlprov.fsio import parse_json

MANIFEST_MEDIA_TYPE: Literal["application/vnd.mlprov.manifest.v1+json"] = (
    "application/vnd.mlprov.manifest.v1+json"
)


def path_order_key(name: str) -> str:
    """Sort key ordering paths component by component (`a/b` < `a-b` < `a.b`), as pathlib does.

    Each `/` becomes NUL, which sorts before every character a file name can hold, so
    plain string order is component order (and far cheaper than comparing tuples).
    """
    if "//" in name or name.startswith(("/", "./")) or "/./" in name or name.endswith("/"):
        name = "/".join(PurePosixPath(name).parts)  # not a clean relative path: normalise
    return name.replace("/", "\0")


def shard_order_key(name: str) -> tuple[str, int, int]:
    """Sort key for `path:start:end` shard names: by path components, then offsets."""
    path, start, end = split_shard_name(name)
    return path_order_key(path), start, end


def split_shard_name(name: str) -> tuple[str, int, int]:
    """Split `path:start:end` into its parts (the path itself may contain colons)."""
    path, _, rest = name.rpartition(":")
    path, _, start = path.rpartition(":")
    try:
        return path, int(start), int(rest)
    except ValueError:
        raise InputError(f"shard name {name!r} is not of the form path:start:end") from None


@dataclass(slots=True)
class FileEntry:
    """One file (or one shard of a file, named `path:start:end`) of a tree and its digest.

    A plain (unfrozen: cheaper to build) dataclass, not a model: a tree of a million files
    builds a million of these. Pydantic still validates them when a manifest is read.
    """

    path: str
    digest: str
    size: int


class TreeManifest(BaseModel):
    """The digests of every file of a tree, in path-component order, and the tree digest."""

    # Validators are built on first validation or dump, not at import: `mlprov digest`
    # only constructs manifests (model_construct) and prints them.
    model_config = ConfigDict(extra="forbid", defer_build=True)

    mediaType: Literal["application/vnd.mlprov.manifest.v1+json"] = MANIFEST_MEDIA_TYPE
    name: str = Field(description="Name of the tree (its directory's base name)")
    algorithm: str = Field(description="Hash algorithm of each file digest")
    method: Literal["files", "shards"] = "files"
    shard_size: int | None = None
    digest: str = Field(description="sha256 over the raw entry digests, in order (OMS)")
    ignore: list[str] = Field(default_factory=list, description="Ignore patterns applied")
    files: list[FileEntry]
    versions: dict[str, str] | None = Field(
        default=None,
        description="Object version id of each file, when read from a versioned object store "
        "(`mlprov digest --record-versions`), so the tree can be re-read exactly",
    )

    @classmethod
    def build(
        cls,
        *,
        name: str,
        algorithm: str,
        entries: Iterable[FileEntry],
        method: Literal["files", "shards"] = "files",
        shard_size: int | None = None,
        ignore: Iterable[str] = (),
        clean: bool = False,
    ) -> TreeManifest:
        """Order the entries as OMS does and compute the tree digest over them.

        `clean` vouches that every path is already a normal relative POSIX path (as the
        walk makes them), which spares normalising each one before sorting.
        """
        if method == "shards":
            ordered = sorted(entries, key=lambda e: shard_order_key(e.path))
        elif clean:
            ordered = sorted(entries, key=lambda e: e.path.replace("/", "\0"))
        else:
            ordered = sorted(entries, key=lambda e: path_order_key(e.path))
        # Entries come from the engine itself: construct without re-validating each one.
        return cls.model_construct(
            mediaType=MANIFEST_MEDIA_TYPE,
            name=name,
            algorithm=algorithm,
            method=method,
            shard_size=shard_size,
            digest=tree_digest(e.digest for e in ordered),
            ignore=list(ignore),
            files=ordered,
            versions=None,
        )

    @property
    def identity(self) -> str:
        """The sha256 that names this artifact in attestations: a lone file's own digest
        (sha256 of its bytes, when hashed with sha256), else the tree digest."""
        lone = len(self.files) == 1 and self.files[0].path == "."
        if lone and self.method == "files" and self.algorithm == "sha256":
            return self.files[0].digest
        return self.digest

    @property
    def total_size(self) -> int:
        """Sum of the sizes of every entry."""
        return sum(e.size for e in self.files)

    @property
    def file_count(self) -> int:
        """Number of distinct files (shards of one file count once)."""
        if self.method == "shards":
            return len({split_shard_name(e.path)[0] for e in self.files})
        return len(self.files)

    def as_dict(self) -> dict[str, str]:
        """Map of entry path to digest."""
        return {e.path: e.digest for e in self.files}

    def to_json(self) -> bytes:
        """Stable JSON bytes of the manifest (sorted keys, one trailing newline)."""
        data = self.model_dump(mode="json")
        if data.get("versions") is None:
            data.pop("versions", None)  # absent, not null: manifests of local trees unchanged
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes | str, *, source: str = "manifest") -> TreeManifest:
        """Parse and validate a manifest; bad input raises InputError naming `source`."""
        raw = parse_json(data, source=source)
        from pydantic import ValidationError

        try:
            manifest = cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(root)"
            raise InputError(f"{source}: invalid manifest at {where}: {first['msg']}") from None
        try:
            recomputed = tree_digest(e.digest for e in manifest.files)
        except ValueError:
            raise InputError(f"{source}: an entry's digest is not hex") from None
        if manifest.digest != recomputed:
            raise InputError(f"{source}: tree digest does not match its entries")
        return manifest


def tree_digest(hex_digests: Iterable[str]) -> str:
    """sha256 over the raw bytes of each hex digest, concatenated in the given order.

    Raises ValueError for a digest that is not whole bytes of hex (checked per digest:
    two odd-length ones must not pair up into valid-looking hex once joined).
    """
    digests = list(hex_digests)
    if any(len(d) % 2 for d in digests):
        raise ValueError("a digest has an odd number of hex digits")
    return hashlib.sha256(bytes.fromhex("".join(digests))).hexdigest()


class ManifestDiff(BaseModel):
    """What differs between a recorded manifest and the tree on disk now."""

    model_config = ConfigDict(defer_build=True)

    changed: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)
    added: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing changed, went missing or was added."""
        return not (self.changed or self.missing or self.added)


def compare_manifests(expected: TreeManifest, actual: TreeManifest) -> ManifestDiff:
    """Files changed, missing from `actual`, or added to it, relative to `expected`."""
    return diff_against(expected.as_dict(), actual)


def diff_against(want: Mapping[str, str], actual: TreeManifest) -> ManifestDiff:
    """Files changed, missing or added in `actual` relative to a recorded path -> digest map."""
    have = actual.as_dict()
    return ManifestDiff(
        changed=sorted((p for p in want if p in have and want[p] != have[p]), key=path_order_key),
        missing=sorted((p for p in want if p not in have), key=path_order_key),
        added=sorted((p for p in have if p not in want), key=path_order_key),
    )
