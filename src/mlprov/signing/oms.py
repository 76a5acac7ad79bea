"""OpenSSF Model Signing (OMS) interop: sign a model as `model_signing` does, verify theirs.

A model signature is a Sigstore bundle (v0.3) whose DSSE payload is an in-toto Statement
with the OMS v1.0 predicate. Tree digests come from `mlprov.digest.digest_tree`, which
matches model_signing byte for byte; verification recomputes the manifest exactly as
the signature says it was made (method, hash, shard size, ignore paths) and names every
file that changed, went missing or was added.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from securesystemslib.signer import Key, Signer

from mlprov.digest import DEFAULT_IGNORES, DigestCache, ManifestDiff, TreeManifest, digest_tree
from mlprov.digest.manifest import diff_against
from mlprov.digest.tree import DigestProgress
from mlprov.errors import InputError, VerificationError
from mlprov.fsio import read_input
from mlprov.predicates.oms import OmsPredicate, oms_statement, parse_oms
from mlprov.signing.bundle import key_bundle
from mlprov.signing.dsse import sign_envelope, verify_envelope
from mlprov.signing.files import SignedAttestation
from mlprov.signing.keys import MAX_KEY_BYTES, key_from_crypto, pem_hint
from mlprov.signing.sigstore_bundle import SigstoreIdentity, verify_bundle
from mlprov.statement import Statement


def _relative_inside(path: Path, model: Path) -> str | None:
    """`path` relative to the model directory (POSIX), if it lies inside it."""
    try:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(model))
    except ValueError:
        return None
    if rel == "." or rel.startswith(".." + os.sep) or rel == "..":
        return None
    return Path(rel).as_posix()


def _clean_ignore_path(path: str) -> str:
    rel = path.strip().strip("/")
    if not rel or rel == "." or ".." in Path(rel).parts or Path(rel).is_absolute():
        raise InputError(f"ignore path {path!r} must be a relative path inside the model")
    return rel


def model_manifest(
    model: Path,
    *,
    ignore_paths: Sequence[str] = (),
    algorithm: str = "sha256",
    shard_size: int | None = None,
    cache: DigestCache | None = None,
    progress: DigestProgress | None = None,
) -> TreeManifest:
    """Digest a model as OMS does: ignore paths are relative to the root (prefixes)."""
    return digest_tree(
        model,
        algorithm=algorithm,
        ignore=[f"root:{p}" for p in ignore_paths],
        default_ignores=True,
        shard_size=shard_size,
        cache=cache,
        progress=progress.advance if progress else None,
        on_total=progress.set_total if progress else None,
    )


def model_statement(
    model: Path,
    *,
    signature_path: Path | None = None,
    ignore_paths: Sequence[str] = (),
    algorithm: str = "sha256",
    shard_size: int | None = None,
    cache: DigestCache | None = None,
    progress: DigestProgress | None = None,
) -> Statement:
    """The OMS v1.0 Statement of a model directory (or single file).

    The signature file, when inside the model, is ignored; the ignore paths recorded
    are the given ones, the signature file and model_signing's defaults.
    """
    model = Path(model)
    ignored = [_clean_ignore_path(p) for p in ignore_paths]
    if signature_path is not None:
        inside = _relative_inside(signature_path, model)
        if inside:
            ignored.append(inside)
    manifest = model_manifest(
        model,
        ignore_paths=ignored,
        algorithm=algorithm,
        shard_size=shard_size,
        cache=cache,
        progress=progress,
    )
    recorded = list(dict.fromkeys([*ignored, *DEFAULT_IGNORES])) if model.is_dir() else []
    return oms_statement(manifest, ignore_paths=recorded)


def sign_model(
    model: Path,
    *,
    signer: Signer,
    signature_path: Path | None = None,
    ignore_paths: Sequence[str] = (),
    algorithm: str = "sha256",
    shard_size: int | None = None,
    cache: DigestCache | None = None,
    progress: DigestProgress | None = None,
) -> dict[str, Any]:
    """An OMS v1.0 key-signed bundle for a model, as `model_signing sign key` writes."""
    statement = model_statement(
        model,
        signature_path=signature_path,
        ignore_paths=ignore_paths,
        algorithm=algorithm,
        shard_size=shard_size,
        cache=cache,
        progress=progress,
    )
    envelope = sign_envelope(statement.to_bytes(), [signer])
    return key_bundle(envelope, signer.public_key)


@dataclass
class ModelVerification:
    """What verifying a model against its signature found."""

    signers: list[str]
    statement: Statement
    predicate: OmsPredicate
    diff: ManifestDiff
    actual_digest: str
    ignore_paths: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.diff.ok


def _bundle_material(attestation: SignedAttestation) -> dict[str, Any]:
    material = (attestation.bundle or {}).get("verificationMaterial")
    return material if isinstance(material, dict) else {}


def _load_certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for path in paths:
        data = read_input(path, limit=MAX_KEY_BYTES, what="certificate chain")
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except ValueError:
            raise InputError(f"certificate chain {path}: not PEM certificates") from None
    if not certs:
        raise InputError("no certificates given for --certificate-chain")
    return certs


def _bundle_certificates(attestation: SignedAttestation) -> list[x509.Certificate]:
    import base64

    material = _bundle_material(attestation)
    chain = material.get("x509CertificateChain", {})
    items = chain.get("certificates") if isinstance(chain, dict) else None
    if not items and isinstance(material.get("certificate"), dict):
        items = [material["certificate"]]
    if not isinstance(items, list) or not items:
        raise VerificationError(f"{attestation.source}: bundle carries no certificate chain")
    try:
        return [x509.load_der_x509_certificate(base64.b64decode(i["rawBytes"])) for i in items]
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{attestation.source}: bundle certificates are malformed") from None


def _can_sign(cert: x509.Certificate) -> bool:
    try:
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    except x509.ExtensionNotFound:
        pass
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        return x509.oid.ExtendedKeyUsageOID.CODE_SIGNING in eku
    except x509.ExtensionNotFound:
        return False


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def verify_certificate_chain(attestation: SignedAttestation, anchors: Sequence[Path]) -> Key:
    """The signing key of a certificate-signed bundle whose chain reaches a given certificate.

    As model_signing does, the chain is checked at the leaf's notBefore (there is no
    transparency log to say when it signed); every issuer must be a CA, and the leaf
    must allow digital signatures or code signing.
    """
    trusted = _load_certificates(anchors)
    chain = _bundle_certificates(attestation)
    leaf = chain[0]
    when = leaf.not_valid_before_utc
    pool = chain[1:] + trusted
    current = leaf
    for _ in range(len(pool) + 1):
        if not current.not_valid_before_utc <= when <= current.not_valid_after_utc:
            raise VerificationError(
                f"{attestation.source}: certificate {current.subject.rfc4514_string()}"
                f" was not valid at signing time {when.isoformat()}"
            )
        if current in trusted:
            break
        issuer = next((c for c in pool if c != current and _issued(current, c)), None)
        if issuer is None:
            raise VerificationError(
                f"{attestation.source}: certificate {current.subject.rfc4514_string()} does not"
                " chain to the given --certificate-chain"
            )
        if not _is_ca(issuer):
            raise VerificationError(
                f"{attestation.source}: issuer {issuer.subject.rfc4514_string()} is not a CA"
            )
        current = issuer
    else:
        raise VerificationError(f"{attestation.source}: certificate chain loops")
    if not _can_sign(leaf):
        raise VerificationError(f"{attestation.source}: signing certificate cannot sign")
    return key_from_crypto(leaf.public_key())


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, Exception):
        return False


def verify_model_signature(
    attestation: SignedAttestation,
    *,
    keys: Sequence[Key] = (),
    certificate_chain: Sequence[Path] = (),
    identity: SigstoreIdentity | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
) -> list[str]:
    """Check the signature of an OMS bundle by exactly one of: keys, a CA chain, an identity."""
    given = sum(1 for x in (keys, certificate_chain, identity) if x)
    if given != 1:
        raise InputError(
            "verify with exactly one of --key, --certificate-chain or --identity/--issuer"
        )
    source = attestation.source
    if attestation.kind != "bundle":
        raise InputError(f"{source}: a model signature is a Sigstore bundle, not a bare envelope")
    if identity is not None:
        return [
            verify_bundle(
                attestation, identity=identity, trusted_root=trusted_root, staging=staging
            )
        ]
    if certificate_chain:
        key = verify_certificate_chain(attestation, certificate_chain)
        verify_envelope(attestation.envelope, [key], source=source)
        return [key.keyid]
    try:
        return verify_envelope(attestation.envelope, keys, source=source).keyids
    except VerificationError as exc:
        hint = _bundle_material(attestation).get("publicKey", {})
        named = hint.get("hint") if isinstance(hint, dict) else None
        if isinstance(named, str) and named and named not in {_safe_hint(k) for k in keys}:
            raise VerificationError(f"{exc} (the bundle names key sha256:{named})") from None
        raise


def _safe_hint(key: Key) -> str:
    try:
        return pem_hint(key)
    except InputError:
        return ""


def verify_model(
    model: Path,
    attestation: SignedAttestation,
    *,
    keys: Sequence[Key] = (),
    certificate_chain: Sequence[Path] = (),
    identity: SigstoreIdentity | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
    ignore_paths: Sequence[str] = (),
    signature_path: Path | None = None,
    cache: DigestCache | None = None,
    progress: DigestProgress | None = None,
) -> ModelVerification:
    """Verify an OMS signature and that the model on disk is exactly what was signed.

    Signature failures raise VerificationError; the returned ModelVerification's
    `diff` names files that changed, went missing or were added (`ok` is False then).
    """
    signers = verify_model_signature(
        attestation,
        keys=keys,
        certificate_chain=certificate_chain,
        identity=identity,
        trusted_root=trusted_root,
        staging=staging,
    )
    source = attestation.source
    statement = attestation.envelope.statement(source=source)
    predicate = parse_oms(statement, source=source)
    serialization = predicate.serialization
    ignored = [_clean_ignore_path(p) for p in [*serialization.ignore_paths, *ignore_paths]]
    if signature_path is not None:
        inside = _relative_inside(signature_path, model)
        if inside:
            ignored.append(inside)
    actual = model_manifest(
        model,
        ignore_paths=ignored,
        algorithm=serialization.hash_type,
        shard_size=serialization.shard_size if serialization.method == "shards" else None,
        cache=cache,
        progress=progress,
    )
    diff = _diff(predicate, actual)
    return ModelVerification(
        signers=signers,
        statement=statement,
        predicate=predicate,
        diff=diff,
        actual_digest=actual.digest,
        ignore_paths=ignored,
    )


def _diff(predicate: OmsPredicate, actual: TreeManifest) -> ManifestDiff:
    return diff_against({r.name: r.digest for r in predicate.resources}, actual)
