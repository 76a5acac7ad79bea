"""`mlprov schema`: print the JSON Schema of a document, generated from the models now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeGuard

import click

from mlprov.cli._common import echo_json, json_option
from mlprov.errors import InputError
from mlprov.fsio import parse_json, read_input
from mlprov.schemagen import (
    PREDICATE_SCHEMAS,
    SCHEMAS,
    schema_bytes,
    validate_document,
    validate_statement,
)

EPILOG = """\b
Examples:
  mlprov schema                                  # list the schema names
  mlprov schema slsa-provenance                  # print one schema
  mlprov schema statement --validate out/train.statement.json   # exit 2 at the first error
"""


#: Upper bound on a document to validate.
MAX_DOCUMENT_BYTES = 64 << 20


@click.command(epilog=EPILOG)
@click.argument("name", required=False)
@click.option(
    "--validate",
    "document",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Validate a JSON document against schema NAME instead of printing it.",
)
@json_option
def schema(name: str | None, document: Path | None, as_json: bool) -> None:
    """Print the JSON Schema NAME (or list the names); --validate checks a document with it.

    Validating a Statement (NAME `statement`) also validates its predicate when mlprov
    knows the predicateType; giving a predicate's NAME with a Statement checks both.
    """
    if name is None:
        if as_json:
            echo_json(sorted(SCHEMAS))
            return
        for known in sorted(SCHEMAS):
            click.echo(known)
        return
    if document is None:
        click.echo(schema_bytes(name).decode(), nl=False)
        return
    if name not in SCHEMAS:
        raise InputError(f"no schema named {name!r}; known: {', '.join(sorted(SCHEMAS))}")
    data = _read_document(document)
    if name == "statement":
        validate_statement(data, source=str(document))
    elif name in PREDICATE_SCHEMAS.values() and _is_statement(data):
        validate_statement(data, source=str(document))
        if PREDICATE_SCHEMAS.get(str(data.get("predicateType"))) != name:
            raise InputError(
                f"{document}: predicateType is {data.get('predicateType')!r}, not {name}"
            )
    else:
        validate_document(name, data, source=str(document))
    if as_json:
        echo_json({"document": str(document), "schema": name, "valid": True})
    else:
        click.echo(f"OK: {document} is a valid {name}")


def _read_document(path: Path) -> Any:
    """A JSON (or, for layouts, YAML) document; a DSSE envelope stands for its payload."""
    from mlprov.signing.dsse import Envelope
    from mlprov.yamlio import load_yaml

    raw = read_input(path, limit=MAX_DOCUMENT_BYTES, what="document")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        try:
            data = load_yaml(raw, source=str(path))
        except InputError as yaml_exc:
            raise InputError(f"{path}: not valid JSON ({exc}) nor YAML ({yaml_exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        # YAML reads unquoted timestamps as datetimes; the schema sees JSON (RFC 3339 text).
        data = json.loads(json.dumps(data, default=_json_scalar))
    if isinstance(data, dict) and "payloadType" in data and "payload" in data:
        envelope = Envelope.from_dict(data, source=str(path))
        data = parse_json(envelope.payload, source=f"{path} (payload)")
    return data


def _json_scalar(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()).replace("+00:00", "Z") if callable(isoformat) else str(value)


def _is_statement(data: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(data, dict) and str(data.get("_type", "")).startswith(
        "https://in-toto.io/Statement/"
    )
