"""Functionaries: the signers a layout trusts, each able to say who of it signed an attestation.

A functionary's `identity` is what makes two of them the same entry (the public key
material, or issuer + subject pattern), so one key named twice in a layout counts once.
What `signer()` returns is who actually signed (the key, or issuer + the certificate's
identity): two entries that both match one certificate (an exact subject and a regex)
are still one signer, and `distinct_signers` counts them once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from securesystemslib.signer import Key, SSlibKey

from mlprov.errors import InputError, MlprovError
from mlprov.policy.layout import FunctionarySpec
from mlprov.signing.dsse import Envelope, key_identity, verify_envelope
from mlprov.signing.files import SignedAttestation
from mlprov.signing.keys import key_names, load_public_key


class Functionary(Protocol):
    """A signer named in a layout."""

    @property
    def name(self) -> str:
        """The name the layout gives it."""
        ...

    @property
    def identity(self) -> str:
        """What makes two functionaries the same signer."""
        ...

    def signer(self, attestation: SignedAttestation) -> str | None:
        """Who of this functionary signed the attestation (a key's or a certificate
        identity's normal form), or None when no signature of it verifies."""
        ...


@dataclass(frozen=True)
class KeyFunctionary:
    """A functionary identified by a public key (any type securesystemslib knows)."""

    name: str
    key: Key

    @property
    def identity(self) -> str:
        return key_identity(self.key)

    def signer(self, attestation: SignedAttestation) -> str | None:
        # As DSSE verifiers do (go-securesystemslib, attestation-verifier): a signature
        # whose keyid names another key is not this key's, even if the bytes verify.
        envelope = attestation.envelope
        names = key_names(self.key)
        mine = [s for s in envelope.signatures if not s.keyid or s.keyid in names]
        if not mine:
            return None
        candidate = Envelope(envelope.payload, envelope.payload_type, mine)
        try:
            verify_envelope(candidate, [self.key], source=attestation.source)
        except MlprovError:
            return None
        return self.identity


@dataclass(frozen=True)
class SigstoreFunctionary:
    """A keyless functionary: a Sigstore bundle whose certificate names this issuer and subject."""

    name: str
    issuer: str
    subject: str | None = None
    subject_regex: str | None = None
    trusted_root: Path | None = None
    staging: bool = False

    @property
    def identity(self) -> str:
        return f"sigstore:{self.issuer}:{self.subject or ''}:{self.subject_regex or ''}"

    def signer(self, attestation: SignedAttestation) -> str | None:
        if attestation.kind != "bundle":
            return None
        from mlprov.signing.sigstore_bundle import SigstoreIdentity, verify_bundle

        identity = SigstoreIdentity(
            issuer=self.issuer, subject=self.subject, subject_regex=self.subject_regex
        )
        try:
            matched = verify_bundle(
                attestation,
                identity=identity,
                trusted_root=self.trusted_root,
                staging=self.staging,
            )
        except MlprovError:
            return None
        return f"sigstore:{self.issuer}:{matched}"


def distinct_signers(signers: dict[str, set[str]]) -> int:
    """How many functionaries vouch through distinct signers: `signers` maps each
    functionary (by identity) to who of it signed; the answer is the largest number of
    them that can each be given a signer of their own (a bipartite matching), so one
    certificate matched by two functionaries' identities counts once."""
    owner: dict[str, str] = {}  # signer -> functionary it is given to

    def assign(functionary: str, seen: set[str]) -> bool:
        for who in sorted(signers[functionary]):
            if who in seen:
                continue
            seen.add(who)
            if who not in owner or assign(owner[who], seen):
                owner[who] = functionary
                return True
        return False

    return sum(assign(functionary, set()) for functionary in sorted(signers))


def _pem_key(pem: str, *, source: str) -> Key:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from mlprov.signing.keys import key_from_crypto

    try:
        return key_from_crypto(load_pem_public_key(pem.encode()))
    except ValueError:
        raise InputError(f"{source}: publicKey is not a PEM public key") from None


def build_functionary(
    name: str,
    spec: FunctionarySpec,
    *,
    base_dir: Path,
    trusted_root: Path | None = None,
    staging: bool = False,
) -> Functionary:
    """Turn a layout's functionary entry into something that can check signatures."""
    where = f"functionary {name!r}"
    if spec.sigstore is not None:
        if spec.sigstore.subjectRegex is not None:
            try:
                re.compile(spec.sigstore.subjectRegex)
            except re.error as exc:
                raise InputError(f"{where}: subjectRegex does not compile ({exc})") from None
        return SigstoreFunctionary(
            name=name,
            issuer=spec.sigstore.issuer,
            subject=spec.sigstore.subject,
            subject_regex=spec.sigstore.subjectRegex,
            trusted_root=trusted_root,
            staging=staging,
        )
    if spec.keyVal is not None:
        raw: dict[str, Any] = {
            "keytype": spec.keyType,
            "scheme": spec.scheme,
            "keyval": {"public": spec.keyVal.public},
        }
        try:
            key = SSlibKey.from_dict(spec.keyID or name, raw)
        except Exception as exc:  # securesystemslib raises several kinds for bad keys
            raise InputError(f"{where}: not a usable key ({exc})") from None
        return KeyFunctionary(name=name, key=key)
    if spec.publicKey is not None:
        return KeyFunctionary(name=name, key=_pem_key(spec.publicKey, source=where))
    assert spec.publicKeyPath is not None
    path = Path(spec.publicKeyPath)
    if not path.is_absolute():
        path = base_dir / path
    return KeyFunctionary(name=name, key=load_public_key(path))
