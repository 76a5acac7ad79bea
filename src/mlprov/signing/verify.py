"""Verifying a signed attestation: signatures, payloadType, Statement, and subjects on disk.

This is the one place that decides whether a signed attestation is trusted. A keyless
Sigstore bundle needs a signer identity (`SigstoreIdentity`); a DSSE envelope or a
key-signed bundle (OMS style: `verificationMaterial.publicKey`, empty keyid) needs
public keys, and `threshold` counts distinct keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from securesystemslib.signer import Key

from mlprov.errors import InputError, VerificationError
from mlprov.signing.dsse import verify_envelope
from mlprov.signing.files import SignedAttestation
from mlprov.signing.sigstore_bundle import SigstoreIdentity, is_keyless_bundle, verify_bundle
from mlprov.statement import Statement


@dataclass(frozen=True)
class Check:
    """One check and its outcome, with where and why, for reports."""

    name: str
    passed: bool
    detail: str
    where: str = ""

    def line(self) -> str:
        """`ok|FAIL  name  where: detail` for text output."""
        where = f"{self.where}: " if self.where else ""
        return f"{'ok  ' if self.passed else 'FAIL'}  {self.name:<10} {where}{self.detail}"

    def to_dict(self) -> dict[str, object]:
        return {
            "check": self.name,
            "passed": self.passed,
            "detail": self.detail,
            "where": self.where,
        }


@dataclass
class VerifiedAttestation:
    """A signed attestation whose signatures held: its Statement and who signed it."""

    statement: Statement
    signers: list[str]
    source: str
    raw: bytes
    payload: bytes
    kind: Literal["dsse", "bundle"]
    checks: list[Check] = field(default_factory=list)


def verify_signatures(
    attestation: SignedAttestation,
    *,
    keys: Sequence[Key] = (),
    identities: Sequence[SigstoreIdentity] = (),
    trusted_root: Path | None = None,
    staging: bool = False,
    threshold: int = 1,
) -> list[str]:
    """Check the signatures only; returns the keyids or identities that verified."""
    source = attestation.source
    if attestation.kind == "bundle" and is_keyless_bundle(attestation):
        if not identities:
            raise VerificationError(
                f"{source}: signed with a certificate (Sigstore): give the expected"
                " signer with --identity and --issuer"
            )
        if threshold > 1:
            raise VerificationError(
                f"{source}: a Sigstore bundle has one signer; threshold {threshold} cannot be met"
            )
        failures = []
        for identity in identities:
            try:
                return [
                    verify_bundle(
                        attestation, identity=identity, trusted_root=trusted_root, staging=staging
                    )
                ]
            except VerificationError as exc:
                failures.append(str(exc))
        if len(failures) == 1:
            raise VerificationError(failures[0])
        raise VerificationError(f"{source}: no expected identity verified ({'; '.join(failures)})")
    if not keys:
        raise VerificationError(f"{source}: signed with keys: give the public key(s) with --key")
    result = verify_envelope(attestation.envelope, keys, threshold=threshold, source=source)
    return result.keyids


def verify_attestation(
    attestation: SignedAttestation,
    *,
    keys: Sequence[Key] = (),
    identities: Sequence[SigstoreIdentity] = (),
    trusted_root: Path | None = None,
    staging: bool = False,
    threshold: int = 1,
) -> VerifiedAttestation:
    """Verify signatures (threshold of distinct keys, or a Sigstore identity), the
    payloadType and the Statement's structure; raises VerificationError or InputError
    with the first failure, in one line.
    """
    signers = verify_signatures(
        attestation,
        keys=keys,
        identities=identities,
        trusted_root=trusted_root,
        staging=staging,
        threshold=threshold,
    )
    source = attestation.source
    checks = [Check("signature", True, f"signed by {', '.join(signers)}", source)]
    envelope = attestation.envelope
    try:
        statement = envelope.statement(source=source)
    except InputError as exc:  # signed, but not a usable Statement: the attestation fails
        raise VerificationError(str(exc)) from None
    checks.append(Check("payload", True, f"{envelope.payload_type}", source))
    checks.append(
        Check(
            "statement",
            True,
            f"in-toto Statement {statement.version}, {statement.predicateType}",
            source,
        )
    )
    return VerifiedAttestation(
        statement=statement,
        signers=signers,
        source=source,
        raw=attestation.raw,
        payload=envelope.payload,
        kind=attestation.kind,
        checks=checks,
    )
