"""OpenSSF Model Signing (OMS) interop: sign a model as `model_signing` does, verify theirs.

A model signature is a Sigstore bundle (v0.3) whose DSSE payload is an in-toto Statement
with the OMS v1.0 predicate. Tree digests come from `mlprov.digest.digest_tree`, which
matches model_signing byte for byte; verification recomputes the manifest exactly as
the signature says it was made (method, hash, shard size, ignore paths) and names every
file that changed, went missing or was added.
"""

from __future__ import annotations

import datetime
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
from mlprov.fsio import parse_json, read_input
from mlprov.predicates.oms import (
    OMS_HASH_TYPES,
    OmsPredicate,
    check_oms_bundle,
    oms_statement,
    parse_oms,
)
from mlprov.signing.bundle import key_bundle
from mlprov.signing.dsse import MAX_ENVELOPE_BYTES, sign_envelope, verify_envelope
from mlprov.signing.files import SignedAttestation, parse_attestation
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
    return Path(rel).as_posix()


def _matches(model: Path, rel: str) -> bool:
    path = model / rel
    return path.exists() or path.is_symlink()


@dataclass(frozen=True)
class IgnorePaths:
    """Ignore paths as the model's relative paths, and the given ones that matched nothing."""

    relative: list[str]
    unmatched: list[str]


def resolve_ignore_paths(model: Path, given: Sequence[str]) -> IgnorePaths:
    """Accept an ignore path relative to the model (`ignore-me`) or as given on the command
    line (`./model/ignore-me`, model_signing's `--ignore-paths` form, absolute or relative
    to the working directory).

    The form that names something inside the model is used; a path that names something
    both ways, differently, is refused as ambiguous. A path that matches nothing is kept
    (as the model-relative form; dropped when it lies outside the model) and reported in
    `unmatched`.
    """
    model = Path(model)
    relative: list[str] = []
    unmatched: list[str] = []
    for text in given:
        as_given = _relative_inside(Path(text), model) if model.is_dir() else None
        candidates = [c for c in (as_given,) if c]
        if not Path(text).is_absolute():
            try:
                candidates.append(_clean_ignore_path(text))
            except InputError:
                if not candidates:
                    raise
        candidates = list(dict.fromkeys(candidates))
        if not candidates:  # outside the model: model_signing skips it too
            unmatched.append(text)
            continue
        existing = [c for c in candidates if _matches(model, c)]
        if len(existing) > 1:
            raise InputError(
                f"ignore path {text!r} is ambiguous: it names both {existing[0]!r} and"
                f" {existing[1]!r} inside {model}; give the path relative to the model"
            )
        if existing:
            relative.append(existing[0])
        else:
            relative.append(candidates[-1])
            unmatched.append(text)
    return IgnorePaths(relative=list(dict.fromkeys(relative)), unmatched=unmatched)


def read_model_signature(path: Path) -> SignedAttestation:
    """Read an OMS signature bundle, refusing a malformed one before anything is hashed.

    The bundle, its envelope and its Statement are checked against mlprov's copy of the
    OMS v1.0 schemas (`check_oms_bundle`): exit 2 with the place that is wrong.
    """
    source = str(path)
    data = read_input(Path(path), limit=MAX_ENVELOPE_BYTES, what="model signature")
    if not data.strip():
        raise InputError(f"{source}: empty file, not an OMS signature bundle")
    check_oms_bundle(parse_json(data, source=source), source=source)
    return parse_attestation(data, source=source)


def check_serialization(algorithm: str, shard_size: int | None) -> None:
    """Refuse what no model_signing version signs or verifies: blake3 shards."""
    if algorithm not in OMS_HASH_TYPES:
        raise InputError(f"OMS signatures use {', '.join(OMS_HASH_TYPES)}, not {algorithm}")
    if algorithm == "blake3" and shard_size:
        raise InputError(
            "--shard-size cannot be used with --hash blake3: model_signing hashes blake3"
            " per file (it writes and verifies no blake3 shards); drop --shard-size"
        )


def model_manifest(
    model: Path,
    *,
    ignore_paths: Sequence[str] = (),
    algorithm: str = "sha256",
    shard_size: int | None = None,
    cache: DigestCache | None = None,
    progress: DigestProgress | None = None,
    follow_symlinks: bool = False,
) -> TreeManifest:
    """Digest a model as OMS does: ignore paths are relative to the root (prefixes);
    symlinks as the digest walk's rule says (model_signing's allow_symlinks)."""
    return digest_tree(
        model,
        algorithm=algorithm,
        ignore=[f"root:{p}" for p in ignore_paths],
        default_ignores=True,
        follow_symlinks=follow_symlinks,
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
    follow_symlinks: bool = False,
) -> Statement:
    """The OMS v1.0 Statement of a model directory (or single file).

    The signature file, when inside the model, is ignored; the ignore paths recorded
    are the given ones, the signature file and model_signing's defaults. The subject
    carries the model's facts (modelFacts); `allow_symlinks` records whether any
    symlink was followed (always for a hub snapshot, whose files are links).
    """
    model = Path(model)
    check_serialization(algorithm, shard_size)
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
        follow_symlinks=follow_symlinks,
    )
    recorded = list(dict.fromkeys([*ignored, *DEFAULT_IGNORES])) if model.is_dir() else []
    from mlprov.collect.model_formats import scan_model

    facts = scan_model(model, manifest).to_annotation()
    return oms_statement(
        manifest,
        ignore_paths=recorded,
        allow_symlinks=_followed_links(model, manifest),
        annotations={"modelFacts": facts},
    )


def _followed_links(model: Path, manifest: TreeManifest) -> bool:
    """Whether hashing the model went through a symlink (model_signing's allow_symlinks)."""
    if model.is_symlink():
        return True
    if not model.is_dir():
        return False
    names = {e.path.rsplit(":", 2)[0] if manifest.method == "shards" else e.path
             for e in manifest.files}  # fmt: skip
    return any(model.joinpath(*n.split("/")).is_symlink() for n in names)


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
    follow_symlinks: bool = False,
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
        follow_symlinks=follow_symlinks,
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


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # cryptography raises ValueError, TypeError or InvalidSignature
        return False
    return True


def _code_signing(_policy: Any, _cert: x509.Certificate, eku: Any) -> None:
    """The leaf's extended key usage must include code signing (as for Sigstore's leaves)."""
    if eku is None or x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise ValueError("the signing certificate's extended key usage lacks code signing")


def _digital_signature(_policy: Any, _cert: x509.Certificate, usage: Any) -> None:
    if usage is not None and not usage.digital_signature:
        raise ValueError("the signing certificate's key usage lacks digital signature")


def verify_certificate_chain(
    attestation: SignedAttestation,
    anchors: Sequence[Path],
    *,
    now: datetime.datetime | None = None,
) -> Key:
    """The signing key of a certificate-signed bundle whose chain reaches a given root.

    The path is built and checked by `cryptography.x509.verification` (RFC 5280 / WebPKI
    rules for the CAs: validity times, basic constraints, key usage, name chaining). Only
    the *self-signed* certificates given are trust anchors, as in model_signing (OpenSSL
    without partial chains): an intermediate or the leaf itself given as `--certificate-
    chain` vouches for nothing, though given beside its root it may complete the path.
    The leaf must allow code signing. With no transparency log to say when the bundle was
    signed, the chain is checked at the time of verification: an expired certificate no
    longer vouches for anything.
    """
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
    )
    from cryptography.x509.verification import (
        VerificationError as PathError,
    )

    given = _load_certificates(anchors)
    roots = [c for c in given if _self_signed(c)]
    if not roots:
        raise VerificationError(
            f"{attestation.source}: --certificate-chain holds no self-signed root certificate;"
            " an intermediate or a leaf is not a trust anchor"
        )
    chain = _bundle_certificates(attestation)
    leaf, intermediates = chain[0], [*chain[1:], *(c for c in given if c not in roots)]
    leaf_policy = (
        ExtensionPolicy.permit_all()
        .require_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _code_signing)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _digital_signature)
    )
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(now or datetime.datetime.now(datetime.UTC))
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, intermediates)
    except PathError as exc:
        raise VerificationError(
            f"{attestation.source}: certificate {leaf.subject.rfc4514_string()} does not chain"
            f" to a root of --certificate-chain: {_path_reason(exc, leaf, now)}"
        ) from None
    return key_from_crypto(leaf.public_key())


def _path_reason(exc: Exception, leaf: x509.Certificate, now: datetime.datetime | None) -> str:
    when = now or datetime.datetime.now(datetime.UTC)
    if not leaf.not_valid_before_utc <= when <= leaf.not_valid_after_utc:
        return (
            f"the signing certificate is outside its validity ({leaf.not_valid_before_utc}"
            f" to {leaf.not_valid_after_utc}): expired or not yet valid"
        )
    text = " ".join(str(exc).split())
    if "code signing" in text:
        return "the signing certificate's extended key usage lacks code signing"
    return text


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
    follow_symlinks: bool = False,
) -> ModelVerification:
    """Verify an OMS signature and that the model on disk is exactly what was signed.

    The bundle's structure is checked first (InputError), then the signature
    (VerificationError), then the predicate, and only then is the model hashed; the
    returned ModelVerification's `diff` names files that changed, went missing or were
    added (`ok` is False then).
    """
    if attestation.kind == "bundle":
        check_oms_bundle(attestation.bundle, source=attestation.source)
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
        follow_symlinks=follow_symlinks,
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
