"""in-toto Statement v1 and ResourceDescriptor: build, parse, validate.

mlprov writes v1 and reads v1 and v0.1 (`https://in-toto.io/Statement/v0.1`, the same
shape: `subject`, `predicateType`, `predicate`), as the peers' verifiers do.

Documents read from elsewhere keep unknown fields (a round trip loses nothing). The
bytes that are signed are the bytes produced by `Statement.to_bytes`, and verifiers
parse those exact bytes: nothing here re-serialises through protobuf.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlprov.errors import InputError
from mlprov.fsio import parse_json

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
STATEMENT_TYPE_V01 = "https://in-toto.io/Statement/v0.1"
#: Statement versions mlprov reads, with the name a report gives each.
READ_STATEMENT_TYPES = {STATEMENT_TYPE: "v1", STATEMENT_TYPE_V01: "v0.1"}
PAYLOAD_TYPE = "application/vnd.in-toto+json"
#: Upper bound on a Statement's size, so a hostile document cannot exhaust memory.
MAX_STATEMENT_BYTES = 64 << 20
#: Annotation on mlprov's subjects and materials saying what their digest is of:
#: `tree` (a directory's OMS tree digest) or `file` (the sha256 of a file's bytes). A
#: directory is only ever matched to a `tree` descriptor, a file never to one: a file
#: holding a tree's concatenated raw digests has the tree's digest as its sha256.
#: Names that say "a signed DSSE envelope" (in-toto's convention), which an unsigned
#: Statement must not take: verify, policy check and store add would refuse it.
ENVELOPE_SUFFIXES = (".intoto.json", ".intoto.jsonl")
DIGEST_OF = "digestOf"
TREE = "tree"
FILE = "file"


class ResourceDescriptor(BaseModel):
    """An artifact: named, located and/or identified by digests (in-toto ResourceDescriptor)."""

    model_config = ConfigDict(
        extra="allow",
        populate_by_name=True,
        # in-toto: at least one of name, uri, digest (checked in documents read from outside).
        json_schema_extra={
            "anyOf": [{"required": ["name"]}, {"required": ["uri"]}, {"required": ["digest"]}]
        },
    )

    name: str | None = None
    uri: str | None = None
    digest: dict[str, str] | None = None
    content: str | None = Field(default=None, description="base64 of the artifact's bytes")
    downloadLocation: str | None = None
    mediaType: str | None = None
    annotations: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without unset fields, unknown fields kept."""
        return self.model_dump(mode="json", exclude_none=True)

    @property
    def digest_of(self) -> str | None:
        """`tree` or `file` when the descriptor says what its digest is of, else None."""
        return digest_of(self.annotations)


def check_statement_name(out: Path, *, signed: bool, how: str = "--key KEY") -> None:
    """Refuse to write an unsigned Statement under an envelope's name (`X.intoto.json`);
    `how` says how to sign it (a CLI option, or the API's `signers=`)."""
    name = Path(out).name
    suffix = next((s for s in ENVELOPE_SUFFIXES if name.endswith(s)), None)
    if signed or suffix is None:
        return
    stem = name[: -len(suffix)] or "X"
    raise InputError(
        f"{out} names a signed envelope ({suffix}) but the Statement is unsigned: "
        f"name it {stem}.statement.json, or sign it with {how}"
    )


def digest_of(annotations: object) -> str | None:
    """`tree` or `file` from a descriptor's annotations (as a dict), else None."""
    if isinstance(annotations, dict) and annotations.get(DIGEST_OF) in (TREE, FILE):
        return str(annotations[DIGEST_OF])
    return None


class Statement(BaseModel):
    """An in-toto Statement v1: subjects plus a typed predicate."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type_: str = Field(default=STATEMENT_TYPE, alias="_type")
    subject: list[ResourceDescriptor]
    predicateType: str
    predicate: dict[str, Any] | None = None

    @field_validator("subject")
    @classmethod
    def _subjects_have_digests(cls, value: list[ResourceDescriptor]) -> list[ResourceDescriptor]:
        if not value:
            raise ValueError("a Statement needs at least one subject")
        for item in value:
            if not item.digest:
                raise ValueError(f"subject {item.name!r} has no digest")
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the field order of the spec, unknown fields kept."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_bytes(self) -> bytes:
        """The canonical bytes mlprov writes and signs: sorted keys, compact separators."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "statement") -> Statement:
        """Parse a Statement from JSON bytes; raises InputError naming the first problem."""
        if len(data) > MAX_STATEMENT_BYTES:
            raise InputError(f"{source}: statement larger than {MAX_STATEMENT_BYTES} bytes")
        return cls.from_dict(parse_json(data, source=source), source=source)

    @classmethod
    def from_dict(cls, raw: object, *, source: str = "statement") -> Statement:
        """Validate a decoded Statement; raises InputError with the JSON path of the error."""
        if not isinstance(raw, dict):
            raise InputError(f"{source}: a Statement must be a JSON object")
        raw = proto_field_names_to_json(raw, source=source)
        if raw.get("_type") not in READ_STATEMENT_TYPES:
            expected = " or ".join(READ_STATEMENT_TYPES)
            raise InputError(f"{source}: _type is {raw.get('_type')!r}, expected {expected}")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "/".join(str(p) for p in first["loc"]) or "(root)"
            raise InputError(f"{source}: invalid Statement at /{where}: {first['msg']}") from None

    @property
    def version(self) -> str:
        """`v1` or `v0.1`: which in-toto Statement version this is."""
        return READ_STATEMENT_TYPES.get(self.type_, self.type_)

    def subject_digests(self) -> list[tuple[str | None, dict[str, str]]]:
        """(name, digest set) of every subject."""
        return [(s.name, dict(s.digest or {})) for s in self.subject]

    def check_structure(self) -> None:
        """Validate with in_toto_attestation's protobuf Statement; raises InputError if invalid.

        The protobuf copy is parsed from `to_bytes()` and thrown away: it is only a
        second opinion on the structure, never the bytes that are written or signed.
        """
        check_in_toto_structure(self.to_bytes())


def proto_field_names_to_json(raw: dict[str, Any], *, source: str) -> dict[str, Any]:
    """Accept the protobuf field name `type` for `_type`, as protojson (the Go verifiers) does.

    in-toto's Statement proto names the field `type` with JSON name `_type`, and protojson
    reads either; attestation-verifier's own `clone` link is written with `type`. Both at
    once is ambiguous and refused.
    """
    if "type" not in raw:
        return raw
    if "_type" in raw:
        raise InputError(f"{source}: a Statement has both `_type` and `type`")
    return {"_type": raw["type"], **{k: v for k, v in raw.items() if k not in ("type", "_type")}}


def check_in_toto_structure(data: bytes, *, source: str = "statement") -> None:
    """Run `in_toto_attestation.v1.statement.Statement.validate()` over Statement JSON bytes."""
    from google.protobuf import json_format  # type: ignore[import-untyped]
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement as PbStatement

    try:
        proto = json_format.Parse(
            data,
            statement_pb2.Statement(),
            ignore_unknown_fields=True,
        )
        PbStatement.copy_from_pb(proto).validate()
    except (json_format.ParseError, ValueError) as exc:
        raise InputError(f"{source}: not a valid in-toto Statement: {exc}") from None
