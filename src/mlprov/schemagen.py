"""JSON Schemas of every document mlprov writes or reads, generated from the pydantic models.

`SCHEMAS` is the one registry: add a document with one line (`"name": Model`). The
checked-in copies in `schemas/` are written by `python -m mlprov.schemagen schemas`
(`make schemas`); a test fails when they drift from the models. `validate_document`
checks a document read from elsewhere against its schema with jsonschema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from mlprov.collect.model_formats import ModelFacts
from mlprov.digest import TreeManifest
from mlprov.errors import InputError
from mlprov.policy.layout import Layout
from mlprov.predicates import LINK_V03, SLSA_PROVENANCE_V1, TEST_RESULT_V01, VSA_V1
from mlprov.predicates.link import Link
from mlprov.predicates.slsa_provenance import (
    MLExternalParameters,
    MLInternalParameters,
    SLSAProvenance,
)
from mlprov.predicates.test_result import TestResult
from mlprov.predicates.vsa import VerificationSummary
from mlprov.statement import ResourceDescriptor, Statement

if TYPE_CHECKING:  # imported by validate_document: printing a schema does not need it
    import jsonschema  # type: ignore[import-untyped]

SCHEMA_BASE = "https://mlprov.dev/schemas"

#: Document name -> the pydantic model that defines it. One line per document.
SCHEMAS: dict[str, type[BaseModel]] = {
    "statement": Statement,
    "resource-descriptor": ResourceDescriptor,
    "slsa-provenance": SLSAProvenance,
    "ml-external-parameters": MLExternalParameters,
    "ml-internal-parameters": MLInternalParameters,
    "test-result": TestResult,
    "link": Link,
    "tree-manifest": TreeManifest,
    "model-facts": ModelFacts,  # a model descriptor's annotations.modelFacts
    "layout": Layout,
    "vsa": VerificationSummary,
}

#: predicateType -> the schema its predicate is checked against.
PREDICATE_SCHEMAS: dict[str, str] = {
    SLSA_PROVENANCE_V1: "slsa-provenance",
    TEST_RESULT_V01: "test-result",
    LINK_V03: "link",
    VSA_V1: "vsa",
}


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the document `name`, generated now from its model."""
    try:
        model = SCHEMAS[name]
    except KeyError:
        raise InputError(f"no schema named {name!r}; known: {', '.join(sorted(SCHEMAS))}") from None
    schema = model.model_json_schema(mode="validation", by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/{name}.json",
        **schema,
    }


def schema_bytes(name: str) -> bytes:
    """The schema as the stable bytes checked in under schemas/."""
    return (json.dumps(schema_for(name), indent=2, sort_keys=True) + "\n").encode()


def validate_document(name: str, data: object, *, source: str) -> None:
    """Validate decoded JSON against schema `name`; InputError with the JSON path of the error."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema_for(name))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        first = _deepest(errors[0])
        message = first.message if len(first.message) <= 200 else first.message[:197] + "..."
        raise InputError(f"{source}: invalid {name} at {first.json_path}: {message}")


def _deepest(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """Inside an anyOf (e.g. "object or null"), the branch error that got furthest in."""
    while error.context:
        error = max(
            error.context,
            key=lambda e: (
                len(e.absolute_path),
                e.validator != "type" or e.validator_value != "null",
            ),
        )
    return error


def validate_statement(data: object, *, source: str) -> None:
    """Validate a Statement and, when mlprov knows its predicateType, its predicate too."""
    validate_document("statement", data, source=source)
    assert isinstance(data, dict)
    predicate_schema = PREDICATE_SCHEMAS.get(str(data.get("predicateType")))
    if predicate_schema is not None:
        validate_document(predicate_schema, data.get("predicate"), source=f"{source} predicate")


def write_schemas(directory: Path) -> list[Path]:
    """Write every registered schema to `directory/NAME.json`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(SCHEMAS):
        path = directory / f"{name}.json"
        data = schema_bytes(name)
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """`python -m mlprov.schemagen DIR`: regenerate the checked-in schemas."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlprov.schemagen DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(args[0])
    stale = {p.name for p in directory.glob("*.json")} - {f"{n}.json" for n in SCHEMAS}
    for path in write_schemas(directory):
        print(path)
    for name in sorted(stale):
        print(f"note: {directory / name} has no model in SCHEMAS (left in place)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
