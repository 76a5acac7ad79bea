"""`mlprov bom`: an AI-BOM (CycloneDX 1.6 or SPDX 3.0.1) of a model, from verified lineage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlprov.cli._common import (
    echo_json,
    force_option,
    json_option,
    sign_options_named,
    signers_from,
)
from mlprov.cli._store_common import store_option
from mlprov.cli.verify import identities_from, sigstore_options, trusted_key_options
from mlprov.errors import InputError

if TYPE_CHECKING:
    from mlprov.export.evidence import Evidence

F = TypeVar("F", bound=Callable[..., Any])
FORMATS = ("cyclonedx", "spdx3")

EPILOG = """\b
Examples:
  mlprov bom ./model --format cyclonedx --out model.cdx.json
  mlprov bom sha256:<model digest> --format spdx3 --out model.spdx.json
  mlprov bom ./model --format cyclonedx --key team.pub.pem --out model.cdx.json
  mlprov bom ./model --format cyclonedx --sign release.key --out model.cdx.intoto.json
  mlprov store add model.cdx.intoto.json --key release.pub      # the signed BOM, stored
"""


def evidence_options(func: F) -> F:
    """MODEL, the store, and what to verify its attestations with (else the store's record)."""
    func = store_option(func)
    func = sigstore_options(func)
    func = trusted_key_options(func)
    return click.argument("model", metavar="MODEL")(func)


def collect_evidence(
    model: str,
    *,
    store_location: str | None,
    key_paths: tuple[Path, ...],
    threshold: int,
    identity: tuple[str, ...],
    identity_regexp: tuple[str, ...],
    issuer: str | None,
    trusted_root: Path | None,
    staging: bool,
) -> Evidence:
    """The verified lineage of MODEL (a path or digest) in the store."""
    from mlprov.cli._store_common import resolve_target
    from mlprov.cli.store import _verifier
    from mlprov.export.evidence import gather_evidence
    from mlprov.store import open_store

    identities = identities_from(identity, identity_regexp, issuer)
    verifier = _verifier(key_paths, threshold, identities, trusted_root, staging)
    digest = resolve_target(model)
    with open_store(store_location) as opened:
        return gather_evidence(opened, digest, verifier=verifier)


def summary_lines(evidence: Evidence) -> list[str]:
    """What the BOM rests on: verified attestations, those left out, and completeness."""
    from mlprov.export.completeness import completeness

    lines = [
        f"model {evidence.model.name} {evidence.root}: {len(evidence.attestations)} verified"
        f" attestation(s) (checked by {evidence.verified_by}), {len(evidence.unverified)} left out"
    ]
    for fact in evidence.unverified:
        lines.append(f"UNVERIFIED (left out): {fact.digest} ({fact.label}): {fact.reason}")
    lines.extend(line.line() for line in completeness(evidence))
    return lines


def summary_json(evidence: Evidence, **extra: Any) -> dict[str, Any]:
    """The summary as JSON: what was used, what was left out, and completeness."""
    from mlprov.export.completeness import completeness

    return {
        "model": {"name": evidence.model.name, "digest": evidence.root},
        "store": evidence.store,
        "verifiedBy": evidence.verified_by,
        "attestations": [
            {"digest": f.digest, "kind": f.kind, "step": f.step, "signers": list(f.signers)}
            for f in evidence.attestations
        ],
        "unverified": [
            {"digest": f.digest, "kind": f.kind, "step": f.step, "reason": f.reason}
            for f in evidence.unverified
        ],
        "completeness": [c.to_dict() for c in completeness(evidence)],
        **extra,
    }


def report_summary(evidence: Evidence, *, as_json: bool, **extra: Any) -> None:
    """Print the summary: JSON on stdout, or lines on stderr."""
    if as_json:
        echo_json(summary_json(evidence, **extra))
        return
    for line in summary_lines(evidence):
        click.echo(line, err=True)


def build_document(evidence: Evidence, fmt: str) -> tuple[dict[str, Any], str]:
    """(document, predicate type) of the BOM in `fmt`.

    A value from an attestation that the format's library refuses (a type or pattern it
    checks) is bad input: one line naming the format, never a traceback.
    """
    try:
        if fmt == "cyclonedx":
            from mlprov.export import cyclonedx

            return cyclonedx.build_cyclonedx(evidence), cyclonedx.PREDICATE_TYPE
        from mlprov.export import spdx3

        return spdx3.build_spdx3(evidence), spdx3.PREDICATE_TYPE
    except (TypeError, ValueError) as exc:
        raise InputError(f"cannot write the {fmt} BOM from these attestations: {exc}") from None


def signed_statement(
    evidence: Evidence, document: dict[str, Any], predicate_type: str, signers: list[Any]
) -> bytes:
    """The BOM as the predicate of an in-toto Statement about the model, signed (DSSE)."""
    from mlprov.signing.dsse import sign_envelope
    from mlprov.statement import ResourceDescriptor, Statement

    model = evidence.model
    statement = Statement(
        subject=[ResourceDescriptor(name=model.name, digest=dict(model.digests))],
        predicateType=predicate_type,
        predicate=document,
    )
    statement.check_structure()
    envelope = sign_envelope(statement.to_bytes(), signers)
    return envelope.to_json() + b"\n"


@click.command(epilog=EPILOG)
@evidence_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="cyclonedx",
    show_default=True,
    help="cyclonedx (CycloneDX 1.6 JSON) or spdx3 (SPDX 3.0.1 JSON-LD).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the BOM here (default: stdout).",
)
@force_option
@click.option(
    "--strict",
    is_flag=True,
    help="Exit 1 (after writing) when anything is missing or could not be verified.",
)
@sign_options_named("--sign")  # --key names the keys that verify the inputs
@json_option
@click.pass_context
def bom(
    ctx: click.Context,
    /,
    model: str,
    fmt: str,
    out: Path | None,
    force: bool,
    strict: bool,
    sign_keys: tuple[str, ...],
    password_env: str | None,
    as_json: bool,
    **verify_opts: Any,
) -> None:
    """Write the AI-BOM of MODEL (a model PATH or its DIGEST) from the attestation store.

    Only attestations that verify are used: with --key or --identity/--issuer they are
    verified now, otherwise the verification the store recorded on `store add` counts.
    Those that do not verify are listed on stderr and in the BOM, and contribute nothing.
    With --sign the BOM is the predicate of a signed in-toto Statement about the model,
    ready for `mlprov store add`. A completeness summary is printed on stderr.
    """
    from mlprov.fsio import check_writable, write_bytes_atomic

    if as_json and out is None:
        raise InputError("--json prints the summary on stdout: give --out FILE for the BOM")
    if out is not None:
        check_writable(out, force=force)
    signers = signers_from(sign_keys, password_env)
    evidence = collect_evidence(model, **verify_opts)
    document, predicate_type = build_document(evidence, fmt)
    if signers:
        data = signed_statement(evidence, document, predicate_type, signers)
    else:
        data = json.dumps(document, indent=2).encode() + b"\n"
    if out is None:
        click.echo(data.decode(), nl=False)
    else:
        write_bytes_atomic(out, data, force=force)
    report_summary(
        evidence, as_json=as_json, out=str(out) if out else None, format=fmt, signed=bool(signers)
    )
    if out is not None and not as_json:
        what = "signed " if signers else ""
        click.echo(f"wrote {what}{fmt} AI-BOM of {evidence.root} to {out}", err=True)
    if strict:
        from mlprov.export.completeness import completeness

        missing = [c.field for c in completeness(evidence) if c.status == "missing"]
        if missing or evidence.unverified:
            reasons = missing + (
                [f"{len(evidence.unverified)} unverified"] if evidence.unverified else []
            )
            click.echo(f"INCOMPLETE: {', '.join(reasons)}", err=True)
            ctx.exit(1)
