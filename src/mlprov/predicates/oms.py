"""OpenSSF Model Signing (OMS) v1.0 predicate: how a model was serialized and each resource.

Compatible with the `model-signing` package (1.x): `files` and `shards` methods, hash
types sha256 and blake3 (shard resources use `<hash>-sharded-<size>`), ignore paths
recorded relative to the model root.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlprov.digest import TreeManifest, tree_digest
from mlprov.errors import InputError
from mlprov.predicates import OMS_V1
from mlprov.statement import ResourceDescriptor, Statement

#: Hash types mlprov computes that OMS names (model_signing also knows blake2, not here).
OMS_HASH_TYPES = ("sha256", "blake3")


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
