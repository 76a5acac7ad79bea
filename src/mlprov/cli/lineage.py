"""`mlprov lineage`: where an artifact came from (--up) and what was built from it (--down)."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

__all__ = ["digest_of_path", "lineage", "resolve_target"]

import click

from mlprov.cli._common import follow_symlinks_option, storage_option
from mlprov.cli._store_common import digest_of_path, resolve_target, store_option
from mlprov.errors import InputError, MlprovError
from mlprov.fsio import atomic_writer, write_bytes_atomic
from mlprov.store import FORMATS, LineageGraph, open_store
from mlprov.store.render import iter_render, printable

if TYPE_CHECKING:
    from mlprov.store.lineage import ReachedModel

#: Picture formats, drawn by mlprov.report.svg (png through Graphviz's dot).
PICTURES = ("svg", "png")

EPILOG = """\b
Examples:
  mlprov lineage ./model --up                       # everything the model was built from
  mlprov lineage hf://org/name@main --down          # a hub snapshot (read from the local cache)
  mlprov lineage sha256:<dataset digest> --down     # impact report: everything built from it
  mlprov lineage sha256:<dataset digest> --down --only-models   # every model, and how
  mlprov lineage ./data --down --only-models --trained-on       # built from it, not evaluated on
  mlprov lineage ./data --down --step train --step finetune     # only those steps' edges
  mlprov lineage ./model --up --format mermaid      # paste into GitHub/GitLab markdown
  mlprov lineage ./model --up --format dot | dot -Tsvg > lineage.svg
  mlprov lineage ./model --up --format svg --out lineage.svg   # no Graphviz needed
  mlprov lineage ./model --up --max-depth 3 --max-nodes 500
"""


#: Attestations whose descriptors are read for model facts in one lineage answer.
FACTS_ATTESTATION_LIMIT = 500


def model_facts_of(opened: Any, graph: LineageGraph) -> dict[str, dict[str, Any]]:
    """The modelFacts the crossed attestations record, by artifact digest (`sha256:<hex>`)."""
    facts: dict[str, dict[str, Any]] = {}
    for key in graph.attestations()[:FACTS_ATTESTATION_LIMIT]:
        stored = opened.get(key)
        if stored is None:
            continue
        try:
            statement = stored.statement()
        except MlprovError:
            continue
        predicate = statement.predicate or {}
        build = predicate.get("buildDefinition") or {}
        described = [s.to_dict() for s in statement.subject]
        described += [d for d in build.get("resolvedDependencies") or [] if isinstance(d, dict)]
        for item in described:
            notes = item.get("annotations") or {}
            sha = (item.get("digest") or {}).get("sha256")
            if isinstance(notes, dict) and isinstance(notes.get("modelFacts"), dict) and sha:
                digest = f"sha256:{sha}"
                if digest in graph.nodes:
                    facts.setdefault(digest, notes["modelFacts"])
    return facts


def facts_line(facts: dict[str, Any]) -> str:
    """One line a person reads: formats, parameter count, pickle files, malformed files."""
    parts = [", ".join(facts.get("formats") or []) or "no model format recognised"]
    if isinstance(facts.get("parameterCount"), int):
        parts.append(f"{facts['parameterCount']:,} parameters")
    pickles = facts.get("pickleFiles") or []
    parts.append(f"can run code when loaded: {', '.join(pickles)}" if pickles else "no pickle")
    if facts.get("malformedFiles"):
        parts.append(f"MALFORMED: {', '.join(facts['malformedFiles'])}")
    return "; ".join(parts)


def _facts_lines(graph: LineageGraph, facts: dict[str, dict[str, Any]]) -> Iterator[str]:
    """`model facts  NAME: ...` lines after the tree, one per artifact with facts."""
    for digest, found in sorted(facts.items()):
        yield f"model facts  {printable(graph.nodes[digest].label)}: {facts_line(found)}\n"


@click.command(epilog=EPILOG)
@click.argument("target", metavar="PATH|DIGEST|hf://ORG/NAME@REV")
@click.option("--up", "direction", flag_value="up", help="Walk back to what it was built from.")
@click.option("--down", "direction", flag_value="down", help="Walk forward to what it reached.")
@click.option(
    "--only-models",
    is_flag=True,
    help="List just the models (down: every model reached, with how: trained on, fine-tuned"
    " from, converted from, evaluated on; up: the original inputs).",
)
@click.option(
    "--trained-on",
    is_flag=True,
    help="With --down: only what was built from it (training, fine-tuning, conversion,"
    " preparation), not what was only evaluated on it.",
)
@click.option(
    "--step",
    "steps",
    multiple=True,
    metavar="NAME",
    help="Only the edges of this step (as recorded, e.g. train); repeat for several.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice((*FORMATS, *PICTURES)),
    default="tree",
    show_default=True,
    help="tree (rich on a terminal), json, dot (Graphviz), mermaid, svg, or png (needs Graphviz).",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option("--max-depth", type=click.IntRange(min=0), help="Follow at most this many steps.")
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    help="Show at most this many artifacts (the nearest first); what is cut is listed.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of stdout.",
)
@click.option("--force", is_flag=True, help="Overwrite --out if it exists.")
@follow_symlinks_option
@storage_option
@store_option
@click.pass_context
def lineage(
    ctx: click.Context,
    target: str,
    direction: str | None,
    only_models: bool,
    trained_on: bool,
    steps: tuple[str, ...],
    fmt: str,
    as_json: bool,
    max_depth: int | None,
    max_nodes: int | None,
    out: Path | None,
    force: bool,
    follow_symlinks: bool,
    store_location: str | None,
) -> None:
    """Show the lineage of an artifact (a model or dataset PATH, or its DIGEST).

    --up follows every attestation whose subject it is back to its materials,
    recursively (datasets, base models, code, configs); --down follows every attestation
    that used it as a material forward (the impact of a bad input). Each edge shows the
    step and who signed it. Cycles and inputs without a digest are reported, not
    followed; so is what --max-depth and --max-nodes cut. Output is written as it is
    produced. Exit 1 when the store knows nothing about the artifact.
    """
    if direction is None:
        raise InputError("give --up (where it came from) or --down (what was built from it)")
    if trained_on and direction != "down":
        raise InputError("--trained-on applies to --down (what was built from a dataset)")
    if as_json:
        if fmt not in ("tree", "json"):
            raise InputError(f"--json and --format {fmt} contradict each other")
        fmt = "json"
    digest = resolve_target(target, follow_symlinks=follow_symlinks)
    with open_store(store_location) as opened:
        walk = opened.lineage_up if direction == "up" else opened.lineage_down
        graph = walk(digest, max_depth=max_depth, max_nodes=max_nodes)
        if steps:
            graph = graph.only_steps(steps)
        if trained_on:
            graph = graph.without_evaluations()
        location = opened.location
        facts = model_facts_of(opened, graph) if graph.found else {}
    if not graph.found:
        click.echo(f"NOT FOUND: no attestation in {location} names {digest}", err=True)
        ctx.exit(1)
    if fmt in PICTURES and not only_models:
        _write_picture(graph, fmt, out, force)
        return
    pieces: Iterable[str]
    if only_models and direction == "down":
        models = graph.models_reached(trained_on=trained_on)
        if fmt == "json":
            pieces = [_models_json(graph, models)]
        else:
            pieces = (_model_line(graph, model) for model in models)
    elif only_models:
        ends = graph.end_artifacts()
        if fmt == "json":
            pieces = [_ends_json(graph, ends)]
        else:
            pieces = (f"{d}  {printable(graph.nodes[d].label)}\n" for d in ends)
    else:
        color = out is None and fmt == "tree" and sys.stdout.isatty()
        extra: dict[str, object] | None = {"modelFacts": facts} if facts else None
        pieces = iter_render(graph, fmt, color=color, extra=extra)
        if fmt == "tree" and facts:
            pieces = itertools.chain(pieces, _facts_lines(graph, facts))
    if out is not None:
        with atomic_writer(out, force=force) as handle:
            for text in _batched(pieces):
                handle.write(text.encode())
        click.echo(f"wrote {fmt} lineage of {digest} to {out}", err=True)
    else:
        for text in _batched(pieces):
            click.echo(text, nl=False)


def _batched(pieces: Iterable[str], size: int = 1 << 20) -> Iterator[str]:
    """Pieces of text joined into writes of about `size` characters."""
    batch: list[str] = []
    length = 0
    for piece in pieces:
        batch.append(piece)
        length += len(piece)
        if length >= size:
            yield "".join(batch)
            batch, length = [], 0
    if batch:
        yield "".join(batch)


def _ends_json(graph: LineageGraph, ends: list[str]) -> str:
    items = [{"digest": d, "names": graph.nodes[d].names} for d in ends]
    document = {"root": graph.root, "direction": graph.direction, "ends": items}
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _model_line(graph: LineageGraph, model: ReachedModel) -> str:
    """`DIGEST  NAME  converted from model, trained on dataset`: the model, and the way
    from it back to the root in words (other relations it has to the walk after)."""
    path = model.path
    words = [
        f"{path[i]} {printable(graph.nodes[path[i - 1]].label)}"
        for i in range(len(path) - 2, 0, -2)
    ]
    line = f"{model.digest}  {printable(graph.nodes[model.digest].label)}  {', '.join(words)}"
    also = [how for how in model.how if how != path[-2]] if len(path) > 1 else []
    if also:
        line += f"  (also {', '.join(also)})"
    return line + "\n"


def _models_json(graph: LineageGraph, models: list[ReachedModel]) -> str:
    document = {
        "root": graph.root,
        "direction": graph.direction,
        "models": [m.to_dict() for m in models],
        "ends": [{"digest": d, "names": graph.nodes[d].names} for d in graph.end_artifacts()],
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def _write_picture(graph: LineageGraph, fmt: str, out: Path | None, force: bool) -> None:
    """`--format svg|png`: the lineage drawn (SVG without Graphviz; PNG needs it)."""
    from mlprov.report.svg import render_picture

    data = render_picture(graph, "png" if fmt == "png" else "svg")
    if out is not None:
        write_bytes_atomic(out, data, force=force)
        click.echo(f"wrote {fmt} lineage of {graph.root} to {out}", err=True)
    elif fmt == "png" and sys.stdout.isatty():
        raise InputError("a PNG on a terminal: give --out FILE or redirect stdout")
    else:
        click.echo(data.decode() if fmt == "svg" else data, nl=False)
