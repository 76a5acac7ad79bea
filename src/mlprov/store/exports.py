"""Exports in progress, so that what a killed export leaves behind can be removed.

`store export` writes through `mlprov.fsio.atomic_writer`: a temp file `.{name}.*.tmp`
beside the target, locked while it is written, renamed when complete. A `kill -9` leaves
the temp file. Each export also registers its temp file here (one small JSON file per
export, in the digest cache directory) and unregisters once it is renamed or deleted, so
`store check` can find temp files far from the store; the next export to the same target
finds them beside it. Only a temp file no live writer holds is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from mlprov.fsio import remove_stale_temp, temp_files_of
from mlprov.store.backend import is_postgres_url, redact


def registry_dir() -> Path:
    """Where exports in progress are registered (inside the digest cache directory)."""
    from mlprov.digest.cache import default_cache_dir

    return default_cache_dir() / "exports-in-progress"


def store_key(location: str) -> str:
    """One spelling of a store's location, whatever the working directory (and, for a
    PostgreSQL URL, without its password: none is written to the registry)."""
    if is_postgres_url(location):
        return redact(location)
    return str(Path(location.removeprefix("sqlite://")).expanduser().resolve())


@contextlib.contextmanager
def export_in_progress(location: str, target: Path) -> Iterator[Callable[[Path], None]]:
    """Yield the `on_temp` callback that registers the export's temp file; the
    registration is removed when the block ends, however it ends (but a kill)."""
    directory = registry_dir()
    entry = directory / f"{uuid.uuid4().hex}.json"
    document = {"store": store_key(location), "target": str(Path(target).resolve())}

    def register(temp: Path) -> None:
        with contextlib.suppress(OSError):  # best-effort: the export does not depend on it
            directory.mkdir(parents=True, exist_ok=True)
            entry.write_text(json.dumps({**document, "temp": str(Path(temp).resolve())}))

    try:
        yield register
    finally:
        with contextlib.suppress(OSError):
            entry.unlink()


def _is_temp_of(temp: Path, target: Path) -> bool:
    """Whether `temp` is named as atomic_writer names a temp file of `target` (so a
    tampered registration cannot make a sweep delete any other file)."""
    name = temp.name
    prefix = f".{target.name}."
    return (
        temp.parent == target.parent
        and name.startswith(prefix)
        and name.endswith(".tmp")
        and len(name) > len(prefix) + len(".tmp")
    )


def sweep(*, location: str | None = None, target: Path | None = None) -> list[Path]:
    """Remove the temp files killed exports left: beside `target`, and those registered
    by exports of the store at `location`. Returns the files removed."""
    removed: list[Path] = []
    if target is not None:
        removed.extend(t for t in temp_files_of(target) if remove_stale_temp(t))
    if location is None:
        return removed
    key = store_key(location)
    try:
        entries = sorted(registry_dir().glob("*.json"))
    except OSError:
        return removed
    for entry in entries:
        try:
            document = json.loads(entry.read_bytes()[:65536])
            store, temp, aim = document["store"], Path(document["temp"]), Path(document["target"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours: left alone
        if store != key or not _is_temp_of(temp, aim):
            continue
        if not os.path.lexists(temp):
            with contextlib.suppress(OSError):
                entry.unlink()
        elif remove_stale_temp(temp):
            removed.append(temp)
            with contextlib.suppress(OSError):
                entry.unlink()
    return removed
