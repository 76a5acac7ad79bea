"""Walking and hashing many small files in forked worker processes.

A small file costs system calls and interpreter time, not hashing: threads only fight
over the GIL for it (measured slower than one loop), while processes really run in
parallel. Forking is only done from a process that has no other thread (fork with
threads alive may deadlock), and only for enough files to repay the fork.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.digest.cache import DigestCache, Stamp, stamp
from mlprov.digest.hashing import LARGE_FILE, changed_error, hash_small_file
from mlprov.digest.manifest import FileEntry
from mlprov.digest.walk import FileInfo, Subtree, WalkContext, walk_subtree

if TYPE_CHECKING:  # multiprocessing is imported only when workers are forked
    from concurrent.futures import Future

#: Fewer small files than this are hashed in the calling thread: forking two workers
#: (with the process pool's imports) repays itself from about 2,500 files without a cache
#: or into an empty one, about 10,000 from a full one (benchmarks/digest_crossover.py).
MIN_FILES = 3000
#: Files per task sent to a worker process.
BATCH_FILES = 1000

#: What a worker returns per file: its digest and the stat fields it was hashed under.
_Row = tuple[str, int, int, int, int, int]


def fork_is_safe(workers: int, count: int) -> bool:
    """True when forking workers is both worth it and safe here."""
    if not (
        workers > 1
        and count >= MIN_FILES
        and sys.platform.startswith("linux")  # fork is unsafe on macOS, absent on Windows
        and threading.active_count() == 1
    ):
        return False
    import multiprocessing

    return multiprocessing.current_process().name == "MainProcess"


def _hash_batch(files: list[tuple[str, Stamp]], algorithm: str, nofollow: bool) -> list[_Row]:
    rows = []
    for path, expected in files:
        hashed = hash_small_file(path, algorithm, nofollow=nofollow)
        hashed_under = stamp(hashed.st)
        if hashed_under != expected:  # changed between the walk and the hashing
            raise changed_error(path)
        rows.append((hashed.digest, *hashed_under))
    return rows


@dataclass(frozen=True, slots=True)
class SmallFile:
    """What a worker needs to hash one file (its path, and the stamp of the stat the walk
    took, which the file must still match), and the name its digest is filed under."""

    path: str
    name: str
    expected: Stamp


class ForkedHashing:
    """Small files hashed by `workers` forked processes, started before any thread."""

    def __init__(
        self, files: Sequence[SmallFile], algorithm: str, *, workers: int, nofollow: bool
    ) -> None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        self._batches = [files[i : i + BATCH_FILES] for i in range(0, len(files), BATCH_FILES)]
        self._futures: list[Future[list[_Row]]] = [
            self._pool.submit(
                _hash_batch, [(f.path, f.expected) for f in batch], algorithm, nofollow
            )
            for batch in self._batches
        ]

    def results(self) -> Iterator[tuple[str, _Row]]:
        """(name, (digest, st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)) of every
        file, as batches finish."""
        try:
            for batch, future in zip(self._batches, self._futures, strict=True):
                for item, row in zip(batch, future.result(), strict=True):
                    yield item.name, row
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)


#: A walk is split into about this many subtrees per worker, found at most this deep.
SUBTREES_PER_WORKER = 4
MAX_SPLIT_DEPTH = 3


def split_tree(
    root: Subtree, ctx: WalkContext, *, workers: int
) -> tuple[list[FileInfo], list[Subtree], int]:
    """Walk the top levels of a tree until there are subtrees enough to share out.

    Returns the files found so far, the subtrees not yet walked, and an estimate of
    the files in the whole tree (what the top levels hold, plus the entries directly
    in the remaining subtrees, counted only until MIN_FILES is reached).
    """
    files: list[FileInfo] = []
    frontier = [root]
    for _ in range(MAX_SPLIT_DEPTH):
        deferred: list[Subtree] = []
        for tree in frontier:
            files.extend(walk_subtree(tree, ctx, defer=deferred))
        frontier = deferred
        if not frontier or len(frontier) >= SUBTREES_PER_WORKER * workers:
            break
    estimate = len(files)
    for tree in frontier:
        if estimate >= MIN_FILES:
            break  # enough to know the answer; counting on would cost a listing per dir
        with contextlib.suppress(OSError):  # the walk itself reports unreadable dirs
            estimate += len(os.listdir(tree.path))
    return files, frontier, estimate


_worker_caches: dict[tuple[int, str, float], DigestCache] = {}


def _worker_cache(cache_dir: str, racy_seconds: float) -> DigestCache:
    """The cache as a worker opens it once for all its tasks (closed when the worker exits).

    Never the parent's connection: an SQLite connection must not cross a fork.
    """
    key = (os.getpid(), cache_dir, racy_seconds)  # a forked child never takes its parent's
    if key not in _worker_caches:
        _worker_caches[key] = DigestCache(Path(cache_dir), racy_seconds=racy_seconds)
    return _worker_caches[key]


def _walk_and_hash(
    trees: list[Subtree],
    ctx: WalkContext,
    algorithm: str,
    cache_dir: str | None,
    racy_seconds: float,
    nofollow: bool,
) -> tuple[list[FileInfo], list[tuple[str, int, str]]]:
    """In a worker: walk subtrees, take small files' digests from the cache or hash (and
    cache) them. Returns the large files, for the caller's threads, and plain
    (name, size, digest) tuples for the rest."""
    files = [f for tree in trees for f in walk_subtree(tree, ctx)]
    small = [f for f in files if f.st.st_size < LARGE_FILE]
    cache = _worker_cache(cache_dir, racy_seconds) if cache_dir else None
    session = cache.session(algorithm) if cache is not None else None
    if session is not None:
        session.prefetch({f.parent for f in small})
    known = []
    for path, name, st, parent in small:
        if session is None:
            digest = hash_small_file(path, algorithm, nofollow=nofollow, expected=st).digest
        else:
            leaf = path.rpartition(os.sep)[2]
            hit = session.get(parent, leaf, st)
            if hit is None:
                hashed = hash_small_file(path, algorithm, nofollow=nofollow, expected=st)
                hit = hashed.digest
                session.put(parent, path, leaf, stamp(hashed.st), hit)
            digest = hit
        known.append((name, st.st_size, digest))
    if session is not None:
        session.flush()  # here, in parallel, not in the waiting parent
    return [f for f in files if f.st.st_size >= LARGE_FILE], known


def forked_walk(
    frontier: Sequence[Subtree],
    ctx: WalkContext,
    algorithm: str,
    *,
    workers: int,
    cache: DigestCache | None,
    nofollow: bool,
) -> tuple[list[FileInfo], list[FileEntry]]:
    """Walk the subtrees in forked workers, which also hash (or find cached) small files.

    Returns the large files, listed but not hashed (the caller's thread pool does them,
    where hashlib runs in parallel without the GIL), and the small files' entries,
    whose digests the workers have already put in the cache. Errors in a worker reach the caller.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    count = workers * SUBTREES_PER_WORKER
    groups = [list(frontier[i::count]) for i in range(count)]
    cache_dir = str(cache.directory) if cache is not None and cache.enabled else None
    racy_seconds = cache.racy_seconds if cache is not None else 0.0
    large: list[FileInfo] = []
    known: list[FileEntry] = []
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [
            pool.submit(_walk_and_hash, group, ctx, algorithm, cache_dir, racy_seconds, nofollow)
            for group in groups
            if group
        ]
        for future in futures:
            found, rows = future.result()
            large.extend(found)
            # Plain tuples cross the process boundary (pickling os.stat_result is dear).
            known.extend(FileEntry(name, digest, size) for name, size, digest in rows)
    return large, known
