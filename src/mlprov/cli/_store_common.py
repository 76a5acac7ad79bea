"""What `mlprov lineage` and `mlprov store` share: where the store is (`--store`) and
how a PATH, DIGEST, `hf://` reference or object-store URL becomes the digest
attestations record."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from mlprov.cli._common import byte_progress
from mlprov.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])


def store_option(func: F) -> F:
    """`--store`: a SQLite path or postgresql:// URL (default: $MLPROV_STORE, else per-user)."""
    return click.option(
        "--store",
        "store_location",
        metavar="PATH|URL",
        help="SQLite file or postgresql://… URL (default: $MLPROV_STORE, else the per-user store).",
    )(func)


def digest_of_path(path: Path, *, follow_symlinks: bool = False) -> str:
    """The digest attestations use for a path: tree digest of a directory (OpenSSF Model
    Signing), sha256 of a file's bytes."""
    from mlprov.digest import DigestCache, digest_file, digest_tree

    if path.is_dir():
        cache = DigestCache()
        try:
            with byte_progress(f"hashing {path}") as (on_total, advance):
                manifest = digest_tree(
                    path,
                    cache=cache,
                    progress=advance,
                    on_total=on_total,
                    follow_symlinks=follow_symlinks,
                )
        finally:
            cache.close()
        return f"sha256:{manifest.digest}"
    if follow_symlinks and path.is_symlink():
        path = path.resolve()
    return f"sha256:{digest_file(path)}"


def resolve_target(target: str, *, follow_symlinks: bool = False) -> str:
    """A digest as given (`sha256:<hex>` or bare hex), the digest of an existing path, of
    the hub snapshot an `hf://org/name@REV` names (resolved from the local cache), or that
    of an object-store URL (`s3://bucket/prefix/`), hashed where it is."""
    from mlprov.digest import digest_tree
    from mlprov.digest.urls import is_remote, public_url
    from mlprov.store import parse_digest

    if target.startswith("hf://"):
        from mlprov.collect.hf import resolve_hub_uri

        return digest_of_path(resolve_hub_uri(target).path)
    if is_remote(target):
        with byte_progress(f"hashing {public_url(target)}") as (on_total, advance):
            remote = digest_tree(target, progress=advance, on_total=on_total)
        return f"sha256:{remote.identity}"
    path = Path(target)
    looks_like_digest = ":" in target and not target.startswith(("/", "."))
    if path.exists() and not looks_like_digest:
        return digest_of_path(path, follow_symlinks=follow_symlinks)
    try:
        return parse_digest(target)
    except InputError:
        raise InputError(f"{target!r} is neither an existing path nor a digest") from None
