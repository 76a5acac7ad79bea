"""`mlprov run`: materials before, products after, the command's outcome and exit code."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, without_facts
from mlprov.predicates import materials_of, step_of
from mlprov.schemagen import validate_statement
from mlprov.statement import Statement, check_in_toto_structure

PY = sys.executable


def load(path: Path) -> tuple[Statement, dict[str, Any]]:
    data = path.read_bytes()
    check_in_toto_structure(data)
    raw = json.loads(data)
    validate_statement(raw, source=str(path))
    return Statement.from_bytes(data), raw


def tree_digest(path: Path) -> str:
    digest: str = json.loads(run_cli("digest", path, "--json").out)[0]["digest"]
    return digest


@pytest.fixture
def inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("1\n")
    (tmp_path / "prep.json").write_text('{"rows": 1}')
    return tmp_path


def test_run_records_materials_products_and_success(inputs: Path) -> None:
    script = "import pathlib; p = pathlib.Path('out'); p.mkdir(); (p / 'y').write_text('2')"
    out = inputs / "run.statement.json"
    result = run_cli(
        "run", "--step", "prep", "--materials", "data", "prep.json", "--products", "out",
        "--config", "prep.json", "--param", "k=3", "--no-packages", "--out", out,
        "--", PY, "-c", script,
    )  # fmt: skip
    assert result.code == 0, result
    assert "prep succeeded (exit 0)" in result.err
    statement, raw = load(out)
    assert step_of(statement) == "prep"
    assert without_facts(raw["subject"]) == [
        {
            "name": "out",
            "digest": {"sha256": tree_digest(inputs / "out")},
            "annotations": {"digestOf": "tree"},
        }
    ]
    build = raw["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://mlprov.dev/buildtypes/run/v1"
    assert build["externalParameters"]["command"] == [PY, "-c", script]
    assert build["externalParameters"]["config"] == {"rows": 1}
    assert build["externalParameters"]["parameters"] == {"k": 3}
    prep_sha = hashlib.sha256(b'{"rows": 1}').hexdigest()
    assert [(m.name, m.digest) for m in materials_of(statement)] == [
        ("prep.json", {"sha256": prep_sha}),
        ("data", {"sha256": tree_digest(inputs / "data")}),
    ]
    metadata = raw["predicate"]["runDetails"]["metadata"]
    assert metadata["mlprov_outcome"] == {"outcome": "succeeded", "exitCode": 0}
    assert metadata["startedOn"] <= metadata["finishedOn"]


def test_failed_command_is_recorded_and_its_code_returned(inputs: Path) -> None:
    out = inputs / "fail.json"
    result = run_cli(
        "run", "--step", "train", "--materials", "data", "--products", "model",
        "--no-packages", "--out", out, "--", PY, "-c", "import sys; sys.exit(3)",
    )  # fmt: skip
    assert result.code == 3
    assert "train failed (exit 3)" in result.err
    statement, raw = load(out)
    assert raw["predicate"]["runDetails"]["metadata"]["mlprov_outcome"] == {
        "outcome": "failed",
        "exitCode": 3,
        "error": "command exited with 3",
    }
    invocation = raw["predicate"]["runDetails"]["metadata"]["invocationId"]
    assert without_facts(raw["subject"]) == [
        {
            "name": "invocation/train",
            "digest": {"sha256": hashlib.sha256(invocation.encode()).hexdigest()},
            "annotations": {
                "invocationId": invocation,
                "note": "the failed run produced no output",
            },
        }
    ]
    assert [m.name for m in materials_of(statement)] == ["data"]


def test_partial_products_of_a_failed_command_are_subjects(inputs: Path) -> None:
    script = "import pathlib, sys; pathlib.Path('half').write_text('x'); sys.exit(2)"
    result = run_cli(
        "run", "--step", "s", "--products", "half", "--no-packages", "--out", "o.json",
        "--", PY, "-c", script,
    )  # fmt: skip
    assert result.code == 2
    _, raw = load(inputs / "o.json")
    assert without_facts(raw["subject"]) == [
        {
            "name": "half",
            "digest": {"sha256": hashlib.sha256(b"x").hexdigest()},
            "annotations": {"digestOf": "file"},
        }
    ]
    assert raw["predicate"]["runDetails"]["metadata"]["mlprov_outcome"]["outcome"] == "failed"


def test_missing_product_after_success_is_a_failure(inputs: Path) -> None:
    result = run_cli(
        "run", "--step", "s", "--products", "never", "--no-packages", "--out", "o.json",
        "--", PY, "-c", "pass",
    )  # fmt: skip
    assert result.code == 1
    assert "product never was not created" in result.err
    _, raw = load(inputs / "o.json")
    assert raw["predicate"]["runDetails"]["metadata"]["mlprov_outcome"] == {
        "outcome": "failed",
        "exitCode": 1,
        "error": "product never was not created",
    }


def test_command_not_found_is_recorded_with_127(inputs: Path) -> None:
    result = run_cli(
        "run", "--step", "s", "--no-packages", "--out", "o.json", "--", "no-such-cmd-xyz"
    )
    assert result.code == 127
    _, raw = load(inputs / "o.json")
    assert raw["predicate"]["runDetails"]["metadata"]["mlprov_outcome"]["error"] == (
        "command not found: no-such-cmd-xyz"
    )


def test_missing_material_is_bad_input_and_command_does_not_run(inputs: Path) -> None:
    result = run_cli(
        "run", "--step", "s", "--materials", "nope", "--out", "o.json",
        "--", PY, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert result.code == 2
    assert result.err.strip() == "mlprov: error: nope: no such file or directory"
    assert not (inputs / "ran").exists() and not (inputs / "o.json").exists()


def test_run_needs_a_command(inputs: Path) -> None:
    result = run_cli("run", "--step", "s", "--out", "o.json")
    assert result.code == 2
    assert "Traceback" not in result.err
