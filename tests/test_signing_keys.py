"""Keys: generate, load (PEM, encrypted PEM, file2: URI, key JSON), sign and verify."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from conftest import shared_testdata
from mlprov.errors import InputError, VerificationError
from mlprov.signing.dsse import sign_envelope, verify_envelope
from mlprov.signing.keys import KEY_TYPES, generate_keypair, load_public_key, load_signer, pem_hint


def _write_pair(tmp_path: Path, key_type: str, password: bytes | None = None) -> tuple[Path, Path]:
    pair = generate_keypair(key_type, password=password)
    priv, pub = tmp_path / f"{key_type}.key", tmp_path / f"{key_type}.pub"
    priv.write_bytes(pair.private_pem)
    pub.write_bytes(pair.public_pem)
    return priv, pub


@pytest.mark.parametrize("key_type", [t for t in KEY_TYPES if t != "rsa-3072"])
def test_every_key_type_signs_and_verifies(tmp_path: Path, key_type: str) -> None:
    priv, pub = _write_pair(tmp_path, key_type)
    signer = load_signer(str(priv))
    key = load_public_key(pub)
    assert signer.public_key.keyid == key.keyid
    envelope = sign_envelope(b"{}", [signer])
    assert verify_envelope(envelope, [key]).keyids == [key.keyid]


def test_file2_uri_and_encrypted_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    priv, pub = _write_pair(tmp_path, "ecdsa-p256", password=b"s3cret")
    with pytest.raises(InputError, match="encrypted"):
        load_signer(str(priv))
    monkeypatch.setenv("KEYPASS", "wrong")
    with pytest.raises(InputError, match="wrong passphrase"):
        load_signer(f"file2:{priv}", password_env="KEYPASS")
    monkeypatch.setenv("KEYPASS", "s3cret")
    signer = load_signer(f"file2:{priv}", password_env="KEYPASS")
    assert signer.public_key.keyid == load_public_key(pub).keyid
    with pytest.raises(InputError, match="NOPE"):
        load_signer(str(priv), password_env="NOPE")


def test_key_json_and_certificate_and_hint(tmp_path: Path) -> None:
    _, pub = _write_pair(tmp_path, "ed25519")
    key = load_public_key(pub)
    as_json = tmp_path / "key.json"
    as_json.write_text(json.dumps({**key.to_dict(), "keyid": key.keyid}))
    assert load_public_key(as_json).keyid == key.keyid
    no_id = tmp_path / "noid.json"
    no_id.write_text(json.dumps(key.to_dict()))
    assert load_public_key(no_id).keyid == key.keyid


def test_peer_oms_key_hint_and_certificate() -> None:
    # Reached through the one helper for ../shared/testdata: skips, saying so, when absent.
    keys = shared_testdata("oms", "keys")
    oms_pub = keys / "signing-key-pub.pem"
    text = oms_pub.read_bytes()
    pem_block = text[text.index(b"-----BEGIN") :]
    hint = pem_hint(load_public_key(oms_pub))
    assert hint == hashlib.sha256(pem_block).hexdigest()
    # the OMS spec's key-signed test vector names this key by that hint
    vector = shared_testdata("oms-spec", "test-vectors", "v1.0", "valid", "key.bundle.json")
    assert json.loads(vector.read_bytes())["verificationMaterial"]["publicKey"]["hint"] == hint
    # model_signing 1.0.0's bundle carries the key itself (older rawBytes form)
    bundle = json.loads(shared_testdata("oms", "v1.0.0-elliptic-key", "model.sig").read_bytes())
    raw = base64.b64decode(bundle["verificationMaterial"]["publicKey"]["rawBytes"])
    assert raw.strip() == pem_block.strip()
    cert_key = load_public_key(keys / "signing-key-cert.pem")
    assert cert_key.keyid == load_public_key(oms_pub).keyid


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"junk",
        b"{not json",
        b"[1]",
        b'{"keytype":"ed25519"}',
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ],
)
def test_bad_public_keys_are_input_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pub"
    path.write_bytes(content)
    with pytest.raises(InputError):
        load_public_key(path)


def test_private_key_given_as_public_key_is_named(tmp_path: Path) -> None:
    priv, _ = _write_pair(tmp_path, "ed25519")
    with pytest.raises(InputError, match="private key"):
        load_public_key(priv)
    with pytest.raises(InputError, match="no such file"):
        load_public_key(tmp_path / "missing.pub")
    with pytest.raises(InputError, match="no such file"):
        load_signer(str(tmp_path / "missing.key"))


def test_remote_uri_without_public_key_says_what_to_do() -> None:
    with pytest.raises(InputError, match="public key"):
        load_signer("hv:my-key")


def test_wrong_key_does_not_verify(tmp_path: Path) -> None:
    priv, _ = _write_pair(tmp_path, "ecdsa-p256")
    other = generate_keypair("ecdsa-p256").key
    with pytest.raises(VerificationError):
        verify_envelope(sign_envelope(b"{}", [load_signer(str(priv))]), [other])
