"""Lineage answers what an auditor means: every model a dataset reached and how, evaluations
apart from training, steps filtered, model signatures not read as inputs, readable DOT."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import run_cli, shared_testdata
from mlprov.store.lineage import relation_of
from store_support import (
    BUILD_TYPE,
    d,
    descriptor,
    evaluation,
    fine_tune_chain,
    new_signer,
    write_envelope,
)


@pytest.fixture
def chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """raw → dataset → base → tuned → int8; tuned evaluated on evalset, base and int8
    evaluated on dataset, and a judge model trained elsewhere evaluated on dataset."""
    monkeypatch.setenv("MLPROV_STORE", str(tmp_path / "store.sqlite3"))
    statements = [
        *fine_tune_chain(),
        evaluation(descriptor("base-model", "base"), [descriptor("dataset", "dataset")]),
        evaluation(descriptor("judge", "judge"), [descriptor("dataset", "dataset")]),
        # The released model evaluated on its own training data: a shorter way to it than
        # the way it was built, and not the one to report.
        evaluation(descriptor("model-int8", "int8"), [descriptor("dataset", "dataset")]),
    ]
    signer = new_signer()
    files = [
        write_envelope(tmp_path / f"s{i}.intoto.json", s, signer) for i, s in enumerate(statements)
    ]
    assert run_cli("store", "add", *files).code == 0
    return tmp_path


def test_relations_follow_the_build_type() -> None:
    slsa = "https://slsa.dev/provenance/v1"
    assert relation_of(slsa, BUILD_TYPE.format("training")) == "trained on"
    assert relation_of(slsa, BUILD_TYPE.format("fine-tuning")) == "fine-tuned from"
    assert relation_of(slsa, BUILD_TYPE.format("conversion")) == "converted from"
    assert relation_of(slsa, BUILD_TYPE.format("evaluation")) == "evaluated on"
    assert relation_of("https://in-toto.io/attestation/test-result/v0.1", None) == "evaluated on"
    assert relation_of(slsa, "https://example.com/other/v1") == "built from"


def test_only_models_lists_every_model_reached_with_how(chain: Path) -> None:
    result = run_cli("lineage", d("raw"), "--down", "--only-models")
    assert result.code == 0, result
    assert sorted(result.out.splitlines(), key=len) == [
        f"{d('judge')}  judge  evaluated on dataset, prepared from raw.csv",
        f"{d('base')}  base-model  trained on dataset, prepared from raw.csv  (also evaluated on)",
        f"{d('tuned')}  tuned-model  fine-tuned from base-model, trained on dataset,"
        " prepared from raw.csv",
        f"{d('int8')}  model-int8  converted from tuned-model, fine-tuned from base-model,"
        " trained on dataset, prepared from raw.csv  (also evaluated on)",
    ]
    document = json.loads(run_cli("lineage", d("dataset"), "--down", "--only-models", "--json").out)
    models = {m["digest"]: m for m in document["models"]}
    assert models[d("base")]["how"] == ["trained on", "evaluated on"]
    assert models[d("judge")]["how"] == ["evaluated on"]
    assert models[d("int8")]["path"] == [
        {"artifact": d("dataset")},
        {"relation": "trained on"},
        {"artifact": d("base")},
        {"relation": "fine-tuned from"},
        {"artifact": d("tuned")},
        {"relation": "converted from"},
        {"artifact": d("int8")},
    ]
    text = run_cli("lineage", d("dataset"), "--down", "--only-models").out
    assert f"{d('judge')}  judge  evaluated on dataset\n" in text
    assert "base-model  trained on dataset  (also evaluated on)" in text


def test_trained_on_leaves_out_what_was_only_evaluated_on_it(chain: Path) -> None:
    result = run_cli("lineage", d("dataset"), "--down", "--only-models", "--trained-on", "--json")
    models = {m["digest"]: m["how"] for m in json.loads(result.out)["models"]}
    assert models == {
        d("base"): ["trained on"],
        d("tuned"): ["fine-tuned from"],
        d("int8"): ["converted from"],
    }
    evalset = run_cli("lineage", d("evalset"), "--down", "--only-models", "--trained-on")
    assert evalset.code == 0 and evalset.out == ""
    tree = run_cli("lineage", d("dataset"), "--down", "--trained-on").out
    assert "judge" not in tree and "evaluated" not in tree
    refused = run_cli("lineage", d("int8"), "--up", "--trained-on")
    assert refused.code == 2 and "--trained-on applies to --down" in refused.err


def test_evaluation_inputs_are_shown_apart_in_the_tree(chain: Path) -> None:
    up = run_cli("lineage", d("base"), "--up").out.splitlines()
    built = next(i for i, line in enumerate(up) if "train (" in line)
    evaluated = next(i for i, line in enumerate(up) if "evaluation (" in line)
    assert up[built].endswith(" from:") and up[evaluated].endswith(" evaluated on:")
    assert built < evaluated, "what it was built from comes first"
    down = run_cli("lineage", d("dataset"), "--down").out
    assert re.search(r"evaluation \(test-result, .*\) evaluated:\n", down), down
    assert re.search(r"train \(slsa-provenance, .*\) into:\n", down), down


def test_step_filters_edges(chain: Path) -> None:
    result = run_cli("lineage", d("raw"), "--down", "--step", "prepare", "--json")
    graph = json.loads(result.out)
    assert {e["step"] for e in graph["edges"]} == {"prepare"}
    assert {n["digest"] for n in graph["nodes"]} == {d("raw"), d("dataset")}
    both = run_cli("lineage", d("dataset"), "--down", "--step", "train", "--step", "evaluation")
    assert "finetune" not in both.out and "train (" in both.out and "evaluated:" in both.out
    models = run_cli("lineage", d("dataset"), "--down", "--only-models", "--step", "evaluation")
    names = sorted(line.split("  ")[1] for line in models.out.splitlines())
    assert names == ["base-model", "judge", "model-int8"]


def test_dot_labels_use_short_digests_and_tooltips_the_full_ones(chain: Path) -> None:
    dot = run_cli("lineage", d("raw"), "--down", "--format", "dot").out
    labels = re.findall(r'label="([^"]*)"', dot)
    assert labels and not any(re.search(r"[0-9a-f]{20}", label) for label in labels), labels
    assert f'tooltip="{d("int8")}"' in dot
    assert 'label="base-model\\nsha256:' + d("base")[7:19] + '…"' in dot
    assert "train (trained on)" in dot and "quantize (converted from)" in dot
    with_evals = run_cli("lineage", d("dataset"), "--down", "--format", "dot").out
    assert "evaluation (evaluated on)" in with_evals and "style=dotted" in with_evals
    mermaid = run_cli("lineage", d("raw"), "--down", "--format", "mermaid").out
    assert not re.search(r"[0-9a-f]{20}", mermaid)


def test_store_ls_json_lists_the_materials_show_lists(chain: Path) -> None:
    listed = json.loads(run_cli("store", "ls", "--json", "--step", "train").out)
    (item,) = listed
    shown = json.loads(run_cli("store", "show", item["digest"], "--json").out)
    assert item["materials"] == shown[0]["materials"]
    assert {m["name"] for m in item["materials"]} == {"dataset", "train.yaml"}


def test_a_model_signature_adds_no_unattested_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = shared_testdata("oms", "v1.0.0-sigstore", "model.sig")
    monkeypatch.setenv("MLPROV_STORE", str(tmp_path / "store.sqlite3"))
    added = json.loads(run_cli("store", "add", bundle, "--json").out)
    model = added["results"][0]["subjects"][0]
    # The model's provenance: trained on a dataset; then signed with OMS.
    signer = new_signer()
    from store_support import provenance

    trained = provenance(
        "train", "training", [{"name": "model", "digest": {"sha256": model[7:]}}],
        [descriptor("dataset", "dataset")],
    )  # fmt: skip
    path = write_envelope(tmp_path / "train.intoto.json", trained, signer)
    assert run_cli("store", "add", path).code == 0
    up = run_cli("lineage", model, "--up")
    assert up.code == 0, up
    unattested = [line for line in up.out.splitlines() if "unattested input" in line]
    assert unattested == [
        f"! unattested input (no provenance in the store): dataset  {d('dataset')}"
    ]
    assert "model-signing" not in up.out
    graph = json.loads(run_cli("lineage", model, "--up", "--json").out)
    assert {e["material"] for e in graph["edges"]} == {d("dataset")}


def test_data_only_an_evaluation_read_is_not_an_unattested_input(chain: Path) -> None:
    up = run_cli("lineage", d("tuned"), "--up").out
    assert (
        f"! unattested evaluation data (no provenance in the store): evalset  {d('evalset')}" in up
    )
    assert f"! unattested input (no provenance in the store): raw.csv  {d('raw')}" in up
    assert "unattested input (no provenance in the store): evalset" not in up
