"""`mlprov.TrainingRun`: the Python API writes the same Statement, and a failure is recorded."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mlprov
from mlprov.errors import InputError
from mlprov.predicates import step_of
from mlprov.schemagen import validate_statement
from mlprov.statement import Statement, check_in_toto_structure


def read(path: Path) -> dict:  # type: ignore[type-arg]
    data = path.read_bytes()
    check_in_toto_structure(data)
    raw: dict = json.loads(data)  # type: ignore[type-arg]
    validate_statement(raw, source=str(path))
    return raw


def test_context_manager_writes_on_exit(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("1,2\n")
    model = tmp_path / "model"
    out = tmp_path / "train.statement.json"
    with mlprov.TrainingRun(
        step="train", out=out, record_packages=False, source_dir=tmp_path
    ) as run:
        run.dataset("train", tmp_path / "data.csv", license="CC0-1.0")
        run.config({"lr": 0.1, "epochs": 3})
        run.param("batch", 32)
        run.seed("numpy", 0)
        model.mkdir()
        (model / "w.npy").write_bytes(b"w")
        run.model(model)
        run.metrics({"loss": 0.25})
        assert not out.exists(), "written only when the block ends"
    raw = read(out)
    assert step_of(Statement.model_validate(raw)) == "train"
    ext = raw["predicate"]["buildDefinition"]["externalParameters"]
    assert ext["config"] == {"lr": 0.1, "epochs": 3} and ext["parameters"] == {"batch": 32}
    meta = raw["predicate"]["runDetails"]["metadata"]
    assert meta["mlprov_outcome"] == {"outcome": "succeeded", "exitCode": 0}
    assert meta["startedOn"] <= meta["finishedOn"]
    assert raw["predicate"]["runDetails"]["byproducts"][0]["annotations"]["metrics"] == {
        "loss": 0.25
    }
    assert not list(tmp_path.glob("*.manifest.json")), "a single-file dataset needs no manifest"


def test_exception_writes_a_failed_statement_and_propagates(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    run = mlprov.TrainingRun(out=out, record_packages=False, source_dir=None)
    with pytest.raises(RuntimeError, match="diverged"), run:
        run.config({"lr": 10})
        raise RuntimeError("loss diverged")
    raw = read(out)
    assert raw["predicate"]["runDetails"]["metadata"]["mlprov_outcome"] == {
        "outcome": "failed",
        "exitCode": 1,
        "error": "RuntimeError: loss diverged",
    }
    assert raw["subject"][0]["name"] == "invocation/train"


def test_success_without_outputs_is_an_error(tmp_path: Path) -> None:
    run = mlprov.TrainingRun(out=tmp_path / "t.json", record_packages=False)
    with pytest.raises(mlprov.errors.InputError, match="nothing was produced"), run:
        pass


def test_statement_without_out_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "w").write_text("w")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")
    run = mlprov.TrainingRun(build_type="evaluation", record_packages=False, source_dir=None)
    run.dataset("test", tmp_path / "d")
    run.product(tmp_path / "m")
    statement = run.statement(exit_code=0)
    assert step_of(statement) == "eval"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "m"]


def test_unknown_build_type_and_bad_values(tmp_path: Path) -> None:
    with pytest.raises(mlprov.errors.InputError, match="unknown build type"):
        mlprov.TrainingRun(build_type="magic")
    run = mlprov.TrainingRun(record_packages=False)
    with pytest.raises(mlprov.errors.InputError, match="cannot be recorded in JSON"):
        run.config({"lr": float("nan")})
    with pytest.raises(mlprov.errors.InputError, match="not an integer"):
        run.seed("s", 1.5)  # type: ignore[arg-type]
    (tmp_path / "a").write_text("a")
    run.dataset("train", tmp_path / "a")
    with pytest.raises(mlprov.errors.InputError, match="recorded twice"):
        run.dataset("train", tmp_path / "a")


def test_evaluation_statement(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"model")
    statement = mlprov.evaluation_statement(
        model=tmp_path / "m", metrics={"acc": 0.5}, thresholds=["acc>0.6"]
    )
    assert statement.predicate is not None
    assert statement.predicate["result"] == "FAILED"
    assert statement.predicate["failedTests"] == ["acc>0.6"]


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True)


def test_existing_out_is_refused_before_the_run_body(tmp_path: Path) -> None:
    out = tmp_path / "train.statement.json"
    out.write_text("earlier run\n")
    ran = []
    with (
        pytest.raises(mlprov.errors.InputError, match="already exists"),
        mlprov.TrainingRun(out=out, record_packages=False, source_dir=None),
    ):
        ran.append("trained and overwrote model/")
    assert ran == [] and out.read_text() == "earlier run\n"
    with pytest.raises(mlprov.errors.InputError, match="does not exist"):
        mlprov.TrainingRun(out=tmp_path / "no-dir" / "t.json", record_packages=False)
    (tmp_path / "m").write_text("m")
    with mlprov.TrainingRun(out=out, force=True, record_packages=False, source_dir=None) as run:
        run.model(tmp_path / "m")
    assert read(out)["subject"][0]["name"] == "m"


def test_seeds_the_script_sets_are_recorded_and_nothing_invented(tmp_path: Path) -> None:
    import random

    import numpy as np

    (tmp_path / "m").write_text("m")
    original = (random.seed, np.random.seed, np.random.default_rng)
    out = tmp_path / "t.statement.json"
    with mlprov.TrainingRun(out=out, record_packages=False, source_dir=None) as run:
        random.seed(1234)
        np.random.seed(np.int64(7))
        rng = np.random.default_rng(42)
        np.random.default_rng()  # from OS entropy: nothing to record
        assert rng.integers(0, 10**6) == np.random.default_rng(42).integers(0, 10**6)
        run.model(tmp_path / "m")
    assert (random.seed, np.random.seed, np.random.default_rng) == original, "restored"
    seeds = read(out)["predicate"]["buildDefinition"]["internalParameters"]["seeds"]
    assert seeds == {"python.random": 1234, "numpy.random": 7, "numpy.default_rng": 42}
    random.seed(5)  # after the run: not recorded anywhere
    out2 = tmp_path / "t2.statement.json"
    with mlprov.TrainingRun(out=out2, record_packages=False, source_dir=None) as run:
        random.seed()  # unseeded
        run.model(tmp_path / "m")
    assert "seeds" not in read(out2)["predicate"]["buildDefinition"]["internalParameters"]


def test_entry_point_and_argv_are_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = tmp_path / "src" / "train.py"
    script.parent.mkdir()
    script.write_text("# training\n")
    (tmp_path / "m").write_text("m")
    argv = [str(script), "--epochs", "3", "--hf-token", "hf_abc", "--api-key=xyz"]
    monkeypatch.setattr(sys, "argv", argv)
    out = tmp_path / "t.statement.json"
    with mlprov.TrainingRun(out=out, record_packages=False, source_dir=tmp_path) as run:
        run.model(tmp_path / "m")
    ext = read(out)["predicate"]["buildDefinition"]["externalParameters"]
    assert ext["entryPoint"] == "src/train.py"
    assert ext["command"] == [
        "src/train.py",
        "--epochs",
        "3",
        "--hf-token",
        "<redacted>",
        "--api-key=<redacted>",
    ]
    assert "hf_abc" not in out.read_text() and "xyz" not in out.read_text()


def test_metrics_over_time_and_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "train.statement.json"
    ckpt = tmp_path / "ckpt.pt"
    with mlprov.TrainingRun(out=out, record_packages=False, source_dir=None) as run:
        for epoch in range(3):
            run.log(step=epoch, loss=1.0 / (epoch + 1), lr=0.1)
            ckpt.write_bytes(b"weights %d" % epoch)
            run.checkpoint(ckpt, step=epoch)
        run.log(step=3, accuracy=0.9)
        assert not (tmp_path / "train.metrics.jsonl").exists(), "kept whole, at the end"
        with pytest.raises(mlprov.errors.InputError, match="recorded twice"):
            run.checkpoint(ckpt, step=2)
        with pytest.raises(mlprov.errors.InputError, match="not an integer"):
            run.log(step="x", loss=1)  # type: ignore[arg-type]
        (tmp_path / "model").write_text("final")
        run.model(tmp_path / "model")
    log = tmp_path / "train.metrics.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    expected = [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, None)]
    assert [(x["step"], x.get("loss")) for x in lines] == expected
    byproducts = read(out)["predicate"]["runDetails"]["byproducts"]
    by_role: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for item in byproducts:
        by_role.setdefault(item["annotations"]["role"], []).append(item)
    (entry,) = by_role["metrics-log"]
    assert entry["name"] == "train.metrics.jsonl" and entry["annotations"]["entries"] == 4
    assert entry["digest"]["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()
    (metrics,) = by_role["metrics"]
    assert metrics["annotations"]["metrics"] == {"loss": 1 / 3, "lr": 0.1, "accuracy": 0.9}
    steps = [(c["annotations"]["step"], c["digest"]["sha256"]) for c in by_role["checkpoint"]]
    assert steps == [(i, hashlib.sha256(b"weights %d" % i).hexdigest()) for i in range(3)]
    assert not list(tmp_path.glob(".*.tmp")), "no temp file left"


def test_failed_run_keeps_its_metrics_log(tmp_path: Path) -> None:
    out = tmp_path / "t.statement.json"
    with (
        pytest.raises(RuntimeError),
        mlprov.TrainingRun(out=out, record_packages=False, source_dir=None) as run,
    ):
        run.log(step=1, loss=float(2))
        raise RuntimeError("diverged")
    assert (tmp_path / "t.metrics.jsonl").read_text().count("\n") == 1
    assert read(out)["predicate"]["runDetails"]["metadata"]["mlprov_outcome"]["outcome"] == "failed"


def test_signers_are_key_paths_or_signers(tmp_path: Path) -> None:
    from mlprov.signing.files import parse_attestation
    from mlprov.signing.keys import generate_keypair
    from mlprov.signing.verify import verify_attestation

    pair, other = generate_keypair("ed25519"), generate_keypair()
    (tmp_path / "release.key").write_bytes(pair.private_pem)
    (tmp_path / "m").write_text("m")
    out = tmp_path / "t.intoto.json"
    with mlprov.TrainingRun(
        out=out, record_packages=False, source_dir=None, signers=[tmp_path / "release.key"]
    ) as run:
        run.model(tmp_path / "m")
    signed = parse_attestation(out.read_bytes(), source=str(out))
    verify_attestation(signed, keys=[pair.key])
    with pytest.raises(mlprov.errors.VerificationError):
        verify_attestation(signed, keys=[other.key])
    with pytest.raises(mlprov.errors.InputError):
        mlprov.TrainingRun(signers=[str(tmp_path / "missing.key")], record_packages=False)


def test_own_untracked_outputs_do_not_make_a_clean_tree_dirty(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "train.py").write_text("print()\n")
    (repo / "data.csv").write_text("1\n")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "init")

    def source_of(out: Path) -> dict:  # type: ignore[type-arg]
        deps = read(out)["predicate"]["buildDefinition"]["resolvedDependencies"]
        return next(d for d in deps if d["name"] == "source")

    (repo / "out").mkdir()
    out = repo / "out" / "train.statement.json"
    with mlprov.TrainingRun(out=out, record_packages=False, source_dir=repo) as run:
        run.dataset("train", repo / "data.csv")
        (repo / "model").mkdir()
        (repo / "model" / "w.bin").write_bytes(b"w")
        run.log(step=1, loss=0.5)
        (repo / "ckpt").write_bytes(b"c")
        run.checkpoint(repo / "ckpt", step=1)
        run.model(repo / "model")
    assert source_of(out)["annotations"]["dirty"] is False
    (repo / "notes.txt").write_text("not an output\n")
    out2 = repo / "out" / "again.statement.json"
    with mlprov.TrainingRun(out=out2, record_packages=False, source_dir=repo) as run:
        run.model(repo / "model", name="model")
    found = source_of(out2)["annotations"]
    assert found["dirty"] is True and found["untrackedFiles"] >= 1


def test_unsigned_run_under_an_envelope_name_is_refused_before_it_runs(tmp_path: Path) -> None:
    """As `attest` and `run` do: an unsigned Statement is `X.statement.json`."""
    ran: list[bool] = []
    with (
        pytest.raises(InputError, match=r"t\.statement\.json, or sign it with signers="),
        mlprov.TrainingRun(out=tmp_path / "t.intoto.json", record_packages=False),
    ):
        ran.append(True)
    assert not ran and not (tmp_path / "t.intoto.json").exists()
