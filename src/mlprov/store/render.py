"""Lineage graphs as text: an indented tree, JSON, Graphviz DOT and Mermaid.

Every format shows each artifact once with its digest (full in the tree and JSON; short
in DOT and Mermaid labels, full in DOT's node ids and tooltips, so a picture stays
readable), each edge with its step, relation and signer, and the cycles, missing links
and cuts the walk reported. Each renderer is a
generator of text, written as it is produced, in time and memory proportional to the
nodes and edges shown: text is computed once per artifact and per attestation, the tree
expands each artifact once (later meetings are references) and is walked iteratively.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from mlprov.display import display_name, one_line
from mlprov.predicates import (
    LINK_V03,
    OMS_V1,
    SLSA_PROVENANCE_V02,
    SLSA_PROVENANCE_V1,
    TEST_RESULT_V01,
    VSA_V1,
)
from mlprov.store.lineage import EVALUATED_ON, LineageEdge, LineageGraph, node_dict

FORMATS = ("tree", "json", "dot", "mermaid")
_SHORT_TYPES = {
    SLSA_PROVENANCE_V1: "slsa-provenance",
    SLSA_PROVENANCE_V02: "slsa-provenance-v0.2",
    TEST_RESULT_V01: "test-result",
    LINK_V03: "link",
    VSA_V1: "vsa",
    OMS_V1: "model-signing",
}
#: Artifact levels a tree indents before it continues the branch as a new section below:
#: a 10,000-step chain must not print lines 80,000 columns wide.
SECTION_DEPTH = 8


def short_type(predicate_type: str) -> str:
    """A predicate type as a short word for display."""
    return _SHORT_TYPES.get(predicate_type, predicate_type)


def edge_step(edge: LineageEdge) -> str:
    """What made the edge: the step name, else the buildType's last word, else the predicate."""
    if edge.step:
        return edge.step
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


def printable(text: str) -> str:
    """A name as the terminal may show it: quoted with escapes when it holds control or
    other unprintable characters (mlprov.display's one rule), so it cannot forge lines."""
    return display_name(text)


def _node_text(graph: LineageGraph, digest: str) -> str:
    node = graph.nodes.get(digest)
    return f"{display_name(node.label)}  {digest}" if node and node.names else digest


def notes(graph: LineageGraph) -> list[str]:
    """One line per cycle, missing link, unattested input and cut."""
    lines = []
    for cycle in graph.cycles:
        lines.append("cycle: " + " -> ".join(cycle))
    for link in graph.missing:
        lines.append(
            f"missing link: {printable(link.artifact)!r} ({link.reason}) in attestation"
            f" {link.attestation}"
        )
    if graph.direction == "up" and graph.unattested:
        # Data only an evaluation read is not something the target was built from.
        built_from = {e.material for e in graph.edges if e.relation != EVALUATED_ON}
        for digest in graph.unattested:
            if digest != graph.root or not graph.edges:
                evaluated = digest not in built_from and digest != graph.root
                what = "evaluation data" if evaluated else "input"
                lines.append(
                    f"unattested {what} (no provenance in the store): {_node_text(graph, digest)}"
                )
    for digest in graph.truncated:
        lines.append(f"not expanded (max depth {graph.max_depth}): {_node_text(graph, digest)}")
    if graph.cut:
        lines.append(
            f"stopped at --max-nodes {graph.max_nodes}: {len(graph.nodes)} artifacts shown;"
            f" {graph.cut_edges} edge(s) from {len(graph.cut)} of them lead to artifacts not shown"
        )
        for digest, count in sorted(graph.cut.items()):
            lines.append(
                f"not fully expanded (max nodes {graph.max_nodes}, {count} edge(s) not shown):"
                f" {_node_text(graph, digest)}"
            )
    return lines


class _Style:
    """ANSI styles for a terminal; nothing when colour is off."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def cyan(self, text: str) -> str:
        return self._wrap("36", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)


def _grouped(edges: Iterable[LineageEdge]) -> list[list[LineageEdge]]:
    """Edges by attestation, in the order the attestations first appear; evaluations
    after the steps that built the artifact (their inputs are not what it was built from)."""
    groups: dict[str, list[LineageEdge]] = {}
    for edge in edges:
        groups.setdefault(edge.attestation, []).append(edge)
    return sorted(groups.values(), key=lambda group: group[0].relation == EVALUATED_ON)


def short_digest(digest: str, keep: int = 12) -> str:
    """`sha256:0a1b2c3d4e5f…`: enough to tell artifacts apart in a picture."""
    kind, sep, value = digest.partition(":")
    if not sep:
        kind, value = "", digest
    short = value[:keep] + "…" if len(value) > keep + 1 else value
    return f"{kind}:{short}" if kind else short


def iter_tree(graph: LineageGraph, *, color: bool = False) -> Iterator[str]:
    """An indented tree from the root, line by line.

    Each artifact is expanded once, where it is first printed; met again it is printed
    with `(shown above)`, or `(cycle)` when it is its own ancestor. A branch deeper than
    SECTION_DEPTH artifacts continues as a numbered section below (`(continued below at
    [N])`, later meetings `(see [N] below)`), so lines stay short however deep the lineage.
    """
    style = _Style(color)
    up = graph.direction == "up"
    verb = "from" if up else "into"
    # An evaluation did not build its model from its datasets: it evaluated the model on them.
    evaluated = "evaluated on" if up else "evaluated"
    index = graph.outgoing_index()
    texts: dict[str, str] = {}
    steps: dict[str, str] = {}
    truncated = set(graph.truncated)

    def text(digest: str) -> str:
        found = texts.get(digest)
        if found is None:
            found = texts[digest] = _node_text(graph, digest)
        return found

    def step_text(edge: LineageEdge) -> str:
        found = steps.get(edge.attestation)
        if found is None:
            found = steps[edge.attestation] = (
                f"{style.cyan(display_name(edge_step(edge)))}"
                f" ({display_name(short_type(edge.predicate_type))},"
                f" {edge_signer(edge, short=True)},"
                f" {style.dim('attestation ' + _short(edge.attestation))})"
                f" {evaluated if edge.relation == EVALUATED_ON else verb}:"
            )
        return found

    def marks(digest: str) -> str:
        extra = ""
        if digest in truncated:
            extra += "  " + style.dim(f"(not expanded: max depth {graph.max_depth})")
        if digest in graph.cut:
            extra += "  " + style.dim(
                f"({graph.cut[digest]} more not shown: max nodes {graph.max_nodes})"
            )
        return extra

    expanded: set[str] = set()
    pending: dict[str, int] = {}  # artifact -> the section it continues in, not yet printed
    sections: deque[tuple[str, int]] = deque()
    numbers = iter(range(1, 1 << 62))

    def section(start: str) -> Iterator[str]:
        on_path = {start}
        expanded.add(start)
        # A stack of generators, one per artifact being expanded: no recursion.
        stack: list[tuple[str, Iterator[str | tuple[str, str]]]] = [
            (start, expand(start, "", 0, on_path))
        ]
        while stack:
            digest, lines = stack[-1]
            item = next(lines, None)
            if item is None:
                stack.pop()
                on_path.discard(digest)
            elif isinstance(item, str):
                yield item
            else:
                far, prefix = item
                on_path.add(far)
                stack.append((far, expand(far, prefix, len(stack), on_path)))

    def expand(
        digest: str, prefix: str, level: int, on_path: set[str]
    ) -> Iterator[str | tuple[str, str]]:
        groups = _grouped(index.get(digest, ()))
        for g, edges in enumerate(groups):
            last_group = g == len(groups) - 1
            yield f"{prefix}{'└── ' if last_group else '├── '}{step_text(edges[0])}\n"
            inner = prefix + ("    " if last_group else "│   ")
            for e, edge in enumerate(edges):
                last = e == len(edges) - 1
                far = edge.material if graph.direction == "up" else edge.product
                head = f"{inner}{'└── ' if last else '├── '}{text(far)}"
                if far in on_path:
                    yield f"{head}  {style.red('(cycle)')}\n"
                elif far in pending:
                    yield f"{head}  {style.dim(f'(see [{pending[far]}] below)')}\n"
                elif far in expanded:
                    yield f"{head}  {style.dim('(shown above)')}\n"
                elif far in index and level + 1 >= SECTION_DEPTH:
                    expanded.add(far)
                    number = next(numbers)
                    pending[far] = number
                    sections.append((far, number))
                    yield f"{head}{marks(far)}  {style.dim(f'(continued below at [{number}])')}\n"
                else:
                    expanded.add(far)
                    yield f"{head}{marks(far)}\n"
                    if far in index:
                        yield far, inner + ("    " if last else "│   ")

    yield style.bold(text(graph.root)) + marks(graph.root) + "\n"
    yield from section(graph.root)
    while sections:
        start, number = sections.popleft()
        del pending[start]
        yield f"\n[{number}] {style.bold(text(start))}{marks(start)}  (continued from above)\n"
        yield from section(start)
    for line in notes(graph):
        yield f"! {line}\n"


def render_tree(graph: LineageGraph, *, color: bool = False) -> str:
    """The tree of `iter_tree` as one string."""
    return "".join(iter_tree(graph, color=color))


def _indented(value: object, indent: str) -> str:
    """`value` as json.dumps(indent=2, sort_keys=True) writes it `indent` deep."""
    return json.dumps(value, indent=2, sort_keys=True).replace("\n", "\n" + indent)


def iter_json(graph: LineageGraph, extra: dict[str, object] | None = None) -> Iterator[str]:
    """The graph as JSON, byte for byte what `json.dumps(graph.to_dict(), indent=2,
    sort_keys=True)` writes, produced a node and an edge at a time.

    The edges are most of it (a dense lineage has a million): each is assembled from
    parts encoded once per attestation and once per artifact.
    """
    encode = json.dumps
    digests: dict[str, str] = {}
    parts: dict[str, tuple[str, str, str]] = {}

    def quoted(digest: str) -> str:
        found = digests.get(digest)
        if found is None:
            found = digests[digest] = encode(digest)
        return found

    def edge_parts(edge: LineageEdge) -> tuple[str, str, str]:
        found = parts.get(edge.attestation)
        if found is None:
            signers = (
                "[\n" + ",\n".join("        " + encode(s) for s in edge.signers) + "\n      ]"
                if edge.signers
                else "[]"
            )
            found = parts[edge.attestation] = (
                f'    {{\n      "attestation": {encode(edge.attestation)},\n'
                f'      "buildType": {encode(edge.build_type)},\n      "material": ',
                f',\n      "predicateType": {encode(edge.predicate_type)},\n      "product": ',
                f',\n      "relation": {encode(edge.relation)},\n'
                f'      "signers": {signers},\n      "step": {encode(edge.step)},\n'
                f'      "verified": {encode(edge.verified)}\n    }}',
            )
        return found

    def listing(items: Iterator[str], empty: bool) -> Iterator[str]:
        if empty:
            yield "[]"
            return
        yield "[\n"
        first = True
        for item in items:
            yield item if first else ",\n" + item
            first = False
        yield "\n  ]"

    def edges() -> Iterator[str]:
        for edge in graph.edges:
            head, middle, tail = edge_parts(edge)
            yield head + quoted(edge.material) + middle + quoted(edge.product) + tail

    def nodes() -> Iterator[str]:
        for node in graph.sorted_nodes():
            yield "    " + _indented(node_dict(node), "    ")

    small = {
        "cut": dict(sorted(graph.cut.items())),
        "cutEdges": graph.cut_edges,
        "cycles": graph.cycles,
        "direction": graph.direction,
        "ends": graph.end_artifacts(),
        "found": graph.found,
        "maxDepth": graph.max_depth,
        "maxNodes": graph.max_nodes,
        "missing": [m.to_dict() for m in graph.missing],
        "root": graph.root,
        "truncated": graph.truncated,
        "unattested": graph.unattested,
        **(extra or {}),
    }
    keys = sorted([*small, "edges", "nodes"])
    yield "{\n"
    for i, key in enumerate(keys):
        yield f"  {encode(key)}: "
        if key == "edges":
            yield from listing(edges(), not graph.edges)
        elif key == "nodes":
            yield from listing(nodes(), not graph.nodes)
        else:
            yield _indented(small[key], "  ")
        yield ",\n" if i < len(keys) - 1 else "\n"
    yield "}\n"


def render_json(graph: LineageGraph) -> str:
    """The graph as JSON (nodes, edges, ends, cycles, missing links, cuts)."""
    return "".join(iter_json(graph))


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def iter_dot(graph: LineageGraph) -> Iterator[str]:
    """Graphviz DOT, edges in the direction data flowed; cycles drawn in red, evaluations
    dotted. Labels carry short digests (a 64-hex label makes a picture thousands of pixels
    wide); the full digest is each node's id and tooltip."""
    in_cycle = {d for cycle in graph.cycles for d in cycle}
    yield 'digraph lineage {\n  rankdir=LR;\n  node [shape=box, fontname="monospace"];\n'
    quoted: dict[str, str] = {}
    for digest, node in sorted(graph.nodes.items()):
        quoted[digest] = _dot_quote(digest)
        short = short_digest(digest)
        label = f"{node.label}\n{short}" if node.names else short
        attrs = [f"label={_dot_quote(label)}", f"tooltip={quoted[digest]}"]
        if digest == graph.root:
            attrs.append("penwidth=2")
        if digest in in_cycle:
            attrs.append("color=red")
        yield f"  {quoted[digest]} [{', '.join(attrs)}];\n"
    labels: dict[str, str] = {}
    for edge in graph.edges:
        if edge.attestation not in labels:
            relation = edge.relation
            text = f"{edge_step(edge)} ({relation})\n{edge_signer(edge, short=True)}"
            style = ""
            if relation == EVALUATED_ON:
                style = ", style=dotted"
            elif not edge.verified:
                style = ", style=dashed"
            labels[edge.attestation] = f" [label={_dot_quote(text)}{style}];\n"
        yield f"  {quoted[edge.material]} -> {quoted[edge.product]}{labels[edge.attestation]}"
    for line in notes(graph):
        yield f"  // {line}\n"
    yield "}\n"


def render_dot(graph: LineageGraph) -> str:
    return "".join(iter_dot(graph))


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label, on one line: a raw newline in a name would end
    the line, and the markdown fence around the chart, letting a name write markdown."""
    return one_line(text).replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def iter_mermaid(graph: LineageGraph) -> Iterator[str]:
    """A Mermaid flowchart (renders in GitHub/GitLab markdown); unverified edges dotted."""
    ids = {digest: f"n{i}" for i, digest in enumerate(sorted(graph.nodes))}
    yield "flowchart LR\n"
    for digest, node in sorted(graph.nodes.items()):
        short = short_digest(digest)
        label = _mermaid_text(node.label) + "<br/>" + short if node.names else short
        yield f'  {ids[digest]}["{label}"]\n'
    arrows: dict[str, str] = {}
    for edge in graph.edges:
        if edge.attestation not in arrows:
            sign = "-->" if edge.verified else "-.->"
            text = f"{edge_step(edge)} ({edge.relation})"
            arrows[edge.attestation] = f' {sign}|"{_mermaid_text(text)}"| '
        yield f"  {ids[edge.material]}{arrows[edge.attestation]}{ids[edge.product]}\n"
    yield f"  style {ids[graph.root]} stroke-width:3px\n"
    for cycle in graph.cycles:
        for digest in cycle:
            yield f"  style {ids[digest]} stroke:#d00\n"
    for line in notes(graph):
        yield f"  %% {line}\n"


def render_mermaid(graph: LineageGraph) -> str:
    return "".join(iter_mermaid(graph))


RENDERERS: dict[str, Callable[[LineageGraph], Iterator[str]]] = {
    "json": iter_json,
    "dot": iter_dot,
    "mermaid": iter_mermaid,
}


def iter_render(
    graph: LineageGraph,
    fmt: str,
    *,
    color: bool = False,
    extra: dict[str, object] | None = None,
) -> Iterator[str]:
    """The graph in one of FORMATS, as pieces of text to write as they come; `extra`
    adds top-level keys to the JSON document (model facts)."""
    if fmt == "tree":
        return iter_tree(graph, color=color)
    if fmt == "json":
        return iter_json(graph, extra)
    return RENDERERS[fmt](graph)


def render(graph: LineageGraph, fmt: str, *, color: bool = False) -> str:
    """The graph in one of FORMATS."""
    return "".join(iter_render(graph, fmt, color=color))
