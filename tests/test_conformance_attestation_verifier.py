"""in-toto/attestation-verifier's npm example (Statement v0.1, SLSA Provenance v0.2), as given.

The example passes as the verifier's own CI runs it; `verify`, `store add` and lineage read
the same files; negatives built from it fail; and v0.1/v0.2 Statements built from the specs
and signed with fresh keys are read the same way.
"""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from securesystemslib.signer import CryptoSigner

from conftest import run_cli, shared_testdata
from mlprov.errors import InputError
from mlprov.policy import collect_claims, evaluate, load_layout
from mlprov.signing.dsse import sign_envelope
from mlprov.signing.keys import public_pem
from mlprov.statement import Statement

V01 = "https://in-toto.io/Statement/v0.1"
V02 = "https://slsa.dev/provenance/v0.2"
PUBLISH = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1"
PUBLIC = "7345b83c121ea0d9ffc3b38d69958718b8435e8cb0552f889d695586693e1b89"
SOURCE = "git+https://github.com/sigstore/sigstore-js@refs/heads/main"
PACKAGE = "pkg:npm/sigstore@1.2.0"
NPM_SHA512 = (
    "16bf7e5b59e40522190a425047b8c39ffcc8d145cdb15a69fbb9834240a764e2"
    "311bda7ac8d5c1c7dc67b47b1f532607139e570e4915577fab61bae4cc079eb0"
)


def _example() -> Path:
    return shared_testdata("attestation-verifier")


@pytest.fixture
def npm(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A private copy of layout-npm.yml, its parameters and test-data-npm, safe to modify."""
    root = _example()
    shutil.copy(root / "layouts" / "layout-npm.yml", tmp_path / "layout.yml")
    shutil.copy(root / "parameters" / "npm-sigstore.json", tmp_path / "params.json")
    shutil.copytree(root / "test-data-npm", tmp_path / "att")
    return tmp_path / "layout.yml", tmp_path / "att", tmp_path / "params.json"


def _check(layout: Path, att: Path, params: Path) -> Any:
    return run_cli("policy", "check", layout, "--attestations", att, "--param-file", params)


def _layout_key(tmp_path: Path) -> Path:
    """The layout's ed25519 functionary as a securesystemslib key file (for --key)."""
    path = tmp_path / "layout-key.json"
    path.write_text(
        json.dumps({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": PUBLIC}})
    )
    return path


def test_npm_example_passes_as_the_verifiers_ci_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    root = _example()
    monkeypatch.chdir(root)
    result = run_cli(
        "policy",
        "check",
        "layouts/layout-npm.yml",
        "--attestations",
        "test-data-npm",
        "--param-file",
        "parameters/npm-sigstore.json",
    )
    assert result.code == 0, result
    assert "PASSED: 2 steps" in result.out
    assert "skipped" not in result.out
    # the v0.2 material is matched by the layout's own URI, `//` and all
    assert f"ALLOW {SOURCE}: consumed {SOURCE}" in result.out


def test_v02_materials_and_products_follow_get_materials_and_products() -> None:
    claims = {c.step: c for c in collect_claims([_example() / "test-data-npm"]).claims}
    build, publish = claims["build"], claims["publish"]
    assert build.statement["_type"] == V01
    assert build.predicate_type == V02
    assert build.materials == {SOURCE: {"sha1": "5b8c0801d1f5d105351a403f58c38269de93f680"}}
    assert list(build.products) == [PACKAGE]
    # any other predicate is about its subjects: they are its materials, it has no products
    assert list(publish.materials) == [PACKAGE] and publish.products == {}


@pytest.mark.parametrize("step", ["build", "publish"])
def test_fails_when_an_attestation_is_removed(npm: tuple[Path, Path, Path], step: str) -> None:
    layout, att, params = npm
    (att / f"{step}.fe1c6281.json").unlink()
    result = _check(layout, att, params)
    assert result.code == 1
    assert f"no attestations found for step {step}" in result.err


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("package_version", "1.2.1", "CREATE pkg:npm/sigstore@1.2.1"),
        ("github_ref", "refs/heads/evil", "DISALLOW *: material " + SOURCE),
        ("github_repository_id", "1", 'GITHUB_REPOSITORY_ID == \'1\': "495574555" != "1"'),
        ("entry_point", ".github/workflows/x.yml", "configSource.entryPoint =="),
    ],
)
def test_fails_when_a_parameter_changes(
    npm: tuple[Path, Path, Path], name: str, value: str, expected: str
) -> None:
    layout, att, params = npm
    doc = json.loads(params.read_text())
    doc[name] = value
    params.write_text(json.dumps(doc))
    result = _check(layout, att, params)
    assert result.code == 1, result
    assert expected in result.out + result.err


def _rewrite_payload(path: Path, change: Any) -> None:
    envelope = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    change(statement)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    path.write_text(json.dumps(envelope))


def test_fails_when_a_material_changes_under_the_old_signature(
    npm: tuple[Path, Path, Path],
) -> None:
    layout, att, params = npm

    def change(statement: dict[str, Any]) -> None:
        statement["predicate"]["materials"][0]["uri"] = "git+https://github.com/evil/fork@main"

    _rewrite_payload(att / "build.fe1c6281.json", change)
    result = _check(layout, att, params)
    assert result.code == 1
    assert "build: threshold 1" in result.err


def test_fails_when_any_byte_of_the_build_attestation_changes(
    npm: tuple[Path, Path, Path],
) -> None:
    layout, att, _ = npm
    path = att / "build.fe1c6281.json"
    original = path.read_bytes()
    loaded = load_layout(layout, params=json.loads(npm[2].read_text()))
    assert evaluate(loaded, collect_claims([att])).passed
    for index in range(0, len(original), 7):  # every 7th byte: ~270 evaluations
        changed = bytearray(original)
        changed[index] ^= 0x01
        path.write_bytes(bytes(changed))
        assert not evaluate(loaded, collect_claims([att])).passed, f"byte {index} changed"


def test_verify_accepts_every_file_policy_check_accepts(tmp_path: Path) -> None:
    key = _layout_key(tmp_path)
    root = _example()
    files = sorted((root / "test-data").glob("*.json")) + sorted(
        (root / "test-data-npm").glob("*.json")
    )
    for path in files:
        result = run_cli("verify", path, "--key", key)
        assert result.code == 0, (path.name, result)
    clone = run_cli("verify", root / "test-data" / "clone.fe1c6281.json", "--key", key)
    assert "in-toto Statement v1, https://in-toto.io/attestation/link/v0.3" in clone.out
    build = run_cli("verify", root / "test-data-npm" / "build.fe1c6281.json", "--key", key)
    assert f"in-toto Statement v0.1, {V02}" in build.out


def test_verify_fails_on_a_changed_byte_and_a_wrong_key(npm: tuple[Path, Path, Path]) -> None:
    _, att, _ = npm
    path = att / "build.fe1c6281.json"
    key = _layout_key(path.parent)
    _rewrite_payload(path, lambda s: s["subject"][0].update(name="pkg:npm/sigstore@6.6.6"))
    assert run_cli("verify", path, "--key", key).code == 1
    other = path.parent / "other.pub"
    other.write_bytes(public_pem(CryptoSigner.generate_ed25519().public_key))
    publish = att / "publish.fe1c6281.json"
    assert run_cli("verify", publish, "--key", other).code == 1


def test_store_add_and_lineage_follow_v02_materials(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite3"
    key = _layout_key(tmp_path)
    att = _example() / "test-data-npm"
    added = run_cli("store", "add", *sorted(att.glob("*.json")), "--key", key, "--store", store)
    assert added.code == 0, added
    assert "2 added" in added.out
    subject = "sha512:" + NPM_SHA512
    up = run_cli("lineage", subject, "--up", "--json", "--store", store)
    assert up.code == 0, up
    graph = json.loads(up.out)
    edge = next(e for e in graph["edges"] if e["predicateType"] == V02)
    assert edge["material"] == "sha1:5b8c0801d1f5d105351a403f58c38269de93f680"
    assert edge["buildType"] == "https://github.com/npm/cli/gha/v2"
    assert edge["verified"] is True
    down = run_cli(
        "lineage",
        "sha1:5b8c0801d1f5d105351a403f58c38269de93f680",
        "--down",
        "--json",
        "--store",
        store,
    )
    assert subject in json.loads(down.out)["ends"]
    tree = run_cli("lineage", subject, "--up", "--store", store)
    assert "slsa-provenance-v0.2" in tree.out and SOURCE in tree.out
    listed = run_cli("store", "ls", "--predicate-type", "slsa-v0.2", "--store", store)
    assert listed.code == 0 and "slsa-provenance-v0.2" in listed.out
    assert listed.out.count("\n") == 1, "only the v0.2 provenance, not the publish attestation"


# -- Statements built from the specs, signed with fresh keys --------------------------


def _v02_statement(
    materials: list[dict[str, Any]], subject: list[dict[str, Any]]
) -> dict[str, Any]:
    """An in-toto Statement v0.1 with an SLSA Provenance v0.2 predicate, per both specs."""
    return {
        "_type": V01,
        "subject": subject,
        "predicateType": V02,
        "predicate": {
            "builder": {"id": "https://ci.example.com/builder@v1"},
            "buildType": "https://ci.example.com/buildtypes/make@v1",
            "invocation": {
                "configSource": {
                    "uri": "git+https://git.example.com/org/model@refs/heads/main",
                    "digest": {"sha1": "ab" * 20},
                    "entryPoint": "train.yaml",
                },
                "parameters": {"epochs": 3},
            },
            "metadata": {"buildStartedOn": "2024-05-01T12:00:00Z", "completeness": {}},
            "materials": materials,
        },
    }


DATA = {"sha256": "11" * 32}
MODEL = {"sha256": "22" * 32}


def _own_layout(signer: CryptoSigner, path: Path) -> Path:
    pem = public_pem(signer.public_key).decode()

    doc = {
        "expires": "2099-01-01T00:00:00Z",
        "functionaries": {"ci": {"publicKey": pem}},
        "steps": [
            {
                "name": "build",
                "expectedMaterials": [
                    "ALLOW git+https://git.example.com/org/model@refs/heads/main",
                    "ALLOW s3://bucket/data.csv",
                    "DISALLOW *",
                ],
                "expectedProducts": ["CREATE model.safetensors", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": V02,
                        "functionaries": ["ci"],
                        "expectedAttributes": [
                            {"rule": "predicate.invocation.parameters.epochs == 3"},
                            {"rule": "predicate.builder.id.startsWith('https://ci.example.com/')"},
                        ],
                    }
                ],
            },
            {
                "name": "eval",
                "expectedMaterials": ["MATCH * WITH products FROM build", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
                        "functionaries": ["ci"],
                        "expectedAttributes": [{"rule": "predicate.result == 'PASSED'"}],
                    }
                ],
            },
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def _write_signed(path: Path, statement: dict[str, Any], signer: CryptoSigner) -> Path:
    payload = json.dumps(statement).encode()
    path.write_bytes(sign_envelope(payload, [signer]).to_json())
    return path


def _own_pipeline(
    tmp_path: Path,
    signer: CryptoSigner,
    *,
    material_uri: str = "s3://bucket/data.csv",
    eval_digest: dict[str, str] = MODEL,
) -> Path:
    att = tmp_path / "att"
    att.mkdir(exist_ok=True)
    _write_signed(
        att / "build.ci.json",
        _v02_statement(
            [
                {
                    "uri": "git+https://git.example.com/org/model@refs/heads/main",
                    "digest": {"sha1": "ab" * 20},
                },
                {"uri": material_uri, "digest": DATA},
            ],
            [{"name": "model.safetensors", "digest": MODEL}],
        ),
        signer,
    )
    _write_signed(
        att / "eval.ci.json",
        {
            "_type": V01,
            "subject": [{"name": "model.safetensors", "digest": eval_digest}],
            "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
            "predicate": {
                "result": "PASSED",
                "configuration": [],
                "passedTests": ["acc"],
                "warnedTests": [],
                "failedTests": [],
            },
        },
        signer,
    )
    return att


def test_own_v01_v02_statements_pass_and_verify(tmp_path: Path) -> None:
    signer = CryptoSigner.generate_ed25519()
    layout = _own_layout(signer, tmp_path / "layout.yml")
    att = _own_pipeline(tmp_path, signer)
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 0, result
    key = tmp_path / "ci.pub"
    key.write_bytes(public_pem(signer.public_key))
    for path in att.iterdir():
        assert run_cli("verify", path, "--key", key).code == 0


def test_own_v02_statement_with_an_unexpected_material_fails(tmp_path: Path) -> None:
    signer = CryptoSigner.generate_ed25519()
    layout = _own_layout(signer, tmp_path / "layout.yml")
    att = _own_pipeline(tmp_path, signer, material_uri="https://evil.example.com/data.csv")
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1
    assert "DISALLOW *: material https://evil.example.com/data.csv not allowed" in result.err


def test_own_v01_evaluation_of_another_model_fails(tmp_path: Path) -> None:
    signer = CryptoSigner.generate_ed25519()
    layout = _own_layout(signer, tmp_path / "layout.yml")
    att = _own_pipeline(tmp_path, signer, eval_digest={"sha256": "33" * 32})
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1
    assert "eval: DISALLOW *: material model.safetensors not allowed" in result.err


def test_own_statements_signed_by_another_key_fail(tmp_path: Path) -> None:
    layout = _own_layout(CryptoSigner.generate_ed25519(), tmp_path / "layout.yml")
    att = _own_pipeline(tmp_path, CryptoSigner.generate_ed25519())
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1
    assert "build: threshold 1" in result.err


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"_type": "https://in-toto.io/Statement/v0.2"},
            "expected https://in-toto.io/Statement/v1",
        ),
        ({"type": V01, "_type": V01}, "both `_type` and `type`"),
        ({"_type": V01, "subject": []}, "at least one subject"),
        ({"_type": V01, "subject": [{"name": "x"}]}, "has no digest"),
    ],
)
def test_statement_versions_and_spellings_refused(doc: dict[str, Any], message: str) -> None:
    base = {"subject": [{"name": "a", "digest": DATA}], "predicateType": V02, "predicate": {}}
    with pytest.raises(InputError, match=message.replace("`", ".").replace("/", ".")):
        Statement.from_dict({**base, **doc})


def test_v01_statement_and_protojson_type_are_read() -> None:
    base = {"subject": [{"name": "a", "digest": DATA}], "predicateType": V02, "predicate": {}}
    assert Statement.from_dict({"_type": V01, **base}).version == "v0.1"
    read = Statement.from_dict({"type": "https://in-toto.io/Statement/v1", **base})
    assert read.version == "v1" and "type" not in read.to_dict()
