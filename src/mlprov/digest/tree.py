"""digest_tree: the manifest and tree digest of a model or dataset, hashed in parallel.

Large files are hashed one per worker thread (hashlib releases the GIL); small files
are hashed in one tight loop beside them, so a million of them pay no per-task cost;
with `shard_size` every shard of a large file is its own task, so a single huge file
uses every core.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from mlprov.digest.algorithms import DEFAULT_ALGORITHM, check_algorithm
from mlprov.digest.cache import DigestCache, Stamp, stamp
from mlprov.digest.hashing import (
    LARGE_FILE,
    ProgressCallback,
    hash_file,
    hash_shard,
    hash_small_file,
    shard_bounds,
)
from mlprov.digest.hub import check_snapshot_blobs
from mlprov.digest.manifest import FileEntry, TreeManifest
from mlprov.digest.procs import (
    ForkedHashing,
    SmallFile,
    fork_is_safe,
    forked_walk,
    split_tree,
)
from mlprov.digest.walk import (
    FileInfo,
    IgnoreRules,
    default_ignore_patterns,
    list_files,
    open_tree,
    root_subtree,
    walk_subtree,
)
from mlprov.errors import InputError


class DigestProgress(Protocol):
    """Told the bytes about to be hashed, then each increment (from worker threads)."""

    def set_total(self, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _Task(NamedTuple):
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
    storage_options: dict[str, Any] | None = None,
    record_versions: bool = False,
    cluster: Any = None,
) -> TreeManifest:
    """Hash every file of a directory (or one file, named `.`) into a TreeManifest.

    Symlinks follow the rule in `mlprov.digest.walk`: refused unless `follow_symlinks`
    (then followed anywhere, or only inside `symlink_boundary` when given), except a hub
    snapshot's links into its own `blobs/`, which are followed and checked against the
    blob's name (VerificationError for a corrupted or tampered download).
    `ignore` adds glob patterns to model_signing's default ignores (`.git`,
    `.gitattributes`, `.github`, `.gitignore` at the top); `shard_size` switches to
    OMS's `shards` method; `cache` skips files whose stat is unchanged since last time;
    `on_total` is told the number of bytes that will be hashed, then `progress` each
    increment (from worker threads).

    `path` may be a remote URL (`s3://bucket/prefix/`, `gs://`, `az://`, `https://`):
    see mlprov.digest.remote for `storage_options` and `record_versions`, and
    mlprov.digest.cluster for `cluster` (a Dask Client, `tcp://scheduler:8786`, `local:N`).
    """
    check_algorithm(algorithm)
    patterns = [*(default_ignore_patterns() if default_ignores else []), *ignore]
    if isinstance(path, str) and "://" in path:
        from mlprov.digest.urls import is_remote

        if is_remote(path):
            from mlprov.digest.remote import digest_remote

            return digest_remote(  # type: ignore[no-any-return]
                path,
                algorithm=algorithm,
                patterns=patterns,
                shard_size=shard_size,
                cache=cache,
                workers=workers,
                progress=progress,
                on_total=on_total,
                storage_options=storage_options,
                record_versions=record_versions,
                cluster=cluster,
            )
    if cluster is not None:
        raise InputError("a Dask cluster hashes remote URLs (s3://, gs://, az://); not local paths")
    root = Path(path)
    workers = workers or default_workers()
    nofollow = not follow_symlinks
    st, ctx = open_tree(
        root,
        ignore=IgnoreRules(patterns),
        follow_symlinks=follow_symlinks,
        symlink_boundary=symlink_boundary,
    )
    is_dir = stat.S_ISDIR(st.st_mode)
    known: list[FileEntry] = []
    if not is_dir:
        # A lone file (or something list_files refuses with the right message).
        _, files = list_files(root, follow_symlinks=follow_symlinks)
    else:
        files, frontier, estimate = split_tree(root_subtree(root, st), ctx, workers=workers)
        if shard_size is None and frontier and fork_is_safe(workers, estimate):
            large, known = forked_walk(
                frontier, ctx, algorithm, workers=workers, cache=cache, nofollow=nofollow
            )
            files.extend(large)
        else:
            files.extend(f for tree in frontier for f in walk_subtree(tree, ctx))
    tasks = _tasks(files, shard_size)
    session = cache.session(algorithm) if cache is not None and cache.enabled else None
    hits: list[str | None] = [None] * len(tasks)
    if session is not None:
        session.prefetch({t.info.parent for t in tasks})
        hits = [session.get(t.info.parent, t.info.leaf, t.info.st, t.start, t.end) for t in tasks]
    todo = [t for t, hit in zip(tasks, hits, strict=True) if hit is None]
    if on_total:
        on_total(sum(t.size for t in todo))
    computed = _run(todo, algorithm, workers, nofollow, progress)
    if session is not None:  # forked walkers stored their own
        for task in todo:
            hashed_under, digest = computed[task.name]
            info = task.info
            session.put(
                info.parent, info.path, info.leaf, hashed_under, digest, task.start, task.end
            )
        session.flush()
    entries = known
    for task, hit in zip(tasks, hits, strict=True):
        digest = hit if hit is not None else computed[task.name][1]
        entries.append(FileEntry(task.name, digest, task.size))
    name = (root.resolve() if root.name in ("", ".", "..") else root).name
    manifest = TreeManifest.build(
        name=name,
        algorithm=algorithm,
        entries=entries,
        method="shards" if shard_size else "files",
        shard_size=shard_size,
        ignore=patterns if is_dir else [],
        clean=True,
    )
    if ctx.hub_blobs and is_dir:
        check_snapshot_blobs(root, manifest, ctx.hub_blobs)  # a bad download fails here
    return manifest


def _tasks(files: Sequence[FileInfo], shard_size: int | None) -> list[_Task]:
    if not shard_size:
        return [_Task(f) for f in files]
    return [
        _Task(f, start, end) for f in files for start, end in shard_bounds(f.st.st_size, shard_size)
    ]


#: The thread pool starts only when it can take at least this many bytes off the calling
#: thread's path: below that, its first use in a CLI process (importing concurrent.futures,
#: about 4 ms, what hashing 6 MiB takes) costs more than it saves. Measured with
#: benchmarks/digest_crossover.py.
POOL_MIN_SAVING = 8 << 20


def pool_saving(sizes: Sequence[int], workers: int) -> int:
    """Bytes that `workers` threads could take off the longest path through tasks of these
    sizes: all of the work, less what one thread must still do (an even share of it, or
    the largest task, whichever is more)."""
    if workers < 2 or not sizes:
        return 0
    total = sum(sizes)
    return total - max(-(-total // workers), max(sizes))


def _run(
    tasks: Sequence[_Task],
    algorithm: str,
    workers: int,
    nofollow: bool,
    progress: ProgressCallback | None,
) -> dict[str, tuple[Stamp, str]]:
    """Hash `tasks`; returns name -> (the stamp each was hashed under, digest).

    Large tasks (largest first) go to a pool of `workers` threads, where hashlib runs
    without the GIL; small files are hashed meanwhile in this thread, in one tight loop:
    their cost is system calls and interpreter time, which more threads only contend for.
    """
    large = sorted((t for t in tasks if t.size >= LARGE_FILE), key=lambda t: -t.size)
    small = [t for t in tasks if t.size < LARGE_FILE]
    # blake3 can spread one input over threads; give them when files are fewer than cores.
    threads = max(1, workers // max(1, len(large))) if algorithm == "blake3" else 1

    def run_one(task: _Task) -> tuple[str, Stamp, str]:
        if task.end < 0 and task.size < LARGE_FILE:
            small_file = hash_small_file(
                task.info.path, algorithm, nofollow=nofollow, expected=task.info.st
            )
            if progress:
                progress(small_file.size)
            return task.name, stamp(small_file.st), small_file.digest
        if task.end < 0:
            hashed = hash_file(
                task.info.path,
                algorithm,
                nofollow=nofollow,
                progress=progress,
                threads=threads,
                expected=task.info.st,
            )
            return task.name, stamp(hashed.st), hashed.digest
        hashed = hash_shard(
            task.info.path,
            algorithm,
            task.start,
            task.end,
            expected=task.info.st,
            nofollow=nofollow,
            progress=progress,
        )
        return task.name, stamp(hashed.st), hashed.digest

    results: dict[str, tuple[Stamp, str]] = {}
    whole_small = [t for t in small if t.end < 0]
    forked = None
    if fork_is_safe(workers, len(whole_small)):
        # Fork before any thread of ours exists; the workers take every small file.
        files = [SmallFile(t.info.path, t.name, stamp(t.info.st)) for t in whole_small]
        forked = ForkedHashing(files, algorithm, workers=workers, nofollow=nofollow)
        small = [t for t in small if t.end >= 0]
    saving = pool_saving([t.size for t in tasks], workers) if large else 0
    if forked is None and saving < POOL_MIN_SAVING:
        for task in [*large, *small]:
            name, key, digest = run_one(task)
            results[name] = (key, digest)
        return results
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mlprov-digest") as pool:
        futures = [pool.submit(run_one, task) for task in large]
        for task in small:
            name, key, digest = run_one(task)
            results[name] = (key, digest)
        if forked is not None:
            for name, (digest, *fields) in forked.results():
                dev, ino, size, mtime_ns, ctime_ns = fields
                results[name] = ((dev, ino, size, mtime_ns, ctime_ns), digest)
                if progress and size:
                    progress(size)
        for future in futures:
            name, key, digest = future.result()
            results[name] = (key, digest)
    return results
