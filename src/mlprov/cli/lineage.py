"""`mlprov lineage`: where an artifact came from (--up) and what was built from it (--down)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mlprov.cli._common import byte_progress, storage_option
from mlprov.cli.store import store_option
from mlprov.digest import DigestCache, digest_file, digest_tree
from mlprov.errors import InputError
from mlprov.fsio import write_bytes_atomic
from mlprov.store import FORMATS, LineageGraph, open_store, parse_digest
from mlprov.store.render import render

EPILOG = """\b
Examples:
  mlprov lineage ./model --up                       # everything the model was built from
  mlprov lineage sha256:<dataset digest> --down     # impact report: everything built from it
  mlprov lineage sha256:<dataset digest> --down --only-models
  mlprov lineage ./model --up --format mermaid      # paste into GitHub/GitLab markdown
  mlprov lineage ./model --up --format dot | dot -Tsvg > lineage.svg
"""


def digest_of_path(path: Path) -> str:
    """The digest attestations use for a path: tree digest of a directory (OpenSSF Model
    Signing), sha256 of a file's bytes."""
    if path.is_dir():
        cache = DigestCache()
        try:
            with byte_progress(f"hashing {path}") as (on_total, advance):
                manifest = digest_tree(path, cache=cache, progress=advance, on_total=on_total)
        finally:
            cache.close()
        return f"sha256:{manifest.digest}"
    return f"sha256:{digest_file(path)}"


def resolve_target(target: str) -> str:
    """A digest as given (`sha256:<hex>` or bare hex), the digest of an existing path, or
    that of an object-store URL (`s3://bucket/prefix/`), hashed where it is."""
    from mlprov.digest.remote import is_remote, public_url

    if is_remote(target):
        with byte_progress(f"hashing {public_url(target)}") as (on_total, advance):
            remote = digest_tree(target, progress=advance, on_total=on_total)
        return f"sha256:{remote.identity}"
    path = Path(target)
    looks_like_digest = ":" in target and not target.startswith(("/", "."))
    if path.exists() and not looks_like_digest:
        return digest_of_path(path)
    try:
        return parse_digest(target)
    except InputError:
        raise InputError(f"{target!r} is neither an existing path nor a digest") from None


@click.command(epilog=EPILOG)
@click.argument("target", metavar="PATH|DIGEST")
@click.option("--up", "direction", flag_value="up", help="Walk back to what it was built from.")
@click.option("--down", "direction", flag_value="down", help="Walk forward to what it reached.")
@click.option(
    "--only-models",
    is_flag=True,
    help="List just the end artifacts (down: the last models built; up: the original inputs).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="tree",
    show_default=True,
    help="tree (rich on a terminal), json, dot (Graphviz) or mermaid.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--max-depth", type=click.IntRange(min=0), help="Follow at most this many steps.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of stdout.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@storage_option
@store_option
@click.pass_context
def lineage(
    ctx: click.Context,
    target: str,
    direction: str | None,
    only_models: bool,
    fmt: str,
    as_json: bool,
    max_depth: int | None,
    out: Path | None,
    force: bool,
    store_location: str | None,
) -> None:
    """Show the lineage of an artifact (a model or dataset PATH, or its DIGEST).

    --up follows every attestation whose subject it is back to its materials,
    recursively (datasets, base models, code, configs); --down follows every attestation
    that used it as a material forward (the impact of a bad input). Each edge shows the
    step and who signed it. Cycles and inputs without a digest are reported, not
    followed. Exit 1 when the store knows nothing about the artifact.
    """
    if direction is None:
        raise InputError("give --up (where it came from) or --down (what was built from it)")
    if as_json:
        if fmt not in ("tree", "json"):
            raise InputError(f"--json and --format {fmt} contradict each other")
        fmt = "json"
    digest = resolve_target(target)
    with open_store(store_location) as opened:
        if direction == "up":
            graph = opened.lineage_up(digest, max_depth=max_depth)
        else:
            graph = opened.lineage_down(digest, max_depth=max_depth)
        location = opened.location
    if not graph.found:
        click.echo(f"NOT FOUND: no attestation in {location} names {digest}", err=True)
        ctx.exit(1)
    if only_models:
        ends = graph.end_artifacts()
        if fmt == "json":
            text = _ends_json(graph, ends)
        else:
            text = "".join(f"{d}  {graph.nodes[d].label}\n" for d in ends)
    else:
        text = render(graph, fmt, color=out is None and fmt == "tree" and sys.stdout.isatty())
    if out is not None:
        write_bytes_atomic(out, text.encode(), force=force)
        click.echo(f"wrote {fmt} lineage of {digest} to {out}", err=True)
    else:
        click.echo(text, nl=False)


def _ends_json(graph: LineageGraph, ends: list[str]) -> str:
    items = [{"digest": d, "names": graph.nodes[d].names} for d in ends]
    document = {"root": graph.root, "direction": graph.direction, "ends": items}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"
