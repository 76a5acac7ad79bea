"""A cache of file digests keyed by device, inode, size, mtime_ns and ctime_ns, as git's index.

Entries whose mtime or ctime is within `RACY_SECONDS` of the moment they were hashed
are not stored: a file rewritten within the filesystem's timestamp granularity could
otherwise keep a stale digest ("racy git"). Any failure of the cache only disables it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

RACY_SECONDS = 2.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, algorithm TEXT NOT NULL,
    start INTEGER NOT NULL, end INTEGER NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    digest TEXT NOT NULL,
    PRIMARY KEY (dev, ino, algorithm, start, end)
) WITHOUT ROWID;
"""


def default_cache_dir() -> Path:
    """`MLPROV_CACHE_DIR`, else the per-user cache directory."""
    env = os.environ.get("MLPROV_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlprov"))


class CacheKey(NamedTuple):
    """Identity of one file's content, as far as stat can tell, plus the byte range.

    A NamedTuple: cheap to build and hash, which matters at a million files.
    """

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    start: int = 0
    end: int = -1

    @classmethod
    def of(cls, st: os.stat_result, start: int = 0, end: int = -1) -> CacheKey:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, start, end)


class DigestCache:
    """File digests remembered across runs in SQLite."""

    def __init__(self, directory: Path | None = None, *, racy_seconds: float = RACY_SECONDS):
        self.racy_seconds = racy_seconds
        self._db: sqlite3.Connection | None = None
        directory = directory or default_cache_dir()
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(directory / "digests.sqlite3", timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        except (OSError, sqlite3.Error):
            self._db = None

    @property
    def enabled(self) -> bool:
        """False when the cache could not be opened; digests are then always computed."""
        return self._db is not None

    def lookup(self, algorithm: str, keys: Sequence[CacheKey]) -> dict[CacheKey, str]:
        """The cached digests of those `keys` that have one."""
        if self._db is None or not keys:
            return {}
        found: dict[CacheKey, str] = {}
        wanted = set(keys)
        by_device: dict[int, list[int]] = {}
        for key in wanted:
            by_device.setdefault(key.dev, []).append(key.ino)
        try:
            for dev, inodes in by_device.items():
                inodes = sorted(set(inodes))
                for i in range(0, len(inodes), 900):
                    chunk = inodes[i : i + 900]
                    marks = ",".join("?" * len(chunk))
                    # (dev, ino) is the primary key's prefix: an index lookup per inode.
                    rows = self._db.execute(
                        "SELECT dev, ino, size, mtime_ns, ctime_ns, start, end, digest FROM digests"
                        f" WHERE dev = ? AND ino IN ({marks}) AND algorithm = ?",
                        [dev, *chunk, algorithm],
                    )
                    for row in rows:
                        stat_key = row[:7]  # a plain tuple equals (and hashes as) a CacheKey
                        if stat_key in wanted:
                            found[CacheKey(*stat_key)] = row[7]
        except sqlite3.Error:
            return {}
        return found

    def store(self, algorithm: str, items: Iterable[tuple[CacheKey, str]]) -> None:
        """Remember digests, skipping racily-clean files (changed within the racy window)."""
        if self._db is None:
            return
        horizon = time.time_ns() - int(self.racy_seconds * 1e9)
        rows = [
            (k.dev, k.ino, algorithm, k.start, k.end, k.size, k.mtime_ns, k.ctime_ns, digest)
            for k, digest in items
            if k.mtime_ns < horizon and k.ctime_ns < horizon
        ]
        if not rows:
            return
        with contextlib.suppress(sqlite3.Error), self._db:
            self._db.executemany("INSERT OR REPLACE INTO digests VALUES (?,?,?,?,?,?,?,?,?)", rows)

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None
