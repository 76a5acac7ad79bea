"""Sigstore bundles: verify keyless (Fulcio certificate + Rekor) DSSE bundles fully offline.

Verification is the `sigstore` library's Verifier against a pinned trusted root (a file,
or the root embedded in the installed sigstore package), with a required signer identity
and issuer: there is no "any identity" default here. Key-signed bundles (OMS style,
`verificationMaterial.publicKey`) are not Sigstore-keyless and are verified with keys in
`mlprov.signing.verify`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.x509 import (
    Certificate,
    ExtensionNotFound,
    ObjectIdentifier,
    OtherName,
    RFC822Name,
    SubjectAlternativeName,
    UniformResourceIdentifier,
)

from mlprov.errors import InputError, VerificationError
from mlprov.fsio import read_input
from mlprov.signing.files import SignedAttestation

if TYPE_CHECKING:
    from sigstore.models import Bundle, TrustedRoot

#: Fulcio's OIDC issuer extensions (v1 raw string, v2 DER UTF8String) and its "other name" SAN.
_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
_OTHERNAME_SAN = ObjectIdentifier("1.3.6.1.4.1.57264.1.7")
#: Largest trusted root file read (the production root is about 7 kB).
MAX_TRUSTED_ROOT_BYTES = 4 << 20


@dataclass(frozen=True, kw_only=True)
class SigstoreIdentity:
    """Who must have signed: the certificate SAN (exact or regex, full match) and OIDC issuer."""

    issuer: str
    subject: str | None = None
    subject_regex: str | None = None

    def __post_init__(self) -> None:
        if not self.issuer:
            raise InputError("a Sigstore identity needs its OIDC issuer (--issuer)")
        if (self.subject is None) == (self.subject_regex is None):
            raise InputError("a Sigstore identity needs exactly one of subject or subject_regex")
        if self.subject_regex is not None:
            try:
                re.compile(self.subject_regex)
            except re.error as exc:
                raise InputError(f"bad identity regex {self.subject_regex!r}: {exc}") from None

    def describe(self) -> str:
        """`subject (issuer)` for messages."""
        who = self.subject if self.subject is not None else f"~{self.subject_regex}"
        return f"{who} ({self.issuer})"

    def matches(self, sans: set[str]) -> str | None:
        """The SAN that satisfies this identity, if any."""
        if self.subject is not None:
            return self.subject if self.subject in sans else None
        pattern = re.compile(self.subject_regex or "")
        return next((s for s in sorted(sans) if pattern.fullmatch(s)), None)


def certificate_sans(cert: Certificate) -> set[str]:
    """Email, URI and Sigstore other-name SANs of a certificate."""
    try:
        san = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    except ExtensionNotFound:
        return set()
    found = set(san.get_values_for_type(RFC822Name))
    found.update(san.get_values_for_type(UniformResourceIdentifier))
    for other in san.get_values_for_type(OtherName):
        if other.type_id == _OTHERNAME_SAN:
            found.add(_der_utf8(other.value))
    return found


def _der_utf8(value: bytes) -> str:
    """A DER UTF8String's text (or the raw bytes decoded, as sigstore's v1 extensions are)."""
    if len(value) >= 2 and value[0] == 0x0C and value[1] < 0x80 and len(value) == value[1] + 2:
        return value[2:].decode(errors="replace")
    return value.decode(errors="replace")


def certificate_issuer(cert: Certificate) -> str | None:
    """The OIDC issuer Fulcio recorded in a certificate (v1 or v2 extension)."""
    for oid in (_ISSUER_V1, _ISSUER_V2):
        try:
            ext = cert.extensions.get_extension_for_oid(oid).value
        except ExtensionNotFound:
            continue
        raw: bytes = ext.value  # type: ignore[attr-defined]
        return _der_utf8(raw) if oid == _ISSUER_V2 else raw.decode(errors="replace")
    return None


class IdentityPolicy:
    """A sigstore VerificationPolicy: the certificate's issuer and a SAN must match."""

    def __init__(self, identity: SigstoreIdentity) -> None:
        self.identity = identity
        self.matched: str | None = None

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError as SigstoreVerificationError

        issuer = certificate_issuer(cert)
        if issuer != self.identity.issuer:
            raise SigstoreVerificationError(
                f"certificate issuer is {issuer!r}, expected {self.identity.issuer!r}"
            )
        sans = certificate_sans(cert)
        matched = self.identity.matches(sans)
        if matched is None:
            want = self.identity.subject or f"regex {self.identity.subject_regex}"
            raise SigstoreVerificationError(
                f"certificate identity {sorted(sans)} does not match {want}"
            )
        self.matched = matched


def embedded_trusted_root(*, staging: bool = False) -> Path:
    """The trusted root that ships inside the installed sigstore package (offline)."""
    import sigstore._store as store

    host = "tuf-repo-cdn.sigstage.dev" if staging else "tuf-repo-cdn.sigstore.dev"
    path = Path(store.__file__).parent / f"https%3A%2F%2F{host}" / "trusted_root.json"
    if not path.is_file():  # pragma: no cover - depends on the sigstore build
        raise InputError("the installed sigstore has no embedded trusted root: use --trusted-root")
    return path


def load_trusted_root(trusted_root: Path | None, *, staging: bool = False) -> TrustedRoot:
    """A sigstore TrustedRoot from a file (or the embedded production/staging root)."""
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    path = trusted_root or embedded_trusted_root(staging=staging)
    data = read_input(path, limit=MAX_TRUSTED_ROOT_BYTES, what="trusted root")
    try:
        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(data))
    except Exception as exc:
        raise InputError(
            f"trusted root {path}: not a usable Sigstore trusted root ({exc})"
        ) from None


def _parse_bundle(attestation: SignedAttestation) -> Bundle:
    from sigstore.models import Bundle

    try:
        return Bundle.from_json(attestation.raw)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{attestation.source}: not a valid Sigstore bundle ({reason})") from None


def is_keyless_bundle(attestation: SignedAttestation) -> bool:
    """True for a bundle carrying a signing certificate (keyless or CA-issued)."""
    material = (attestation.bundle or {}).get("verificationMaterial")
    if not isinstance(material, dict):
        return False
    return "certificate" in material or "x509CertificateChain" in material


def verify_bundle(
    attestation: SignedAttestation,
    *,
    identity: SigstoreIdentity,
    trusted_root: Path | None = None,
    staging: bool = False,
) -> str:
    """Verify a Sigstore DSSE bundle offline; returns the certificate SAN that matched.

    Checks the certificate chain to the trusted root's Fulcio CAs at the signing time,
    the transparency-log entry or timestamps, the identity and issuer, and the DSSE
    signature, and that the verified payload is the attestation's payload. Raises
    VerificationError with the reason, InputError for an unusable bundle or root.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.verify import Verifier

    if attestation.kind != "bundle":
        raise InputError(f"{attestation.source}: not a Sigstore bundle")
    if not is_keyless_bundle(attestation):
        raise VerificationError(
            f"{attestation.source}: bundle has no signing certificate (key-signed):"
            " verify it with --key"
        )
    bundle = _parse_bundle(attestation)
    root = load_trusted_root(trusted_root, staging=staging)
    policy = IdentityPolicy(identity)
    try:
        verifier = Verifier(trusted_root=root)
        payload_type, payload = verifier.verify_dsse(bundle, policy)
    except SigstoreError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if any(w in reason.lower() for w in ("verified time", "chain", "certificate authorit")):
            root_name = trusted_root or ("staging" if staging else "production")
            reason += f" (is the trusted root, {root_name}, the instance that signed it?)"
        raise VerificationError(
            f"{attestation.source}: Sigstore verification failed: {reason}"
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise VerificationError(
            f"{attestation.source}: Sigstore verification failed: {type(exc).__name__}: {exc}"
        ) from None
    if payload != attestation.envelope.payload or payload_type != attestation.envelope.payload_type:
        raise VerificationError(f"{attestation.source}: verified payload differs from the bundle's")
    if policy.matched is None:  # pragma: no cover - the policy always runs before success
        raise VerificationError(f"{attestation.source}: identity was not checked")
    return policy.matched
