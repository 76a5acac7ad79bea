"""Deciding, before anything is stored, who verifiably signed each attestation.

A verifier is a small object with one method, `verify(attestation) -> SignerEvidence`,
raising VerificationError with the reason when the attestation does not verify. The
signature checks themselves live in `mlprov.signing.verify`; this module adapts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from securesystemslib.signer import Key

from mlprov.errors import InputError
from mlprov.signing.files import SignedAttestation
from mlprov.signing.sigstore_bundle import SigstoreIdentity, is_keyless_bundle
from mlprov.signing.verify import verify_signatures
from mlprov.store.store import SignerEvidence


class AttestationVerifier(Protocol):
    """Checks one attestation's signatures and says who signed it."""

    def verify(self, attestation: SignedAttestation) -> SignerEvidence: ...


class SignatureVerifier:
    """Signed by `threshold` distinct trusted `keys`, or (Sigstore bundles with a
    certificate) by one of the `identities`; signers are recorded as `keyid:<id>` or as
    the certificate identity that matched."""

    def __init__(
        self,
        *,
        keys: Sequence[Key] = (),
        identities: Sequence[SigstoreIdentity] = (),
        trusted_root: Path | None = None,
        staging: bool = False,
        threshold: int = 1,
    ) -> None:
        if not keys and not identities:
            raise InputError("give trusted keys or Sigstore identities to verify with")
        self.keys = list(keys)
        self.identities = list(identities)
        self.trusted_root = trusted_root
        self.staging = staging
        self.threshold = threshold

    def verify(self, attestation: SignedAttestation) -> SignerEvidence:
        signers = verify_signatures(
            attestation,
            keys=self.keys,
            identities=self.identities,
            trusted_root=self.trusted_root,
            staging=self.staging,
            threshold=self.threshold,
        )
        if attestation.kind == "bundle" and is_keyless_bundle(attestation):
            return SignerEvidence(tuple(signers))
        return SignerEvidence(tuple(f"keyid:{keyid}" for keyid in signers))
