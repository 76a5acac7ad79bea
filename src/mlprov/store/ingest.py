"""Deciding, before anything is stored, who verifiably signed each attestation.

A verifier is a small object with one method, `verify(attestation) -> SignerEvidence`,
raising VerificationError with the reason when the attestation does not verify. The
signature checks themselves live in `mlprov.signing`; this module only composes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from securesystemslib.signer import Key

from mlprov.errors import InputError, VerificationError
from mlprov.signing.dsse import verify_envelope
from mlprov.signing.files import SignedAttestation
from mlprov.store.store import SignerEvidence


class AttestationVerifier(Protocol):
    """Checks one attestation's signatures and says who signed it."""

    def verify(self, attestation: SignedAttestation) -> SignerEvidence: ...


class KeyVerifier:
    """Signed by at least `threshold` distinct keys among `keys` (DSSE, or a bundle's DSSE)."""

    def __init__(self, *, keys: Sequence[Key], threshold: int = 1) -> None:
        if not keys:
            raise InputError("no trusted keys given to verify with")
        self.keys = list(keys)
        self.threshold = threshold

    def verify(self, attestation: SignedAttestation) -> SignerEvidence:
        result = verify_envelope(
            attestation.envelope,
            self.keys,
            threshold=self.threshold,
            source=attestation.source,
        )
        return SignerEvidence(tuple(f"keyid:{key.keyid}" for key in result.keys))


class AnyOfVerifiers:
    """Verified when any one of several verifiers accepts; the reasons of all when none do.

    An empty list never verifies: refusing is the safe default.
    """

    def __init__(self, verifiers: Sequence[AttestationVerifier]) -> None:
        self.verifiers = list(verifiers)

    def verify(self, attestation: SignedAttestation) -> SignerEvidence:
        if not self.verifiers:
            raise VerificationError(f"{attestation.source}: no verifier configured")
        reasons = []
        for verifier in self.verifiers:
            try:
                return verifier.verify(attestation)
            except VerificationError as exc:
                reasons.append(str(exc))
        if len(reasons) == 1:
            raise VerificationError(reasons[0])
        raise VerificationError("; ".join(reasons))
