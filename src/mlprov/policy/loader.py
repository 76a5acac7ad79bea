"""Loading a layout: parse (YAML or JSON, optionally DSSE-signed), substitute parameters,
validate references, compile every rule — so a bad layout fails before any evaluation.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlprov.errors import InputError
from mlprov.fsio import read_input
from mlprov.policy.artifact_rules import ArtifactRule, depends_on, parse_artifact_rule
from mlprov.policy.attribute_rules import AttributeRule
from mlprov.policy.functionaries import Functionary, build_functionary
from mlprov.policy.layout import Layout
from mlprov.signing.dsse import Envelope
from mlprov.yamlio import dump_yaml, load_yaml

#: payloadType of a DSSE envelope whose payload is a layout (YAML or JSON).
LAYOUT_PAYLOAD_TYPE = "application/vnd.mlprov.layout+yaml"
_PARAM_NAME = re.compile(r"^[A-Za-z0-9_-]+\Z")
MAX_LAYOUT_BYTES = 16 << 20


@dataclass
class CompiledStep:
    """A step's rules, parsed and compiled."""

    name: str
    material_rules: list[ArtifactRule]
    product_rules: list[ArtifactRule]
    #: per expectedPredicates entry (same order), its compiled attribute rules
    attribute_rules: list[list[AttributeRule]]


@dataclass
class LoadedLayout:
    """A layout ready to evaluate: the model, its exact bytes, signers and compiled rules."""

    layout: Layout
    raw: bytes
    source: str
    envelope: Envelope | None
    functionaries: dict[str, Functionary]
    steps: list[CompiledStep]
    parameters: dict[str, str] = field(default_factory=dict)


def _parse_document(data: bytes, source: str) -> tuple[dict[str, Any], Envelope | None]:
    doc = load_yaml(data, source=source)
    if isinstance(doc, dict) and "payloadType" in doc and "payload" in doc:
        envelope = Envelope.from_dict(doc, source=source)
        if envelope.payload_type != LAYOUT_PAYLOAD_TYPE:
            raise InputError(
                f"{source}: DSSE payloadType {envelope.payload_type!r}, expected a layout"
                f" ({LAYOUT_PAYLOAD_TYPE})"
            )
        inner, _ = _parse_document(envelope.payload, source)
        return inner, envelope
    if not isinstance(doc, dict):
        raise InputError(f"{source}: a layout must be a mapping")
    if "signed" in doc and isinstance(doc["signed"], dict) and doc["signed"].get("_type"):
        raise InputError(
            f"{source}: a classic in-toto v1 layout: `mlprov policy check` verifies it with the"
            " in-toto library (links in --attestations DIR, owner keys with --layout-key)"
        )
    return doc, None


def _substitute(value: str, params: dict[str, str]) -> str:
    for _ in range(16):  # repeat to expand parameters inside values, as attestation-verifier
        new = value
        for name, replacement in params.items():
            new = new.replace("{" + name + "}", replacement)
        if new == value:
            return new
        value = new
    raise InputError("parameters expand without end (a parameter refers to itself?)")


def resolve_parameters(layout: Layout, given: dict[str, str]) -> dict[str, str]:
    """Layout defaults overridden by given values; every declared parameter needs a value."""
    values: dict[str, str] = {}
    for name, default in layout.parameters.items():
        if default is not None:
            values[name] = str(default)
    for name, value in given.items():
        if not _PARAM_NAME.match(name):
            raise InputError(f"parameter name {name!r} must match [A-Za-z0-9_-]+")
        if "{" + name + "}" in value:
            raise InputError(f"parameter {name}'s value refers to itself")
        values[name] = value
    missing = [n for n in layout.parameters if n not in values]
    if missing:
        raise InputError(
            f"layout parameter(s) {', '.join(missing)} have no value (use --param NAME=VALUE)"
        )
    return values


def _apply_parameters(layout: Layout, params: dict[str, str]) -> Layout:
    if not params:
        return layout
    copy = layout.model_copy(deep=True)
    for step in copy.steps:
        step.expectedMaterials = [_substitute(r, params) for r in step.expectedMaterials]
        step.expectedProducts = [_substitute(r, params) for r in step.expectedProducts]
        for predicate in step.expectedPredicates:
            for attribute in predicate.expectedAttributes:
                attribute.rule = _substitute(attribute.rule, params)
                if attribute.debug:
                    attribute.debug = _substitute(attribute.debug, params)
    return copy


def _validate_references(layout: Layout, source: str) -> None:
    names = [s.name for s in layout.steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"{source}: duplicate step name(s): {', '.join(duplicates)}")
    if layout.inspections:
        raise InputError(f"{source}: inspections are not supported; remove them")
    for step in layout.steps:
        for predicate in step.expectedPredicates:
            for name in predicate.functionaries:
                if name not in layout.functionaries:
                    raise InputError(
                        f"{source}: step {step.name} names unknown functionary {name!r}"
                    )
            if predicate.threshold > len(set(predicate.functionaries)):
                raise InputError(
                    f"{source}: step {step.name} threshold {predicate.threshold} exceeds its"
                    f" {len(set(predicate.functionaries))} functionary(ies)"
                )
    for rule in layout.subjects:
        for name in rule.productOf:
            if name not in names:
                raise InputError(f"{source}: subjects rule names unknown step {name!r}")
    for verification in layout.expectedVerifications:
        if verification.appliesTo != "subject" and verification.appliesTo not in names:
            raise InputError(
                f"{source}: expectedVerifications {verification.name} applies to unknown step"
                f" {verification.appliesTo!r}"
            )
        for name in verification.functionaries:
            if name not in layout.functionaries:
                raise InputError(
                    f"{source}: expectedVerifications {verification.name} names unknown"
                    f" functionary {name!r}"
                )


def _compile_step(layout: Layout, index: int, source: str) -> CompiledStep:
    step = layout.steps[index]
    names = {s.name for s in layout.steps}

    def rules(texts: list[str], kind: str) -> list[ArtifactRule]:
        out = []
        for text in texts:
            try:
                rule = parse_artifact_rule(text)
            except InputError as exc:
                raise InputError(f"{source}: step {step.name} {kind}: {exc}") from None
            other = depends_on(rule)
            if other is not None and other not in names:
                raise InputError(
                    f"{source}: step {step.name} rule {text!r} refers to unknown step {other!r}"
                )
            out.append(rule)
        return out

    attributes = [
        [
            AttributeRule.compile(spec, where=f"{source}: step {step.name}")
            for spec in predicate.expectedAttributes
        ]
        for predicate in step.expectedPredicates
    ]
    return CompiledStep(
        name=step.name,
        material_rules=rules(step.expectedMaterials, "expectedMaterials"),
        product_rules=rules(step.expectedProducts, "expectedProducts"),
        attribute_rules=attributes,
    )


def validate_layout(data: bytes, *, source: str = "layout") -> tuple[Layout, Envelope | None]:
    """Schema and reference checks only (no parameters, no compiling): for signing a layout."""
    if len(data) > MAX_LAYOUT_BYTES:
        raise InputError(f"{source}: larger than {MAX_LAYOUT_BYTES} bytes")
    doc, envelope = _parse_document(data, source)
    try:
        layout = Layout.model_validate(json.loads(json.dumps(doc, default=str)))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"]) or "(root)"
        raise InputError(f"{source}: invalid layout at /{where}: {first['msg']}") from None
    _validate_references(layout, source)
    return layout, envelope


def embed_keys(data: bytes, *, base_dir: Path, source: str = "layout") -> bytes:
    """The layout with every `publicKeyPath` functionary's key read now and embedded as
    `publicKey` PEM, so that a signature over the layout covers the keys themselves.

    A layout that names no key file is returned byte for byte (its comments kept).
    """
    from mlprov.signing.keys import load_public_key, public_pem

    layout, envelope = validate_layout(data, source=source)
    if envelope is not None:
        raise InputError(f"{source} is already signed")
    files = {
        name: spec.publicKeyPath
        for name, spec in layout.functionaries.items()
        if spec.publicKeyPath is not None
    }
    if not files:
        return data
    doc, _ = _parse_document(data, source)
    for name, relative in files.items():
        path = Path(relative)
        key = load_public_key(path if path.is_absolute() else base_dir / path)
        doc["functionaries"][name] = {"publicKey": public_pem(key).decode()}
    header = (
        "# Signed by `mlprov policy sign`: the keys of "
        + ", ".join(f"{name} ({files[name]})" for name in sorted(files))
        + " are embedded below,\n# so the signature covers them.\n"
    )
    return (header + dump_yaml(doc)).encode()


def parse_layout(
    data: bytes,
    *,
    source: str = "layout",
    base_dir: Path | None = None,
    params: dict[str, str] | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
) -> LoadedLayout:
    """Parse and compile a layout from bytes; every problem is an InputError (exit 2)."""
    layout, envelope = validate_layout(data, source=source)
    values = resolve_parameters(layout, params or {})
    layout = _apply_parameters(layout, values)
    functionaries = {
        name: build_functionary(
            name,
            spec,
            base_dir=base_dir or Path("."),
            trusted_root=trusted_root,
            staging=staging,
        )
        for name, spec in layout.functionaries.items()
    }
    steps = [_compile_step(layout, i, source) for i in range(len(layout.steps))]
    return LoadedLayout(
        layout=layout,
        raw=data,
        source=source,
        envelope=envelope,
        functionaries=functionaries,
        steps=steps,
        parameters=values,
    )


def load_layout(
    path: Path,
    *,
    params: dict[str, str] | None = None,
    trusted_root: Path | None = None,
    staging: bool = False,
) -> LoadedLayout:
    """Read, validate and compile the layout at `path` (YAML, JSON, or a DSSE-signed layout)."""
    path = Path(path)
    data = read_input(path, limit=MAX_LAYOUT_BYTES, what="layout")
    return parse_layout(
        data,
        source=str(path),
        base_dir=path.parent,
        params=params,
        trusted_root=trusted_root,
        staging=staging,
    )
