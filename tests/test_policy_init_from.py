"""`mlprov policy init --from ATTESTATIONS --subject MODEL`: a layout from real attestations."""

from __future__ import annotations

import yaml

from conftest import run_cli
from test_gate_attacks import Pipeline, attest_eval, payload, pipeline, resign, write_tree

__all__ = ["pipeline"]  # the fixture, re-used


def _init(p: Pipeline, *extra: object) -> object:
    return run_cli(
        "policy", "init", "--from", p.att, "--subject", p.model, "--key", p.pub("data"),
        "--key", p.pub("trainer"), "--out", p.root / "from.yaml", *extra,
    )  # fmt: skip


def test_layout_from_the_attestations_passes_them(pipeline: Pipeline) -> None:
    p = pipeline
    result = _init(p)
    assert result.code == 0, result  # type: ignore[attr-defined]
    doc = yaml.safe_load((p.root / "from.yaml").read_text())
    assert [s["name"] for s in doc["steps"]] == ["dataset", "train", "eval"]
    assert set(doc["functionaries"]) == {"data", "trainer"}
    assert all("publicKey" in f for f in doc["functionaries"].values())
    train = next(s for s in doc["steps"] if s["name"] == "train")
    assert train["expectedMaterials"][:2] == [
        "MATCH train WITH products FROM dataset",
        "DISALLOW * WITH products FROM dataset",
    ]
    assert train["expectedProducts"] == ["CREATE lr-model", "DISALLOW *"]
    assert doc["parameters"] == {"eval_accuracy_min": 0.8}
    assert doc["subjects"] == [{"productOf": ["train"]}]
    check = run_cli(
        "policy", "check", p.root / "from.yaml", "--attestations", p.att, "--subject", p.model
    )
    assert check.code == 0, check
    assert run_cli("policy", "lint", p.root / "from.yaml").code == 0


def test_layout_from_attestations_refuses_what_the_starter_refuses(pipeline: Pipeline) -> None:
    p = pipeline
    assert _init(p).code == 0  # type: ignore[attr-defined]
    layout = p.root / "from.yaml"
    # A worse evaluation, re-signed by the trainer: below the recorded threshold.
    statement = payload(p.att / "eval.intoto.json")
    statement["predicate"]["mlprov_metrics"]["accuracy"] = 0.5
    resign(statement, p.key("trainer"), p.att / "eval.intoto.json")
    check = run_cli("policy", "check", layout, "--attestations", p.att, "--subject", p.model)
    assert check.code == 1 and "accuracy" in check.err
    # Another model is not the released one.
    other = write_tree(p.root / "other" / "lr-model", {"w": b"other"})
    attest_eval(p, p.model, p.att / "eval.intoto.json", accuracy=0.9, key="trainer")
    check = run_cli("policy", "check", layout, "--attestations", p.att, "--subject", other)
    assert check.code == 1 and "not a product of a counted claim" in check.err


def test_init_from_needs_the_signers_keys_and_the_model(pipeline: Pipeline) -> None:
    p = pipeline
    result = run_cli(
        "policy", "init", "--from", p.att, "--subject", p.model, "--key", p.pub("data"),
        "--out", p.root / "from.yaml",
    )  # fmt: skip
    assert result.code == 2 and "signed by none of the --key keys" in result.err
    assert not (p.root / "from.yaml").exists()
    result = run_cli(
        "policy", "init", "--from", p.att, "--subject", p.pub("gate"), "--key", p.pub("data"),
        "--key", p.pub("trainer"), "--out", p.root / "from.yaml",
    )  # fmt: skip
    assert result.code == 2 and "no attestation has" in result.err
    result = run_cli("policy", "init", "--from", p.att, "--out", p.root / "from.yaml")
    assert result.code == 2 and "go together" in result.err


def test_step_names_from_attestations_cannot_write_layout_text(pipeline: Pipeline) -> None:
    """A step name is the signer's text: the trainer re-signs its evaluation under a name
    that, pasted into the generated YAML, would add its own lines (here: a lower bar).
    It is refused, naming the attestation; nothing is written."""
    p = pipeline
    statement = payload(p.att / "eval.intoto.json")
    for name in (
        "eval\nparameters: {eval_accuracy_min: 0.0}\nx",
        "eval], x: [y",
        "eval WITH products FROM dataset",
        "eval\n",  # `$` would let a trailing newline through
    ):
        statement["predicate"]["mlprov_step"] = name
        resign(statement, p.key("trainer"), p.att / "eval.intoto.json")
        result = _init(p)
        assert result.code == 2, (name, result)  # type: ignore[attr-defined]
        assert "eval.intoto.json" in result.err and "step name" in result.err  # type: ignore[attr-defined]
        assert not (p.root / "from.yaml").exists()
