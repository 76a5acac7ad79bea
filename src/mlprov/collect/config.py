"""Configuration files (YAML, JSON, TOML) and `key=value` overrides as externalParameters.

Values keep their types (an int stays an int); dates become ISO strings; values JSON
cannot hold (NaN, infinities, non-string keys, binary) are refused rather than changed.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlprov.errors import InputError
from mlprov.fsio import read_input
from mlprov.statement import ResourceDescriptor
from mlprov.yamlio import load_yaml

#: Largest configuration file read, so a wrong path cannot exhaust memory.
MAX_CONFIG_BYTES = 16 << 20
FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


@dataclass(frozen=True)
class ConfigRecord:
    """A parsed configuration file: its values and its descriptor (name + sha256)."""

    values: dict[str, Any]
    descriptor: ResourceDescriptor


def json_ready(value: Any, *, where: str = "") -> Any:
    """`value` as JSON-compatible data with the same types; InputError naming the bad path."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{where or '(root)'}: {value} cannot be recorded in JSON")
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{where or '(root)'}: key {key!r} is not a string")
            out[key] = json_ready(item, where=f"{where}/{key}")
        return out
    if isinstance(value, list | tuple):
        return [json_ready(item, where=f"{where}/{i}") for i, item in enumerate(value)]
    raise InputError(f"{where or '(root)'}: a {type(value).__name__} cannot be recorded in JSON")


def _parse(text: str, kind: str, source: str) -> Any:
    try:
        if kind == "json":
            return json.loads(text)
        if kind == "toml":
            return tomllib.loads(text)
        return load_yaml(text, source=source)
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{source}: invalid TOML: {exc}") from None
    except ValueError as exc:  # an int of more than 4,300 digits, which Python refuses
        raise InputError(f"{source}: invalid {kind.upper()} value ({exc})") from None
    except RecursionError:
        raise InputError(f"{source}: nested too deeply") from None


def load_config(path: Path) -> ConfigRecord:
    """Parse a YAML/JSON/TOML file (by suffix) into a mapping, with the file's sha256."""
    import hashlib

    path = Path(path)
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: unknown config format (use .yaml, .yml, .json or .toml)")
    data = read_input(path, limit=MAX_CONFIG_BYTES, what="config file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    raw = _parse(text, kind, str(path))
    if not isinstance(raw, dict):
        raise InputError(f"{path}: the top level must be a mapping, not {type(raw).__name__}")
    values = json_ready(raw)
    descriptor = ResourceDescriptor(
        name=path.name,
        digest={"sha256": hashlib.sha256(data).hexdigest()},
        mediaType={"yaml": "application/yaml", "json": "application/json"}.get(
            kind, "application/toml"
        ),
        annotations={"role": "config"},
    )
    return ConfigRecord(values, descriptor)


def parse_value(text: str) -> Any:
    """A `--param` value with its type: JSON if it parses (1, 0.5, true, [1,2]), else a string."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    try:
        return json_ready(value)
    except InputError:
        return text


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` overrides, in order, later keys winning; InputError for a missing `=`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"parameter {item!r} is not of the form KEY=VALUE")
        out[key.strip()] = parse_value(value)
    return out
