"""A cache of file digests validated by device, inode, size, mtime_ns and ctime_ns, as git's index.

(Remote objects are kept apart, one row each, keyed by store, key and byte range and
validated by size, ETag and version id: see `load_objects`.)

The digests are kept per directory: one record holds, for every file seen in a directory
(named by its device and inode), the file's name, its stat stamp when hashed and its
digest. A re-digest reads one record per directory instead of one row per file, and a
hit still needs the file's stamp now to equal the stamp remembered, so renaming,
rewriting or touching a file (even restoring its mtime: ctime tells) is a miss.

Entries whose mtime or ctime is within `RACY_SECONDS` of the moment they were hashed
are not stored: a file rewritten within the filesystem's timestamp granularity could
otherwise keep a stale digest ("racy git"). Any failure of the cache only disables it;
a record that cannot be decoded is a miss.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import time
from collections.abc import Iterable
from pathlib import Path

RACY_SECONDS = 2.0
_FILE = "digests.v2.sqlite3"
_OLD_FILES = ("digests.sqlite3", "digests.sqlite3-wal", "digests.sqlite3-shm")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS dirs (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, algorithm TEXT NOT NULL,
    names BLOB NOT NULL, entries BLOB NOT NULL,
    PRIMARY KEY (dev, ino, algorithm)
);
CREATE TABLE IF NOT EXISTS objects (
    store TEXT NOT NULL, key TEXT NOT NULL, algorithm TEXT NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    size INTEGER NOT NULL, etag TEXT NOT NULL, version TEXT NOT NULL, digest BLOB NOT NULL,
    PRIMARY KEY (store, key, algorithm, start, "end")
);
"""
#: A remote object's (or byte range's) cache key: store, key, start, end; and what must
#: still hold for its digest to: size, ETag, version id ('' when the store has none).
ObjectKey = tuple[str, int, int]
ObjectStamp = tuple[int, str, str]
#: Directories per lookup query (SQLite's default limit is 999 parameters).
_QUERY_DIRS = 500

#: (st_dev, st_ino) of a directory.
DirKey = tuple[int, int]
#: What stat says of a file's content: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns).
Stamp = tuple[int, int, int, int, int]
#: Names a record's entry: a file's name in its directory, or `name/start:end` for a byte
#: range of it (a file name cannot hold `/`).
Slot = str
#: What a record holds for one slot: the file's stamp when hashed (five ints), the range
#: (start, end; 0, -1 for the whole file), and the raw digest, as it is packed.
Entry = tuple[int, int, int, int, int, int, int, bytes]


def stamp(st: os.stat_result) -> Stamp:
    """The part of a stat that must be unchanged for a cached digest to hold."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def default_cache_dir() -> Path:
    """`MLPROV_CACHE_DIR`, else the per-user cache directory."""
    env = os.environ.get("MLPROV_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("mlprov"))


def _layout(algorithm: str) -> struct.Struct | None:
    """How one entry of a record is packed: seven int64s, then the raw digest."""
    size = {"sha256": 32, "sha512": 64, "blake2b": 64, "blake3": 32}.get(algorithm)
    return struct.Struct(f"<7q{size}s") if size else None


def slot(name: str, start: int = 0, end: int = -1) -> Slot:
    """The slot of a whole file, or of bytes [start, end) of it."""
    return name if end < 0 else f"{name}/{start}:{end}"


def _encode(layout: struct.Struct, entries: dict[Slot, Entry]) -> tuple[bytes, bytes]:
    names = "\0".join(entries).encode("utf-8", "surrogateescape")
    packed = b"".join(layout.pack(*entry) for entry in entries.values())
    return names, packed


def _decode(layout: struct.Struct, names: bytes, packed: bytes) -> dict[Slot, Entry]:
    """A record's entries; raises ValueError (or struct.error) if it is not well formed."""
    if not packed:
        return {}
    if len(packed) % layout.size:
        raise ValueError("truncated record")
    slots = names.decode("utf-8", "surrogateescape").split("\0")
    # zip(strict=True) raises ValueError when the names and the entries do not pair up.
    return dict(zip(slots, layout.iter_unpack(packed), strict=True))


class DigestCache:
    """File digests remembered across runs in SQLite, one record per directory."""

    def __init__(self, directory: Path | None = None, *, racy_seconds: float = RACY_SECONDS):
        self.racy_seconds = racy_seconds
        self._db: sqlite3.Connection | None = None
        directory = directory or default_cache_dir()
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(directory / _FILE, timeout=30, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db = db
        except (OSError, sqlite3.Error):
            self._db = None
            return
        for old in _OLD_FILES:  # the per-file cache of earlier versions
            with contextlib.suppress(OSError):
                (directory / old).unlink()

    @property
    def enabled(self) -> bool:
        """False when the cache could not be opened; digests are then always computed."""
        return self._db is not None

    def session(self, algorithm: str) -> CacheSession:
        """Lookups and updates for one walk, with digests of `algorithm`."""
        return CacheSession(self, algorithm)

    def load(self, algorithm: str, dirs: Iterable[DirKey]) -> dict[DirKey, dict[Slot, Entry]]:
        """The records of those directories that have one (undecodable ones are left out)."""
        layout = _layout(algorithm)
        if self._db is None or layout is None:
            return {}
        by_device: dict[int, set[int]] = {}
        for dev, ino in dirs:
            by_device.setdefault(dev, set()).add(ino)
        records: dict[DirKey, dict[Slot, Entry]] = {}
        try:
            for dev, inodes in by_device.items():
                ordered = sorted(inodes)
                for i in range(0, len(ordered), _QUERY_DIRS):
                    chunk = ordered[i : i + _QUERY_DIRS]
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(
                        "SELECT ino, names, entries FROM dirs"
                        f" WHERE dev = ? AND algorithm = ? AND ino IN ({marks})",
                        [dev, algorithm, *chunk],
                    )
                    for ino, names, packed in rows:
                        with contextlib.suppress(ValueError, struct.error, TypeError):
                            records[(dev, ino)] = _decode(layout, names, packed)
        except sqlite3.Error:
            return {}
        return records

    def save(self, algorithm: str, records: dict[DirKey, dict[Slot, Entry]]) -> None:
        """Replace the records of these directories (an empty record deletes one)."""
        layout = _layout(algorithm)
        if self._db is None or layout is None or not records:
            return
        rows = [
            (*key, algorithm, *_encode(layout, entries))
            for key, entries in records.items()
            if entries
        ]
        gone = [(*key, algorithm) for key, entries in records.items() if not entries]
        with contextlib.suppress(sqlite3.Error), self._db:
            self._db.executemany("INSERT OR REPLACE INTO dirs VALUES (?,?,?,?,?)", rows)
            self._db.executemany(
                "DELETE FROM dirs WHERE dev = ? AND ino = ? AND algorithm = ?", gone
            )

    def load_objects(
        self, algorithm: str, store: str, keys: Iterable[ObjectKey]
    ) -> dict[ObjectKey, tuple[ObjectStamp, str]]:
        """Remote objects' digests by (key, start, end): each with the (size, ETag,
        version id) it was hashed under, which the caller compares with the listing's."""
        if self._db is None:
            return {}
        wanted = sorted({k[0] for k in keys})
        found: dict[ObjectKey, tuple[ObjectStamp, str]] = {}
        try:
            for i in range(0, len(wanted), _QUERY_DIRS):
                chunk = wanted[i : i + _QUERY_DIRS]
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    'SELECT key, start, "end", size, etag, version, digest FROM objects'
                    f" WHERE store = ? AND algorithm = ? AND key IN ({marks})",
                    [store, algorithm, *chunk],
                )
                for key, start, end, size, etag, version, digest in rows:
                    if isinstance(digest, bytes):
                        found[(key, start, end)] = ((size, etag, version), digest.hex())
        except sqlite3.Error:
            return {}
        return found

    def save_objects(
        self,
        algorithm: str,
        store: str,
        rows: Iterable[tuple[ObjectKey, ObjectStamp, str]],
    ) -> None:
        """Remember remote digests: ((key, start, end), (size, ETag, version id), hex)."""
        if self._db is None:
            return
        values = [
            (store, key, algorithm, start, end, size, etag, version, bytes.fromhex(digest))
            for (key, start, end), (size, etag, version), digest in rows
            if etag  # without an ETag nothing tells a rewrite: never cached
        ]
        with contextlib.suppress(sqlite3.Error), self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?)", values
            )

    def close(self) -> None:
        """Close the database."""
        if self._db is not None:
            self._db.close()
            self._db = None


class CacheSession:
    """The cache as one walk uses it: look up by directory, then write back what changed.

    `prefetch` the directories of the files about to be looked up (a query per few
    hundred directories), `get` each file, `put` each digest computed, and `flush` once:
    every record that changed is rewritten with the new digests, without the entries
    whose file is now different, and without the names that are gone from the directory.
    """

    def __init__(self, cache: DigestCache, algorithm: str) -> None:
        self._cache = cache
        self._algorithm = algorithm
        self._horizon = 0
        self._records: dict[DirKey, dict[Slot, Entry]] = {}
        self._dirty: dict[DirKey, str] = {}  # key -> path of each directory to write back

    def prefetch(self, dirs: Iterable[DirKey]) -> None:
        """Load the records of these directories in as few queries as possible."""
        wanted = {d for d in dirs if d not in self._records}
        found = self._cache.load(self._algorithm, wanted)
        for key in wanted:
            self._records[key] = found.get(key, {})

    def get(
        self, parent: DirKey, name: str, st: os.stat_result, start: int = 0, end: int = -1
    ) -> str | None:
        """The cached hex digest of the file `name` in `parent`, if its stat is unchanged."""
        record = self._records.get(parent)
        if record is None:
            self.prefetch([parent])
            record = self._records[parent]
        entry = record.get(name if end < 0 else slot(name, start, end))
        if (
            entry is None
            or entry[1] != st.st_ino
            or entry[3] != st.st_mtime_ns
            or entry[4] != st.st_ctime_ns
            or entry[2] != st.st_size
            or entry[0] != st.st_dev
        ):
            return None
        return entry[7].hex()

    def put(
        self,
        parent: DirKey,
        path: str,
        name: str,
        hashed_under: Stamp,
        digest: str,
        start: int = 0,
        end: int = -1,
    ) -> None:
        """Remember the digest of the file at `path`, named `name` in `parent`, computed
        under that stamp; racily-clean files are forgotten instead."""
        if not self._horizon:
            self._horizon = time.time_ns() - int(self._cache.racy_seconds * 1e9)
        record = self._records.get(parent)
        if record is None:
            self.prefetch([parent])
            record = self._records[parent]
        key = slot(name, start, end)
        if hashed_under[3] < self._horizon and hashed_under[4] < self._horizon:
            record[key] = (*hashed_under, start, end, bytes.fromhex(digest))
        elif record.pop(key, None) is None:
            return  # racy, and nothing stale to drop: the record is unchanged
        if parent not in self._dirty:
            self._dirty[parent] = os.path.dirname(path) or os.curdir

    def flush(self) -> None:
        """Write back every record that changed, pruned of files no longer there."""
        if not self._dirty:
            return
        changed: dict[DirKey, dict[Slot, Entry]] = {}
        for key, directory in self._dirty.items():
            record = self._records[key]
            try:
                present = set(os.listdir(directory))
            except OSError:
                present = None  # cannot tell: keep every entry
            if present is not None:
                record = {
                    name: entry
                    for name, entry in record.items()
                    if name.partition("/")[0] in present
                }
            changed[key] = record
        self._cache.save(self._algorithm, changed)
        self._dirty.clear()
