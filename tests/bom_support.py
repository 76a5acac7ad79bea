"""A store holding a fine-tuning pipeline's signed attestations, for the BOM and report tests.

dataset preparation (data key) → base training → fine-tuning (trainer key) → evaluation
(trainer key) → release VSA (gate key); plus attestations signed by an untrusted key
that are stored unverified and must never reach a BOM: an evaluation claiming a better
score, and a provenance naming a poisoned dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner

from mlprov.predicates import TEST_RESULT_V01, VSA_V1
from mlprov.statement import Statement
from mlprov.store import UNVERIFIED, SignatureVerifier, open_store
from store_support import hexdigest, new_signer, provenance, sign, write_public_key

COMMIT = "c0ffee" * 6 + "abcd"


def rd(name: str, label: str, **notes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "digest": {"sha256": hexdigest(label)}}
    if notes:
        item["annotations"] = notes
    return item


def slsa(
    step: str,
    build: str,
    subjects: list[dict[str, Any]],
    deps: list[dict[str, Any]],
    *,
    external: dict[str, Any] | None = None,
    internal: dict[str, Any] | None = None,
) -> Statement:
    statement = provenance(step, build, subjects, deps)
    predicate = statement.predicate or {}
    predicate["buildDefinition"]["externalParameters"].update(external or {})
    predicate["buildDefinition"]["internalParameters"] = internal or {}
    predicate["runDetails"]["metadata"] = {
        "invocationId": f"run-{step}",
        "startedOn": "2026-01-02T10:00:00Z",
        "finishedOn": "2026-01-02T11:30:00Z",
    }
    return statement


def evaluation(model: dict[str, Any], data: dict[str, Any], accuracy: float) -> Statement:
    passed = accuracy >= 0.8
    return Statement.model_validate(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [model],
            "predicateType": TEST_RESULT_V01,
            "predicate": {
                "result": "PASSED" if passed else "FAILED",
                "configuration": [data],
                "mlprov_step": "eval",
                "mlprov_metrics": {"accuracy": accuracy, "f1": 0.88},
                "mlprov_thresholds": [
                    {
                        "name": "accuracy>=0.8",
                        "metric": "accuracy",
                        "operator": ">=",
                        "value": 0.8,
                        "actual": accuracy,
                        "passed": passed,
                    }
                ],
                "passedTests": ["accuracy>=0.8"] if passed else [],
                "failedTests": [] if passed else ["accuracy>=0.8"],
            },
        }
    )


def vsa(model: dict[str, Any], result: str = "PASSED") -> Statement:
    return Statement.model_validate(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [model],
            "predicateType": VSA_V1,
            "predicate": {
                "verifier": {"id": "https://ci.example.com/gate"},
                "timeVerified": "2026-01-03T09:00:00Z",
                "resourceUri": "file:tuned-model",
                "policy": {"uri": "layout.yaml", "digest": {"sha256": hexdigest("layout")}},
                "inputAttestations": [{"digest": {"sha256": hexdigest("x")}}],
                "verificationResult": result,
                "verifiedLevels": ["SLSA_BUILD_LEVEL_1"] if result == "PASSED" else [],
            },
        }
    )


@dataclass
class Pipeline:
    store: str
    model: str
    base: str
    train: str
    test: str
    poisoned: str
    keys: dict[str, Path]
    signers: dict[str, CryptoSigner]
    trusted: list[str]
    untrusted: list[str]


def build_pipeline(
    root: Path,
    *,
    model_name: str = "tuned-model",
    dataset_name: str = "train",
    location: str | None = None,
) -> Pipeline:
    """Sign and store the pipeline; names can be made hostile by the caller."""
    signers = {name: new_signer() for name in ("data", "trainer", "gate", "attacker")}
    keys = {n: write_public_key(s, root / f"{n}.pub") for n, s in signers.items()}
    train = rd(dataset_name, "train-data", role="dataset", split="train", license="CC-BY-4.0")
    test = rd("test", "test-data", role="dataset", split="test", license="cc-by-4.0")
    model = rd(
        model_name,
        "tuned",
        files=[
            {"path": "pytorch_model.bin", "format": "pickle"},
            {"path": "model.safetensors", "format": "safetensors", "parameters": 1200},
        ],
    )
    base = rd("base-model", "base")
    trusted = [
        (
            "data",
            slsa(
                "dataset",
                "dataset-preparation",
                [
                    {k: v for k, v in train.items() if k != "annotations"}
                    | {"annotations": {"split": "train", "license": "CC-BY-4.0"}},
                    {k: v for k, v in test.items() if k != "annotations"},
                ],
                [rd("raw.csv", "raw")],
            ),
        ),
        (
            "trainer",
            slsa("pretrain", "training", [base], [train], external={"config": {"epochs": 3}}),
        ),
        (
            "trainer",
            slsa(
                "finetune",
                "fine-tuning",
                [model],
                [
                    rd("base-model", "base", role="base-model"),
                    train,
                    rd("finetune.yaml", "ft-config", role="config"),
                    {
                        "name": "source",
                        "uri": "git+https://git.example.com/ml/repo",
                        "digest": {"gitCommit": COMMIT},
                        "annotations": {"role": "source"},
                    },
                    {
                        "name": "numpy",
                        "uri": "pkg:pypi/numpy@2.1.0",
                        "annotations": {"role": "package"},
                    },
                    {
                        "name": "trainer-image",
                        "uri": "pkg:oci/trainer@sha256%3A" + hexdigest("image"),
                        "digest": {"sha256": hexdigest("image")},
                        "annotations": {"role": "container"},
                    },
                ],
                external={
                    "config": {"learning_rate": 0.001, "epochs": 2, "task": "text-classification"},
                    "parameters": {"architecture": "bert"},
                    "entryPoint": "finetune.py",
                },
                internal={
                    "frameworks": {"torch": "2.4.0"},
                    "energyConsumption": {"training": 1.5},
                },
            ),
        ),
        ("trainer", evaluation({"name": model_name, "digest": model["digest"]}, test, 0.91)),
        ("gate", vsa({"name": model_name, "digest": model["digest"]})),
    ]
    untrusted = [
        evaluation({"name": model_name, "digest": model["digest"]}, test, 0.99),
        slsa("finetune", "fine-tuning", [model], [rd("poisoned", "poisoned", role="dataset")]),
    ]
    location = location or str(root / "store.sqlite3")
    verifier = SignatureVerifier(keys=[signers[n].public_key for n in ("data", "trainer", "gate")])
    trusted_digests, untrusted_digests = [], []
    with open_store(location) as store:
        for who, statement in trusted:
            attestation = sign(statement, signers[who], source=f"{who}.intoto.json")
            result = store.add(attestation, evidence=verifier.verify(attestation))
            trusted_digests.append(result.digest)
        for statement in untrusted:
            attestation = sign(statement, signers["attacker"], source="attacker.intoto.json")
            untrusted_digests.append(store.add(attestation, evidence=UNVERIFIED).digest)
    return Pipeline(
        store=location,
        model="sha256:" + hexdigest("tuned"),
        base="sha256:" + hexdigest("base"),
        train="sha256:" + hexdigest("train-data"),
        test="sha256:" + hexdigest("test-data"),
        poisoned="sha256:" + hexdigest("poisoned"),
        keys=keys,
        signers=signers,
        trusted=trusted_digests,
        untrusted=untrusted_digests,
    )
