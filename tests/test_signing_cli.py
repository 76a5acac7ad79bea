"""CLI: keygen, sign (every format, co-signing, --sigstore up to the network), verify."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from conftest import run_cli, shared_testdata
from mlprov.signing.sigstore_sign import find_identity_token, resolve_identity_token

STATEMENT = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [
        {
            "name": "model.bin",
            "digest": {
                "sha256": "f9e5a3f0bbae4f3a83ba5d0df0b4b2a5b0d7a2d3a7ef0c3d4c6b0e7a51a1a0c1"
            },
        }
    ],
    "predicateType": "https://slsa.dev/provenance/v1",
    "predicate": {"buildDefinition": {"buildType": "x"}},
}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    import hashlib

    (tmp_path / "model.bin").write_bytes(b"weights\n")
    statement = json.loads(json.dumps(STATEMENT))
    statement["subject"][0]["digest"]["sha256"] = hashlib.sha256(b"weights\n").hexdigest()
    (tmp_path / "st.json").write_text(json.dumps(statement, indent=1))
    assert run_cli("keygen", "--out", "a", "--no-password").code == 0
    assert run_cli("keygen", "--out", "b", "--type", "ed25519", "--no-password").code == 0
    return tmp_path


def test_keygen_writes_private_0600_and_encrypted(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stat.S_IMODE((setup / "a.key").stat().st_mode) == 0o600
    monkeypatch.setenv("PASS", "pw")
    result = run_cli(
        "keygen", "--out", "enc", "--type", "rsa-3072", "--password-env", "PASS", "--json"
    )
    assert result.code == 0
    assert json.loads(result.out)["keyid"]
    assert b"ENCRYPTED" in (setup / "enc.key").read_bytes()
    assert run_cli("keygen", "--out", "enc", "--no-password").code == 2  # no overwrite
    result = run_cli("sign", "st.json", "--key", "enc.key", "--out", "x.json")
    assert result.code == 2 and "encrypted" in result.err
    result = run_cli(
        "sign", "st.json", "--key", "enc.key", "--password-env", "PASS", "--out", "x.json"
    )
    assert result.code == 0
    assert run_cli("verify", "x.json", "--key", "enc.pub").code == 0


def test_sign_verify_threshold_and_subjects(setup: Path) -> None:
    assert (
        run_cli("sign", "st.json", "--key", "a.key", "--key", "file2:b.key", "--out", "s.json").code
        == 0
    )
    # The exact bytes of the input are what is signed.
    envelope = json.loads((setup / "s.json").read_text())
    import base64

    assert base64.b64decode(envelope["payload"]) == (setup / "st.json").read_bytes()
    ok = run_cli("verify", "s.json", "--key", "a.pub", "--key", "b.pub", "--threshold", "2",
                 "--subject-path", "model.bin")  # fmt: skip
    assert ok.code == 0, ok
    assert "ok    subject" in ok.out
    assert run_cli("verify", "s.json", "--key", "a.pub", "--threshold", "2").code == 2
    (setup / "model.bin").write_bytes(b"other")
    bad = run_cli("verify", "s.json", "--key", "a.pub", "--subject-path", "model.bin", "--json")
    assert bad.code == 1
    report = json.loads(bad.out)
    assert report["ok"] is False
    failed = [c for c in report["attestations"][0]["checks"] if not c["passed"]]
    assert failed[0]["where"] == "model.bin"


def test_cosign_an_envelope_and_jsonl(setup: Path) -> None:
    assert run_cli("sign", "st.json", "--key", "a.key", "--out", "one.json").code == 0
    assert run_cli("sign", "one.json", "--key", "b.key", "--out", "two.json").code == 0
    assert (
        run_cli("verify", "two.json", "--key", "a.pub", "--key", "b.pub", "--threshold", "2").code
        == 0
    )
    for key in ("a.key", "b.key"):
        assert (
            run_cli(
                "sign", "st.json", "--key", key, "--format", "jsonl", "--out", "x.intoto.jsonl"
            ).code
            == 0
        )
    assert len((setup / "x.intoto.jsonl").read_text().splitlines()) == 2
    result = run_cli("verify", "x.intoto.jsonl", "--key", "a.pub")
    assert result.code == 1
    assert "x.intoto.jsonl:2" in result.err
    assert run_cli("verify", "x.intoto.jsonl", "--key", "a.pub", "--key", "b.pub").code == 0


def test_bundle_format(setup: Path) -> None:
    assert (
        run_cli(
            "sign", "st.json", "--key", "a.key", "--format", "bundle", "--out", "s.sigstore.json"
        ).code
        == 0
    )
    bundle = json.loads((setup / "s.sigstore.json").read_text())
    assert "hint" in bundle["verificationMaterial"]["publicKey"]
    assert run_cli("verify", "s.sigstore.json", "--key", "a.pub").code == 0
    assert run_cli("verify", "s.sigstore.json", "--key", "b.pub").code == 1
    two = run_cli(
        "sign",
        "st.json",
        "--key",
        "a.key",
        "--key",
        "b.key",
        "--format",
        "bundle",
        "--out",
        "t.json",
    )
    assert two.code == 2 and "one signature" in two.err


def test_verify_needs_trust_and_sigstore_needs_identity(setup: Path) -> None:
    assert run_cli("sign", "st.json", "--key", "a.key", "--out", "s.json").code == 0
    assert run_cli("verify", "s.json").code == 2
    assert run_cli("verify", "s.json", "--identity", "me@example.com").code == 2
    bundle = shared_testdata("sigstore", "a.dsse.staging-rekor-v2.txt.sigstore.json")
    result = run_cli("verify", bundle, "--key", "a.pub")
    assert result.code == 1 and "--identity" in result.err
    beacon = (
        "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
        ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
    )
    flags = ("--identity", beacon, "--issuer", "https://token.actions.githubusercontent.com")
    assert run_cli("verify", bundle, *flags, "--staging").code == 0
    assert run_cli("verify", bundle, *flags).code == 1  # production root
    # Its subject does not match the file beside it: the file is named.
    text = shared_testdata("sigstore", "a.dsse.staging-rekor-v2.txt")
    result = run_cli("verify", bundle, *flags, "--staging", "--subject-path", text)
    assert result.code == 1
    assert "a.dsse.staging-rekor-v2.txt: matches no subject" in result.err


def test_sigstore_sign_refuses_without_token_when_not_interactive(
    setup: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in (
        "SIGSTORE_ID_TOKEN",
        "GITHUB_ACTIONS",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "GITLAB_CI",
        "BUILDKITE",
    ):
        monkeypatch.delenv(var, raising=False)
    result = run_cli("sign", "st.json", "--sigstore", "--out", "s.sigstore.json")
    assert result.code == 2
    assert "no OIDC identity token" in result.err
    assert not (setup / "s.sigstore.json").exists()
    result = run_cli(
        "sign", "st.json", "--sigstore", "--identity-token", "not-a-jwt", "--out", "s.json"
    )
    assert result.code == 2 and "unusable" in result.err
    (setup / "token.txt").write_text("a.b.c\n")
    assert find_identity_token("@token.txt").raw == "a.b.c"
    assert (
        find_identity_token(None, environ={"SIGSTORE_ID_TOKEN": "x.y.z"}).origin
        == "SIGSTORE_ID_TOKEN"
    )
    assert run_cli("sign", "st.json", "--sigstore", "--key", "a.key", "--out", "s.json").code == 2
    assert run_cli("sign", "st.json", "--staging", "--key", "a.key", "--out", "s.json").code == 2
    with pytest.raises(Exception, match="no OIDC identity token"):
        resolve_identity_token(None, interactive=False, environ={})
    result = run_cli(
        "model", "sign", ".", "--sigstore", "--identity-token", "junk", "--out", "m.sig"
    )
    assert result.code == 2


def test_expired_token_is_refused() -> None:
    import base64
    import json as j

    def part(d: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(j.dumps(d).encode()).decode().rstrip("=")

    claims = {"aud": "sigstore", "sub": "me", "iat": 1, "exp": 2, "iss": "https://x"}
    token = f"{part({'alg': 'none'})}.{part(claims)}.sig"
    from mlprov.errors import InputError

    with pytest.raises(InputError, match="unusable"):
        resolve_identity_token(token)
