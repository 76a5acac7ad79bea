"""What the store indexes about one signed attestation, read from its exact bytes.

An artifact is named in the store by `algorithm:hex` (`sha256:ab12…`); when a descriptor
carries several digests, the preferred one (sha256 first) is the artifact's identity in
lineage and every one is indexed for look-ups.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from mlprov.errors import InputError
from mlprov.predicates import build_type_of, materials_of, products_of, step_of
from mlprov.signing.files import SignedAttestation
from mlprov.statement import ResourceDescriptor

#: Digest algorithms in order of preference for an artifact's identity.
PREFERRED_ALGORITHMS = ("sha256", "sha512", "sha384", "blake3", "sha3-256", "gitCommit", "sha1")
#: Digest algorithm names as in-toto spells them, by lower-case name.
_CANONICAL = {name.lower(): name for name in PREFERRED_ALGORITHMS}
_HEX = re.compile(r"^[0-9a-f]+\Z")
_BARE_LENGTHS = {64: "sha256", 96: "sha384", 128: "sha512"}

Role = Literal["subject", "material"]


def parse_digest(text: str) -> str:
    """A digest given by a person (`sha256:<hex>` or bare hex) in the store's `alg:hex` form."""
    value = text.strip()
    algorithm, sep, hexpart = value.partition(":")
    if not sep:
        algorithm, hexpart = _BARE_LENGTHS.get(len(value), ""), value
        if not algorithm:
            raise InputError(
                f"{text!r} is not a digest: give sha256:<64 hex digits> (or the bare hex)"
            )
    algorithm = _CANONICAL.get(algorithm.lower(), algorithm)
    hexpart = hexpart.lower()
    if not algorithm or not hexpart or not _HEX.match(hexpart):
        raise InputError(f"{text!r} is not a digest: expected ALGORITHM:HEX, e.g. sha256:ab12…")
    if algorithm == "sha256" and len(hexpart) != 64:
        raise InputError(f"{text!r} is not a sha256 digest: it needs 64 hex digits")
    return f"{algorithm}:{hexpart}"


def digest_keys(digest: dict[str, str] | None) -> tuple[str, ...]:
    """Every `alg:hex` of a digest set, the preferred one first."""
    if not digest:
        return ()

    def rank(item: tuple[str, str]) -> tuple[int, str]:
        alg = item[0]
        index = PREFERRED_ALGORITHMS.index(alg) if alg in PREFERRED_ALGORITHMS else 99
        return (index, alg)

    return tuple(
        f"{alg}:{value.lower()}"
        for alg, value in sorted(digest.items(), key=rank)
        if isinstance(value, str) and value
    )


@dataclass(frozen=True)
class ArtifactRef:
    """A subject or material of an attestation as indexed: its digests, name and location."""

    role: Role
    position: int
    digests: tuple[str, ...]
    name: str | None = None
    uri: str | None = None

    @property
    def digest(self) -> str | None:
        """The artifact's identity: its preferred digest, or None when it has none."""
        return self.digests[0] if self.digests else None

    @property
    def label(self) -> str:
        """How to name it to a person: its name, else its URI, else its digest."""
        return self.name or self.uri or self.digest or "(unnamed)"

    @classmethod
    def of(cls, role: Role, position: int, descriptor: ResourceDescriptor) -> ArtifactRef:
        return cls(role, position, digest_keys(descriptor.digest), descriptor.name, descriptor.uri)


def attestation_digest(raw: bytes) -> str:
    """The store's key for an attestation: sha256 of its exact bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class AttestationRecord:
    """Everything the store writes for one attestation, derived from its exact bytes."""

    digest: str
    raw: bytes
    kind: str
    payload_type: str
    predicate_type: str
    build_type: str | None
    step: str | None
    source: str | None
    subjects: tuple[ArtifactRef, ...]
    materials: tuple[ArtifactRef, ...]

    @classmethod
    def from_signed(cls, attestation: SignedAttestation) -> AttestationRecord:
        """Index a signed attestation; InputError if its payload is not an in-toto Statement."""
        source = attestation.source
        try:
            statement = attestation.envelope.statement(source=source)
        except InputError:
            raise
        except Exception as exc:  # VerificationError for a foreign payloadType
            raise InputError(str(exc)) from None
        try:
            materials = materials_of(statement)
        except Exception as exc:  # a malformed descriptor in the predicate
            raise InputError(f"{source}: malformed materials in the predicate ({exc})") from None
        return cls(
            digest=attestation_digest(attestation.raw),
            raw=attestation.raw,
            kind=attestation.kind,
            payload_type=attestation.envelope.payload_type,
            predicate_type=statement.predicateType,
            build_type=build_type_of(statement),
            step=step_of(statement),
            source=source,
            subjects=tuple(
                ArtifactRef.of("subject", i, d) for i, d in enumerate(products_of(statement))
            ),
            materials=tuple(ArtifactRef.of("material", i, d) for i, d in enumerate(materials)),
        )


def claimed_signers(attestation: SignedAttestation) -> tuple[str, ...]:
    """Who an attestation says signed it, unverified: DSSE keyids, a bundle's key hint or
    certificate identity. Stored only as claims (verified = 0)."""
    claims: list[str] = [f"keyid:{s.keyid}" for s in attestation.envelope.signatures if s.keyid]
    material = (attestation.bundle or {}).get("verificationMaterial") or {}
    if isinstance(material, dict):
        hint = (material.get("publicKey") or {}).get("hint")
        if isinstance(hint, str) and hint:
            claims.append(f"keyid:{hint}")
        claims.extend(_certificate_identities(material))
    return tuple(dict.fromkeys(claims))


def _certificate_identities(material: dict[str, Any]) -> list[str]:
    """Subject alternative names of a bundle's leaf certificate (unverified)."""
    import base64

    cert = material.get("certificate") or {}
    chain = (material.get("x509CertificateChain") or {}).get("certificates") or []
    raw = cert.get("rawBytes") if isinstance(cert, dict) else None
    if not raw and chain and isinstance(chain[0], dict):
        raw = chain[0].get("rawBytes")
    if not isinstance(raw, str):
        return []
    try:
        from cryptography import x509

        parsed = x509.load_der_x509_certificate(base64.b64decode(raw))
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except Exception:  # no SAN or not a certificate: nothing to claim
        return []
    names = [str(v) for v in san.get_values_for_type(x509.RFC822Name)]
    names += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return names
