"""Adversarial DSSE verification: bit flips, keyid games, duplicates, hostile inputs."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from conftest import run_cli
from mlprov.errors import VerificationError
from mlprov.signing.dsse import DsseSignature, Envelope, sign_envelope, verify_envelope
from mlprov.signing.files import parse_attestation
from mlprov.signing.keys import generate_keypair, load_signer
from mlprov.signing.verify import verify_attestation
from mlprov.statement import PAYLOAD_TYPE

SMALL = b'{"_type":"https://in-toto.io/Statement/v1","predicateType":"p","subject":[{"digest":{"sha256":"00"}}]}'


@pytest.fixture(scope="module")
def signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


@pytest.fixture(scope="module")
def ec_signer() -> CryptoSigner:
    return CryptoSigner.generate_ecdsa()


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def _fails(envelope: Envelope, signer: CryptoSigner) -> bool:
    try:
        verify_envelope(envelope, [signer.public_key])
    except VerificationError:
        return True
    return False


def test_every_bit_of_payload_type_and_signature_matters(signer: CryptoSigner) -> None:
    good = sign_envelope(SMALL, [signer])
    verify_envelope(good, [signer.public_key])
    sig = good.signatures[0]
    for bit in range(len(SMALL) * 8):
        bad = Envelope(_flip(SMALL, bit), PAYLOAD_TYPE, [sig])
        assert _fails(bad, signer), f"payload bit {bit}"
    for bit in range(len(PAYLOAD_TYPE) * 8):
        kind = _flip(PAYLOAD_TYPE.encode(), bit).decode("latin-1")
        assert _fails(Envelope(SMALL, kind, [sig]), signer), f"payloadType bit {bit}"
    for bit in range(len(sig.sig) * 8):
        bad = Envelope(SMALL, PAYLOAD_TYPE, [DsseSignature(_flip(sig.sig, bit), sig.keyid)])
        assert _fails(bad, signer), f"signature bit {bit}"


def test_ecdsa_der_and_raw_signatures(ec_signer: CryptoSigner) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    good = sign_envelope(SMALL, [ec_signer])
    r, s = decode_dss_signature(good.signatures[0].sig)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    verify_envelope(Envelope(SMALL, PAYLOAD_TYPE, [DsseSignature(raw)]), [ec_signer.public_key])
    for bit in range(0, len(raw) * 8, 7):
        bad = Envelope(SMALL, PAYLOAD_TYPE, [DsseSignature(_flip(raw, bit))])
        assert _fails(bad, ec_signer)


def test_keyid_is_only_a_hint(signer: CryptoSigner) -> None:
    other = CryptoSigner.generate_ed25519()
    good = sign_envelope(SMALL, [signer])
    renamed = Envelope(
        SMALL, PAYLOAD_TYPE, [DsseSignature(good.signatures[0].sig, other.public_key.keyid)]
    )
    # A wrong keyid hint neither stops the right key nor lets the named (wrong) key count.
    assert verify_envelope(renamed, [signer.public_key]).keyids == [signer.public_key.keyid]
    with pytest.raises(VerificationError):
        verify_envelope(renamed, [other.public_key])


def test_threshold_counts_distinct_keys(signer: CryptoSigner) -> None:
    good = sign_envelope(SMALL, [signer])
    sig = good.signatures[0]
    twice = Envelope(SMALL, PAYLOAD_TYPE, [sig, DsseSignature(sig.sig, "other-id")])
    other = CryptoSigner.generate_ed25519()
    with pytest.raises(VerificationError, match="1 of the given keys"):
        verify_envelope(twice, [signer.public_key, other.public_key], threshold=2)
    # The same key listed under two keyids is one key.
    from securesystemslib.signer import SSlibKey

    alias = SSlibKey(
        "alias", signer.public_key.keytype, signer.public_key.scheme, dict(signer.public_key.keyval)
    )
    with pytest.raises(VerificationError, match="distinct"):
        verify_envelope(twice, [signer.public_key, alias], threshold=2)
    both = sign_envelope(SMALL, [signer, other])
    assert len(verify_envelope(both, [signer.public_key, other.public_key], threshold=2).keys) == 2


def test_signature_by_key_not_given_fails(signer: CryptoSigner) -> None:
    with pytest.raises(VerificationError):
        verify_envelope(
            sign_envelope(SMALL, [CryptoSigner.generate_ed25519()]), [signer.public_key]
        )


def test_wrong_payload_type_fails_even_when_signed(signer: CryptoSigner) -> None:
    envelope = sign_envelope(SMALL, [signer], payload_type="text/plain")
    attestation = parse_attestation(envelope.to_json(), source="x.json")
    with pytest.raises(VerificationError, match="payloadType"):
        verify_attestation(attestation, keys=[signer.public_key])


def test_signed_but_invalid_statement_fails(signer: CryptoSigner) -> None:
    envelope = sign_envelope(b'{"_type":"https://in-toto.io/Statement/v1"}', [signer])
    attestation = parse_attestation(envelope.to_json(), source="x.json")
    with pytest.raises(VerificationError, match="subject"):
        verify_attestation(attestation, keys=[signer.public_key])


def _pub(tmp_path: Path) -> tuple[Path, Path]:
    pair = generate_keypair("ed25519")
    (tmp_path / "k.key").write_bytes(pair.private_pem)
    (tmp_path / "k.pub").write_bytes(pair.public_pem)
    return tmp_path / "k.key", tmp_path / "k.pub"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"[]",
        b"null",
        b'{"payload": "!!", "payloadType": "x", "signatures": []}',
        b'{"payload": "", "payloadType": "x", "signatures": []}',
        b'{"payload": "e30=", "payloadType": 5, "signatures": [{"sig": 3}]}',
        b'{"payload": "e30=", "payloadType": "application/vnd.in-toto+json",'
        b' "signatures": [{"sig": ""}]}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}',
        b'{"_type": "https://in-toto.io/Statement/v1"}',
        b"\xff\xfe garbage",
    ],
)
def test_hostile_files_give_one_line_and_no_traceback(tmp_path: Path, content: bytes) -> None:
    _, pub = _pub(tmp_path)
    target = tmp_path / "bad.intoto.json"
    target.write_bytes(content)
    result = run_cli("verify", target, "--key", pub)
    assert result.code in (1, 2), result
    assert "Traceback" not in result.err
    assert result.err.strip(), result


def test_deeply_nested_and_huge_payloads(tmp_path: Path) -> None:
    key, pub = _pub(tmp_path)
    signer = load_signer(str(key))
    for payload in (b"[" * 50_000 + b"]" * 50_000, b'{"a":"' + b"x" * (3 << 20) + b'"}'):
        target = tmp_path / "p.json"
        target.write_bytes(sign_envelope(payload, [signer]).to_json())
        result = run_cli("verify", target, "--key", pub)
        assert result.code in (1, 2), result
        assert "Traceback" not in result.err
        assert len(result.err.strip().splitlines()) <= 2


def test_statement_input_of_sign_is_validated(tmp_path: Path) -> None:
    key, _ = _pub(tmp_path)
    bad = tmp_path / "s.json"
    bad.write_text(json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}))
    result = run_cli("sign", bad, "--key", key, "--out", tmp_path / "o.json")
    assert result.code == 2
    assert "subject" in result.err
    bad.write_bytes(base64.b64encode(b"junk"))
    assert run_cli("sign", bad, "--key", key, "--out", tmp_path / "o.json").code == 2


def test_raw_ecdsa_signature_starting_with_der_tag_verifies(ec_signer: CryptoSigner) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    for attempt in range(5000):
        payload = SMALL + str(attempt).encode()
        r, s = decode_dss_signature(sign_envelope(payload, [ec_signer]).signatures[0].sig)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if raw[0] == 0x30:
            break
    else:  # pragma: no cover - probability ~ (255/256)**5000
        pytest.fail("no signature with r starting 0x30 found")
    envelope = Envelope(payload, PAYLOAD_TYPE, [DsseSignature(raw)])
    assert verify_envelope(envelope, [ec_signer.public_key]).keyids
