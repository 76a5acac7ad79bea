"""Where parallel digesting starts to pay (by hand: `python benchmarks/digest_crossover.py`).

The digest engine works in the calling thread unless the work repays starting helpers:
  - the thread pool (`tree.POOL_MIN_SAVING`): it must take enough bytes off the calling
    thread's path to pay for its first use in a process (a CLI call is a new process);
  - forked worker processes (`procs.MIN_FILES`): enough small files to pay for forking.
This measures both on this machine, warm page cache, and prints the crossovers:
  (a) the rate one thread hashes at, and what the pool's first use adds to a
      `mlprov digest` process (importing concurrent.futures, starting and joining the
      threads): the pool pays once it saves more bytes than that cost would hash;
  (b) N files of 4 KiB in directories of 100, hashed in this process against two forked
      workers (MIN_FILES forced to infinity or to 0; the process pool's imports added,
      as a CLI call pays them): without a cache, into an empty one (cold), and from a
      full one (warm).
Both are estimated from CPU time, which neighbours disturb far less than wall-clock on a
shared machine: one thread's time is its CPU time; two workers' is the parent's CPU time
plus half of the workers' (each does half). Each figure is the least of --repeat runs;
the fastest wall-clock of each is printed beside it. docs/digest.md's thresholds come
from here.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlprov.digest import DigestCache, digest_tree, procs, tree


@dataclass(frozen=True)
class Cost:
    """The least wall-clock, own CPU and reaped children's CPU seconds over some runs."""

    wall: float
    cpu: float
    children: float

    @property
    def two_cores(self) -> float:
        """Seconds on two idle cores: the serial part here, the workers' part halved."""
        return self.cpu + self.children / 2


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _least(run: Callable[[], object], repeat: int) -> Cost:
    walls, cpus, children = [], [], []
    for _ in range(repeat):
        wall, cpu, child = time.perf_counter(), time.process_time(), _children_cpu()
        run()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        children.append(_children_cpu() - child)
    return Cost(min(walls), min(cpus), min(children))


#: What a `mlprov digest` process has imported before the engine decides on helpers.
CLI_IMPORTS = "import mlprov.cli.digest"


def _first_use_cpu(source: str, repeat: int) -> float:
    """CPU seconds `source` adds to a new process that has imported what `mlprov digest`
    imports (least of `repeat` runs, less that process without it)."""

    def cpu(code: str) -> float:
        run = [sys.executable, "-c", f"import time\n{code}\nprint(time.process_time())"]
        return min(
            float(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
            for _ in range(repeat)
        )

    return max(0.0, cpu(f"{CLI_IMPORTS}\n{source}") - cpu(CLI_IMPORTS))


@contextmanager
def _min_files(value: int) -> Iterator[None]:
    saved = procs.MIN_FILES
    procs.MIN_FILES = value
    try:
        yield
    finally:
        procs.MIN_FILES = saved


def _files(root: Path, count: int, size: int, *, per_dir: int = 0) -> Path:
    block = os.urandom(max(size, 1 << 16))
    for i in range(count):
        directory = root / f"d{i // per_dir:04d}" if per_dir else root
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:06d}.bin").write_bytes(block[:size] + i.to_bytes(8, "big"))
    for path in root.rglob("*.bin"):
        path.read_bytes()  # warm the page cache
    return root


def _pool(work: Path, repeat: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    print("(a) thread pool")
    root = _files(work / "rate", 8, 8 << 20)
    hashed = _least(lambda: digest_tree(root, workers=1), repeat)
    rate = (8 * (8 << 20)) / hashed.cpu
    imports = _first_use_cpu("from concurrent.futures import ThreadPoolExecutor", repeat)

    def start_and_join() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(int) for _ in range(2)]:
                future.result()

    threads = _least(start_and_join, repeat)
    cost = imports + threads.wall
    print(f"  one thread hashes {rate / 1e6:,.0f} MB/s (CPU time of 8 x 8 MiB)")
    print(f"  first use in a `mlprov digest` process: imports {imports * 1e3:.2f} ms (CPU),")
    print(f"    starting and joining 2 threads {threads.wall * 1e3:.2f} ms")
    print(
        f"  crossover: the pool pays once it takes {cost * rate / (1 << 20):.1f} MiB off"
        f" the calling thread (POOL_MIN_SAVING is {tree.POOL_MIN_SAVING / (1 << 20):g} MiB)"
    )


def _fork(work: Path, counts: list[int], repeat: int) -> None:
    imports = _first_use_cpu("from concurrent.futures import ProcessPoolExecutor", repeat)
    print("\n(b) forked workers: N files of 4 KiB, here vs 2 forked workers")
    print(f"  first use in a `mlprov digest` process: imports {imports * 1e3:.2f} ms (CPU), added")
    header = ("files", "cache", "here", "forked", "speedup", "wall here", "wall forked")
    print("  {:>6} {:>5} {:>9} {:>9} {:>8} {:>10} {:>11}".format(*header))
    first: dict[str, int] = {}
    for count in counts:
        root = _files(work / f"fork-{count}", count, 4096, per_dir=100)
        for mode in ("none", "cold", "warm"):
            costs = []
            for min_files in (sys.maxsize, 0):
                cache_dir = Path(tempfile.mkdtemp(dir=work))

                def run(root: Path = root, cache_dir: Path = cache_dir, mode: str = mode) -> None:
                    if mode == "none":
                        digest_tree(root, workers=2)
                        return
                    where = cache_dir if mode == "warm" else Path(tempfile.mkdtemp(dir=work))
                    cache = DigestCache(where, racy_seconds=0)
                    try:
                        digest_tree(root, workers=2, cache=cache)
                    finally:
                        cache.close()

                with _min_files(min_files):
                    if mode == "warm":
                        run()  # fill it
                    costs.append(_least(run, repeat))
            here, forked = costs
            estimate = forked.two_cores + imports
            speedup = here.cpu / estimate
            if speedup >= 1 and mode not in first:
                first[mode] = count
            print(
                f"  {count:>6} {mode:>5} {here.cpu * 1e3:>7.1f}ms {estimate * 1e3:>7.1f}ms"
                f" {speedup:>7.2f}x {here.wall * 1e3:>8.1f}ms {forked.wall * 1e3:>9.1f}ms"
            )
    for mode in ("none", "cold", "warm"):
        found = f"from about {first[mode]:,} files" if mode in first else "not in this range"
        print(f"  crossover, {mode} cache: forking pays {found}")
    print(f"  (MIN_FILES is {procs.MIN_FILES:,})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="Runs per figure (least kept).")
    parser.add_argument("--workdir", type=Path, help="Where to put generated data (default: tmp).")
    args = parser.parse_args(argv)
    one, five, _ = os.getloadavg()
    print(f"start: load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="mlprov-crossover-", dir=args.workdir) as tmp:
        work = Path(tmp)
        _pool(work, args.repeat)
        _fork(work, [500, 1000, 2000, 3000, 4000, 6000, 8000, 16000], args.repeat)
    one, five, _ = os.getloadavg()
    print(f"end: load average {one:.2f} (1 min), {five:.2f} (5 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
