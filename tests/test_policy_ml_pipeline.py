"""An ML pipeline (dataset → train → eval → quantize), each step signed by its own key.

Passes its layout; fails, each with the exact reason, for every way the issue names.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from securesystemslib.signer import CryptoSigner

from conftest import run_cli
from mlprov.errors import InputError
from mlprov.policy import collect_claims, evaluate, load_layout
from mlprov.signing.dsse import sign_envelope
from mlprov.signing.keys import public_pem
from mlprov.statement import Statement

BT = "https://mlprov.dev/buildtypes/{}/v1"
DATA = {"sha256": "11" * 32}
MODEL = {"sha256": "22" * 32}
QUANT = {"sha256": "33" * 32}
ROLES = ("data", "trainer", "evaluator", "converter", "mallory", "trainer2")


@pytest.fixture(scope="module")
def signers() -> dict[str, CryptoSigner]:
    return {role: CryptoSigner.generate_ed25519() for role in ROLES}


def provenance(
    kind: str, step: str, deps: list[dict[str, Any]], subject: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subject,
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BT.format(kind),
                "externalParameters": {"step": step, "epochs": 3},
                "resolvedDependencies": deps,
            },
            "runDetails": {"builder": {"id": "https://ci.example.com/runner"}},
        },
    }


def pipeline() -> dict[str, dict[str, Any]]:
    """step -> Statement dict, as mlprov's attest writes them."""
    return {
        "dataset": provenance(
            "dataset-preparation",
            "dataset",
            [{"name": "raw.csv", "digest": {"sha256": "00" * 32}}],
            [{"name": "dataset", "digest": DATA}],
        ),
        "train": provenance(
            "training",
            "train",
            [
                {"name": "dataset", "digest": DATA},
                {"name": "train.yaml", "digest": {"sha256": "44" * 32}},
            ],
            [{"name": "model", "digest": MODEL}],
        ),
        "eval": {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "model", "digest": MODEL}],
            "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
            "predicate": {
                "result": "PASSED",
                "step": "eval",
                "metrics": {"accuracy": 0.93, "samples": 500},
                "passedTests": ["accuracy"],
                "failedTests": [],
                "warnedTests": [],
            },
        },
        "quantize": provenance(
            "conversion",
            "quantize",
            [{"name": "model", "digest": MODEL}],
            [{"name": "model.q8", "digest": QUANT}],
        ),
    }


SIGNED_BY = {"dataset": "data", "train": "trainer", "eval": "evaluator", "quantize": "converter"}


def layout_doc(signers: dict[str, CryptoSigner]) -> dict[str, Any]:
    def fun(role: str) -> dict[str, str]:
        return {"publicKey": public_pem(signers[role].public_key).decode()}

    def predicate(
        kind: str, who: list[str], rules: list[str], threshold: int = 1
    ) -> dict[str, Any]:
        return {
            "predicateType": kind,
            "functionaries": who,
            "threshold": threshold,
            "expectedAttributes": [{"rule": r} for r in rules],
        }

    slsa = "https://slsa.dev/provenance/v1"
    return {
        "expires": "2099-01-01T00:00:00Z",
        "parameters": {"approved_dataset": DATA["sha256"], "min_accuracy": 0.9},
        "functionaries": {role: fun(role) for role in ROLES if role != "mallory"},
        "steps": [
            {
                "name": "dataset",
                "expectedMaterials": ["ALLOW *"],
                "expectedProducts": ["CREATE dataset", "DISALLOW *"],
                "expectedPredicates": [
                    predicate(
                        slsa,
                        ["data"],
                        [
                            "predicate.buildDefinition.buildType == "
                            f"'{BT.format('dataset-preparation')}'"
                        ],
                    )
                ],
            },
            {
                "name": "train",
                "expectedMaterials": [
                    "MATCH dataset WITH products FROM dataset",
                    "ALLOW train.yaml",
                    "DISALLOW *",
                ],
                "expectedProducts": ["CREATE model", "DISALLOW *"],
                "expectedPredicates": [
                    predicate(
                        slsa,
                        ["trainer", "trainer2"],
                        [
                            f"predicate.buildDefinition.buildType == '{BT.format('training')}'",
                            "predicate.buildDefinition.resolvedDependencies.exists(d,"
                            " d.name == 'dataset' && d.digest.sha256 == '{approved_dataset}')",
                            "predicate.buildDefinition.externalParameters.epochs == 3",
                        ],
                    )
                ],
            },
            {
                "name": "eval",
                "expectedMaterials": ["MATCH model WITH products FROM train", "DISALLOW *"],
                "expectedPredicates": [
                    predicate(
                        "https://in-toto.io/attestation/test-result/v0.1",
                        ["evaluator"],
                        [
                            "predicate.result == 'PASSED'",
                            "predicate.metrics.accuracy >= {min_accuracy}",
                        ],
                    )
                ],
            },
            {
                "name": "quantize",
                "expectedMaterials": ["MATCH model WITH products FROM train", "DISALLOW *"],
                "expectedProducts": ["CREATE model.q8", "DISALLOW *"],
                "expectedPredicates": [predicate(slsa, ["converter"], [])],
            },
        ],
        "subjects": [{"productOf": ["train", "quantize"]}],
    }


def write(
    tmp: Path,
    signers: dict[str, CryptoSigner],
    statements: dict[str, dict[str, Any]],
    layout: dict[str, Any],
    *,
    signed_by: dict[str, list[str]] | None = None,
) -> tuple[Path, Path]:
    att = tmp / "att"
    att.mkdir(exist_ok=True)
    for step, doc in statements.items():
        roles = (signed_by or {}).get(step, [SIGNED_BY[step]])
        payload = Statement.from_dict(doc).to_bytes()
        for role in roles:
            envelope = sign_envelope(payload, [signers[role]])
            (att / f"{step}.{role}.intoto.json").write_bytes(envelope.to_json())
    path = tmp / "layout.yaml"
    path.write_text(yaml.safe_dump(layout, sort_keys=False))
    return path, att


def failures(layout: Path, att: Path, **kw: Any) -> list[str]:
    result = evaluate(
        load_layout(layout, params=kw.pop("params", None)), collect_claims([att]), **kw
    )
    return [f"{step}: {r.rule}: {r.reason}" for step, r in result.failures]


def train_failures(layout: Path, att: Path) -> list[str]:
    """The train step's failures; every other failure must follow from train not counting:
    later steps' MATCH rules and the released subject see only counted claims."""
    found = failures(layout, att)
    own = [f for f in found if f.startswith("train: ")]
    for other in found:
        if other in own or "threshold 1: 0 distinct" in other:
            continue
        assert "no counted claims of step train" in other or "counted claim" in other, other
    return own


def test_pipeline_passes(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    layout, att = write(tmp_path, signers, pipeline(), layout_doc(signers))
    assert failures(layout, att) == []
    result = run_cli("policy", "check", layout, "--attestations", att, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["passed"] is True
    assert [s["name"] for s in report["steps"]] == ["dataset", "train", "eval", "quantize"]
    assert report["subjects"] == [{"name": "model.q8", "digest": QUANT}]


def test_unapproved_dataset_digest(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    statements = pipeline()
    other = {"sha256": "99" * 32}
    statements["train"]["predicate"]["buildDefinition"]["resolvedDependencies"][0]["digest"] = other
    layout, att = write(tmp_path, signers, statements, layout_doc(signers))
    found = failures(layout, att)
    rule = (
        "predicate.buildDefinition.resolvedDependencies.exists(d, d.name == 'dataset'"
        f" && d.digest.sha256 == '{DATA['sha256']}')"
    )
    assert f"train: {rule}: does not hold" in found
    assert (
        "train: DISALLOW *: material dataset not allowed by any earlier rule (dataset:"
        " 'MATCH dataset WITH products FROM dataset' found no product dataset of step dataset"
        f" with digest sha256:{other['sha256']})"
    ) in found


def test_metric_under_threshold(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    statements = pipeline()
    statements["eval"]["predicate"]["metrics"]["accuracy"] = 0.85
    layout, att = write(tmp_path, signers, statements, layout_doc(signers))
    assert failures(layout, att) == [
        "eval: predicate.metrics.accuracy >= 0.9: 0.85 < 0.9",  # the values it read
        "eval: threshold 1: 0 distinct functionary(ies) passed, 1 needed",
    ]
    # the bar is a parameter: lowered on the command line, the same evidence passes
    assert failures(layout, att, params={"min_accuracy": "0.8"}) == []
    assert (
        run_cli(
            "policy", "check", layout, "--attestations", att, "--param", "min_accuracy=0.8"
        ).code
        == 0
    )


def test_step_signed_by_the_wrong_key(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    layout, att = write(
        tmp_path, signers, pipeline(), layout_doc(signers), signed_by={"train": ["mallory"]}
    )
    found = failures(layout, att)
    assert (
        "train: threshold 1: no attestation of type https://slsa.dev/provenance/v1 signed by a"
        " functionary"
    ) in found
    result = evaluate(load_layout(layout), collect_claims([att]))
    train = next(s for s in result.steps if s.name == "train")
    ignored = [r for r in train.results if r.status == "skip"]
    assert ignored and ignored[0].where.endswith("train.mallory.intoto.json")
    assert "not signed by a functionary of step train" in ignored[0].reason


def test_evaluation_signed_by_a_functionary_of_another_step(
    tmp_path: Path, signers: dict[str, CryptoSigner]
) -> None:
    # the trainer is a functionary of the layout, but not of the eval step
    layout, att = write(
        tmp_path, signers, pipeline(), layout_doc(signers), signed_by={"eval": ["trainer"]}
    )
    assert failures(layout, att) == [
        "eval: threshold 1: no attestation of type https://in-toto.io/attestation/test-result/v0.1"
        " signed by a functionary"
    ]


def test_threshold_of_two_with_one_signer(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    doc = layout_doc(signers)
    doc["steps"][1]["expectedPredicates"][0]["threshold"] = 2
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert train_failures(layout, att) == [
        "train: threshold 2: 1 distinct functionary(ies) passed (trainer), 2 needed"
    ]
    # the same key signing twice, or named twice, still counts once
    doc["functionaries"]["trainer2"] = doc["functionaries"]["trainer"]
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert train_failures(layout, att) == [
        "train: threshold 2: 1 distinct functionary(ies) passed (trainer, trainer2), 2 needed"
    ]


def test_threshold_of_two_with_two_signers_passes(
    tmp_path: Path, signers: dict[str, CryptoSigner]
) -> None:
    doc = layout_doc(signers)
    doc["steps"][1]["expectedPredicates"][0]["threshold"] = 2
    layout, att = write(
        tmp_path, signers, pipeline(), doc, signed_by={"train": ["trainer", "trainer2"]}
    )
    assert failures(layout, att) == []


def test_two_signers_who_disagree_fail(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    doc = layout_doc(signers)
    doc["steps"][1]["expectedPredicates"][0]["threshold"] = 2
    doc["steps"][1]["expectedMaterials"].insert(2, "ALLOW seed.txt")
    layout, att = write(
        tmp_path, signers, pipeline(), doc, signed_by={"train": ["trainer", "trainer2"]}
    )
    other = pipeline()["train"]
    other["predicate"]["buildDefinition"]["resolvedDependencies"].append(
        {"name": "seed.txt", "digest": {"sha256": "55" * 32}}
    )
    payload = Statement.from_dict(other).to_bytes()
    (att / "train.trainer2.intoto.json").write_bytes(
        sign_envelope(payload, [signers["trainer2"]]).to_json()
    )
    found = train_failures(layout, att)
    assert len(found) == 1 and found[0].startswith("train: functionaries agree: ")
    assert found[0].endswith("report different materials")


def test_product_no_rule_allows(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    statements = pipeline()
    statements["train"]["subject"].append({"name": "extra.bin", "digest": {"sha256": "66" * 32}})
    layout, att = write(tmp_path, signers, statements, layout_doc(signers))
    assert train_failures(layout, att) == [
        "train: DISALLOW *: product extra.bin not allowed by any earlier rule",
        "train: threshold 1: 0 distinct functionary(ies) passed, 1 needed",
    ]


def test_layout_expired(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    doc = layout_doc(signers)
    doc["expires"] = "2020-01-01T00:00:00Z"
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert failures(layout, att) == ["layout: expires: layout expired at 2020-01-01T00:00:00Z"]
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1
    assert "FAILED: 1 of" in result.err and "layout expired at 2020-01-01T00:00:00Z" in result.err


def test_ints_stay_ints_in_cel(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    doc = layout_doc(signers)
    rules = doc["steps"][2]["expectedPredicates"][0]["expectedAttributes"]
    rules.append({"rule": "predicate.metrics.samples == 500"})
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert failures(layout, att) == []
    rules[-1] = {"rule": "predicate.metrics.samples == 500.0"}  # an int is not a double
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert failures(layout, att)[0].startswith(
        "eval: predicate.metrics.samples == 500.0: cannot evaluate"
    )


def test_missing_claim_allow_and_warn(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    doc = layout_doc(signers)
    rules = doc["steps"][2]["expectedPredicates"][0]["expectedAttributes"]
    rules.append({"rule": "predicate.metrics.f1 > 0.5"})
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert failures(layout, att)[0] == (
        "eval: predicate.metrics.f1 > 0.5: no claim: no such member in mapping: 'f1'"
    )
    rules[-1] = {"rule": "predicate.metrics.f1 > 0.5", "allowIfNoClaim": True}
    layout, att = write(tmp_path, signers, pipeline(), doc)
    assert failures(layout, att) == []
    rules[-1] = {"rule": "predicate.metrics.accuracy > 0.99", "warn": True}
    layout, att = write(tmp_path, signers, pipeline(), doc)
    result = evaluate(load_layout(layout), collect_claims([att]))
    assert result.passed
    assert [r.reason for s in result.steps for r in s.results if r.status == "warn"] == [
        "0.93 <= 0.99"
    ]


def test_released_subject(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    layout, att = write(tmp_path, signers, pipeline(), layout_doc(signers))
    good = tmp_path / "model.q8"
    good.write_bytes(b"weights")
    found = failures(
        layout,
        att,
        subjects=[__import__("mlprov.policy").policy.ReleasedSubject("model.q8", QUANT)],
    )
    assert found == []
    result = run_cli("policy", "check", layout, "--attestations", att, "--subject", good)
    assert result.code == 1
    assert "is not a product of a counted claim of train or quantize" in result.err


def test_missing_parameter_is_input_error(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    doc = layout_doc(signers)
    doc["parameters"]["min_accuracy"] = None
    layout, att = write(tmp_path, signers, pipeline(), doc)
    with pytest.raises(InputError, match="min_accuracy have no value"):
        load_layout(layout)
    assert run_cli("policy", "check", layout, "--attestations", att).code == 2
    assert (
        run_cli(
            "policy", "check", layout, "--attestations", att, "--param", "min_accuracy=0.9"
        ).code
        == 0
    )


def test_signed_layout(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    layout, att = write(tmp_path, signers, pipeline(), layout_doc(signers))
    keys = tmp_path / "keys"
    keys.mkdir()
    assert run_cli("keygen", "--out", keys / "owner", "--no-password").code == 0
    assert run_cli("keygen", "--out", keys / "other", "--no-password").code == 0
    signed = tmp_path / "layout.signed.json"
    assert run_cli("policy", "sign", layout, "--key", keys / "owner.key", "--out", signed).code == 0
    ok = run_cli(
        "policy", "check", signed, "--attestations", att, "--layout-key", keys / "owner.pub"
    )
    assert ok.code == 0, ok
    wrong = run_cli(
        "policy", "check", signed, "--attestations", att, "--layout-key", keys / "other.pub"
    )
    assert wrong.code == 1 and "layout not signed by owner key(s)" in wrong.err
    unsigned = run_cli(
        "policy", "check", layout, "--attestations", att, "--layout-key", keys / "owner.pub"
    )
    assert unsigned.code == 1
    assert "layout is not signed, but owner keys are required" in unsigned.err
    # a changed byte in the signed layout's payload breaks its signature
    envelope = json.loads(signed.read_bytes())
    text = base64.b64decode(envelope["payload"]).replace(b"min_accuracy: 0.9", b"min_accuracy: 0.1")
    envelope["payload"] = base64.b64encode(text).decode()
    signed.write_text(json.dumps(envelope))
    tampered = run_cli(
        "policy", "check", signed, "--attestations", att, "--layout-key", keys / "owner.pub"
    )
    assert tampered.code == 1 and "layout not signed by owner key(s)" in tampered.err


def test_vsa_written_signed_and_required_upstream(
    tmp_path: Path, signers: dict[str, CryptoSigner]
) -> None:
    layout, att = write(tmp_path, signers, pipeline(), layout_doc(signers))
    keys = tmp_path / "keys"
    keys.mkdir()
    run_cli("keygen", "--out", keys / "gate", "--no-password")
    vsa = tmp_path / "model.vsa.intoto.json"
    args = [
        "--vsa-out",
        vsa,
        "--vsa-key",
        keys / "gate.key",
        "--verifier-id",
        "https://gate.example",
    ]
    result = run_cli("policy", "check", layout, "--attestations", att, *args)
    assert result.code == 0, result
    assert "wrote VSA (PASSED)" in result.out
    assert run_cli("verify", vsa, "--key", keys / "gate.pub").code == 0
    statement = json.loads(base64.b64decode(json.loads(vsa.read_bytes())["payload"]))
    predicate = statement["predicate"]
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert statement["subject"] == [{"name": "model.q8", "digest": QUANT}]
    assert predicate["verificationResult"] == "PASSED"
    assert predicate["verifier"] == {"id": "https://gate.example"}
    assert predicate["verifiedLevels"] == ["SLSA_BUILD_LEVEL_1"]
    assert (
        predicate["policy"]["digest"]["sha256"]
        == __import__("hashlib").sha256(layout.read_bytes()).hexdigest()
    )
    assert len(predicate["inputAttestations"]) == 4
    assert {"timeVerified", "resourceUri", "slsaVersion"} <= predicate.keys()
    again = run_cli("policy", "check", layout, "--attestations", att, *args)
    assert again.code == 2 and "already exists" in again.err

    # a downstream layout requires that VSA about the model it deploys
    doc = layout_doc(signers)
    doc["functionaries"]["gate"] = {"publicKeyPath": str(keys / "gate.pub")}
    doc["expectedVerifications"] = [
        {
            "name": "release-gate",
            "verifierId": "https://gate.example",
            "functionaries": ["gate"],
            "appliesTo": "quantize",
            "verifiedLevels": ["SLSA_BUILD_LEVEL_1"],
        }
    ]
    # here the VSA is about model.q8, so make it apply to the released subject instead
    doc["expectedVerifications"][0]["appliesTo"] = "subject"
    downstream = tmp_path / "downstream.yaml"
    downstream.write_text(yaml.safe_dump(doc))
    ok = run_cli("policy", "check", downstream, "--attestations", att, "--attestations", vsa)
    assert ok.code == 0, ok
    missing = run_cli("policy", "check", downstream, "--attestations", att)
    assert missing.code == 1
    assert "VSA release-gate from https://gate.example: 0 of 1 required signer(s)" in missing.err
    wrong = copy.deepcopy(doc)
    wrong["expectedVerifications"][0]["verifierId"] = "https://other.example"
    downstream.write_text(yaml.safe_dump(wrong))
    bad = run_cli("policy", "check", downstream, "--attestations", att, "--attestations", vsa)
    assert bad.code == 1 and "verifier 'https://gate.example'" in bad.err


def test_failed_check_writes_failed_vsa(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    statements = pipeline()
    statements["eval"]["predicate"]["metrics"]["accuracy"] = 0.1
    layout, att = write(tmp_path, signers, statements, layout_doc(signers))
    run_cli("keygen", "--out", tmp_path / "gate", "--no-password")
    vsa = tmp_path / "vsa.json"
    result = run_cli(
        "policy",
        "check",
        layout,
        "--attestations",
        att,
        "--vsa-out",
        vsa,
        "--vsa-key",
        tmp_path / "gate.key",
        "--verifier-id",
        "https://gate.example",
    )
    assert result.code == 1
    predicate = json.loads(base64.b64decode(json.loads(vsa.read_bytes())["payload"]))["predicate"]
    assert predicate["verificationResult"] == "FAILED"
    assert predicate["verifiedLevels"] == ["FAILED"]  # the spec's SlsaResult of a failed check


# The starter layout names the examples/ pipeline's artifacts; these tests' pipeline differs.
PIPELINE_NAMES = ("--param", "train_data=dataset", "--param", "model=model")


def test_init_layout_passes_on_an_mlprov_pipeline(
    tmp_path: Path, signers: dict[str, CryptoSigner]
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    for role in ("data", "trainer", "evaluator"):
        (keys / f"{role}.pub").write_bytes(public_pem(signers[role].public_key))
    out = tmp_path / "layout.yaml"
    result = run_cli(
        "policy",
        "init",
        "--out",
        out,
        "--key",
        f"dataset={keys / 'data.pub'}",
        "--key",
        f"train={keys / 'trainer.pub'}",
        "--key",
        f"eval={keys / 'evaluator.pub'}",
    )
    assert result.code == 0, result
    assert "# mlprov layout" in out.read_text()
    assert run_cli("policy", "lint", out).code == 0
    statements = pipeline()
    statements["eval"]["predicate"]["configuration"] = [
        {"name": "test.csv", "digest": {"sha256": "77" * 32}}
    ]
    del statements["quantize"]
    (tmp_path / "run").mkdir()
    _, att = write(tmp_path / "run", signers, statements, layout_doc(signers))
    (att / "notes.json").write_text("{}")  # not an attestation: skipped, reported
    model = tmp_path / "model"
    check = run_cli("policy", "check", out, "--attestations", att, *PIPELINE_NAMES)
    assert check.code == 0, check
    assert "skipped" in check.out and "notes.json" in check.out
    statements["eval"]["predicate"]["metrics"]["accuracy"] = 0.4
    _, att = write(tmp_path / "run", signers, statements, layout_doc(signers))
    failed = run_cli("policy", "check", out, "--attestations", att, *PIPELINE_NAMES)
    assert failed.code == 1
    assert "double(predicate.mlprov_metrics.accuracy) >= double(0.5)" in failed.err
    assert not model.exists()


def test_attestations_from_the_store(tmp_path: Path, signers: dict[str, CryptoSigner]) -> None:
    import hashlib

    released = tmp_path / "model.q8"
    released.write_bytes(b"quantized weights")
    statements = pipeline()
    statements["quantize"]["subject"] = [
        {"name": "model.q8", "digest": {"sha256": hashlib.sha256(b"quantized weights").hexdigest()}}
    ]
    layout, att = write(tmp_path, signers, statements, layout_doc(signers))
    files = sorted(att.iterdir())
    store = tmp_path / "store.sqlite3"
    assert run_cli("store", "add", *files, "--store", store).code == 0
    # An attestation outside the model's lineage is in the store too: it is not read.
    other = pipeline()["dataset"]
    other["subject"] = [{"name": "unrelated", "digest": {"sha256": "99" * 32}}]
    (tmp_path / "other.json").write_bytes(
        sign_envelope(Statement.from_dict(other).to_bytes(), [signers["mallory"]]).to_json()
    )
    assert run_cli("store", "add", tmp_path / "other.json", "--store", store).code == 0
    args = ("policy", "check", layout, "--from-store", "--store", store, "--subject", released)
    result = run_cli(*args, "--json")
    assert result.code == 0, result
    report = json.loads(result.out)
    assert report["passed"] is True
    assert all(a["uri"].startswith("store:sha256:") for a in report["attestations"])
    assert len(report["attestations"]) == 4
    # Without the evaluation in the store, the eval step has no claim and fails.
    partial = tmp_path / "partial.sqlite3"
    kept = [f for f in files if not f.name.startswith("eval.")]
    assert run_cli("store", "add", *kept, "--store", partial).code == 0
    args = ("policy", "check", layout, "--from-store", "--store", partial, "--subject", released)
    failed = run_cli(*args)
    assert failed.code == 1 and "step eval" in failed.out
    assert run_cli("policy", "check", layout, "--from-store").code == 2


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        # the reproduction: the values the rule read, not only "does not hold"
        ("double(predicate.metrics.accuracy) >= double(0.95)", "0.93 < 0.95"),
        (
            "predicate.metrics.accuracy >= 0.95 && predicate.epochs == 3 && predicate.name != 'lr'",
            "predicate.metrics.accuracy >= 0.95: 0.93 < 0.95; predicate.name != 'lr':"
            ' "lr" == "lr"',
        ),
        ("'gpu' in predicate.tags", '"gpu" not in ["cpu"]'),
        ("predicate.tags.exists(t, t == 'gpu')", "does not hold"),  # no comparison to show
    ],
)
def test_failing_cel_rule_prints_the_values_it_read(rule: str, reason: str) -> None:
    from mlprov.policy.attribute_rules import AttributeRule
    from mlprov.policy.layout import AttributeRuleSpec

    compiled = AttributeRule.compile(AttributeRuleSpec(rule=rule), where="layout.yaml")
    claim = {
        "predicate": {"metrics": {"accuracy": 0.93}, "epochs": 3, "name": "lr", "tags": ["cpu"]}
    }
    result = compiled.evaluate(claim, where="eval.intoto.json")
    assert not result.passed and result.reason.startswith(reason), result.reason


def test_explaining_a_long_failing_chain_is_bounded() -> None:
    from mlprov.policy.attribute_rules import AttributeRule
    from mlprov.policy.layout import AttributeRuleSpec

    rule = " && ".join(f"predicate.v == 'v{i}'" for i in range(200))
    compiled = AttributeRule.compile(AttributeRuleSpec(rule=rule), where="layout.yaml")
    reason = compiled.evaluate({"predicate": {"v": "x" * 10_000}}, where="a").reason
    assert reason.count("!=") == 5 and len(reason) < 1000
