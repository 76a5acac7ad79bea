"""The example pipeline runs offline and records itself with the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import run_cli, without_facts
from mlprov.schemagen import validate_statement

PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "pipeline"


def test_pipeline_trains_and_records(tmp_path: Path) -> None:
    def py(script: str, *args: str | Path) -> None:
        subprocess.run(
            [sys.executable, PIPELINE / script, *map(str, args)], check=True, cwd=tmp_path
        )

    py("make_dataset.py", "--out", tmp_path / "data", "--seed", "1")
    py(
        "train.py", "--data", tmp_path / "data" / "train", "--config", PIPELINE / "train.yaml",
        "--model", tmp_path / "model", "--record", tmp_path / "train.statement.json",
    )  # fmt: skip
    py("evaluate.py", "--model", tmp_path / "model", "--data", tmp_path / "data" / "test",
       "--out", tmp_path / "m.json")  # fmt: skip
    raw = json.loads((tmp_path / "train.statement.json").read_bytes())
    validate_statement(raw, source="train.statement.json")
    model_digest = json.loads(run_cli("digest", tmp_path / "model", "--json").out)[0]["digest"]
    data_digest = json.loads(run_cli("digest", tmp_path / "data" / "train", "--json").out)[0]
    assert without_facts(raw["subject"]) == [
        {"name": "model", "digest": {"sha256": model_digest}, "annotations": {"digestOf": "tree"}}
    ]
    deps = raw["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps[0]["name"] == "train" and deps[0]["digest"] == {"sha256": data_digest["digest"]}
    assert raw["predicate"]["buildDefinition"]["externalParameters"]["config"]["epochs"] == 200
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] > 0.8
