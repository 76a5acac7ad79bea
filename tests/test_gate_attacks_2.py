"""More attacks on the gate's trust decisions, through the CLI (see docs/security.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import run_cli, shared_testdata

IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"


def _sigstore_layout(path: Path, functionaries: dict[str, Any], threshold: int) -> Path:
    doc = {
        "expires": "2100-01-01T00:00:00Z",
        "functionaries": {name: {"sigstore": spec} for name, spec in functionaries.items()},
        "steps": [
            {
                "name": "build",
                "expectedProducts": ["CREATE a.txt", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "functionaries": sorted(functionaries),
                        "threshold": threshold,
                    }
                ],
            }
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def test_one_sigstore_signer_named_by_two_identities_is_one_functionary(tmp_path: Path) -> None:
    """Two functionaries whose identities both match one certificate (an exact subject and
    a regex) need two signers: one bundle must not meet a threshold of two."""
    bundle = shared_testdata("sigstore", "a.dsse.staging-rekor-v2.txt.sigstore.json")
    root = shared_testdata("sigstore", "staging_trusted_root.json")
    att = tmp_path / "att"
    att.mkdir()
    shutil.copy(bundle, att / "build.sigstore.json")
    functionaries = {
        "ci": {"issuer": ISSUER, "subject": IDENTITY},
        "org": {"issuer": ISSUER, "subjectRegex": "https://github.com/sigstore-conformance/.*"},
    }
    one = _sigstore_layout(tmp_path / "one.json", functionaries, 1)
    result = run_cli("policy", "check", one, "--attestations", att, "--trusted-root", root)
    assert result.code == 0, result
    two = _sigstore_layout(tmp_path / "two.json", functionaries, 2)
    result = run_cli("policy", "check", two, "--attestations", att, "--trusted-root", root)
    assert result.code == 1, result
    assert "only 1 distinct signer" in result.out, result


def test_distinct_signers_gives_each_functionary_a_signer_of_its_own() -> None:
    from mlprov.policy.functionaries import distinct_signers

    assert distinct_signers({"exact": {"s1"}, "regex": {"s1"}}) == 1
    # The regex functionary can be given s2, so both count.
    assert distinct_signers({"exact": {"s1"}, "regex": {"s1", "s2"}}) == 2
    # One regex functionary matching two identities is still one functionary.
    assert distinct_signers({"regex": {"s1", "s2"}}) == 1
    assert distinct_signers({}) == 0


def _keygen(root: Path, name: str) -> str:
    result = run_cli("keygen", "--out", root / name, "--no-password", "--json")
    assert result.code == 0, result
    return str(json.loads(result.out)["keyid"])


def _signed(root: Path, key: Path, name: str, *, keyid: str | None = None) -> Path:
    """A Statement signed with `key`; with `keyid`, its signature's (unsigned) keyid hint
    names another key, as an attacker may write it."""
    statement = root / f"{name}.json"
    statement.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": name, "digest": {"sha256": "ab" * 32}}],
                "predicateType": "https://example.com/p/v1",
                "predicate": {},
            }
        )
    )
    out = root / f"{name}.intoto.json"
    result = run_cli("sign", statement, "--key", key, "--out", out)
    assert result.code == 0, result
    if keyid is not None:
        doc = json.loads(out.read_bytes())
        doc["signatures"][0]["keyid"] = keyid
        out.write_text(json.dumps(doc))
    return out


def test_store_ls_verified_signer_names_only_who_verified(tmp_path: Path) -> None:
    """Team B's attestation, verified with team B's key on `store add`, whose signature's
    keyid hint claims team A's key: `store ls --verified --signer keyid:<A>` must not list
    it as verified and signed by A."""
    victim = _keygen(tmp_path, "team-a")
    _keygen(tmp_path, "team-b")
    store = tmp_path / "store.db"
    forged = _signed(tmp_path, tmp_path / "team-b.key", "b-model", keyid=victim)
    result = run_cli("store", "add", forged, "--key", tmp_path / "team-b.pub", "--store", store)
    assert result.code == 0, result
    honest = _signed(tmp_path, tmp_path / "team-a.key", "a-model")
    result = run_cli("store", "add", honest, "--key", tmp_path / "team-a.pub", "--store", store)
    assert result.code == 0, result
    result = run_cli(
        "store", "ls", "--verified", "--signer", f"keyid:{victim}", "--store", store, "--json"
    )
    assert result.code == 0, result
    listed = json.loads(result.out)
    assert [item["subjects"][0]["name"] for item in listed] == ["a-model"], listed
    # Without --verified, --signer still finds what an attestation claims.
    result = run_cli("store", "ls", "--signer", f"keyid:{victim}", "--store", store, "--json")
    assert {item["subjects"][0]["name"] for item in json.loads(result.out)} == {
        "a-model",
        "b-model",
    }


VSA = "https://slsa.dev/verification_summary/v1"
SLSA = "https://slsa.dev/provenance/v1"


def _statement(path: Path, predicate_type: str, predicate: dict[str, Any]) -> Path:
    path.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "m", "digest": {"sha256": "ab" * 32}}],
                "predicateType": predicate_type,
                "predicate": predicate,
            }
        )
    )
    return path


def test_upstream_vsa_is_read_only_after_its_signature_and_by_type(tmp_path: Path) -> None:
    """A VSA of the wrong shape (`verifier` a string, `verifiedLevels` of objects) dropped
    among the attestations, signed by anyone, or by the upstream gate itself: the check
    fails naming it (exit 1), never a traceback that stops every release."""
    _keygen(tmp_path, "gate")
    _keygen(tmp_path, "evil")
    layout = tmp_path / "layout.json"
    layout.write_text(
        json.dumps(
            {
                "expires": "2100-01-01T00:00:00Z",
                "functionaries": {"gate": {"publicKey": (tmp_path / "gate.pub").read_text()}},
                "steps": [
                    {
                        "name": "build",
                        "expectedPredicates": [
                            {"predicateType": "https://example.com/p/v1", "functionaries": ["gate"]}
                        ],
                    }
                ],
                "expectedVerifications": [
                    {
                        "name": "up",
                        "verifierId": "https://up.example.com",
                        "functionaries": ["gate"],
                        "appliesTo": "build",
                    }
                ],
            }
        )
    )
    att = tmp_path / "att"
    att.mkdir()
    build = _statement(tmp_path / "build.json", "https://example.com/p/v1", {})
    assert (
        run_cli("sign", build, "--key", tmp_path / "gate.key", "--out", att / "build.json").code
        == 0
    )
    shapes = {
        "evil": {"verifier": "https://up.example.com"},
        "gate": {
            "verifier": {"id": "https://up.example.com"},
            "verificationResult": "PASSED",
            "verifiedLevels": [{"level": 3}],
        },
    }
    for signer, predicate in shapes.items():
        vsa = _statement(tmp_path / f"{signer}-vsa.json", VSA, predicate)
        out = att / f"{signer}.vsa.json"
        assert run_cli("sign", vsa, "--key", tmp_path / f"{signer}.key", "--out", out).code == 0
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1, result
    assert "Traceback" not in result.err, result
    assert "evil.vsa.json: not signed by gate" in result.out, result
    assert "gate.vsa.json: verifiedLevels is not a list of strings" in result.out, result


def test_copies_of_one_upstream_vsa_count_once_in_dependency_levels(tmp_path: Path) -> None:
    """The upstream gate's VSA copied under two more names (one re-indented): the release
    VSA's dependencyLevels must count one verified dependency, not three."""
    import base64
    import hashlib

    _keygen(tmp_path, "up")
    _keygen(tmp_path, "builder")
    _keygen(tmp_path, "release")
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights")
    data = "cd" * 32
    layout = tmp_path / "layout.json"
    layout.write_text(
        json.dumps(
            {
                "expires": "2100-01-01T00:00:00Z",
                "functionaries": {
                    "builder": {"publicKey": (tmp_path / "builder.pub").read_text()},
                    "up": {"publicKey": (tmp_path / "up.pub").read_text()},
                },
                "steps": [
                    {
                        "name": "build",
                        "expectedPredicates": [
                            {"predicateType": SLSA, "functionaries": ["builder"]}
                        ],
                    }
                ],
                "subjects": [{"productOf": ["build"]}],
                "expectedVerifications": [
                    {
                        "name": "data",
                        "verifierId": "https://up.example.com",
                        "functionaries": ["up"],
                        "appliesTo": "build",
                        "verifiedLevels": ["SLSA_BUILD_LEVEL_3"],
                    }
                ],
            }
        )
    )
    att = tmp_path / "att"
    att.mkdir()
    build = tmp_path / "build.json"
    build.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [
                    {
                        "name": "model.bin",
                        "digest": {"sha256": hashlib.sha256(b"weights").hexdigest()},
                    }
                ],
                "predicateType": SLSA,
                "predicate": {
                    "buildDefinition": {
                        "buildType": "https://example.com/build/v1",
                        "externalParameters": {"step": "build"},
                        "resolvedDependencies": [{"name": "data", "digest": {"sha256": data}}],
                    },
                    "runDetails": {"builder": {"id": "https://example.com/builder"}},
                },
            }
        )
    )
    signed = run_cli("sign", build, "--key", tmp_path / "builder.key", "--out", att / "build.json")
    assert signed.code == 0, signed
    vsa = tmp_path / "up-vsa.json"
    vsa.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "data", "digest": {"sha256": data}}],
                "predicateType": VSA,
                "predicate": {
                    "verifier": {"id": "https://up.example.com"},
                    "verificationResult": "PASSED",
                    "verifiedLevels": ["SLSA_BUILD_LEVEL_3"],
                },
            }
        )
    )
    first = att / "up.vsa.json"
    assert run_cli("sign", vsa, "--key", tmp_path / "up.key", "--out", first).code == 0
    shutil.copy(first, att / "copy.vsa.json")
    (att / "indented.vsa.json").write_text(json.dumps(json.loads(first.read_bytes()), indent=2))
    out = tmp_path / "release.vsa.json"
    result = run_cli(
        "policy", "check", layout, "--attestations", att, "--subject", model,
        "--vsa-out", out, "--vsa-key", tmp_path / "release.key",
        "--verifier-id", "https://release.example.com",
    )  # fmt: skip
    assert result.code == 0, result
    statement = json.loads(base64.b64decode(json.loads(out.read_bytes())["payload"]))
    assert statement["predicate"]["verificationResult"] == "PASSED"
    assert statement["predicate"]["dependencyLevels"] == {"SLSA_BUILD_LEVEL_3": 1}


TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"


def test_file_name_cannot_move_a_claim_to_another_step_of_its_signer(tmp_path: Path) -> None:
    """Two steps (unit, integration) expect test results from the same CI key, and the
    results record no step, so a file's name says its step: the passing unit-test result
    copied to `integration.json` must not pass the integration step."""
    _keygen(tmp_path, "ci")
    ci = (tmp_path / "ci.pub").read_text()
    step = {
        "expectedPredicates": [
            {
                "predicateType": TEST_RESULT,
                "functionaries": ["ci"],
                "expectedAttributes": [{"rule": "predicate.result == 'PASSED'"}],
            }
        ]
    }
    layout = tmp_path / "layout.json"
    layout.write_text(
        json.dumps(
            {
                "expires": "2100-01-01T00:00:00Z",
                "functionaries": {"ci": {"publicKey": ci}},
                "steps": [{"name": "unit", **step}, {"name": "integration", **step}],
            }
        )
    )
    att = tmp_path / "att"
    att.mkdir()
    for name, result in (("unit", "PASSED"), ("integration", "FAILED")):
        statement = _statement(tmp_path / f"{name}-s.json", TEST_RESULT, {"result": result})
        signed = run_cli(
            "sign", statement, "--key", tmp_path / "ci.key", "--out", att / f"{name}.json"
        )
        assert signed.code == 0, signed
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1, result  # the integration tests failed
    shutil.copy(att / "unit.json", att / "integration.json")
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1, result
    assert "step integration" in result.out, result
    assert "its file name" in result.out, result
    lint = run_cli("policy", "lint", layout)
    assert lint.code == 0, lint
    assert "warning: steps integration, unit expect" in lint.out, lint
