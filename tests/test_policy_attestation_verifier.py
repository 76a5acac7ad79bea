"""in-toto/attestation-verifier's own layout and attestations: pass unchanged, fail when touched."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, shared_testdata
from mlprov.policy import collect_claims, evaluate, load_layout, parse_layout

STEPS = ("clone", "test", "build")
KEYID = "fe1c6281c5ff13e35286cc67e5a1fb3e6575b840a6c39ca4267d3805eb17288a"


@pytest.fixture
def peer(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the peer layout and attestations, safe to modify."""
    root = shared_testdata("attestation-verifier")
    layout = tmp_path / "layout.yml"
    shutil.copy(root / "layouts" / "layout.yml", layout)
    shutil.copytree(root / "test-data", tmp_path / "att")
    return layout, tmp_path / "att"


def _failures(layout: Path, att: Path) -> list[str]:
    result = evaluate(load_layout(layout), collect_claims([att]))
    return [f"{step}: {r.rule}: {r.reason}" for step, r in result.failures]


def test_passes_unchanged_in_place() -> None:
    root = shared_testdata("attestation-verifier")
    result = run_cli(
        "policy", "check", root / "layouts" / "layout.yml", "--attestations", root / "test-data"
    )
    assert result.code == 0, result
    assert "PASSED: 3 steps" in result.out
    assert "FAIL" not in result.out


@pytest.mark.parametrize("step", STEPS)
def test_fails_when_an_attestation_is_removed(peer: tuple[Path, Path], step: str) -> None:
    layout, att = peer
    (att / f"{step}.fe1c6281.json").unlink()
    failures = _failures(layout, att)
    assert f"{step}: claims: no attestations found for step {step}" in failures
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1
    assert f"no attestations found for step {step}" in result.err


@pytest.mark.parametrize("step", STEPS)
def test_fails_when_a_payload_byte_changes(peer: tuple[Path, Path], step: str) -> None:
    layout, att = peer
    path = att / f"{step}.fe1c6281.json"
    envelope = json.loads(path.read_bytes())
    payload = bytearray(base64.b64decode(envelope["payload"]))
    index = payload.index(b"e3b0c4")  # inside a digest: still valid JSON, different claim
    payload[index] = ord("f")
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()
    path.write_text(json.dumps(envelope))
    failures = _failures(layout, att)
    assert any(f.startswith(f"{step}: threshold 1: no attestation of type") for f in failures), (
        failures
    )
    assert run_cli("policy", "check", layout, "--attestations", att).code == 1


@pytest.mark.parametrize("step", STEPS)
def test_fails_when_any_byte_of_the_file_changes(peer: tuple[Path, Path], step: str) -> None:
    layout, att = peer
    path = att / f"{step}.fe1c6281.json"
    original = path.read_bytes()
    loaded = load_layout(layout)
    # Every byte: flipping it must never leave a passing verdict.
    for index in range(len(original)):
        changed = bytearray(original)
        changed[index] ^= 0x01
        path.write_bytes(bytes(changed))
        result = evaluate(loaded, collect_claims([att]))
        assert not result.passed, f"byte {index} of {path.name} changed and still passed"
    path.write_bytes(original)
    assert evaluate(loaded, collect_claims([att])).passed


def test_fails_when_a_signature_is_swapped(peer: tuple[Path, Path]) -> None:
    layout, att = peer
    clone = json.loads((att / "clone.fe1c6281.json").read_bytes())
    build = json.loads((att / "build.fe1c6281.json").read_bytes())
    build["signatures"] = clone["signatures"]
    (att / "build.fe1c6281.json").write_text(json.dumps(build))
    assert any(f.startswith("build: threshold 1") for f in _failures(layout, att))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "predicate.result == 'PASSED'",
            "predicate.result == 'FAILED'",
            'test: predicate.result == \'FAILED\': "PASSED" != "FAILED"',
        ),
        (
            '"CREATE bin/foo"',
            '"CREATE bin/bar"',
            "build: DISALLOW *: product bin/foo not allowed by any earlier rule",
        ),
        (
            '"MATCH foo WITH products FROM clone"',
            '"MATCH foo WITH materials FROM clone"',
            "test: DISALLOW *: material foo not allowed by any earlier rule",
        ),
        (
            "allowIfNoClaim: false",
            "allowIfNoClaim: false\n          - rule: "
            "\"predicate.runDetails.metadata.invocationId == 'x'\"",
            "build: predicate.runDetails.metadata.invocationId == 'x': no claim",
        ),
    ],
)
def test_fails_when_a_rule_demands_something_else(
    peer: tuple[Path, Path], old: str, new: str, expected: str
) -> None:
    layout, att = peer
    text = layout.read_text()
    assert old in text
    layout.write_text(text.replace(old, new, 1))
    failures = _failures(layout, att)
    assert any(f.startswith(expected) for f in failures), failures


def test_statement_with_proto_field_name_type_is_read(peer: tuple[Path, Path]) -> None:
    # clone's Statement says "type" (protojson's field name), not "_type"
    _, att = peer
    claims = collect_claims([att]).claims
    clone = next(c for c in claims if c.step == "clone")
    assert clone.statement["_type"] == "https://in-toto.io/Statement/v1"
    assert clone.products == {
        "foo": {"sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    }


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"DISALLOW *"', '"FORBID *"', "bad artifact rule 'FORBID *'"),
        ("size(predicate.failedTests) == 0", "size(predicate.failedTests) ==", "CEL syntax error"),
        ('name: "build"', 'name: "test"', "duplicate step name(s): test"),
        ('FROM clone"', 'FROM nowhere"', "refers to unknown step 'nowhere'"),
        ('expires: "2100', 'expires: "nonsense', "invalid layout at /expires"),
    ],
)
def test_layout_errors_exit_2(peer: tuple[Path, Path], old: str, new: str, message: str) -> None:
    layout, att = peer
    layout.write_text(layout.read_text().replace(old, new, 1))
    for args in (("check", layout, "--attestations", att), ("lint", layout)):
        result = run_cli("policy", *args)
        assert result.code == 2, result
        assert message in result.err
        assert "Traceback" not in result.err


def test_unknown_functionary_is_a_layout_error(peer: tuple[Path, Path]) -> None:
    layout, _ = peer
    text = layout.read_text().replace(
        '          - "' + KEYID + '"\n  - name: "test"',
        '          - "mallory"\n  - name: "test"',
    )
    with pytest.raises(Exception, match="unknown functionary 'mallory'"):
        parse_layout(text.encode())


def test_expired_layout_fails_with_exit_1(peer: tuple[Path, Path]) -> None:
    layout, att = peer
    layout.write_text(layout.read_text().replace("2100-10-10", "2001-10-10"))
    result = run_cli("policy", "check", layout, "--attestations", att)
    assert result.code == 1
    assert "layout expired at 2001-10-10T12:23:22Z" in result.err
    assert "warning: layout expired" in run_cli("policy", "lint", layout).out
