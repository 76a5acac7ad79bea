"""`mlprov.TrainingRun`: the Python API writes the same Statement, and a failure is recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlprov
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
    out = tmp_path / "train.intoto.json"
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
