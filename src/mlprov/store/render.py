"""Lineage graphs as text: an indented tree, JSON, Graphviz DOT and Mermaid.

Every format shows each artifact once with its full digest, each edge with its step and
signer, and the cycles, missing links and truncations the walk reported.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from mlprov.display import display_name, one_line
from mlprov.predicates import (
    LINK_V03,
    OMS_V1,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    TEST_RESULT_V01,
    VSA_V1,
)
from mlprov.store.lineage import LineageEdge, LineageGraph

FORMATS = ("tree", "json", "dot", "mermaid")
_SHORT_TYPES = {
    SLSA_PROVENANCE_V1: "slsa-provenance",
    SLSA_PROVENANCE_V02: "slsa-provenance-v0.2",
    TEST_RESULT_V01: "test-result",
    LINK_V03: "link",
    VSA_V1: "vsa",
    OMS_V1: "model-signing",
}


def short_type(predicate_type: str) -> str:
    """A predicate type as a short word for display."""
    return _SHORT_TYPES.get(predicate_type, predicate_type)


def edge_step(edge: LineageEdge) -> str:
    """What made the edge: the step name, else the buildType's last word, else the predicate."""
    if edge.step:
        return display_name(edge.step)
    if edge.build_type:
        parts = [p for p in edge.build_type.rstrip("/").split("/") if p]
        if len(parts) >= 2 and parts[-1].startswith("v") and parts[-1][1:].isdigit():
            return parts[-2]
        return parts[-1] if parts else edge.build_type
    return short_type(edge.predicate_type)


def _short(text: str, keep: int = 12) -> str:
    """`keyid:0a1b2c3d4e5f…` for long hex identifiers; other text unchanged."""
    kind, sep, value = text.partition(":")
    if sep and len(value) > keep + 4 and all(c in "0123456789abcdef" for c in value):
        return f"{kind}:{value[:keep]}…"
    return text


def edge_signer(edge: LineageEdge, *, short: bool = False) -> str:
    """Who signed, marked as verified or only claimed."""
    if not edge.signers:
        return "unsigned" if not edge.verified else "verified"
    who = one_line(", ".join(_short(s) if short else s for s in edge.signers))
    return f"signed by {who}" if edge.verified else f"claims {who} (unverified)"


def _node_text(graph: LineageGraph, digest: str) -> str:
    node = graph.nodes.get(digest)
    return f"{display_name(node.label)}  {digest}" if node and node.names else digest


def notes(graph: LineageGraph) -> list[str]:
    """One line per cycle, missing link, unattested input and truncation."""
    notes = []
    for cycle in graph.cycles:
        notes.append("cycle: " + " -> ".join(cycle))
    for link in graph.missing:
        notes.append(
            f"missing link: {link.artifact!r} ({link.reason}) in attestation {link.attestation}"
        )
    if graph.direction == "up":
        for digest in graph.unattested:
            if digest != graph.root or not graph.edges:
                notes.append(
                    f"unattested input (no provenance in the store): {_node_text(graph, digest)}"
                )
    for digest in graph.truncated:
        notes.append(f"not expanded (max depth {graph.max_depth}): {_node_text(graph, digest)}")
    return notes


def render_tree(graph: LineageGraph, *, color: bool = False, width: int = 200) -> str:
    """An indented tree from the root; artifacts met again are shown once and referenced."""
    import io

    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    verb = "from" if graph.direction == "up" else "into"
    top = Tree(f"[bold]{escape(_node_text(graph, graph.root))}[/bold]")
    expanded = {graph.root}
    # Iterative depth-first walk: (tree node, artifact, path from the root).
    stack: list[tuple[Tree, str, tuple[str, ...]]] = [(top, graph.root, (graph.root,))]
    while stack:
        branch, digest, path = stack.pop()
        by_attestation: dict[str, list[LineageEdge]] = {}
        for edge in graph.outgoing(digest):
            by_attestation.setdefault(edge.attestation, []).append(edge)
        pending = []
        for attestation, edges in by_attestation.items():
            first = edges[0]
            step = branch.add(
                f"[cyan]{escape(edge_step(first))}[/cyan] ({short_type(first.predicate_type)},"
                f" {escape(edge_signer(first, short=True))},"
                f" [dim]attestation {_short(attestation)}[/dim]) {verb}:"
            )
            for edge in edges:
                far = graph.far_end(edge)
                label = escape(_node_text(graph, far))
                if far in path:
                    step.add(f"{label}  [red](cycle)[/red]")
                elif far in expanded:
                    step.add(f"{label}  [dim](shown above)[/dim]")
                else:
                    expanded.add(far)
                    pending.append((step.add(label), far, (*path, far)))
        stack.extend(reversed(pending))
    out = io.StringIO()
    console = Console(
        file=out, force_terminal=color, no_color=not color, width=width, highlight=False
    )
    console.print(top)
    text = out.getvalue()
    extra = notes(graph)
    if extra:
        text += "".join(f"! {line}\n" for line in extra)
    return text


def render_json(graph: LineageGraph) -> str:
    """The graph as JSON (nodes, edges, ends, cycles, missing links, truncations)."""
    return json.dumps(graph.to_dict(), indent=2, sort_keys=True) + "\n"


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def render_dot(graph: LineageGraph) -> str:
    """Graphviz DOT, edges in the direction data flowed; cycles drawn in red."""
    in_cycle = {d for cycle in graph.cycles for d in cycle}
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [shape=box, fontname="monospace"];',
    ]
    for digest, node in sorted(graph.nodes.items()):
        label = f"{node.label}\n{digest}" if node.names else digest
        attrs = [f"label={_dot_quote(label)}"]
        if digest == graph.root:
            attrs.append("penwidth=2")
        if digest in in_cycle:
            attrs.append("color=red")
        lines.append(f"  {_dot_quote(digest)} [{', '.join(attrs)}];")
    for edge in graph.edges:
        label = f"{edge_step(edge)}\n{edge_signer(edge, short=True)}"
        style = "" if edge.verified else ", style=dashed"
        lines.append(
            f"  {_dot_quote(edge.material)} -> {_dot_quote(edge.product)}"
            f" [label={_dot_quote(label)}{style}];"
        )
    for line in notes(graph):
        lines.append(f"  // {line}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def render_mermaid(graph: LineageGraph) -> str:
    """A Mermaid flowchart (renders in GitHub/GitLab markdown); unverified edges dotted."""
    ids = {digest: f"n{i}" for i, digest in enumerate(sorted(graph.nodes))}
    lines = ["flowchart LR"]
    for digest, node in sorted(graph.nodes.items()):
        short = digest.split(":", 1)[0] + ":" + digest.split(":", 1)[-1][:12] + "…"
        label = _mermaid_text(node.label) + "<br/>" + short if node.names else short
        lines.append(f'  {ids[digest]}["{label}"]')
    for edge in graph.edges:
        arrow = "-->" if edge.verified else "-.->"
        lines.append(
            f'  {ids[edge.material]} {arrow}|"{_mermaid_text(edge_step(edge))}"|'
            f" {ids[edge.product]}"
        )
    lines.append(f"  style {ids[graph.root]} stroke-width:3px")
    for cycle in graph.cycles:
        for digest in cycle:
            lines.append(f"  style {ids[digest]} stroke:#d00")
    for line in notes(graph):
        lines.append(f"  %% {line}")
    return "\n".join(lines) + "\n"


RENDERERS: dict[str, Callable[[LineageGraph], str]] = {
    "json": render_json,
    "dot": render_dot,
    "mermaid": render_mermaid,
}


def render(graph: LineageGraph, fmt: str, *, color: bool = False) -> str:
    """The graph in one of FORMATS."""
    if fmt == "tree":
        return render_tree(graph, color=color)
    return RENDERERS[fmt](graph)
