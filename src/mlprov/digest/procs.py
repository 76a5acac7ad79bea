"""Hashing many small files in forked worker processes.

A small file costs system calls and interpreter time, not hashing: threads only fight
over the GIL for it (measured slower than one loop), while processes really run in
parallel. Forking is only done from a process that has no other thread (fork with
threads alive may deadlock), and only for enough files to repay the fork.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass

from mlprov.digest.cache import CacheKey
from mlprov.digest.hashing import hash_small_file

#: Fewer small files than this are hashed in the calling thread.
MIN_FILES = 4000
#: Files per task sent to a worker process.
BATCH_FILES = 1000

_Row = tuple[str, int, int, int, int, int]


def fork_is_safe(workers: int, count: int) -> bool:
    """True when forking workers is both worth it and safe here."""
    return (
        workers > 1
        and count >= MIN_FILES
        and hasattr(os, "fork")
        and threading.active_count() == 1
        and multiprocessing.current_process().name == "MainProcess"
    )


def _hash_batch(paths: list[str], algorithm: str, nofollow: bool) -> list[_Row]:
    rows = []
    for path in paths:
        hashed = hash_small_file(path, algorithm, nofollow=nofollow)
        st = hashed.st
        rows.append(
            (hashed.digest, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        )
    return rows


@dataclass(frozen=True, slots=True)
class SmallFile:
    """What a worker needs to hash one file, and the name its digest is filed under."""

    path: str
    name: str


class ForkedHashing:
    """Small files hashed by `workers` forked processes, started before any thread."""

    def __init__(
        self, files: Sequence[SmallFile], algorithm: str, *, workers: int, nofollow: bool
    ) -> None:
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        self._batches = [files[i : i + BATCH_FILES] for i in range(0, len(files), BATCH_FILES)]
        self._futures: list[Future[list[_Row]]] = [
            self._pool.submit(_hash_batch, [f.path for f in batch], algorithm, nofollow)
            for batch in self._batches
        ]

    def results(self) -> Iterator[tuple[str, CacheKey, str, int]]:
        """(name, cache key, digest, size) of every file, as batches finish."""
        try:
            for batch, future in zip(self._batches, self._futures, strict=True):
                for item, (digest, *stat) in zip(batch, future.result(), strict=True):
                    key = CacheKey(*stat)
                    yield item.name, key, digest, key.size
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
