"""`mlprov bom`: CycloneDX 1.6 and SPDX 3.0.1 AI-BOMs from verified lineage, and licenses."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from bom_support import COMMIT, Pipeline, build_pipeline, rd, slsa
from conftest import run_cli
from mlprov.export.licenses import normalize_license
from mlprov.store import SignatureVerifier, open_store
from store_support import hexdigest, sign


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return build_pipeline(tmp_path)


def _bom(pipeline: Pipeline, tmp_path: Path, fmt: str, *extra: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / f"bom.{fmt}.json"
    result = run_cli("bom", pipeline.model, "--format", fmt, "--store", pipeline.store,
                     "--out", out, *extra)  # fmt: skip
    assert result.code == 0, result
    return json.loads(out.read_bytes()), result.err


# -- licenses ------------------------------------------------------------------------------


def test_license_expressions_are_validated_and_normalised() -> None:
    assert normalize_license("mit") == "MIT"
    assert normalize_license("apache-2.0 or mit") == "Apache-2.0 OR MIT"
    assert normalize_license("LicenseRef-acme-internal AND CC-BY-4.0") == (
        "LicenseRef-acme-internal AND CC-BY-4.0"
    )
    assert normalize_license("Apache-2.0 WITH LLVM-exception") == "Apache-2.0 WITH LLVM-exception"
    for bad in ("Totally-Made-Up", "MIT AND", "MIT WITH MIT", "((MIT)", "a b", "", "M" * 2000):
        with pytest.raises(Exception, match="license") as raised:
            normalize_license(bad)
        assert raised.type.__name__ == "InputError"


def test_attest_refuses_an_unknown_license_identifier(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "rows.csv").write_text("1,2\n")
    out = tmp_path / "dataset.statement.json"
    common = ("--no-git", "--no-packages", "--no-manifests", "--out", out)
    # The reproduction: accepted before, now one line and exit 2, nothing written.
    bad = run_cli("attest", "dataset", "--dataset", f"train={data}",
                  "--license", "train=Totally-Made-Up", *common)  # fmt: skip
    assert bad.code == 2, bad
    assert bad.err.count("\n") == 1 and "Totally-Made-Up" in bad.err
    assert not out.exists()
    good = run_cli("attest", "dataset", "--dataset", f"train={data}",
                   "--license", "train=cc-by-4.0 OR mit", *common)  # fmt: skip
    assert good.code == 0, good
    subject = json.loads(out.read_bytes())["subject"][0]
    assert subject["annotations"]["license"] == "CC-BY-4.0 OR MIT"


def test_an_unknown_license_in_the_store_fails_the_bom(tmp_path: Path) -> None:
    pipeline = build_pipeline(tmp_path)
    statement = slsa(
        "train2",
        "training",
        [rd("other-model", "other")],
        [rd("scraped", "scraped", role="dataset", license="Totally-Made-Up")],
    )
    signed = sign(statement, pipeline.signers["trainer"])
    verifier = SignatureVerifier(keys=[pipeline.signers["trainer"].public_key])
    with open_store(pipeline.store) as store:
        store.add(signed, evidence=verifier.verify(signed))
    out = tmp_path / "bom.json"
    result = run_cli("bom", "sha256:" + hexdigest("other"), "--store", pipeline.store,
                     "--out", out)  # fmt: skip
    assert result.code == 2, result
    assert result.err.count("\n") == 1 and "Totally-Made-Up" in result.err
    assert not out.exists()


# -- CycloneDX -----------------------------------------------------------------------------


def test_cyclonedx_bom_from_verified_lineage(pipeline: Pipeline, tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    bom, err = _bom(pipeline, tmp_path, "cyclonedx")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model" and model["name"] == "tuned-model"
    assert model["hashes"] == [{"alg": "SHA-256", "content": hexdigest("tuned")}]
    components = {c["bom-ref"]: c for c in bom["components"]}
    train, test = components[pipeline.train], components[pipeline.test]
    assert train["type"] == test["type"] == "data"
    assert train["hashes"] == [{"alg": "SHA-256", "content": hexdigest("train-data")}]
    assert train["licenses"] == [{"expression": "CC-BY-4.0"}]
    assert test["licenses"] == [{"expression": "CC-BY-4.0"}]  # normalised from cc-by-4.0
    assert components[pipeline.base]["type"] == "machine-learning-model"
    source = components[f"gitCommit:{COMMIT}"]
    assert source["version"] == COMMIT
    assert source["externalReferences"][0]["type"] == "vcs"
    assert components["pkg:pypi/numpy@2.1.0"]["purl"] == "pkg:pypi/numpy@2.1.0"
    assert components["sha256:" + hexdigest("image")]["type"] == "container"

    card = model["modelCard"]
    refs = [d["ref"] for d in card["modelParameters"]["datasets"]]
    assert refs == [pipeline.train, pipeline.test]
    assert card["modelParameters"]["task"] == "text-classification"
    assert card["modelParameters"]["modelArchitecture"] == "bert"
    metrics = {m["type"]: m for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics["accuracy"]["value"] == "0.91"  # the attacker's 0.99 is not used
    assert metrics["accuracy"]["slice"] == "test"
    assert "pickle" in card["considerations"]["technicalLimitations"][0]
    assert "pytorch_model.bin" in card["considerations"]["technicalLimitations"][0]
    facts = {p["name"]: p["value"] for p in model["properties"]}
    assert "pickle" in facts["mlprov:warning"]
    assert "safetensors" in facts["mlprov:annotation:files"]

    depends = {d["ref"]: set(d.get("dependsOn", [])) for d in bom["dependencies"]}
    assert {pipeline.base, pipeline.train, "pkg:pypi/numpy@2.1.0"} <= depends[pipeline.model]
    assert depends[pipeline.base] == {pipeline.train}
    assert depends[pipeline.train] == {"sha256:" + hexdigest("raw")}

    workflows = {w["name"]: w for w in bom["formulation"][0]["workflows"]}
    assert set(workflows) == {"dataset", "pretrain", "finetune"}
    finetune = workflows["finetune"]
    assert finetune["uid"] == "run-finetune" and finetune["taskTypes"] == ["build"]
    assert finetune["timeStart"] == "2026-01-02T10:00:00Z"
    params = {p["name"]: p["value"] for e in finetune["inputs"] for p in e.get("parameters", [])}
    assert params["learning_rate"] == "0.001" and params["architecture"] == "bert"
    properties = {p["name"]: p["value"] for p in finetune["properties"]}
    assert properties["mlprov:entryPoint"] == "finetune.py"
    assert properties["mlprov:internal:frameworks.torch"] == "2.4.0"
    assert {"resource": {"ref": pipeline.train}} in finetune["inputs"]
    assert finetune["outputs"] == [{"resource": {"ref": pipeline.model}}]

    references = {r["url"]: r for r in bom["externalReferences"]}
    for digest in pipeline.trusted:
        ref = references[f"urn:mlprov:attestation:{digest}"]
        assert ref["type"] == "attestation"
        assert ref["hashes"] == [{"alg": "SHA-256", "content": digest.split(":")[1]}]
    text = json.dumps(bom)
    assert pipeline.poisoned not in text and "0.99" not in text
    left_out = [
        p["value"] for p in bom["metadata"]["properties"] if p["name"] == "mlprov:unverified"
    ]
    assert sorted(v.split()[0] for v in left_out) == sorted(pipeline.untrusted)
    for digest in pipeline.untrusted:
        assert f"UNVERIFIED (left out): {digest}" in err
    assert "present  datasets with licenses" in err
    assert "present  base model lineage" in err
    assert "missing  signer identities: 2 attestation(s) could not be verified" in err


def test_keys_given_verify_now_and_what_fails_is_left_out(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    bom, err = _bom(pipeline, tmp_path, "cyclonedx", "--key", pipeline.keys["trainer"])
    # The data key's dataset preparation and the gate's VSA do not verify with the
    # trainer's key alone: listed, not used.
    assert err.count("UNVERIFIED (left out)") == 4
    urls = {r["url"] for r in bom["externalReferences"]}
    assert f"urn:mlprov:attestation:{pipeline.trusted[0]}" not in urls
    assert "missing  policy verdict (VSA)" in err
    trainer = pipeline.keys["trainer"]
    strict = run_cli("bom", pipeline.model, "--store", pipeline.store, "--key", trainer,
                     "--strict", "--out", tmp_path / "s.json")  # fmt: skip
    assert strict.code == 1 and "INCOMPLETE:" in strict.err


def test_nothing_verified_or_nothing_known_is_exit_1(pipeline: Pipeline, tmp_path: Path) -> None:
    unknown = run_cli("bom", "sha256:" + "0" * 64, "--store", pipeline.store)
    assert unknown.code == 1 and "NOT FOUND" in unknown.err
    wrong = run_cli("bom", pipeline.model, "--store", pipeline.store,
                    "--key", pipeline.keys["attacker"], "--out", tmp_path / "x.json")  # fmt: skip
    # The attacker's own key verifies only the attacker's attestations: the BOM rests on
    # them alone and says everything else was left out.
    assert wrong.code == 0
    # Left out: the trusted fine-tuning, evaluation and VSA of the model, and the
    # preparation of the test set the attacker's evaluation names.
    assert wrong.err.count("UNVERIFIED (left out)") == 4
    poisoned_only = json.loads((tmp_path / "x.json").read_bytes())
    assert pipeline.poisoned in json.dumps(poisoned_only)
    none = run_cli("bom", pipeline.model, "--store", pipeline.store,
                   "--key", pipeline.keys["data"])  # fmt: skip
    assert none.code == 1 and "verifies" in none.err


def test_existing_output_is_not_overwritten(pipeline: Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "bom.json"
    out.write_text("keep")
    result = run_cli("bom", pipeline.model, "--store", pipeline.store, "--out", out)
    assert result.code == 2 and "--force" in result.err and out.read_text() == "keep"


# -- SPDX 3 --------------------------------------------------------------------------------


def test_spdx3_bom_round_trips_through_spdx_python_model(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    from spdx_python_model import v3_0_1 as spdx

    document, _ = _bom(pipeline, tmp_path, "spdx3")
    assert document["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    objects = spdx.SHACLObjectSet()
    spdx.JSONLDDeserializer().deserialize_data(document, objects)

    def named(cls: Any, name: str) -> Any:
        found = [o for o in objects.foreach_type(cls) if o.name == name]
        assert len(found) == 1, (cls, name, found)
        return found[0]

    model = named(spdx.ai_AIPackage, "tuned-model")
    base = named(spdx.ai_AIPackage, "base-model")
    train = named(spdx.dataset_DatasetPackage, "train")
    test = named(spdx.dataset_DatasetPackage, "test")
    assert [h.hashValue for h in model.verifiedUsing] == [hexdigest("tuned")]
    hyper = {e.key: e.value for e in model.ai_hyperparameter}
    assert hyper["learning_rate"] == "0.001" and hyper["epochs"] == "2"
    assert {e.key: e.value for e in model.ai_metric}["accuracy"] == "0.91"
    assert {e.key: e.value for e in model.ai_metricDecisionThreshold} == {"accuracy": ">=0.8"}
    assert list(model.ai_typeOfModel) == ["bert"]
    energy = model.ai_energyConsumption.ai_trainingEnergyConsumption[0]
    assert energy.ai_energyQuantity == 1.5
    assert energy.ai_energyUnit == spdx.ai_EnergyUnitType.kilowattHour
    assert "pickle" in model.ai_limitation

    def related(source: Any, kind: str) -> set[str]:
        return {
            t.spdxId
            for r in objects.foreach_type(spdx.Relationship)
            if r.from_ is source and r.relationshipType == getattr(spdx.RelationshipType, kind)
            for t in r.to
        }

    assert related(model, "trainedOn") == {train.spdxId}
    assert related(model, "testedOn") == {test.spdxId}
    assert related(base, "ancestorOf") == {model.spdxId}
    assert related(base, "trainedOn") == {train.spdxId}
    licenses = [
        o.simplelicensing_licenseExpression
        for o in objects.foreach_type(spdx.simplelicensing_LicenseExpression)
        if o.spdxId in related(train, "hasDeclaredLicense")
    ]
    assert licenses == ["CC-BY-4.0"]
    builds = {b.name: b for b in objects.foreach_type(spdx.build_Build)}
    assert set(builds) == {"dataset", "pretrain", "finetune"}
    finetune = builds["finetune"]
    assert finetune.build_buildType == "https://mlprov.dev/buildtypes/fine-tuning/v1"
    assert finetune.build_buildId == "run-finetune"
    assert finetune.build_buildStartTime.isoformat() == "2026-01-02T10:00:00+00:00"
    assert list(finetune.build_configSourceEntrypoint) == ["finetune.py"]
    assert related(finetune, "hasOutput") == {model.spdxId}
    assert train.spdxId in related(finetune, "hasInput")
    assert "buildMeta" in str(finetune.externalRef[0].externalRefType)
    [doc] = list(objects.foreach_type(spdx.SpdxDocument))
    assert [e.spdxId for e in doc.rootElement] == [model.spdxId]
    notes = [a.statement for a in objects.foreach_type(spdx.Annotation)]
    assert sum("left out, not verified" in n for n in notes) == 2
    assert pipeline.poisoned.split(":")[1] not in json.dumps(document)


# -- signed BOMs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "predicate_type"),
    [("cyclonedx", "https://cyclonedx.org/bom"), ("spdx3", "https://spdx.dev/Document")],
)
def test_sign_wraps_the_bom_in_a_statement_the_store_accepts(
    pipeline: Pipeline, tmp_path: Path, fmt: str, predicate_type: str
) -> None:
    assert run_cli("keygen", "--out", tmp_path / "release", "--no-password").code == 0
    out = tmp_path / "bom.intoto.json"
    result = run_cli("bom", pipeline.model, "--format", fmt, "--store", pipeline.store,
                     "--sign", tmp_path / "release.key", "--out", out)  # fmt: skip
    assert result.code == 0, result
    verified = run_cli("verify", out, "--key", tmp_path / "release.pub")
    assert verified.code == 0, verified
    statement = json.loads(base64.b64decode(json.loads(out.read_bytes())["payload"]))
    assert statement["predicateType"] == predicate_type
    assert statement["subject"] == [
        {"name": "tuned-model", "digest": {"sha256": hexdigest("tuned")}}
    ]
    stored = run_cli("store", "add", out, "--key", tmp_path / "release.pub",
                     "--store", pipeline.store)  # fmt: skip
    assert stored.code == 0 and "added" in stored.out


def test_json_summary(pipeline: Pipeline, tmp_path: Path) -> None:
    result = run_cli("bom", pipeline.model, "--store", pipeline.store, "--json",
                     "--out", tmp_path / "b.json")  # fmt: skip
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert sorted(a["digest"] for a in summary["attestations"]) == sorted(pipeline.trusted)
    assert sorted(u["digest"] for u in summary["unverified"]) == sorted(pipeline.untrusted)
    fields = {c["field"]: c["status"] for c in summary["completeness"]}
    assert fields["datasets with licenses"] == "present"
    assert fields["signer identities"] == "missing"
    no_out = run_cli("bom", pipeline.model, "--store", pipeline.store, "--json")
    assert no_out.code == 2 and "--out" in no_out.err


def test_hostile_attestation_values_give_a_bom_or_one_line(tmp_path: Path) -> None:
    pipeline = build_pipeline(tmp_path)
    deep: dict[str, Any] = {}
    for _ in range(60):
        deep = {"format": "pickle", "nested": deep}
    statement = slsa(
        "x" * 5000,
        "training",
        [{"name": "m" * 20000, "digest": {"sha256": hexdigest("hostile"), "md5": "zz"},
          "annotations": {"files": deep, "license": "MIT"}}],
        [{"name": "d", "uri": "pkg:%%%not a purl", "digest": {"sha512": "not-hex"}},
         {"name": "e", "uri": "http://exa mple.com/<x>", "annotations": {"role": "dataset"}},
         {"name": "f", "uri": "git+ssh://h/x", "digest": {"gitCommit": "abc"}}],
        external={"config": {"a": {"b": [1, {"c": None}]}, "task": {"not": "a string"}}},
        internal={"energyConsumption": {"training": "lots", "inference": {"quantity": True}}},
    )  # fmt: skip
    signed = sign(statement, pipeline.signers["trainer"])
    verifier = SignatureVerifier(keys=[pipeline.signers["trainer"].public_key])
    with open_store(pipeline.store) as store:
        store.add(signed, evidence=verifier.verify(signed))
    for fmt in ("cyclonedx", "spdx3"):
        out = tmp_path / f"hostile.{fmt}.json"
        result = run_cli("bom", "sha256:" + hexdigest("hostile"), "--format", fmt,
                         "--store", pipeline.store, "--out", out)  # fmt: skip
        assert result.code in (0, 2), result
        assert "Traceback" not in result.err
        if result.code == 2:
            assert result.err.count("\n") == 1 and not out.exists()
        else:
            assert len(out.read_bytes()) < 2_000_000
    report = run_cli("report", "sha256:" + hexdigest("hostile"), "--store", pipeline.store,
                     "--html", tmp_path / "hostile.html")  # fmt: skip
    assert report.code in (0, 2) and "Traceback" not in report.err


def test_both_store_backends(tmp_path: Path, store_url: str) -> None:
    pipeline = build_pipeline(tmp_path, location=store_url)
    bom, err = _bom(pipeline, tmp_path, "cyclonedx")
    assert bom["metadata"]["component"]["name"] == "tuned-model"
    assert len(bom["externalReferences"]) == len(pipeline.trusted)
    assert err.count("UNVERIFIED (left out)") == len(pipeline.untrusted)


@pytest.mark.parametrize("names", ["as attest eval writes them", "as mlprov wrote them before"])
def test_evaluation_metrics_reach_the_bom_and_the_report(tmp_path: Path, names: str) -> None:
    """`attest eval` records `mlprov_metrics`/`mlprov_thresholds` (earlier versions:
    `metrics`/`thresholds`); both reach the BOMs' metrics and the completeness summary,
    which had said "no verified evaluation of the model records metrics" for the demo."""
    model, data = tmp_path / "model", tmp_path / "test"
    for folder, name in ((model, "w.bin"), (data, "rows.csv")):
        folder.mkdir()
        (folder / name).write_text(name)
    (tmp_path / "eval.json").write_text('{"accuracy": 0.93}')
    assert run_cli("keygen", "--out", tmp_path / "k", "--no-password").code == 0
    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    train = tmp_path / "train.intoto.json"
    result = run_cli("attest", "train", "--model", model, "--no-git", "--no-packages",
                     "--key", key, "--out", train)  # fmt: skip
    assert result.code == 0, result
    evaluation = tmp_path / "eval.intoto.json"
    result = run_cli("attest", "eval", "--model", model, "--dataset", f"test={data}",
                     "--metrics", tmp_path / "eval.json", "--threshold", "accuracy>=0.8",
                     "--key", key, "--out", evaluation)  # fmt: skip
    assert result.code == 0, result
    if names != "as attest eval writes them":
        envelope = json.loads(evaluation.read_bytes())
        statement = json.loads(base64.b64decode(envelope["payload"]))
        for new in ("mlprov_step", "mlprov_metrics", "mlprov_thresholds"):
            statement["predicate"][new.removeprefix("mlprov_")] = statement["predicate"].pop(new)
        plain = tmp_path / "old.statement.json"
        plain.write_text(json.dumps(statement))
        assert run_cli("sign", plain, "--key", key, "--out", evaluation, "--force").code == 0
    store = tmp_path / "store.sqlite3"
    assert run_cli("store", "add", train, evaluation, "--key", pub, "--store", store).code == 0
    out = tmp_path / "bom.json"
    result = run_cli("bom", model, "--format", "cyclonedx", "--store", store, "--out", out)
    assert result.code == 0, result
    assert "present  evaluation metrics" in result.err, result.err
    card = json.loads(out.read_bytes())["metadata"]["component"]["modelCard"]
    metrics = card["quantitativeAnalysis"]["performanceMetrics"]
    assert [(m["type"], m["value"]) for m in metrics] == [("accuracy", "0.93")]
    page = tmp_path / "report.html"
    assert run_cli("report", model, "--store", store, "--html", page).code == 0
    assert "0.93" in page.read_text() and "&gt;= 0.8" in page.read_text()
