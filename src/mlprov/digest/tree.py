"""digest_tree: the manifest and tree digest of a model or dataset, hashed in parallel.

Large files are hashed one per worker (hashlib releases the GIL); small files are
batched so that a million of them do not pay a task each; with `shard_size` every
shard of a large file is its own task, so a single huge file uses every core.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mlprov.digest.algorithms import DEFAULT_ALGORITHM, check_algorithm
from mlprov.digest.cache import CacheKey, DigestCache
from mlprov.digest.hashing import ProgressCallback, hash_file, hash_shard, shard_bounds
from mlprov.digest.manifest import FileEntry, TreeManifest
from mlprov.digest.walk import FileInfo, IgnoreRules, default_ignore_patterns, list_files

#: Files above this size are a task of their own; smaller ones are batched.
LARGE_FILE = 8 << 20
#: Upper bounds of one batch of small files.
BATCH_FILES = 256
BATCH_BYTES = 32 << 20


@dataclass(frozen=True, slots=True)
class _Task:
    """One unit of hashing: a whole file, or the [start, end) shard of one."""

    info: FileInfo
    start: int = 0
    end: int = -1

    @property
    def size(self) -> int:
        return self.info.st.st_size if self.end < 0 else self.end - self.start

    @property
    def name(self) -> str:
        if self.end < 0:
            return self.info.name
        return f"{self.info.name}:{self.start}:{self.end}"


def default_workers() -> int:
    """One worker per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def digest_file(path: str | Path, algorithm: str = DEFAULT_ALGORITHM) -> str:
    """Hex digest of one file's bytes (symlinks are not followed)."""
    check_algorithm(algorithm)
    _, files = list_files(Path(path))
    return hash_file(files[0].path, algorithm).digest


def digest_tree(
    path: str | Path,
    *,
    algorithm: str = DEFAULT_ALGORITHM,
    ignore: Iterable[str] = (),
    default_ignores: bool = True,
    follow_symlinks: bool = False,
    symlink_boundary: Path | None = None,
    shard_size: int | None = None,
    cache: DigestCache | None = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    on_total: Callable[[int], None] | None = None,
) -> TreeManifest:
    """Hash every file of a directory (or one file, named `.`) into a TreeManifest.

    `ignore` adds glob patterns to model_signing's default ignores (`.git`,
    `.gitattributes`, `.github`, `.gitignore` at the top); `shard_size` switches to
    OMS's `shards` method; `cache` skips files whose stat is unchanged since last time;
    `on_total` is told the number of bytes that will be hashed, then `progress` each
    increment (from worker threads).
    """
    check_algorithm(algorithm)
    root = Path(path)
    patterns = [*(default_ignore_patterns() if default_ignores else []), *ignore]
    is_dir, files = list_files(
        root,
        ignore=IgnoreRules(patterns),
        follow_symlinks=follow_symlinks,
        symlink_boundary=symlink_boundary,
    )
    tasks = _tasks(files, shard_size)
    keys = [CacheKey.of(t.info.st, t.start, t.end) for t in tasks]
    cached = cache.lookup(algorithm, keys) if cache else {}
    todo = [t for t, k in zip(tasks, keys, strict=True) if k not in cached]
    if on_total:
        on_total(sum(t.size for t in todo))
    computed = _run(todo, algorithm, workers or default_workers(), not follow_symlinks, progress)
    if cache:
        cache.store(algorithm, computed.values())
    entries = []
    for task, key in zip(tasks, keys, strict=True):
        hit = cached.get(key)
        digest = hit if hit is not None else computed[task.name][1]
        entries.append(FileEntry(path=task.name, digest=digest, size=task.size))
    name = (root.resolve() if root.name in ("", ".", "..") else root).name
    return TreeManifest.build(
        name=name,
        algorithm=algorithm,
        entries=entries,
        method="shards" if shard_size else "files",
        shard_size=shard_size,
        ignore=patterns if is_dir else [],
    )


def _tasks(files: Sequence[FileInfo], shard_size: int | None) -> list[_Task]:
    if not shard_size:
        return [_Task(f) for f in files]
    return [
        _Task(f, start, end) for f in files for start, end in shard_bounds(f.st.st_size, shard_size)
    ]


def _batches(tasks: Sequence[_Task]) -> list[list[_Task]]:
    """Large tasks alone, largest first; small ones grouped into bounded batches."""
    large = sorted((t for t in tasks if t.size >= LARGE_FILE), key=lambda t: -t.size)
    batches = [[t] for t in large]
    batch: list[_Task] = []
    batch_bytes = 0
    for task in tasks:
        if task.size >= LARGE_FILE:
            continue
        batch.append(task)
        batch_bytes += task.size
        if len(batch) >= BATCH_FILES or batch_bytes >= BATCH_BYTES:
            batches.append(batch)
            batch, batch_bytes = [], 0
    if batch:
        batches.append(batch)
    return batches


def _run(
    tasks: Sequence[_Task],
    algorithm: str,
    workers: int,
    nofollow: bool,
    progress: ProgressCallback | None,
) -> dict[str, tuple[CacheKey, str]]:
    """Hash `tasks` on `workers` threads; returns name -> (cache key, digest)."""
    results: dict[str, tuple[CacheKey, str]] = {}
    lock = threading.Lock()
    large_count = sum(1 for t in tasks if t.size >= LARGE_FILE)
    # blake3 can spread one input over threads; give them when files are fewer than cores.
    threads = max(1, workers // max(1, large_count)) if algorithm == "blake3" else 1

    def run_batch(batch: list[_Task]) -> None:
        done = []
        for task in batch:
            if task.end < 0:
                hashed = hash_file(
                    task.info.path, algorithm, nofollow=nofollow, progress=progress, threads=threads
                )
                key = CacheKey.of(hashed.st)
            else:
                hashed = hash_shard(
                    task.info.path,
                    algorithm,
                    task.start,
                    task.end,
                    expected=task.info.st,
                    nofollow=nofollow,
                    progress=progress,
                )
                key = CacheKey.of(hashed.st, task.start, task.end)
            done.append((task.name, key, hashed.digest))
        with lock:
            for name, key, digest in done:
                results[name] = (key, digest)

    batches = _batches(tasks)
    if workers == 1 or len(batches) <= 1:
        for batch in batches:
            run_batch(batch)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlprov-digest") as pool:
        for future in [pool.submit(run_batch, b) for b in batches]:
            future.result()
    return results
