"""Reading inputs and writing outputs safely.

Inputs: regular files only, never more than a limit (`read_input`). Outputs: to a temp
file beside the target, then renamed into place.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
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


def _try_lock(fd: int, *, wait: bool) -> bool:
    """An exclusive advisory lock on an open file (released when it is closed, or its
    process dies); False if another process holds it. Without fcntl: never locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return not wait
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def temp_files_of(path: Path) -> list[Path]:
    """The temp files `atomic_writer` makes beside `path`: `.{name}.*.tmp`."""
    path = Path(path)
    pattern = os.path.join(glob.escape(str(path.parent)), f".{glob.escape(path.name)}.*.tmp")
    return [Path(p) for p in sorted(glob.glob(pattern))]


def remove_stale_temp(tmp: Path) -> bool:
    """Delete a temp file of `atomic_writer` whose writer is gone (killed before it could
    rename or delete it); a live writer holds a lock on its temp file, which is kept."""
    try:
        fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        if not _try_lock(fd, wait=False):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(
    path: Path,
    *,
    force: bool = False,
    mode: int = 0o644,
    on_temp: Callable[[Path], None] | None = None,
) -> Iterator[IO[bytes]]:
    """Yield a binary file whose contents replace `path` only when the block succeeds.

    The temp file (`.{name}.*.tmp` beside `path`, told to `on_temp`) is locked while it
    is written, so a later writer can tell one left by a killed process and remove it.
    """
    path = Path(path)
    check_writable(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    lock = os.dup(fd)  # held until the temp file is renamed or deleted
    _try_lock(lock, wait=True)
    try:
        if on_temp is not None:
            on_temp(Path(tmp))
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
    finally:
        os.close(lock)


def write_bytes_atomic(path: Path, data: bytes, *, force: bool = False, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically; never leaves a half-written file."""
    with atomic_writer(path, force=force, mode=mode) as handle:
        handle.write(data)


def append_line_atomic(path: Path, line: bytes, *, limit: int = 128 << 20) -> None:
    """Append one line to a JSON-lines file by rewriting it atomically (old lines kept as bytes)."""
    path = Path(path)
    old = read_input(path, limit=limit, what="output file") if path.exists() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    write_bytes_atomic(path, old + line.rstrip(b"\n") + b"\n", force=True)


def read_input(path: Path | str, *, limit: int, what: str) -> bytes:
    """The bytes of a regular input file of at most `limit` bytes; one InputError otherwise.

    The file is opened without blocking (a FIFO cannot hang the reader), refused unless
    the opened descriptor is a regular file (`/dev/zero`, FIFOs, sockets, devices report
    size 0 and never end), and read at most `limit + 1` bytes whatever its size claims.
    `what` names the file in messages ("attestation file", "config file", "public key").
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{what} {path} is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{what} {path}: not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise InputError(f"{what} {path}: larger than {limit} bytes")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while total <= limit:
            chunk = os.read(fd, min(limit + 1 - total, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:  # it grew after fstat
            raise InputError(f"{what} {path}: larger than {limit} bytes")
        return b"".join(chunks)
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory") from None
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_input_text(path: Path | str, *, limit: int, what: str) -> str:
    """`read_input` decoded as UTF-8; text that is not UTF-8 is one InputError."""
    try:
        return read_input(path, limit=limit, what=what).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} {path}: not UTF-8 text") from None


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def parse_json(data: bytes | str, *, source: str) -> Any:
    """Decode JSON; malformed, non-UTF-8 or absurdly nested input is one InputError."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(f"{source}: not valid JSON ({exc})") from None
