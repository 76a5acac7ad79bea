"""DSSE envelopes: parse strictly, sign with securesystemslib signers, verify by threshold.

The keyid in a DSSE signature is an unauthenticated hint: verification tries every
trusted key on every signature and counts *distinct public keys* that verified, so a
key listed under two keyids, or one signature repeated, counts once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from securesystemslib.signer import Key, Signature, Signer, SSlibKey

from mlprov.errors import InputError, VerificationError
from mlprov.fsio import parse_json
from mlprov.signing.keys import scheme_variants
from mlprov.statement import PAYLOAD_TYPE, Statement

#: Upper bound on an envelope file, so hostile input cannot exhaust memory.
MAX_ENVELOPE_BYTES = 128 << 20
#: Most signatures an envelope may carry: more is refused before any signature is checked,
#: so junk signatures cannot make verification try every key on each of them.
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding of a payload."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64decode(value: object, what: str, source: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{source}: {what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        try:  # DSSE allows URL-safe base64 too
            return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise InputError(f"{source}: {what} is not valid base64") from None


@dataclass(frozen=True)
class DsseSignature:
    """One signature of an envelope: raw signature bytes and the (untrusted) keyid hint."""

    sig: bytes
    keyid: str = ""


@dataclass
class Envelope:
    """A DSSE envelope; `payload` holds the exact signed bytes."""

    payload: bytes
    payload_type: str = PAYLOAD_TYPE
    signatures: list[DsseSignature] = field(default_factory=list)

    def pae(self) -> bytes:
        """The bytes each signature covers."""
        return pae(self.payload_type, self.payload)

    def add_signatures(self, signers: Sequence[Signer]) -> None:
        """Sign the envelope's PAE with every signer (co-signing keeps existing signatures)."""
        data = self.pae()
        for signer in signers:
            signature = signer.sign(data)
            self.signatures.append(
                DsseSignature(bytes.fromhex(signature.signature), signature.keyid)
            )

    def to_dict(self) -> dict[str, Any]:
        """The DSSE JSON form."""
        return {
            "payload": base64.b64encode(self.payload).decode(),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode()} for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """Compact JSON bytes of the envelope (one line, for `.intoto.jsonl`)."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_dict(cls, raw: object, *, source: str = "envelope") -> Envelope:
        """Parse a DSSE envelope, rejecting anything malformed with a one-line reason."""
        if not isinstance(raw, dict):
            raise InputError(f"{source}: a DSSE envelope must be a JSON object")
        for name in ("payload", "payloadType", "signatures"):
            if name not in raw:
                raise InputError(f"{source}: DSSE envelope has no {name!r}")
        payload_type = raw["payloadType"]
        if not isinstance(payload_type, str):
            raise InputError(f"{source}: payloadType must be a string")
        sigs = raw["signatures"]
        if not isinstance(sigs, list):
            raise InputError(f"{source}: signatures must be a list")
        if len(sigs) > MAX_SIGNATURES:
            raise InputError(
                f"{source}: DSSE envelope has {len(sigs)} signatures, more than the"
                f" {MAX_SIGNATURES} mlprov accepts"
            )
        signatures = []
        for i, item in enumerate(sigs):
            if not isinstance(item, dict):
                raise InputError(f"{source}: signature {i} must be an object")
            keyid = item.get("keyid") or ""
            if not isinstance(keyid, str):
                raise InputError(f"{source}: signature {i} keyid must be a string")
            signatures.append(
                DsseSignature(_b64decode(item.get("sig"), f"signature {i}", source), keyid)
            )
        payload = _b64decode(raw["payload"], "payload", source)
        return cls(payload=payload, payload_type=payload_type, signatures=signatures)

    @classmethod
    def from_json(cls, data: bytes, *, source: str = "envelope") -> Envelope:
        """Parse DSSE JSON bytes."""
        if len(data) > MAX_ENVELOPE_BYTES:
            raise InputError(f"{source}: larger than {MAX_ENVELOPE_BYTES} bytes")
        return cls.from_dict(parse_json(data, source=source), source=source)

    def statement(self, *, source: str = "envelope") -> Statement:
        """The in-toto Statement in the payload (payloadType must be in-toto's)."""
        if self.payload_type != PAYLOAD_TYPE:
            raise VerificationError(
                f"{source}: payloadType is {self.payload_type!r}, expected {PAYLOAD_TYPE}"
            )
        return Statement.from_bytes(self.payload, source=source)


def sign_envelope(
    payload: bytes, signers: Sequence[Signer], *, payload_type: str = PAYLOAD_TYPE
) -> Envelope:
    """An envelope over `payload` signed by every signer."""
    if not signers:
        raise InputError("at least one signing key is needed")
    envelope = Envelope(payload=payload, payload_type=payload_type)
    envelope.add_signatures(signers)
    return envelope


def key_identity(key: Key) -> str:
    """What makes two keys the same key: their public material in one normal form.

    The DER SubjectPublicKeyInfo of the parsed key, so one key written two ways (a PEM
    with a compressed EC point, ed25519 hex in upper case, a certificate) is one key;
    never the keyid, which is only a hint. A key securesystemslib cannot parse locally
    (a KMS or Sigstore key) falls back to its type and whitespace-free public text.
    """
    if isinstance(key, SSlibKey):
        from cryptography.hazmat.primitives import serialization

        try:
            public: Any = key._crypto_key()
            der: bytes = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        except Exception:  # securesystemslib raises several kinds for unusable material
            pass
        else:
            return "spki:" + hashlib.sha256(der).hexdigest()
    public_text = key.keyval.get("public", "") if hasattr(key, "keyval") else ""
    return f"{key.keytype}:{''.join(str(public_text).split())}"


def _candidate_signatures(key: Key, sig: bytes) -> list[bytes]:
    """The signature as given, plus its DER form if it is a raw ECDSA r||s pair."""
    candidates = [sig]
    # Raw r||s has a fixed length per curve (64, 96, 132 bytes); its first byte may be
    # 0x30 by chance, so the length decides, not the DER tag.
    if key.keytype.startswith("ecdsa") and len(sig) in (64, 96, 132):
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        half = len(sig) // 2
        candidates.append(
            encode_dss_signature(
                int.from_bytes(sig[:half], "big"), int.from_bytes(sig[half:], "big")
            )
        )
    return candidates


def signature_verifies(key: Key, sig: bytes, data: bytes) -> bool:
    """True when `sig` over `data` verifies with `key` (DER or raw r||s for ECDSA; an RSA
    key as PSS or PKCS#1 v1.5, see `scheme_variants`)."""
    for variant in scheme_variants(key):
        for candidate in _candidate_signatures(variant, sig):
            try:
                variant.verify_signature(Signature(variant.keyid, candidate.hex()), data)
                return True
            except Exception:  # securesystemslib raises several kinds; any means "no"
                continue
    return False


@dataclass(frozen=True)
class EnvelopeVerification:
    """Which distinct trusted keys verified an envelope."""

    keys: list[Key]

    @property
    def keyids(self) -> list[str]:
        return [k.keyid for k in self.keys]


def verify_envelope(
    envelope: Envelope, keys: Sequence[Key], *, threshold: int = 1, source: str = "envelope"
) -> EnvelopeVerification:
    """Check that at least `threshold` distinct trusted keys signed the envelope.

    Raises VerificationError saying how many distinct keys verified and how many were
    needed; InputError for a threshold that can never be met.
    """
    if threshold < 1:
        raise InputError("threshold must be at least 1")
    if not envelope.signatures:
        raise VerificationError(f"{source}: envelope has no signatures")
    if not keys:
        raise InputError("no trusted keys given to verify with")
    distinct = {key_identity(k): k for k in keys}
    if len(keys) < threshold:
        raise InputError(f"threshold {threshold} exceeds the {len(keys)} keys given")
    if len(distinct) < threshold:
        # One key given twice (maybe in two encodings) is one signer: the threshold
        # cannot be met, whatever the envelope holds.
        raise VerificationError(
            f"{source}: threshold {threshold} needs {threshold} distinct keys, but the"
            f" {len(keys)} keys given are {len(distinct)} distinct key(s) (the same key"
            " given twice counts once)"
        )
    data = envelope.pae()
    verified: dict[str, Key] = {}
    for signature in envelope.signatures:
        # Try the key the hint names first, then every other trusted key.
        ordered = sorted(distinct.items(), key=lambda kv: kv[1].keyid != signature.keyid)
        for identity, key in ordered:
            if identity not in verified and signature_verifies(key, signature.sig, data):
                verified[identity] = key
                break
    if len(verified) < threshold:
        raise VerificationError(
            f"{source}: {len(verified)} of the given keys signed it, {threshold} needed"
            f" ({len(envelope.signatures)} signature(s) present)"
        )
    return EnvelopeVerification(keys=list(verified.values()))
