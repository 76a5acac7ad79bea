"""Attestations as claims: each signed Statement with its step, materials and products.

The step of an attestation is the step its signed Statement records (mlprov's own
attestations, in-toto links) or else its file name `<step>.<anything>.json`, as
in-toto/attestation-verifier names them. Materials and products follow
attestation-verifier: a link's materials, an SLSA v1 provenance's resolvedDependencies
and an SLSA v0.2 provenance's materials are materials, subjects are products; any other
predicate (test results, VSAs, ...) is *about* its subjects, so they are its materials.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlprov.errors import InputError
from mlprov.predicates import (
    LINK_V03,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    materials_of,
    step_of,
    with_extension_aliases,
)
from mlprov.signing.files import SignedAttestation, read_attestations
from mlprov.statement import (
    PAYLOAD_TYPE,
    ResourceDescriptor,
    Statement,
    proto_field_names_to_json,
)

#: name -> digest set, the form artifact rules compare.
Artifacts = dict[str, dict[str, str]]


def same_digest(a: dict[str, str], b: dict[str, str]) -> bool:
    """Equal on every algorithm both name, and they name at least one in common."""
    common = a.keys() & b.keys()
    return bool(common) and all(a[k].lower() == b[k].lower() for k in common)


@dataclass
class Claim:
    """One signed attestation read for evaluation (not yet trusted: signatures unchecked)."""

    attestation: SignedAttestation
    statement: dict[str, Any] = field(repr=False)
    predicate_type: str
    step: str | None
    materials: Artifacts
    products: Artifacts
    #: product name -> `tree` or `file` when the attestation says what the digest is of
    product_kinds: dict[str, str | None] = field(default_factory=dict)
    #: the step is only the file's name: nothing signed says it (a renamed file moves it)
    step_from_name: bool = False

    @property
    def source(self) -> str:
        return self.attestation.source

    @property
    def digest(self) -> dict[str, str]:
        """sha256 of the exact bytes read (a line of a `.jsonl`, or the whole file)."""
        return {"sha256": hashlib.sha256(self.attestation.raw).hexdigest()}


@dataclass(frozen=True)
class Skipped:
    """A file or line that is not a usable attestation, and why; reported, never counted."""

    source: str
    reason: str


def step_from_filename(source: str) -> str | None:
    """`clone.fe1c6281.json` -> `clone`; `train.intoto.json` -> `train` (attestation-verifier)."""
    name = Path(source).name
    for suffix in (".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if "." in name:
        name = name.rsplit(".", 1)[0]
    return name or None


#: `scheme://`: a name that is a URI (SLSA v0.2 materials, git+https://...), not a path.
_URI_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _named(descriptors: list[ResourceDescriptor]) -> list[tuple[str, ResourceDescriptor]]:
    """(name, descriptor) of the named ones; a path name normalised, a URI name as given
    (normpath would fold a URI's `//`, so that the layout's own URI no longer matched)."""
    out = []
    for rd in descriptors:
        name = rd.name or rd.uri
        if name:
            out.append((name if _URI_NAME.match(name) else posixpath.normpath(name), rd))
    return out


def _artifacts(descriptors: list[ResourceDescriptor]) -> Artifacts:
    return {name: dict(rd.digest or {}) for name, rd in _named(descriptors)}


_ENVELOPE_FIELDS = {"payload", "payloadType", "signatures"}
_SIGNATURE_FIELDS = {"keyid", "sig"}


def _canonical_base64(text: object, what: str) -> None:
    """Refuse base64 with non-zero padding bits: two spellings of one payload is malleability."""
    if not isinstance(text, str):
        return
    for decode, encode in (
        (base64.b64decode, base64.b64encode),
        (base64.urlsafe_b64decode, base64.urlsafe_b64encode),
    ):
        try:
            again = encode(decode(text + "=" * (-len(text) % 4))).decode()
        except (binascii.Error, ValueError):
            continue
        if again.rstrip("=") == text.rstrip("="):
            return
    raise InputError(f"{what} is not canonical base64")


def _check_dsse_fields(raw: bytes) -> None:
    """A DSSE envelope has exactly DSSE's fields: a misspelt `keyid` is not a hint to drop."""
    doc = json.loads(raw)
    extra = set(doc) - _ENVELOPE_FIELDS
    if extra:
        raise InputError(f"DSSE envelope has unknown field(s) {', '.join(sorted(extra))}")
    _canonical_base64(doc.get("payload"), "payload")
    for index, signature in enumerate(doc.get("signatures") or []):
        extra = set(signature) - _SIGNATURE_FIELDS
        if extra:
            names = ", ".join(sorted(extra))
            raise InputError(f"DSSE signature {index} has unknown field(s) {names}")
        _canonical_base64(signature.get("sig"), f"signature {index}")


def claim_from(attestation: SignedAttestation, *, file_name: str) -> Claim:
    """Decode an attestation's Statement, keeping JSON types (ints stay ints)."""
    if attestation.kind == "dsse":
        _check_dsse_fields(attestation.raw)
    envelope = attestation.envelope
    if envelope.payload_type != PAYLOAD_TYPE:
        raise InputError(f"payloadType {envelope.payload_type!r} is not an in-toto Statement")
    try:
        raw = json.loads(envelope.payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputError("payload is not JSON") from None
    if not isinstance(raw, dict):
        raise InputError("payload is not a JSON object")
    # protojson (attestation-verifier, Go) accepts the proto field name `type`.
    raw = proto_field_names_to_json(raw, source="payload")
    statement = Statement.from_dict(raw, source="payload")
    kind = statement.predicateType
    kinds: dict[str, str | None] = {}
    if kind in (SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V02, LINK_V03):
        materials = _artifacts(materials_of(statement))
        products = _artifacts(list(statement.subject))
        kinds = {name: rd.digest_of for name, rd in _named(list(statement.subject))}
    else:
        materials, products = _artifacts(list(statement.subject)), {}
    recorded = step_of(statement)
    return Claim(
        attestation=attestation,
        statement=with_extension_aliases(raw),
        predicate_type=kind,
        step=recorded or step_from_filename(file_name),
        materials=materials,
        products=products,
        product_kinds=kinds,
        step_from_name=recorded is None,
    )


@dataclass
class ClaimSet:
    """Every claim found, plus what was skipped and why."""

    claims: list[Claim] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def merge(self, other: ClaimSet) -> None:
        """Add another set's claims, an attestation read twice (same bytes) only once."""
        seen = {c.digest["sha256"] for c in self.claims}
        for claim in other.claims:
            if claim.digest["sha256"] not in seen:
                seen.add(claim.digest["sha256"])
                self.claims.append(claim)
        self.skipped.extend(other.skipped)


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.is_file() and p.name.endswith((".json", ".jsonl"))
        )
    if path.is_file():
        return [path]
    if path.exists():  # a FIFO or device named on the command line: bad input, not a skip
        raise InputError(f"{path}: not a regular file or directory")
    raise InputError(f"{path}: no such file or directory")


def collect_claims(paths: list[Path], *, exclude: set[Path] | None = None) -> ClaimSet:
    """Read every attestation in the given directories and files.

    Files that are not attestations (manifests, the layout itself) are skipped and
    reported; they never count towards any rule.
    """
    found = ClaimSet()
    excluded = {p.resolve() for p in exclude or set()}
    for root in paths:
        for path in _files(Path(root)):
            if path.resolve() in excluded:
                continue
            bad_lines: list[tuple[str, str]] = []  # one bad line of a .jsonl skips only itself
            try:
                attestations = read_attestations(path, bad_lines=bad_lines)
            except InputError as exc:
                found.skipped.append(Skipped(str(path), str(exc)))
                continue
            found.skipped.extend(Skipped(source, reason) for source, reason in bad_lines)
            for attestation in attestations:
                try:
                    found.claims.append(claim_from(attestation, file_name=path.name))
                except InputError as exc:
                    found.skipped.append(Skipped(attestation.source, str(exc)))
    return found
