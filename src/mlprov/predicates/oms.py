"""OpenSSF Model Signing (OMS) v1.0 predicate: how a model was serialized and each resource.

Compatible with the `model-signing` package (1.x): `files` and `shards` methods, hash
types sha256, blake2b and blake3 (shard resources use `<hash>-sharded-<size>`), ignore
paths recorded relative to the model root.

`check_oms_bundle` holds mlprov's own copy of the OMS v1.0 JSON Schemas' rules (bundle,
envelope, statement, predicate), so a malformed bundle is refused, saying where, before
any signature is checked or any file hashed; tests compare it with the spec's schemas.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from mlprov.digest import TreeManifest, tree_digest
from mlprov.display import display_name
from mlprov.errors import InputError
from mlprov.predicates import OMS_V1
from mlprov.statement import STATEMENT_TYPE, ResourceDescriptor, Statement

#: Hash types of the OMS algorithm registry that model_signing signs and verifies.
OMS_HASH_TYPES = ("sha256", "blake2b", "blake3")
#: The predicate of model_signing 0.2.x signatures: a pre-1.0 format mlprov does not read.
PRE_1_0_PREDICATE = "https://model_signing/Digests/v0.1"
#: What to tell the holder of a signature in a format mlprov does not read.
SUPPORTED_FORMATS = (
    f"mlprov reads OMS v1.0 signatures ({OMS_V1}), as written by model_signing 0.3.1"
    " and later (1.x)"
)


class OmsSerialization(BaseModel):
    """The predicate's `serialization`: enough to recompute the manifest."""

    model_config = ConfigDict(extra="allow")

    method: Literal["files", "shards"]
    hash_type: str
    allow_symlinks: bool = False
    shard_size: int | None = None
    ignore_paths: list[str] = Field(default_factory=list)

    @field_validator("shard_size", mode="before")
    @classmethod
    def _integral(cls, value: Any) -> Any:
        # model_signing writes it through protobuf Struct, so 1024 arrives as 1024.0.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class OmsResource(BaseModel):
    """One file (or `path:start:end` shard) of the model and its digest."""

    model_config = ConfigDict(extra="allow")

    name: str
    algorithm: str
    digest: str


class OmsPredicate(BaseModel):
    """`https://model_signing/signature/v1.0`: serialization and resources."""

    model_config = ConfigDict(extra="allow")

    serialization: OmsSerialization
    resources: list[OmsResource]

    def resource_algorithm(self) -> str:
        """The algorithm name every resource must carry for this serialization."""
        s = self.serialization
        if s.method == "shards":
            return f"{s.hash_type}-sharded-{s.shard_size}"
        return s.hash_type

    def as_dict(self) -> dict[str, str]:
        """Resource name to hex digest."""
        return {r.name: r.digest for r in self.resources}


def parse_oms(statement: Statement, *, source: str) -> OmsPredicate:
    """The OMS predicate of a Statement, checked for internal consistency.

    Checks the predicate type, the serialization, that every resource uses the
    serialization's algorithm, that names are unique, and that the subject digest is
    sha256 over the resource digests in order (so the subject identifies the files).
    """
    if statement.predicateType != OMS_V1:
        raise InputError(
            f"{source}: predicateType is {statement.predicateType!r}, expected {OMS_V1}"
        )
    try:
        predicate = OmsPredicate.model_validate(statement.predicate or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"]) or "(root)"
        raise InputError(f"{source}: invalid OMS predicate at /{where}: {first['msg']}") from None
    serialization = predicate.serialization
    if serialization.hash_type not in OMS_HASH_TYPES:
        raise InputError(
            f"{source}: hash_type {serialization.hash_type!r} is not supported"
            f" (supported: {', '.join(OMS_HASH_TYPES)})"
        )
    if serialization.method == "shards" and not (serialization.shard_size or 0) > 0:
        raise InputError(f"{source}: shards serialization without a positive shard_size")
    want = predicate.resource_algorithm()
    seen: set[str] = set()
    for resource in predicate.resources:
        if resource.algorithm != want:
            raise InputError(
                f"{source}: resource {resource.name!r} uses {resource.algorithm}, expected {want}"
            )
        if resource.name in seen:
            raise InputError(f"{source}: resource {resource.name!r} is listed twice")
        seen.add(resource.name)
        try:
            bytes.fromhex(resource.digest)
        except ValueError:
            raise InputError(f"{source}: resource {resource.name!r} digest is not hex") from None
    if len(statement.subject) != 1:
        raise InputError(f"{source}: an OMS Statement has exactly one subject")
    subject_digest = (statement.subject[0].digest or {}).get("sha256")
    if subject_digest != tree_digest(r.digest for r in predicate.resources):
        raise InputError(f"{source}: subject digest does not match the listed resources")
    return predicate


def oms_statement(
    manifest: TreeManifest,
    *,
    ignore_paths: list[str],
    allow_symlinks: bool = False,
    annotations: dict[str, Any] | None = None,
) -> Statement:
    """The OMS v1.0 Statement of a tree manifest made by `mlprov.digest.digest_tree`;
    `annotations` (the model's facts) go on the subject, which model_signing ignores."""
    if manifest.algorithm not in OMS_HASH_TYPES:
        raise InputError(
            f"OMS signatures use {' or '.join(OMS_HASH_TYPES)}, not {manifest.algorithm}"
        )
    serialization: dict[str, Any] = {
        "method": manifest.method,
        "hash_type": manifest.algorithm,
        "allow_symlinks": allow_symlinks,
        "ignore_paths": ignore_paths,
    }
    algorithm = manifest.algorithm
    if manifest.method == "shards":
        serialization["shard_size"] = manifest.shard_size
        algorithm = f"{manifest.algorithm}-sharded-{manifest.shard_size}"
    resources = [
        {"name": entry.path, "algorithm": algorithm, "digest": entry.digest}
        for entry in manifest.files
    ]
    for name in (manifest.name, *(entry.path for entry in manifest.files)):
        _check_utf8(name)
    return Statement(
        subject=[
            ResourceDescriptor(
                name=manifest.name,
                digest={"sha256": manifest.digest},
                annotations=annotations or None,
            )
        ],
        predicateType=OMS_V1,
        predicate={"serialization": serialization, "resources": resources},
    )


def _check_utf8(name: str) -> None:
    """Refuse a file name with bytes that are not UTF-8: JSON can only carry it as a lone
    surrogate, which no strict reader (ours, Go's, jq) takes back as that name."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            f"{display_name(name)}: file name is not UTF-8; an OMS signature cannot name it"
            " (rename it, or leave it out with --ignore-paths)"
        ) from None


# -- structure: mlprov's copy of the OMS v1.0 JSON Schemas' rules -------------------------

_Text = Annotated[StrictStr, Field(min_length=1)]
_HEX = re.compile(r"^[0-9a-f]+\Z")
#: model_signing names shard digests `<hash>-sharded-<size>` (the spec's schema lists only
#: the bare hash names); both are accepted when read.
_SHARDED = re.compile(r"^(sha256|blake2b|blake3)-sharded-[1-9][0-9]*\Z")


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class _DsseSignature(_Closed):
    sig: _Text
    keyid: StrictStr | None = None


class _DsseEnvelope(_Closed):
    payload: _Text
    payloadType: Literal["application/vnd.in-toto+json"]
    signatures: list[_DsseSignature] = Field(min_length=1)


class _Certificate(_Open):
    rawBytes: _Text


class _CertificateChain(_Open):
    certificates: list[_Certificate] = Field(min_length=1)


class _PublicKeyIdentifier(_Open):
    hint: StrictStr | None = None
    rawBytes: StrictStr | None = None

    @model_validator(mode="after")
    def _named(self) -> _PublicKeyIdentifier:
        if self.hint is None and self.rawBytes is None:
            raise ValueError("publicKey needs a hint or rawBytes")
        return self


class _LogId(_Open):
    keyId: StrictStr | None = None


class _TlogEntry(_Open):
    logIndex: StrictStr | None = None
    logId: _LogId | None = None
    kindVersion: dict[str, StrictStr] | None = None
    integratedTime: StrictStr | None = None
    inclusionPromise: dict[str, StrictStr] | None = None
    inclusionProof: dict[str, Any] | None = None
    canonicalizedBody: StrictStr | None = None


class _TimestampData(_Open):
    rfc3161Timestamps: list[dict[str, StrictStr]] | None = None


class _KeyMaterial(_Open):
    publicKey: _PublicKeyIdentifier
    tlogEntries: list[_TlogEntry] | None = None
    timestampVerificationData: _TimestampData | None = None


class _ChainMaterial(_Open):
    x509CertificateChain: _CertificateChain
    tlogEntries: list[_TlogEntry] | None = None
    timestampVerificationData: _TimestampData | None = None


class _SigstoreMaterial(_Open):
    certificate: _Certificate
    tlogEntries: list[_TlogEntry]
    timestampVerificationData: _TimestampData | None = None

    @field_validator("tlogEntries")
    @classmethod
    def _logged(cls, value: list[_TlogEntry]) -> list[_TlogEntry]:
        if not value:
            raise ValueError("a Sigstore certificate needs at least one tlogEntries entry")
        return value


#: The schema's three signing methods, each with the field that selects it.
_METHODS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("publicKey", _KeyMaterial),
    ("x509CertificateChain", _ChainMaterial),
    ("certificate", _SigstoreMaterial),
)


def _verification_material(value: Any) -> Any:
    """The schema's anyOf: valid when one method's fields are; else that method's error."""
    if not isinstance(value, dict):
        raise ValueError("verificationMaterial must be an object")
    failures: list[str] = []
    for field_name, method in _METHODS:
        try:
            method.model_validate(value)
            return value
        except ValidationError as exc:
            if field_name in value:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                message = str(first["msg"]).removeprefix("Value error, ")
                failures.append(f"{where}: {message}")
    if failures:
        raise ValueError(failures[0])
    raise ValueError(
        "no signing material: expected publicKey (key), x509CertificateChain"
        " (certificate) or certificate with tlogEntries (Sigstore)"
    )


class _OmsBundleDoc(_Closed):
    mediaType: Annotated[StrictStr, Field(pattern=r"^application/vnd\.dev\.sigstore\.bundle")]
    verificationMaterial: dict[str, Any]
    dsseEnvelope: _DsseEnvelope

    @field_validator("verificationMaterial", mode="before")
    @classmethod
    def _one_method(cls, value: Any) -> Any:
        return _verification_material(value)


class _Subject(_Open):
    name: _Text
    digest: dict[str, StrictStr] = Field(min_length=1)

    @field_validator("digest")
    @classmethod
    def _hex(cls, value: dict[str, str]) -> dict[str, str]:
        for algorithm, digest in value.items():
            if not _HEX.match(digest):
                raise ValueError(f"digest {algorithm} is not lower-case hex")
        return value


class _ResourceDoc(_Open):
    name: _Text
    digest: StrictStr
    algorithm: StrictStr

    @field_validator("digest")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError("digest is not lower-case hex")
        return value

    @field_validator("algorithm")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in OMS_HASH_TYPES and not _SHARDED.match(value):
            raise ValueError(f"algorithm {value!r} is not one of {', '.join(OMS_HASH_TYPES)}")
        return value


def _integral(value: Any) -> Any:
    # JSON Schema's integer includes 1024.0 (model_signing writes it through protobuf Struct).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class _SerializationDoc(_Closed):
    method: Literal["files", "shards"]
    hash_type: Literal["sha256", "blake2b", "blake3"]
    allow_symlinks: StrictBool
    shard_size: Annotated[int, Field(gt=0)] | None = None
    ignore_paths: list[_Text] | None = None

    @field_validator("shard_size", mode="before")
    @classmethod
    def _integral_shard_size(cls, value: Any) -> Any:
        return _integral(value)

    @model_validator(mode="after")
    def _shards_sized(self) -> _SerializationDoc:
        if self.method == "shards" and self.shard_size is None:
            raise ValueError("method shards needs a shard_size")
        return self


class _PredicateDoc(_Closed):
    resources: list[_ResourceDoc]
    serialization: _SerializationDoc


class _StatementDoc(_Closed):
    type_: Literal["https://in-toto.io/Statement/v1"] = Field(alias="_type")
    subject: list[_Subject] = Field(min_length=1, max_length=1)
    predicateType: Literal["https://model_signing/signature/v1.0"]
    predicate: _PredicateDoc


def _first_error(exc: ValidationError, what: str, source: str) -> InputError:
    first = exc.errors()[0]
    where = "/".join(str(p) for p in first["loc"]) or "(root)"
    message = str(first["msg"]).removeprefix("Value error, ")
    return InputError(f"{source}: not an OMS v1.0 {what}: at /{where}: {message}")


def _decoded_payload(bundle: dict[str, Any]) -> Any:
    """The envelope's payload as JSON, or None when there is none to read."""
    envelope = bundle.get("dsseEnvelope")
    payload = envelope.get("payload") if isinstance(envelope, dict) else None
    if not isinstance(payload, str):
        return None
    try:
        return json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        return None


def check_oms_bundle(bundle: object, *, source: str) -> None:
    """Refuse, with one line naming the place, a bundle that breaks the OMS v1.0 schemas.

    Checks the bundle, its DSSE envelope and the Statement in the payload (the bundle,
    envelope, statement and predicate schemas), before any signature or digest. A
    model_signing 0.2.x signature is named as such, with the versions that are read.
    """
    if not isinstance(bundle, dict):
        raise InputError(f"{source}: an OMS signature is a JSON object (a Sigstore bundle)")
    if "payloadType" in bundle and "mediaType" not in bundle:
        raise InputError(
            f"{source}: a bare DSSE envelope; an OMS signature is a Sigstore bundle holding one"
        )
    statement = _decoded_payload(bundle)
    if isinstance(statement, dict) and statement.get("predicateType") == PRE_1_0_PREDICATE:
        raise InputError(
            f"{source}: a model_signing 0.2.x signature ({PRE_1_0_PREDICATE}): that pre-1.0"
            f" format is not supported; {SUPPORTED_FORMATS}"
        )
    try:
        _OmsBundleDoc.model_validate(bundle)
    except ValidationError as exc:
        raise _first_error(exc, "bundle", source) from None
    if statement is None:
        raise InputError(f"{source}: not an OMS v1.0 bundle: the payload is not base64 JSON")
    if isinstance(statement, dict) and statement.get("_type") != STATEMENT_TYPE:
        raise InputError(
            f"{source}: not an OMS v1.0 statement: _type is {statement.get('_type')!r},"
            f" expected {STATEMENT_TYPE}"
        )
    if isinstance(statement, dict) and statement.get("predicateType") != OMS_V1:
        raise InputError(
            f"{source}: not an OMS v1.0 statement: predicateType is"
            f" {statement.get('predicateType')!r}, expected {OMS_V1}"
        )
    try:
        _StatementDoc.model_validate(statement)
    except ValidationError as exc:
        raise _first_error(exc, "statement", source) from None
