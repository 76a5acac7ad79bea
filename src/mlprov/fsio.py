"""Writing outputs safely: to a temp file beside the target, then renamed into place."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mlprov.errors import InputError


def check_writable(path: Path, *, force: bool) -> None:
    """Refuse to clobber an existing output unless `force`; refuse a missing directory."""
    if path.exists() and not force:
        raise InputError(f"{path} already exists (use --force to overwrite)")
    if path.is_dir():
        raise InputError(f"{path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"directory {parent} does not exist")


@contextlib.contextmanager
def atomic_writer(path: Path, *, force: bool = False, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """Yield a binary file whose contents replace `path` only when the block succeeds."""
    path = Path(path)
    check_writable(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        if not force and path.exists():
            raise InputError(f"{path} already exists (use --force to overwrite)")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: Path, data: bytes, *, force: bool = False, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically; never leaves a half-written file."""
    with atomic_writer(path, force=force, mode=mode) as handle:
        handle.write(data)


def append_line_atomic(path: Path, line: bytes) -> None:
    """Append one line to a JSON-lines file by rewriting it atomically (old lines kept as bytes)."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    write_bytes_atomic(path, old + line.rstrip(b"\n") + b"\n", force=True)


def read_input(path: Path, *, limit: int, what: str) -> bytes:
    """The bytes of an input file of at most `limit` bytes; one clear InputError otherwise.

    `what` names the file in messages ("attestation file", "config file", "public key").
    """
    path = Path(path)
    try:
        if path.stat().st_size > limit:
            raise InputError(f"{what} {path}: larger than {limit} bytes")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror})") from None


def parse_json(data: bytes | str, *, source: str) -> Any:
    """Decode JSON; malformed, non-UTF-8 or absurdly nested input is one InputError."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{source}: not valid JSON ({exc})") from None
