"""Reading signed attestations from disk: DSSE JSON, `.intoto.jsonl`, Sigstore bundles.

Each attestation keeps the exact bytes it was read from, so what is stored or hashed
is what was signed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlprov.errors import InputError
from mlprov.fsio import parse_json, read_input
from mlprov.signing.dsse import MAX_ENVELOPE_BYTES, MAX_SIGNATURES, Envelope

BUNDLE_MEDIA_PREFIX = "application/vnd.dev.sigstore.bundle"


@dataclass
class SignedAttestation:
    """One signed attestation as read: where from, its exact bytes, and its envelope."""

    source: str
    raw: bytes
    envelope: Envelope
    kind: Literal["dsse", "bundle"]
    bundle: dict[str, Any] | None = field(default=None, repr=False)


def parse_attestation(data: bytes, *, source: str) -> SignedAttestation:
    """Parse one DSSE envelope or Sigstore bundle (JSON bytes)."""
    raw = parse_json(data, source=source)
    if not isinstance(raw, dict):
        raise InputError(f"{source}: expected a JSON object (DSSE envelope or Sigstore bundle)")
    media = raw.get("mediaType")
    if isinstance(media, str) and media.startswith(BUNDLE_MEDIA_PREFIX):
        if "dsseEnvelope" not in raw:
            raise InputError(f"{source}: Sigstore bundle holds no DSSE envelope")
        _check_bundle_counts(raw, source)
        envelope = Envelope.from_dict(raw["dsseEnvelope"], source=source)
        return SignedAttestation(source, data, envelope, "bundle", raw)
    if "payloadType" in raw:
        return SignedAttestation(source, data, Envelope.from_dict(raw, source=source), "dsse")
    if raw.get("_type", "").startswith("https://in-toto.io/Statement"):
        raise InputError(f"{source}: an unsigned Statement, not a signed attestation")
    raise InputError(f"{source}: neither a DSSE envelope nor a Sigstore bundle")


def _check_bundle_counts(bundle: dict[str, Any], source: str) -> None:
    """At most MAX_SIGNATURES certificates, log entries and timestamps in a bundle."""
    material = bundle.get("verificationMaterial")
    if not isinstance(material, dict):
        return
    chain = material.get("x509CertificateChain")
    timestamps = material.get("timestampVerificationData")
    for what, items in (
        ("certificates", chain.get("certificates") if isinstance(chain, dict) else None),
        ("transparency log entries", material.get("tlogEntries")),
        (
            "timestamps",
            timestamps.get("rfc3161Timestamps") if isinstance(timestamps, dict) else None,
        ),
    ):
        if isinstance(items, list) and len(items) > MAX_SIGNATURES:
            raise InputError(
                f"{source}: Sigstore bundle has {len(items)} {what}, more than the"
                f" {MAX_SIGNATURES} mlprov accepts"
            )


def read_attestations(
    path: Path, *, bad_lines: list[tuple[str, str]] | None = None
) -> list[SignedAttestation]:
    """Every attestation in a file: one JSON document, or one per line (`.intoto.jsonl`;
    a pretty-printed one on the lines it spans, as `store export` writes it).

    A line that is not an attestation raises InputError, unless `bad_lines` is given:
    then it is appended there as (`path:LINE`, reason) and the other lines are read.
    """
    path = Path(path)
    data = read_input(path, limit=MAX_ENVELOPE_BYTES, what="attestation file")
    stripped = data.strip()
    if not stripped:
        raise InputError(f"{path}: empty file")
    lines = [line for line in data.splitlines() if line.strip()]
    if not (path.name.endswith(".jsonl") or (len(lines) > 1 and _every_line_is_json(lines))):
        return [parse_attestation(stripped, source=str(path))]
    found = []
    for number, document in _documents(data):
        source = f"{path}:{number}"
        try:
            found.append(parse_attestation(document, source=source))
        except InputError as exc:
            if bad_lines is None:
                raise
            reason = str(exc)
            bad_lines.append((source, reason.removeprefix(f"{source}: ")))
    return found


def _documents(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The documents of a `.intoto.jsonl` file, each with the line it starts on: one per
    line, except a pretty-printed document, as `store export` writes, byte for byte, an
    attestation that was stored so: a line `{`, then only indented lines, then a line `}`
    (what every JSON pretty-printer writes: only the outermost braces start a line, and
    no JSON string holds a line break). A `{` not closed so is a line of its own
    (malformed, which the caller reports) and reading goes on at the next line, so a
    stray `{` swallows no attestation after it. Each line is looked at at most twice:
    reading is linear in the file's size, however many `{` lines it holds."""
    lines = data.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line == b"{" and lines[i][:1] == b"{":
            end = i + 1
            while end < len(lines) and lines[end][:1] in (b" ", b"\t"):
                end += 1
            if end < len(lines) and lines[end].rstrip() == b"}":
                yield i + 1, b"".join(lines[i : end + 1]).strip()
                i = end + 1
                continue
        if line:
            yield i + 1, line
        i += 1


def _every_line_is_json(lines: list[bytes]) -> bool:
    try:
        return all(isinstance(json.loads(line), dict) for line in lines)
    except ValueError:
        return False
