"""Where parallel digesting starts to pay (by hand: `python benchmarks/digest_crossover.py`).

The digest engine hashes in the calling thread unless the work repays starting helpers:
  - the thread pool takes files of at least `hashing.LARGE_FILE` bytes (hashlib releases
    the GIL on them); below that a file costs system calls and interpreter time;
  - forked worker processes walk and hash small files once a tree holds at least
    `procs.MIN_FILES` of them.
This measures both crossovers on this machine, in this process, warm page cache:
  (a) COUNT files of SIZE each: one thread (workers=1) against the pool (workers=2 and
      LARGE_FILE set to SIZE, so every file goes to it); and one lone file, pool or not;
  (b) N files of 4 KiB in directories of 100: hashed here against forked workers
      (MIN_FILES forced to 0 or to infinity), without a cache, into an empty cache
      (cold) and from a full one (warm);
  (c) what the first use of each costs a new process (a CLI call): importing
      concurrent.futures' thread pool, and multiprocessing with its process pool.
Each figure is the fastest of --repeat runs: on a shared machine the minimum is the
figure least disturbed by neighbours. The thresholds in docs/digest.md come from here.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mlprov.digest import DigestCache, digest_tree, procs, tree


def _fastest(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def _thresholds(*, large_file: int | None = None, min_files: int | None = None) -> Iterator[None]:
    """Set the engine's thresholds (module globals, read at each call) for a block."""
    names = [(tree, "LARGE_FILE"), (procs, "LARGE_FILE"), (procs, "MIN_FILES")]
    saved = [getattr(module, name) for module, name in names]
    for module, name in names:
        value = min_files if name == "MIN_FILES" else large_file
        if value is not None:
            setattr(module, name, value)
    try:
        yield
    finally:
        for (module, name), value in zip(names, saved, strict=True):
            setattr(module, name, value)


def _files(root: Path, count: int, size: int, *, per_dir: int = 0) -> Path:
    block = os.urandom(max(size, 1 << 16))
    for i in range(count):
        directory = root / f"d{i // per_dir:04d}" if per_dir else root
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:06d}.bin").write_bytes(block[:size] + i.to_bytes(8, "big"))
    for path in root.rglob("*.bin"):
        path.read_bytes()  # warm the page cache
    return root


def _pool(work: Path, counts: list[int], sizes: list[int], repeat: int) -> None:
    print("(a) thread pool: COUNT files of SIZE, one thread vs the pool (2 threads)")
    print(f"{'count':>6} {'size':>9} {'1 thread':>10} {'pool':>10} {'speedup':>8}")
    for count in counts:
        for size in sizes:
            root = _files(work / f"pool-{count}-{size}", count, size)
            alone = _fastest(lambda r=root: digest_tree(r, workers=1), repeat)  # type: ignore[misc]
            with _thresholds(large_file=size):
                pooled = _fastest(lambda r=root: digest_tree(r, workers=2), repeat)  # type: ignore[misc]
            print(
                f"{count:>6} {size >> 10:>7}Ki {alone * 1e3:>8.2f}ms {pooled * 1e3:>8.2f}ms"
                f" {alone / pooled:>7.2f}x"
            )


def _fork(work: Path, counts: list[int], repeat: int) -> None:
    print("\n(b) forked workers: N files of 4 KiB, in this process vs 2 forked workers")
    print(f"{'files':>6} {'cache':>6} {'here':>10} {'forked':>10} {'speedup':>8}")
    for count in counts:
        root = _files(work / f"fork-{count}", count, 4096, per_dir=100)
        for mode in ("none", "cold", "warm"):
            timings = []
            for min_files in (sys.maxsize, 0):
                with _thresholds(min_files=min_files):
                    cache_dir = Path(tempfile.mkdtemp(dir=work))

                    def run(
                        root: Path = root, cache_dir: Path = cache_dir, mode: str = mode
                    ) -> None:
                        if mode == "none":
                            digest_tree(root, workers=2)
                            return
                        where = cache_dir if mode == "warm" else Path(tempfile.mkdtemp(dir=work))
                        cache = DigestCache(where, racy_seconds=0)
                        try:
                            digest_tree(root, workers=2, cache=cache)
                        finally:
                            cache.close()

                    if mode == "warm":
                        run()  # fill it
                    timings.append(_fastest(run, repeat))
            here, forked = timings
            print(
                f"{count:>6} {mode:>6} {here * 1e3:>8.1f}ms {forked * 1e3:>8.1f}ms"
                f" {here / forked:>7.2f}x"
            )


def _first_use(repeat: int) -> None:
    print("\n(c) first use in a new process: import cost (fastest CPU time, less `pass`)")
    code = {
        "pass": "pass",
        "thread pool": "from concurrent.futures import ThreadPoolExecutor",
        "process pool": "from concurrent.futures import ProcessPoolExecutor",
    }
    best = {}
    for label, source in code.items():
        run = [sys.executable, "-c", f"import time\n{source}\nprint(time.process_time())"]
        best[label] = min(
            float(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
            for _ in range(repeat)
        )
    for label in ("thread pool", "process pool"):
        print(f"{label:>13}: {(best[label] - best['pass']) * 1e3:6.2f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="Runs per figure (fastest kept).")
    parser.add_argument("--workdir", type=Path, help="Where to put generated data (default: tmp).")
    args = parser.parse_args(argv)
    sizes = [64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20, 8 << 20, 32 << 20]
    one, five, _ = os.getloadavg()
    print(f"start: load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="mlprov-crossover-", dir=args.workdir) as tmp:
        work = Path(tmp)
        _pool(work, [1, 8], sizes, args.repeat)
        _fork(work, [250, 500, 1000, 2000, 4000, 8000], args.repeat)
    _first_use(args.repeat)
    one, five, _ = os.getloadavg()
    print(f"end: load average {one:.2f} (1 min), {five:.2f} (5 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
