"""Checked-in schemas match the models; documents are validated with the JSON path of the error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli, shared_testdata
from mlprov.errors import InputError
from mlprov.schemagen import SCHEMAS, schema_bytes, validate_document, validate_statement

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_checked_in_schema_matches_model(name: str) -> None:
    path = SCHEMA_DIR / f"{name}.json"
    assert path.exists(), f"{path} missing: run `make schemas`"
    assert path.read_bytes() == schema_bytes(name), f"{path} is stale: run `make schemas`"


def test_no_stale_schema_files() -> None:
    assert {p.stem for p in SCHEMA_DIR.glob("*.json")} == set(SCHEMAS)


def test_schema_command_prints_the_runtime_schema() -> None:
    result = run_cli("schema", "slsa-provenance")
    assert result.code == 0
    assert json.loads(result.out) == json.loads(schema_bytes("slsa-provenance"))
    listed = run_cli("schema")
    assert listed.out.split() == sorted(SCHEMAS)
    unknown = run_cli("schema", "nope")
    assert unknown.code == 2 and "no schema named 'nope'" in unknown.err


STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [{"name": "m", "digest": {"sha256": "00" * 32}}],
    "predicateType": "https://slsa.dev/provenance/v1",
    "predicate": {
        "buildDefinition": {"buildType": "https://x/v1", "externalParameters": {"step": "s"}},
        "runDetails": {
            "builder": {"id": "https://b"},
            "metadata": {"startedOn": "2024-01-01T00:00:00Z"},
        },
        "someExtension": {"kept": True},
    },
}


def test_valid_statement_and_unknown_fields_pass() -> None:
    validate_statement(STATEMENT, source="doc")


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["subject"][0]["digest"].update(sha256=5), "$.subject[0].digest.sha256"),
        (lambda d: d.pop("predicateType"), "$: 'predicateType' is a required property"),
        (lambda d: d["predicate"]["runDetails"]["builder"].pop("id"), "$.runDetails.builder"),
        (
            lambda d: d["predicate"]["runDetails"]["metadata"].update(startedOn="today"),
            "$.runDetails.metadata.startedOn",
        ),
        (
            lambda d: d["predicate"]["buildDefinition"].update(resolvedDependencies=[{"x": 1}]),
            "$.buildDefinition.resolvedDependencies",
        ),
    ],
)
def test_invalid_documents_name_the_json_path(mutate, where: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(json.dumps(STATEMENT))
    mutate(doc)
    with pytest.raises(InputError) as caught:
        validate_statement(doc, source="doc.json")
    assert str(caught.value).startswith("doc.json")
    assert where in str(caught.value)


def test_validate_command(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(STATEMENT))
    assert run_cli("schema", "statement", "--validate", good).code == 0
    assert run_cli("schema", "slsa-provenance", "--validate", good).code == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**STATEMENT, "subject": "x"}))
    result = run_cli("schema", "statement", "--validate", bad)
    assert result.code == 2
    assert (
        result.err.strip()
        == f"mlprov: error: {bad}: invalid statement at $.subject: 'x' is not of type 'array'"
    )
    with pytest.raises(InputError, match=r"at \$: 'files' is a required"):
        validate_document(
            "tree-manifest", {"name": "x", "algorithm": "sha256", "digest": "0"}, source="m"
        )


def test_layout_and_vsa_schemas_validate_real_documents(tmp_path: Path) -> None:
    layout = shared_testdata("attestation-verifier", "layouts", "layout.yml")
    assert run_cli("schema", "layout", "--validate", layout).code == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("expires: 2100-01-01T00:00:00Z\nsteps:\n  - name: 7\n")
    result = run_cli("schema", "layout", "--validate", bad)
    assert result.code == 2 and "steps" in result.err
    build = shared_testdata("attestation-verifier", "test-data", "build.fe1c6281.json")
    # A DSSE envelope is validated by its payload: this peer's SLSA provenance lacks
    # buildDefinition.externalParameters, which SLSA v1 requires, and is told so.
    result = run_cli("schema", "statement", "--validate", build)
    assert result.code == 2 and "$.buildDefinition: 'externalParameters'" in result.err
