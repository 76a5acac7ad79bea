"""CLI start-up and whole-process benchmark (by hand: `make bench-cli`, not in CI).

Every figure is a whole process, as a user or a CI job sees it: a fresh interpreter
started with the arguments given, timed from before the fork to after the exit, with
bytecode compiled first (`compileall`). Medians of --repeat runs, in one run:

  - `python -c pass` (the interpreter's own floor);
  - `mlprov --version`;
  - `mlprov digest` of a 3-file directory;
  - `mlprov verify` of one DSSE envelope with `--key` (keys and envelope made with
    `mlprov keygen` and `mlprov sign` in a temporary directory);
  - `mlprov policy check` of the demo's layout and attestations, writing a signed VSA
    (made by running examples/demo.sh in a temporary directory, or --demo-out DIR);
  - for reference, model_signing 1.1.1: `model_signing --help`, and the digest of the same
    3-file directory (its CLI has no digest command: a fresh interpreter calling
    `model_signing.hashing.Config().hash`, the work its `sign` does first);
  - `mlprov digest --no-cache` of 4 x 256 MiB (warm page cache) against a single-threaded
    `hashlib.file_digest` loop over the same files, run as its own fresh process.

Each target of issue #12 is printed as met or NOT MET beside its figure. The CPU time
(user + system) of each child is printed too: on a shared machine it shows whether a
slow wall-clock figure was the command or its neighbours.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

HASHLIB_LOOP = """\
import hashlib, os, sys
root = sys.argv[1]
for name in sorted(os.listdir(root)):
    with open(os.path.join(root, name), "rb") as handle:
        print(hashlib.file_digest(handle, "sha256").hexdigest(), name)
"""

MODEL_SIGNING_DIGEST = """\
import sys
from model_signing import hashing
manifest = hashing.Config().hash(sys.argv[1])
print(len(list(manifest.resource_descriptors())))
"""


@dataclass(frozen=True)
class Figure:
    """Medians of one command's fresh-process runs."""

    label: str
    wall: float
    cpu: float
    runs: int


def _tool(name: str) -> list[str]:
    """The console script beside this interpreter (what users run), else `python -m`."""
    found = shutil.which(name, path=str(BIN))
    if found:
        return [found]
    if name == "mlprov":
        return [sys.executable, "-m", "mlprov"]
    raise SystemExit(f"{name} is not installed beside {sys.executable}")


def _time(label: str, argv: Sequence[str | Path], *, repeat: int, env: dict[str, str]) -> Figure:
    """Median wall-clock and CPU seconds of `argv` run `repeat` times, each a new process."""
    command = [str(a) for a in argv]
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(
            after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        )
        if done.returncode != 0:
            raise SystemExit(
                f"{label}: exit {done.returncode}: {' '.join(command)}\n"
                + done.stderr.decode(errors="replace")
            )
    return Figure(label, statistics.median(walls), statistics.median(cpus), repeat)


def _run(argv: Sequence[str | Path], *, env: dict[str, str], cwd: Path | None = None) -> None:
    subprocess.run([str(a) for a in argv], env=env, cwd=cwd, check=True, capture_output=True)


def _compile() -> None:
    """Compile mlprov and its dependencies' bytecode, as an installed package has it."""
    import mlprov

    paths = {Path(mlprov.__file__).parent}
    paths.update(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    for path in sorted(paths):
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "-j", "0", str(path)],
            check=False,
            capture_output=True,
        )


def _small_tree(root: Path) -> Path:
    tree = root / "small-model"
    tree.mkdir()
    (tree / "config.json").write_bytes(b'{"hidden_size": 64, "layers": 2}\n')
    (tree / "model.safetensors").write_bytes(os.urandom(256 << 10))
    (tree / "tokenizer.json").write_bytes(os.urandom(16 << 10))
    return tree


def _envelope(root: Path, tree: Path, env: dict[str, str]) -> tuple[Path, Path]:
    """A DSSE envelope about `tree`'s files, signed with a fresh key; (envelope, public key)."""
    import hashlib
    import json

    mlprov = _tool("mlprov")
    _run([*mlprov, "keygen", "--out", root / "bench", "--no-password"], env=env)
    subjects = [
        {"name": p.name, "digest": {"sha256": hashlib.sha256(p.read_bytes()).hexdigest()}}
        for p in sorted(tree.iterdir())
    ]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {"result": "PASSED", "configuration": [], "passedTests": ["bench"]},
    }
    (root / "bench.statement.json").write_text(json.dumps(statement))
    envelope = root / "bench.intoto.json"
    statement_path, key = root / "bench.statement.json", root / "bench.key"
    _run([*mlprov, "sign", statement_path, "--key", key, "--out", envelope], env=env)
    return envelope, root / "bench.pub"


def _demo(root: Path, env: dict[str, str]) -> Path:
    """Run examples/demo.sh in a copy under `root`; returns its out/ directory."""
    examples = root / "examples"
    shutil.copytree(REPO / "examples", examples, ignore=shutil.ignore_patterns("out"))
    demo_env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    done = subprocess.run(
        ["bash", str(examples / "demo.sh")], env=demo_env, capture_output=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit("examples/demo.sh failed:\n" + done.stdout.decode()[-3000:])
    return examples / "out"


def _big_tree(root: Path, count: int, mib: int) -> Path:
    tree = root / "big"
    tree.mkdir()
    block = os.urandom(1 << 20)
    for i in range(count):
        with (tree / f"model-{i:05d}-of-{count:05d}.safetensors").open("wb") as handle:
            for j in range(mib):
                handle.write(block[:-8] + j.to_bytes(4, "big") + i.to_bytes(4, "big"))
    return tree


def _warm(tree: Path) -> None:
    for path in tree.iterdir():
        with path.open("rb") as handle:
            while handle.read(8 << 20):
                pass


def _idle(seconds: float) -> float:
    """Fraction of all CPUs' time spent idle over the next `seconds` (Linux /proc/stat)."""

    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)

    idle, total = snapshot()
    time.sleep(seconds)
    idle_after, total_after = snapshot()
    return (idle_after - idle) / max(1, total_after - total)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=7, help="Runs per command (median).")
    parser.add_argument("--big-repeat", type=int, default=5, help="Runs of the 4 x 256 MiB pair.")
    parser.add_argument("--big-count", type=int, default=4)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument(
        "--demo-out",
        type=Path,
        help="An examples/out directory of a finished `make demo` (default: run the demo anew).",
    )
    parser.add_argument("--workdir", type=Path, help="Where to put generated data (default: tmp).")
    parser.add_argument(
        "--when-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="On a shared machine: time each 4 x 256 MiB pair only when both CPUs are free,"
        " and keep it only if they still are after (waiting up to SECONDS in all).",
    )
    args = parser.parse_args(argv)
    if min(args.repeat, args.big_repeat) < 1:
        parser.error("--repeat and --big-repeat must be at least 1")
    if args.when_idle and not Path("/proc/stat").exists():
        parser.error("--when-idle reads /proc/stat (Linux)")

    print(f"start: {_load()}")
    _compile()
    with tempfile.TemporaryDirectory(prefix="mlprov-bench-cli-", dir=args.workdir) as tmp:
        root = Path(tmp)
        env = {**os.environ, "MLPROV_CACHE_DIR": str(root / "cache")}
        env["MLPROV_STORE"] = str(root / "store.sqlite3")
        mlprov = _tool("mlprov")
        tree = _small_tree(root)
        envelope, public_key = _envelope(root, tree, env)
        out = args.demo_out.resolve() if args.demo_out else _demo(root, env)
        check = [
            *mlprov,
            "policy",
            "check",
            out / "layout.yaml",
            "--attestations",
            out / "attestations",
            "--subject",
            out / "lr-model",
            "--vsa-out",
            root / "bench.vsa.intoto.json",
            "--vsa-key",
            out / "gate.key",
            "--verifier-id",
            "https://mlprov.dev/bench/release-gate",
            "--force",
        ]
        _run([*mlprov, "digest", tree], env=env)  # the digest cache as a user has it
        n = args.repeat
        figures = [
            _time("python -c pass", [sys.executable, "-c", "pass"], repeat=n, env=env),
            _time("mlprov --version", [*mlprov, "--version"], repeat=n, env=env),
            _time("mlprov --help", [*mlprov, "--help"], repeat=n, env=env),
            _time("mlprov digest (3 files)", [*mlprov, "digest", tree], repeat=n, env=env),
            _time(
                "mlprov verify --key (1 envelope)",
                [*mlprov, "verify", envelope, "--key", public_key],
                repeat=n,
                env=env,
            ),
            _time("mlprov policy check (demo, + VSA)", check, repeat=n, env=env),
        ]
        reference: list[Figure] = []
        if shutil.which("model_signing", path=str(BIN)):
            reference = [
                _time(
                    "model_signing --help", [*_tool("model_signing"), "--help"], repeat=n, env=env
                ),
                _time(
                    "model_signing digest (3 files, API)",
                    [sys.executable, "-c", MODEL_SIGNING_DIGEST, tree],
                    repeat=n,
                    env=env,
                ),
            ]
        big = _big_tree(root, args.big_count, args.big_mib)
        _warm(big)
        whole: list[Figure] = []
        deadline = time.monotonic() + args.when_idle
        clean = 0
        while len(whole) < 2 * args.big_repeat:  # alternate, so both see the same neighbours
            if args.when_idle and time.monotonic() < deadline and _idle(0.5) < 0.95:
                continue  # wait for both CPUs to be free
            _warm(big)
            pair = [
                _time("loop", [sys.executable, "-c", HASHLIB_LOOP, big], repeat=1, env=env),
                _time("mlprov", [*mlprov, "digest", "--no-cache", big], repeat=1, env=env),
            ]
            waiting = args.when_idle and time.monotonic() < deadline
            if waiting and _idle(0.3) < 0.9:
                continue  # neighbours woke up during the pair: not a clean one
            clean += bool(waiting)
            whole.extend(pair)
        loop = Figure(
            f"hashlib loop, 1 thread, own process ({args.big_count} x {args.big_mib} MiB)",
            statistics.median(f.wall for f in whole if f.label == "loop"),
            statistics.median(f.cpu for f in whole if f.label == "loop"),
            args.big_repeat,
        )
        ours = Figure(
            f"mlprov digest --no-cache ({args.big_count} x {args.big_mib} MiB)",
            statistics.median(f.wall for f in whole if f.label == "mlprov"),
            statistics.median(f.cpu for f in whole if f.label == "mlprov"),
            args.big_repeat,
        )

    targets = {
        "mlprov --version": 0.15,
        "mlprov digest (3 files)": 0.3,
        "mlprov verify --key (1 envelope)": 0.5,
        "mlprov policy check (demo, + VSA)": 1.0,
    }
    print(f"\nfresh processes, medians of {n} (wall-clock; CPU = user + system of the child)")
    print(f"{'command':<58} {'wall':>8} {'CPU':>8}  target")
    for figure in [*figures, *reference, loop, ours]:
        bound = targets.get(figure.label)
        note = f"<= {bound:.2f} s: {_verdict(figure.wall <= bound)}" if bound else ""
        print(f"{figure.label:<58} {figure.wall:>7.3f}s {figure.cpu:>7.3f}s  {note}")
    speedup = loop.wall / ours.wall
    print(
        f"\nwhole-process digest: {speedup:.2f}x faster than the one-thread loop process"
        f" (target >= 1.50x: {_verdict(speedup >= 1.5)})"
    )
    if args.when_idle:
        print(f"({clean} of {args.big_repeat} pairs timed with both CPUs idle before and after)")
    print(f"end: {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
