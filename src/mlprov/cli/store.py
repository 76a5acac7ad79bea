"""`mlprov store`: add signed attestations to the store, list, show, export and check them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mlprov.cli._common import display_name, echo_json, force_option, json_option, one_line
from mlprov.cli._store_common import resolve_target, store_option
from mlprov.cli.verify import identities_from, sigstore_options, trusted_key_options
from mlprov.errors import InputError, VerificationError
from mlprov.fsio import atomic_writer
from mlprov.predicates import (
    LINK_V03,
    OMS_V1,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    TEST_RESULT_V01,
    VSA_V1,
)

if TYPE_CHECKING:  # imported where used: this module is loaded for every store command
    from mlprov.signing.files import SignedAttestation
    from mlprov.signing.sigstore_bundle import SigstoreIdentity
    from mlprov.store import AttestationVerifier, SignerEvidence, Store, StoredAttestation

PREDICATE_ALIASES = {
    "slsa": SLSA_PROVENANCE_V1,
    "provenance": SLSA_PROVENANCE_V1,
    "slsa-v0.2": SLSA_PROVENANCE_V02,
    "test-result": TEST_RESULT_V01,
    "link": LINK_V03,
    "vsa": VSA_V1,
    "oms": OMS_V1,
    "model-signing": OMS_V1,
}


STORE_EPILOG = """\b
Examples:
  mlprov store add out/*.intoto.json --key signer.pub.pem
  mlprov store ls --step train
  mlprov store show sha256:<attestation or artifact digest>
  mlprov store export --all --out everything.intoto.jsonl
  mlprov store check
  mlprov store ls --store postgresql://mlprov@db.internal/provenance
"""


@click.group(epilog=STORE_EPILOG)
def store() -> None:
    """Keep signed attestations, indexed by every subject and material digest.

    The store is a SQLite file (default) or a PostgreSQL database (`--store
    postgresql://…`) shared by a team; see `mlprov lineage` for the questions it answers.
    """


def _verifier(
    keys: tuple[Path, ...],
    threshold: int,
    identities: list[SigstoreIdentity],
    trusted_root: Path | None,
    staging: bool,
) -> AttestationVerifier | None:
    """The verifier the options ask for, or None to store unverified."""
    from mlprov.signing.keys import load_public_key
    from mlprov.store import SignatureVerifier

    if (trusted_root or staging) and not identities:
        raise InputError("--trusted-root/--staging apply to --identity/--issuer verification")
    if not keys and not identities:
        return None
    return SignatureVerifier(
        keys=[load_public_key(path) for path in keys],
        identities=identities,
        trusted_root=trusted_root,
        staging=staging,
        threshold=threshold,
    )


ADD_EPILOG = """\b
Examples:
  mlprov store add train.intoto.json                     # stored unverified
  mlprov store add *.intoto.jsonl --key team.pub.pem     # refused unless signed by the key
  mlprov store add model.sig --identity me@example.com --issuer https://accounts.google.com
  mlprov store add run.intoto.json --store postgresql://mlprov@db.internal/provenance
"""


@store.command(epilog=ADD_EPILOG)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@trusted_key_options
@sigstore_options
@store_option
@json_option
@click.pass_context
def add(
    ctx: click.Context,
    files: tuple[Path, ...],
    key_paths: tuple[Path, ...],
    threshold: int,
    identity: tuple[str, ...],
    identity_regexp: tuple[str, ...],
    issuer: str | None,
    trusted_root: Path | None,
    staging: bool,
    store_location: str | None,
    as_json: bool,
) -> None:
    """Add the signed attestations in FILE... (DSSE JSON, .intoto.jsonl, Sigstore bundles).

    The exact bytes are stored under their sha256; adding the same bytes again changes
    nothing. With --key or --identity/--issuer every attestation must verify, or nothing
    is added (exit 1, naming each one that failed); without them attestations are stored
    marked unverified, with the signers they claim.
    """
    from mlprov.signing.files import read_attestations
    from mlprov.store import UNVERIFIED, open_store
    from mlprov.store.render import short_type

    identities = identities_from(identity, identity_regexp, issuer)
    verifier = _verifier(key_paths, threshold, identities, trusted_root, staging)
    attestations: list[SignedAttestation] = []
    for path in files:
        attestations.extend(read_attestations(path))
    items: list[tuple[SignedAttestation, SignerEvidence]] = []
    refused: list[str] = []
    for attestation in attestations:
        if verifier is None:
            items.append((attestation, UNVERIFIED))
            continue
        try:
            items.append((attestation, verifier.verify(attestation)))
        except VerificationError as exc:
            refused.append(str(exc))
    if refused:
        for reason in refused:
            click.echo(f"REFUSED: {one_line(reason)}", err=True)
        click.echo(
            f"FAILED: {len(refused)} of {len(attestations)} attestation(s) did not verify;"
            " nothing was added",
            err=True,
        )
        ctx.exit(1)
    with open_store(store_location) as opened:
        results = opened.add_many(items)
        if sum(r.status == "added" for r in results) >= opened.OPTIMIZE_AFTER:
            opened.optimize()
        location = opened.location
    if as_json:
        echo_json(
            {
                "store": location,
                "results": [
                    {
                        "digest": r.digest,
                        "status": r.status,
                        "verified": r.verified,
                        "source": r.source,
                        "predicateType": r.predicate_type,
                        "step": r.step,
                        "subjects": list(r.subjects),
                    }
                    for r in results
                ],
            }
        )
        return
    for r in results:
        trust = "verified" if r.verified else "unverified"
        what = short_type(r.predicate_type) + (f" step={r.step}" if r.step else "")
        click.echo(one_line(f"{r.status:8} {r.digest}  {what} ({trust})  {r.source}"))
    added = sum(r.status == "added" for r in results)
    click.echo(f"{added} added, {len(results) - added} already stored, in {location}")


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {value!r} is not an ISO 8601 date or time") from None


def _artifact_digest(value: str) -> str:
    """A digest, or the digest of an existing file or directory."""
    return resolve_target(value)


LS_EPILOG = """\b
Examples:
  mlprov store ls
  mlprov store ls --step train --verified
  mlprov store ls --predicate-type test-result --since 2025-01-01
  mlprov store ls --signer keyid:0a1b2c... --json
  mlprov store ls --subject ./model
"""


@store.command(name="ls", epilog=LS_EPILOG)
@click.option(
    "--predicate-type",
    help="Full predicate type URI, or slsa, slsa-v0.2, test-result, link, vsa, oms.",
)
@click.option("--step", help="Pipeline step as recorded (e.g. dataset, train, eval).")
@click.option("--build-type", help="SLSA buildType URI.")
@click.option(
    "--signer",
    help="A signer (keyid:…, or a Sigstore identity), verified or claimed; with --verified,"
    " only one whose signature verified.",
)
@click.option("--verified/--unverified", default=None, help="Only verified / unverified ones.")
@click.option("--since", help="Added at or after this ISO 8601 time (UTC unless given).")
@click.option("--until", help="Added at or before this ISO 8601 time.")
@click.option("--subject", metavar="DIGEST|PATH", help="Only attestations about this artifact.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many.")
@store_option
@json_option
def ls(
    predicate_type: str | None,
    step: str | None,
    build_type: str | None,
    signer: str | None,
    verified: bool | None,
    since: str | None,
    until: str | None,
    subject: str | None,
    limit: int | None,
    store_location: str | None,
    as_json: bool,
) -> None:
    """List stored attestations, oldest first, filtered by type, step, signer and time."""
    from mlprov.store import open_store

    if predicate_type:
        predicate_type = PREDICATE_ALIASES.get(predicate_type, predicate_type)
    with open_store(store_location) as opened:
        found = opened.ls(
            predicate_type=predicate_type,
            step=step,
            build_type=build_type,
            signer=signer,
            verified=verified,
            since=_parse_time(since, "--since"),
            until=_parse_time(until, "--until"),
            subject=_artifact_digest(subject) if subject else None,
            limit=limit,
        )
    if as_json:
        echo_json([item.to_dict() for item in found])
        return
    for item in found:
        click.echo(_summary_line(item))
    if not found:
        click.echo("no attestations match", err=True)


def _summary_line(item: StoredAttestation) -> str:
    from mlprov.store.render import short_type

    trust = "verified" if item.verified else "unverified"
    signers = ",".join(s for s, ok in item.signers if ok == item.verified) or "-"
    subjects = " ".join(f"{display_name(r.label)}={r.digest}" for r in item.subjects)
    step = display_name(item.step or "-")
    return (
        f"{item.digest}  {item.added_at}  {one_line(short_type(item.predicate_type))}"
        f"  step={step}  {trust}:{one_line(signers)}  {subjects}"
    )


SHOW_EPILOG = """\b
Examples:
  mlprov store show sha256:<attestation digest>            # its index entry and Statement
  mlprov store show sha256:<attestation digest> --raw      # the exact stored bytes
  mlprov store show sha256:<model digest>                  # every attestation naming it
"""


SHOWN_FIELDS = ("kind", "predicateType", "buildType", "step", "verified", "addedAt", "source")


@store.command(epilog=SHOW_EPILOG)
@click.argument("digest")
@click.option("--raw", is_flag=True, help="Print the exact stored bytes of the attestation.")
@store_option
@json_option
@click.pass_context
def show(
    ctx: click.Context, digest: str, raw: bool, store_location: str | None, as_json: bool
) -> None:
    """Show an attestation by its digest, or every attestation naming an artifact DIGEST."""
    from mlprov.store import open_store, parse_digest

    key = parse_digest(digest)
    with open_store(store_location) as opened:
        found = opened.get(key)
        if found is None:
            naming = [opened.get(d) for d in opened.naming(key)]
            items = [n for n in naming if n is not None]
        else:
            items = [found]
        location = opened.location
    if not items:
        click.echo(f"NOT FOUND: no attestation in {location} is or names {key}", err=True)
        ctx.exit(1)
    if raw:
        for item in items:
            click.echo(item.raw.decode("utf-8", errors="replace").rstrip("\n"))
        return
    if as_json:
        echo_json([{**item.to_dict(), "statement": item.statement().to_dict()} for item in items])
        return
    for item in items:
        click.echo(_summary_line(item).split("  ")[0])
        details = item.to_dict()
        for field in (
            "kind",
            "predicateType",
            "buildType",
            "step",
            "verified",
            "addedAt",
            "source",
        ):
            if details[field] is not None:
                click.echo(f"  {field}: {display_name(str(details[field]))}")
        for signer, ok in item.signers:
            trust = "verified" if ok else "claimed, unverified"
            click.echo(f"  signer: {display_name(signer)} ({trust})")
        for ref in item.subjects:
            digests = one_line(" ".join(ref.digests)) or "(no digest)"
            click.echo(f"  subject: {display_name(ref.label)}  {digests}")
        for ref in item.materials:
            digests = one_line(" ".join(ref.digests)) or "(no digest)"
            click.echo(f"  material: {display_name(ref.label)}  {digests}")
        click.echo("  statement: " + json.dumps(item.statement().to_dict(), sort_keys=True))


EXPORT_EPILOG = """\b
Examples:
  mlprov store export sha256:<attestation digest> --out one.intoto.jsonl
  mlprov store export sha256:<model digest> --up --out model-evidence.intoto.jsonl
  mlprov store export sha256:<dataset digest> --down --out impact.intoto.jsonl
  mlprov store export --all --out backup.intoto.jsonl
"""


@store.command(epilog=EXPORT_EPILOG)
@click.argument("digests", nargs=-1)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The .intoto.jsonl file to write: each attestation's exact bytes, one per line"
    " (a pretty-printed one keeps its lines).",
)
@click.option("--all", "export_all", is_flag=True, help="Export every stored attestation.")
@click.option(
    "--up",
    "direction",
    flag_value="up",
    help="Also every attestation in the artifacts' lineage up (what they came from).",
)
@click.option(
    "--down",
    "direction",
    flag_value="down",
    help="Also every attestation in their lineage down (what was built from them).",
)
@store_option
@force_option
@json_option
def export(
    digests: tuple[str, ...],
    out: Path,
    export_all: bool,
    direction: str | None,
    store_location: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write attestations to a .intoto.jsonl file, byte for byte as stored.

    Each DIGEST is an attestation digest, or an artifact digest standing for every
    attestation whose subject it is (with --up/--down: its whole lineage).
    """
    from mlprov.store import open_store

    if export_all == bool(digests):
        raise InputError("give DIGEST... or --all (not both)")
    if export_all and direction:
        raise InputError("--up/--down apply to DIGEST..., not --all")
    from mlprov.store.exports import export_in_progress, sweep

    with open_store(store_location) as opened:
        selected = None if export_all else _select(opened, digests, direction)
        count = 0
        removed = sweep(location=opened.location, target=out)  # left by killed exports
        with (
            export_in_progress(opened.location, out) as register,
            atomic_writer(out, force=force, on_temp=register) as handle,
        ):
            for _digest, raw in opened.iter_raw(selected):
                handle.write(raw.rstrip(b"\n") + b"\n")
                count += 1
    if as_json:
        echo_json({"out": str(out), "count": count, "removedTempFiles": [str(p) for p in removed]})
        return
    for path in removed:
        click.echo(f"removed {path}, left by an export that was killed", err=True)
    click.echo(f"exported {count} attestation(s) to {out}")


CHECK_EPILOG = """\b
Examples:
  mlprov store check                          # the per-user store (or $MLPROV_STORE)
  mlprov store check --store team.sqlite3 --quick
  mlprov store check --store postgresql://mlprov@db.internal/provenance --json
"""


@store.command(epilog=CHECK_EPILOG)
@click.option(
    "--quick",
    is_flag=True,
    help="SQLite: PRAGMA quick_check (no index-to-table cross-check) instead of integrity_check.",
)
@store_option
@json_option
@click.pass_context
def check(ctx: click.Context, quick: bool, store_location: str | None, as_json: bool) -> None:
    """Check that the store is intact: pages, schema, bytes, index. Exit 1 if damaged.

    Reads the store and changes nothing in it (it is neither created nor migrated);
    removes the temp files of exports that were killed before they finished.
    """
    from mlprov.store.check import check_store
    from mlprov.store.store import resolve_location

    report = check_store(resolve_location(store_location), quick=quick)
    if as_json:
        echo_json(report.to_dict())
    else:
        for path in report.removed:
            click.echo(f"removed  {path} (left by an export that was killed)")
        for finding in report.findings:
            state = "ok" if finding.ok else "DAMAGED"
            click.echo(f"{state:8} {finding.check}: {finding.detail}")
    if report.damaged:
        problems = sum(not f.ok for f in report.findings)
        click.echo(
            f"DAMAGED: store {report.location}: {problems} problem(s); restore it from a"
            " backup, or export what still reads and add it to a new store",
            err=True,
        )
        ctx.exit(1)
    if not as_json:
        count = report.attestations or 0
        click.echo(
            f"OK: store {report.location} is intact (schema version {report.schema_version},"
            f" {count} attestation(s))",
            err=True,
        )


def _select(opened: Store, digests: tuple[str, ...], direction: str | None) -> set[str]:
    """Attestation digests for DIGEST...: themselves, or those about (and around) an artifact."""
    from mlprov.store import parse_digest

    selected: set[str] = set()
    for text in digests:
        key = parse_digest(text)
        if opened.get(key) is not None and direction is None:
            selected.add(key)
            continue
        if direction == "up":
            graph = opened.lineage_up(key)
        elif direction == "down":
            graph = opened.lineage_down(key)
        else:
            graph = None
        about = opened.naming(key, role="subject")
        if graph is not None:
            about = [*about, *graph.attestations()]
        if not about and not (graph and graph.edges):
            raise InputError(f"{key}: no attestation in {opened.location} is or is about it")
        selected.update(about)
    return selected
