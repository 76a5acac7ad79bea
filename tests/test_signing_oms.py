"""OMS interop with model_signing, both ways, and rejection of every kind of change."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, shared_testdata
from mlprov.signing.keys import generate_keypair

IBM = ("--identity", "stefanb@us.ibm.com", "--issuer", "https://sigstore.verify.ibm.com/oauth2")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(5000))
    (root / "sub" / "config.json").write_text('{"layers": 2}')
    (root / "a-b").write_text("dash")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    return root


def _keys(tmp_path: Path, key_type: str = "ecdsa-p256") -> tuple[Path, Path]:
    pair = generate_keypair(key_type)
    priv, pub = tmp_path / f"{key_type}.key", tmp_path / f"{key_type}.pub"
    priv.write_bytes(pair.private_pem)
    pub.write_bytes(pair.public_pem)
    return priv, pub


def test_mlprov_signs_model_signing_verifies(tmp_path: Path, model: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path)
    sig = model / "model.sig"
    assert run_cli("model", "sign", model, "--key", priv, "--out", sig).code == 0
    bundle = json.loads(sig.read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["dsseEnvelope"]["signatures"][0]["keyid"] == ""
    assert len(bundle["verificationMaterial"]["publicKey"]["hint"]) == 64
    config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub)
    config.verify(model, sig)
    (model / "weights.bin").write_bytes(b"changed")
    with pytest.raises(ValueError):
        config.verify(model, sig)


def test_model_signing_signs_mlprov_verifies(tmp_path: Path, model: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path, "ecdsa-p384")
    sig = tmp_path / "theirs.sig"
    model_signing.signing.Config().use_elliptic_key_signer(private_key=priv).sign(model, sig)
    assert run_cli("model", "verify", model, "--signature", sig, "--key", pub).code == 0
    shards = tmp_path / "shards.sig"
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=priv)
    config.set_hashing_config(
        model_signing.hashing.Config().use_shard_serialization(shard_size=1024)
    )
    config.sign(model, shards)
    result = run_cli("model", "verify", model, "--signature", shards, "--key", pub)
    assert result.code == 0, result
    assert "shards" in result.out
    (model / "weights.bin").write_bytes(os.urandom(5000))
    result = run_cli("model", "verify", model, "--signature", shards, "--key", pub)
    assert result.code == 1
    assert "weights.bin:0:1024" in result.err


def test_shards_and_blake3_round_trip(tmp_path: Path, model: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path)
    for extra in (["--shard-size", "2048"], ["--hash", "blake3"]):
        sig = tmp_path / f"{extra[1]}.sig"
        assert run_cli("model", "sign", model, "--key", priv, "--out", sig, *extra).code == 0
        assert run_cli("model", "verify", model, "--signature", sig, "--key", pub).code == 0
        model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub).verify(
            model, sig
        )


@pytest.mark.parametrize("change", ["modify", "add", "remove", "wrong-key", "ignored"])
def test_changes_are_rejected_and_named(tmp_path: Path, model: Path, change: str) -> None:
    priv, pub = _keys(tmp_path)
    sig = tmp_path / "model.sig"
    assert (
        run_cli("model", "sign", model, "--key", priv, "--out", sig, "--ignore-path", "logs").code
        == 0
    )
    (model / "logs").mkdir()
    (model / "logs" / "run.txt").write_text("not signed, recorded as ignored")
    key = pub
    named = None
    if change == "modify":
        (model / "sub" / "config.json").write_text('{"layers": 3}')
        named = "changed    sub/config.json"
    elif change == "add":
        (model / "sub" / "new.bin").write_text("x")
        named = "added      sub/new.bin"
    elif change == "remove":
        (model / "a-b").unlink()
        named = "missing    a-b"
    elif change == "wrong-key":
        key = _keys(tmp_path, "ecdsa-p384")[1]
    result = run_cli("model", "verify", model, "--signature", sig, "--key", key)
    if change == "ignored":
        assert result.code == 0, result
        return
    assert result.code == 1, result
    assert "Traceback" not in result.err
    if named:
        assert named in result.err


def test_symlinked_directory_is_an_error(tmp_path: Path, model: Path) -> None:
    priv, _ = _keys(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.bin").write_text("s")
    (model / "linked").symlink_to(outside)
    result = run_cli("model", "sign", model, "--key", priv, "--out", tmp_path / "m.sig")
    assert result.code == 2
    assert "symlink" in result.err


def test_non_ec_key_warns(tmp_path: Path, model: Path) -> None:
    priv, pub = _keys(tmp_path, "ed25519")
    sig = tmp_path / "m.sig"
    result = run_cli("model", "sign", model, "--key", priv, "--out", sig)
    assert result.code == 0
    assert "EC keys only" in result.err
    assert run_cli("model", "verify", model, "--signature", sig, "--key", pub).code == 0


@pytest.mark.parametrize("name", ["v1.0.0-sigstore", "v0.3.1-sigstore"])
def test_upstream_sigstore_bundles(tmp_path: Path, name: str) -> None:
    upstream = shared_testdata("oms", name)
    sig = upstream / "model.sig"
    assert run_cli("model", "verify", upstream, "--signature", sig, *IBM).code == 0
    wrong = ("--identity", "someone@example.com", "--issuer", IBM[3])
    result = run_cli("model", "verify", upstream, "--signature", sig, *wrong)
    assert result.code == 1
    assert "someone@example.com" in result.err
    copy = tmp_path / name
    shutil.copytree(upstream, copy)
    for path in copy.iterdir():
        path.chmod(0o644)
    (copy / "signme-3").write_text("added")
    result = run_cli("model", "verify", copy, "--signature", copy / "model.sig", *IBM)
    assert result.code == 1
    assert "signme-3" in result.err
    (copy / "signme-3").unlink()
    with (copy / "signme-1").open("ab") as handle:
        handle.write(b"!")
    result = run_cli("model", "verify", copy, "--signature", copy / "model.sig", *IBM)
    assert result.code == 1
    assert "signme-1" in result.err


def test_upstream_key_and_certificate_bundles(tmp_path: Path) -> None:
    keys = shared_testdata("oms", "keys")
    elliptic = shared_testdata("oms", "v1.0.0-elliptic-key")
    result = run_cli(
        "model",
        "verify",
        elliptic / "signme-1",
        "--signature",
        elliptic / "model.sig",
        "--key",
        keys / "signing-key-pub.pem",
    )
    assert result.code == 0, result
    other = _keys(tmp_path, "ecdsa-p384")[1]
    result = run_cli(
        "model", "verify", elliptic / "signme-1", "--signature", elliptic / "model.sig",
        "--key", other,
    )  # fmt: skip
    assert result.code == 1
    cert = shared_testdata("oms", "v1.0.0-certificate")
    chain = (
        "--certificate-chain",
        keys / "ca-cert.pem",
        "--certificate-chain",
        keys / "int-ca-cert.pem",
    )
    result = run_cli("model", "verify", cert, "--signature", cert / "model.sig", *chain)
    assert result.code == 0, result
    # A CA that did not issue the chain fails.
    result = run_cli(
        "model", "verify", cert, "--signature", cert / "model.sig",
        "--certificate-chain", keys / "signing-key-pub.pem",
    )  # fmt: skip
    assert result.code == 2
    own_ca = _self_signed(tmp_path)
    result = run_cli(
        "model", "verify", cert, "--signature", cert / "model.sig", "--certificate-chain", own_ca
    )
    assert result.code == 1
    assert "chain" in result.err


def _self_signed(tmp_path: Path) -> Path:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=3650))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "own-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path
