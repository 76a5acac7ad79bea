"""Benchmark of the attestation store (run by hand; figures go in docs/performance.md).

Generates COUNT signed attestations in chains of 5 steps (raw data → … → released model),
each step with 10 materials (the previous step's output, a per-step config, and shared
code, images and datasets), adds them to a fresh store in batches, then measures
lineage up/down latency for random chains and the memory of exporting the whole store.

Then, on two big lineage shapes in their own stores — a chain 10,000 steps deep and a
dense DAG (10,000 artifacts, each made from 100 earlier ones: about 1,000,000 edges) —
it runs `mlprov lineage --up` in every format as a new process, writing to a file, and
prints each of the issue's targets (chain < 5 s, dense DAG < 30 s, peak memory < 500 MB)
as met or NOT MET.

    python benchmarks/bench_store.py                     # 100,000 attestations, SQLite
    python benchmarks/bench_store.py --count 10000
    python benchmarks/bench_store.py --store postgresql://user@host/db
    python benchmarks/bench_store.py --only lineage      # just the two big shapes
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner

from mlprov.signing.dsse import sign_envelope
from mlprov.signing.files import SignedAttestation, parse_attestation
from mlprov.statement import Statement
from mlprov.store import UNVERIFIED, SignerEvidence, open_store

STEPS = ("dataset-preparation", "training", "fine-tuning", "evaluation", "conversion")
MATERIALS = 10


def _hex(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def artifact(chain: int, step: int) -> str:
    """The output of `step` in `chain` (step -1: the chain's raw dataset)."""
    return _hex(f"chain{chain}-step{step}")


def statement(chain: int, step: int) -> Statement:
    """One step: its output as subject, 10 materials, mlprov's SLSA provenance shape."""
    deps = [{"name": "input", "digest": {"sha256": artifact(chain, step - 1)}}]
    deps.append({"name": "config.yaml", "digest": {"sha256": _hex(f"cfg{chain}-{step}")}})
    deps.append({"name": "code", "digest": {"gitCommit": _hex(f"commit{chain // 100}")[:40]}})
    deps.append({"name": "image", "digest": {"sha256": _hex(f"image{step}")}})
    for extra in range(MATERIALS - len(deps)):
        deps.append(
            {"name": f"aux{extra}", "digest": {"sha256": _hex(f"aux{chain % 1000}-{extra}")}}
        )
    build = "conversion" if STEPS[step] == "evaluation" else STEPS[step]
    return Statement.model_validate(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": f"out{step}", "digest": {"sha256": artifact(chain, step)}}],
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {
                "buildDefinition": {
                    "buildType": f"https://mlprov.dev/buildtypes/{build}/v1",
                    "externalParameters": {"step": STEPS[step]},
                    "resolvedDependencies": deps,
                },
                "runDetails": {"builder": {"id": "https://mlprov.dev/builders/bench"}},
            },
        }
    )


def attestations(
    count: int, signer: CryptoSigner
) -> Iterator[tuple[SignedAttestation, SignerEvidence]]:
    for n in range(count):
        chain, step = divmod(n, len(STEPS))
        envelope = sign_envelope(statement(chain, step).to_bytes(), [signer])
        yield parse_attestation(envelope.to_json(), source=f"bench:{n}"), UNVERIFIED


def _ms(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "median_ms": round(statistics.median(values) * 1000, 2),
        "p95_ms": round(values[int(len(values) * 0.95) - 1] * 1000, 2),
        "max_ms": round(values[-1] * 1000, 2),
    }


def run(count: int, location: str, batch: int, queries: int) -> dict[str, Any]:
    signer = CryptoSigner.generate_ed25519()
    results: dict[str, Any] = {"count": count, "batch": batch}
    with open_store(location) as store:
        results["backend"] = store.backend
        generated = attestations(count, signer)
        add_seconds = gen_seconds = 0.0
        done = 0
        while done < count:
            started = time.perf_counter()
            items = [next(generated) for _ in range(min(batch, count - done))]
            gen_seconds += time.perf_counter() - started
            started = time.perf_counter()
            store.add_many(items, batch_size=batch)
            add_seconds += time.perf_counter() - started
            done += len(items)
        results["generate_and_sign_s"] = round(gen_seconds, 1)
        results["add_s"] = round(add_seconds, 1)
        results["add_per_s"] = round(count / add_seconds)
        started = time.perf_counter()
        store.optimize()  # what `mlprov store add` does after a bulk add
        results["optimize_s"] = round(time.perf_counter() - started, 2)
        assert store.count() >= count

        chains = count // len(STEPS)
        rng = random.Random(0)
        picks = [rng.randrange(chains) for _ in range(queries)]
        up, down = [], []
        up_nodes = 0
        for chain in picks:
            started = time.perf_counter()
            graph = store.lineage_up("sha256:" + artifact(chain, len(STEPS) - 1))
            up.append(time.perf_counter() - started)
            assert len(graph.attestations()) == len(STEPS), graph.attestations()
            up_nodes = len(graph.nodes)
            started = time.perf_counter()
            graph = store.lineage_down("sha256:" + artifact(chain, -1))
            down.append(time.perf_counter() - started)
            assert graph.end_artifacts() == ["sha256:" + artifact(chain, len(STEPS) - 1)]
        results["lineage_up"] = {**_ms(up), "attestations": len(STEPS), "nodes": up_nodes}
        results["lineage_down"] = _ms(down)
        shared = "gitCommit:" + _hex("commit0")[:40]
        started = time.perf_counter()
        wide = store.lineage_down(shared)
        results["lineage_down_shared_commit"] = {
            "ms": round((time.perf_counter() - started) * 1000, 1),
            "nodes": len(wide.nodes),
        }

        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "all.intoto.jsonl"
            tracemalloc.start()
            started = time.perf_counter()
            exported = 0
            with out.open("wb") as handle:
                for _digest, raw in store.iter_raw():
                    handle.write(raw + b"\n")
                    exported += 1
            seconds = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            results["export"] = {
                "attestations": exported,
                "s": round(seconds, 1),
                "file_mb": round(out.stat().st_size / 1e6, 1),
                "peak_python_heap_mb": round(peak / 1e6, 1),
            }
            results["cli"] = _cli(out, Path(tmp), location)
    if not location.startswith("postgres"):
        results["store_file_mb"] = round(os.path.getsize(location) / 1e6, 1)
    return results


def _cli(export: Path, tmp: Path, location: str) -> dict[str, Any]:
    """`mlprov store add` of 10,000 exported lines into a fresh SQLite store, and one
    `mlprov lineage --up` as a new process (interpreter start-up included)."""
    import subprocess
    import sys

    from mlprov.cli.main import main as cli_main

    part = tmp / "part.intoto.jsonl"
    with export.open("rb") as source, part.open("wb") as target:
        lines = 0
        for line in source:
            target.write(line)
            lines += 1
            if lines == 10_000:
                break
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli_main(["store", "add", str(part), "--store", str(tmp / "cli.sqlite3")])
    seconds = time.perf_counter() - started
    assert code == 0
    target_digest = "sha256:" + artifact(7, len(STEPS) - 1)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "mlprov", "lineage", target_digest, "--up", "--store", location],
        capture_output=True,
        check=True,
    )
    process = time.perf_counter() - started
    assert b"out4" in done.stdout
    return {
        "store_add_per_s": round(lines / seconds),
        "lineage_up_process_ms": round(process * 1000),
    }


# -- big lineage shapes -------------------------------------------------------------------

SHAPE_NODES = 10_000
DENSE_FAN_IN = 100
#: The issue's targets on this machine, in seconds per format, and for peak memory.
SHAPE_TARGETS = {"chain": 5.0, "dense": 30.0}
PEAK_TARGET_MB = 500


def _node(shape: str, i: int) -> str:
    return _hex(f"{shape}-node{i}")


def shape_statements(shape: str, nodes: int = SHAPE_NODES) -> Iterator[Statement]:
    """Node i is the subject of one attestation whose materials are: in the chain, node
    i-1; in the dense DAG, node i-1 and up to 99 other earlier nodes (seeded)."""
    rng = random.Random(7)
    for i in range(1, nodes):
        if shape == "chain":
            earlier = [i - 1]
        else:
            earlier = [i - 1, *rng.sample(range(i - 1), min(DENSE_FAN_IN - 1, i - 1))]
        deps = [{"name": f"n{j}", "digest": {"sha256": _node(shape, j)}} for j in earlier]
        yield Statement.model_validate(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": f"n{i}", "digest": {"sha256": _node(shape, i)}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {
                    "buildDefinition": {
                        "buildType": "https://mlprov.dev/buildtypes/training/v1",
                        "externalParameters": {"step": f"step{i}"},
                        "resolvedDependencies": deps,
                    },
                    "runDetails": {"builder": {"id": "https://mlprov.dev/builders/bench"}},
                },
            }
        )


def build_shape(shape: str, location: str, nodes: int = SHAPE_NODES) -> dict[str, Any]:
    """A store holding one shape; returns how long loading it took."""
    signer = CryptoSigner.generate_ed25519()
    started = time.perf_counter()
    with open_store(location) as store:
        batch: list[tuple[SignedAttestation, SignerEvidence]] = []
        for n, statement in enumerate(shape_statements(shape, nodes)):
            envelope = sign_envelope(statement.to_bytes(), [signer])
            batch.append((parse_attestation(envelope.to_json(), source=f"{shape}:{n}"), UNVERIFIED))
            if len(batch) == 500:
                store.add_many(batch)
                batch = []
        store.add_many(batch)
        store.optimize()
    return {"load_s": round(time.perf_counter() - started, 1)}


_LINEAGE_CHILD = """
import json, sys, time
from mlprov.cli.main import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    peak = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
print(json.dumps({"code": code, "peak": peak}), file=sys.stderr)
"""


def lineage_process(
    location: str, digest: str, fmt: str, out: Path, direction: str = "--up"
) -> dict[str, Any]:
    """`mlprov lineage DIGEST --up --format FMT --out OUT` as a new process: wall time
    (interpreter start-up included), its own peak memory, and the output's size."""
    import subprocess
    import sys

    out.unlink(missing_ok=True)
    command = [sys.executable, "-c", _LINEAGE_CHILD, "lineage", digest, direction, "--format", fmt,
               "--out", str(out), "--store", location]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, check=False)
    seconds = time.perf_counter() - started
    report = json.loads(done.stderr.decode().strip().splitlines()[-1])
    assert report["code"] == 0, done.stderr.decode()
    return {
        "s": round(seconds, 2),
        "peak_mb": round(report["peak"] / 1e6),
        "out_mb": round(out.stat().st_size / 1e6, 1),
    }


def run_shapes(directory: Path) -> dict[str, Any]:
    """Both shapes, every format, each against its target."""
    results: dict[str, Any] = {}
    for shape in ("chain", "dense"):
        location = str(directory / f"{shape}.sqlite3")
        figures: dict[str, Any] = build_shape(shape, location)
        top = "sha256:" + _node(shape, SHAPE_NODES - 1)
        with open_store(location) as store:
            started = time.perf_counter()
            graph = store.lineage_up(top)
            figures["walk_s"] = round(time.perf_counter() - started, 2)
            figures["nodes"], figures["edges"] = len(graph.nodes), len(graph.edges)
            assert len(graph.nodes) == SHAPE_NODES, len(graph.nodes)
            del graph
        for fmt in ("tree", "json", "dot", "mermaid"):
            figures[fmt] = lineage_process(location, top, fmt, directory / f"{shape}.{fmt}")
        bottom = "sha256:" + _node(shape, 0)
        figures["json --down"] = lineage_process(
            location, bottom, "json", directory / f"{shape}.down.json", "--down"
        )
        results[shape] = figures
    return results


def print_shape_targets(results: dict[str, Any]) -> None:
    for shape, figures in results.items():
        limit = SHAPE_TARGETS[shape]
        for fmt in ("tree", "json", "dot", "mermaid", "json --down"):
            got = figures[fmt]
            time_ok = "met" if got["s"] < limit else "NOT MET"
            peak_ok = "met" if got["peak_mb"] < PEAK_TARGET_MB else "NOT MET"
            print(
                f"{shape} ({figures['nodes']} nodes, {figures['edges']} edges) {fmt}:"
                f" {got['s']} s (target < {limit:.0f} s: {time_ok}),"
                f" peak {got['peak_mb']} MB (target < {PEAK_TARGET_MB} MB: {peak_ok}),"
                f" output {got['out_mb']} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--store", help="SQLite path or postgresql:// URL (default: a temp file)")
    parser.add_argument("--batch", type=int, default=1000, help="attestations per transaction")
    parser.add_argument("--queries", type=int, default=200, help="lineage queries of each kind")
    parser.add_argument(
        "--only",
        choices=("store", "lineage"),
        help="only the bulk store measures, or only the two big lineage shapes",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "lineage":
            location = args.store or str(Path(tmp) / "bench.sqlite3")
            print(json.dumps(run(args.count, location, args.batch, args.queries), indent=2))
        if args.only != "store":
            shapes = run_shapes(Path(tmp))
            print(json.dumps(shapes, indent=2))
            print_shape_targets(shapes)


if __name__ == "__main__":
    main()
