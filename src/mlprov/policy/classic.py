"""Classic in-toto v1 layouts with link files, verified by the in-toto library itself.

A classic layout (a signed Metablock or DSSE envelope whose payload has `_type:
layout`) is not re-implemented here: `in_toto.verifylib.in_toto_verify` checks the
layout's signatures and expiry, the links' signatures and thresholds, the artifact
rules, and runs the layout's inspections, exactly as `in-toto-verify` does.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key

from mlprov.errors import InputError
from mlprov.fsio import read_input

MAX_LAYOUT_BYTES = 16 << 20


def is_classic_layout(data: bytes) -> bool:
    """True for an in-toto v1 layout: a Metablock, or DSSE over a `_type: layout` payload."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False  # YAML: mlprov's own layout format
    if not isinstance(doc, dict):
        return False
    signed = doc.get("signed")
    if isinstance(signed, dict):
        return signed.get("_type") == "layout"
    if doc.get("payloadType") == "application/vnd.in-toto+json" and "payload" in doc:
        import base64

        with contextlib.suppress(ValueError, TypeError):
            inner = json.loads(base64.b64decode(doc["payload"]))
            return isinstance(inner, dict) and inner.get("_type") == "layout"
    return False


@dataclass(frozen=True)
class ClassicResult:
    """The in-toto verdict: passed, or the error in-toto gave, as one line."""

    passed: bool
    reason: str


@contextlib.contextmanager
def _inside(directory: Path) -> Iterator[None]:
    """Run inspections where in-toto-verify would: in the directory of the artifacts."""
    old = Path.cwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(old)


def load_classic(layout_path: Path) -> Any:
    """Load and validate a classic layout with in-toto (structure, rules, keys, expiry format)."""
    from in_toto.models.metadata import Metadata

    data = read_input(layout_path, limit=MAX_LAYOUT_BYTES, what="layout")
    try:
        metadata = Metadata.from_dict(json.loads(data))
        layout = metadata.get_payload()
        layout.validate()
    except Exception as exc:  # in-toto raises many kinds for a malformed file
        raise InputError(f"{layout_path}: not a valid in-toto layout ({exc})") from None
    if getattr(layout, "_type", None) != "layout":
        raise InputError(f"{layout_path}: in-toto metadata, but not a layout")
    return metadata


def verify_classic(
    layout_path: Path,
    *,
    link_dir: Path,
    layout_keys: Sequence[Key],
    params: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> ClassicResult:
    """Verify a classic layout against the links in `link_dir` with in-toto's verifier.

    Layout signatures are required from every key in `layout_keys` (at least one);
    inspections run in `workdir` (default: the current directory), as in in-toto-verify.
    """
    from in_toto.verifylib import in_toto_verify

    if not layout_keys:
        raise InputError(f"{layout_path}: a classic in-toto layout needs --layout-key")
    if not link_dir.is_dir():
        raise InputError(f"{link_dir}: a classic in-toto layout reads link files from a directory")
    metadata = load_classic(layout_path)
    for link in sorted(link_dir.glob("*.link")):  # in-toto opens them itself: no FIFO, no giant
        read_input(link, limit=MAX_LAYOUT_BYTES, what="link file")
    key_dict: dict[str, Any] = {}
    for key in layout_keys:
        entry = key.to_dict()
        entry["keyid"] = key.keyid
        key_dict[key.keyid] = entry
    with _inside(workdir or Path.cwd()):
        try:
            in_toto_verify(
                metadata,
                key_dict,
                str(link_dir.resolve()),
                substitution_parameters=dict(params or {}),
                persist_inspection_links=False,
            )
        except Exception as exc:  # every in-toto failure is a verification failure
            return ClassicResult(False, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    return ClassicResult(True, "in-toto verification passed")
