"""Lineage pictures as SVG: Graphviz `dot` where it is installed, else a layered layout in
pure Python, so `pip install mlprov` alone can draw one.

A `Diagram` is boxes and arrows with links; everything drawn from it is escaped here,
because labels come from attestations, and names in attestations are attacker controlled.
"""

from __future__ import annotations

import hashlib
import html
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Literal

from mlprov.errors import InputError

NodeKind = Literal["model", "dataset", "step", "artifact", "group"]
Status = Literal["ok", "unverified", "failed", "root"]

#: Seconds Graphviz may take before the pure-Python layout is used instead.
DOT_TIMEOUT = 30
#: Nodes beyond which Graphviz is not asked (its layout grows super-linearly).
MAX_DOT_NODES = 2000
_NODE_W, _NODE_H, _GAP_X, _GAP_Y, _PAD = 210, 44, 70, 18, 20
_LABEL_CHARS = 28
_STYLE = {
    "model": ("#e8f0fe", "#1a56db"),
    "dataset": ("#e6f4ea", "#137333"),
    "step": ("#fef7e0", "#b06000"),
    "artifact": ("#f1f3f4", "#5f6368"),
    "group": ("#f1f3f4", "#5f6368"),
}


@dataclass
class Node:
    """A box: `id` is internal, `label`/`sublabel` are shown, `href` is where it links."""

    id: str
    label: str
    kind: NodeKind = "artifact"
    sublabel: str = ""
    href: str | None = None
    status: Status = "ok"


@dataclass(frozen=True)
class Arrow:
    source: str
    target: str
    label: str = ""
    dashed: bool = False


@dataclass
class Diagram:
    nodes: dict[str, Node] = field(default_factory=dict)
    arrows: list[Arrow] = field(default_factory=list)

    def add(self, node: Node) -> Node:
        return self.nodes.setdefault(node.id, node)

    def link(self, arrow: Arrow) -> None:
        if arrow.source in self.nodes and arrow.target in self.nodes and arrow not in self.arrows:
            self.arrows.append(arrow)


def node_id(text: str) -> str:
    """A safe identifier for any text (digests, names): `n` and 16 hex digits of its sha256."""
    return "n" + hashlib.sha256(text.encode()).hexdigest()[:16]


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- pure-Python layered layout ----------------------------------------------------------


def layers(diagram: Diagram) -> list[list[str]]:
    """Nodes in columns by longest path from a source (Kahn's order; nodes on cycles are
    placed after everything acyclic), ordered within a column by the barycentre of their
    neighbours to keep arrows short and crossings few."""
    preds: dict[str, list[str]] = {n: [] for n in diagram.nodes}
    succs: dict[str, list[str]] = {n: [] for n in diagram.nodes}
    for arrow in diagram.arrows:
        if arrow.source != arrow.target:
            succs[arrow.source].append(arrow.target)
            preds[arrow.target].append(arrow.source)
    indegree = {n: len(p) for n, p in preds.items()}
    rank: dict[str, int] = {}
    ready = [n for n in diagram.nodes if indegree[n] == 0]
    while ready:
        current = ready.pop()
        rank[current] = max((rank[p] + 1 for p in preds[current] if p in rank), default=0)
        for nxt in succs[current]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                ready.append(nxt)
    top = max(rank.values(), default=-1) + 1
    for n in diagram.nodes:  # on a cycle: after every rank its ranked predecessors have
        if n not in rank:
            rank[n] = max((rank[p] + 1 for p in preds[n] if p in rank), default=top)
    columns: list[list[str]] = [[] for _ in range(max(rank.values(), default=-1) + 1)]
    for n in diagram.nodes:
        columns[rank[n]].append(n)
    for _ in range(4):  # a few barycentre sweeps, left to right then right to left
        for index in range(1, len(columns)):
            _sort_by(columns[index], columns[index - 1], preds)
        for index in range(len(columns) - 2, -1, -1):
            _sort_by(columns[index], columns[index + 1], succs)
    return [c for c in columns if c]


def _sort_by(column: list[str], neighbour: list[str], links: dict[str, list[str]]) -> None:
    position = {n: i for i, n in enumerate(neighbour)}
    current = {n: float(i) for i, n in enumerate(column)}

    def centre(n: str) -> float:
        seen = [position[m] for m in links[n] if m in position]
        return sum(seen) / len(seen) if seen else current[n]

    column.sort(key=centre)


def layout_svg(diagram: Diagram) -> str:
    """The diagram drawn as SVG with the layered layout (left to right)."""
    columns = layers(diagram)
    tallest = max((len(c) for c in columns), default=1)
    height = _PAD * 2 + tallest * (_NODE_H + _GAP_Y) - _GAP_Y
    width = _PAD * 2 + len(columns) * (_NODE_W + _GAP_X) - _GAP_X
    where: dict[str, tuple[float, float]] = {}
    for x_index, column in enumerate(columns):
        offset = (height - (len(column) * (_NODE_H + _GAP_Y) - _GAP_Y)) / 2
        for y_index, name in enumerate(column):
            where[name] = (
                _PAD + x_index * (_NODE_W + _GAP_X),
                offset + y_index * (_NODE_H + _GAP_Y),
            )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" role="img"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' style="max-width:100%;height:auto">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#5f6368"/></marker></defs>',
    ]
    for arrow in diagram.arrows:
        if arrow.source not in where or arrow.target not in where:
            continue
        sx, sy = where[arrow.source]
        tx, ty = where[arrow.target]
        x1, y1 = sx + _NODE_W, sy + _NODE_H / 2
        x2, y2 = tx, ty + _NODE_H / 2
        if x2 <= x1:  # a back edge (cycle): loop below the boxes
            bend = max(sy, ty) + _NODE_H + _GAP_Y
            path = (
                f"M{x1:.0f},{y1:.0f} C{x1 + 60:.0f},{bend:.0f}"
                f" {x2 - 60:.0f},{bend:.0f} {x2:.0f},{y2:.0f}"
            )
        else:
            mid = (x1 + x2) / 2
            path = f"M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        dash = ' stroke-dasharray="6 4"' if arrow.dashed else ""
        colour = "#d93025" if arrow.dashed else "#5f6368"
        title = f"<title>{html.escape(arrow.label)}</title>" if arrow.label else ""
        parts.append(
            f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}'
            f' marker-end="url(#arrow)">{title}</path>'
        )
    for name in (n for column in columns for n in column):
        node = diagram.nodes[name]
        x, y = where[name]
        fill, stroke = _STYLE[node.kind]
        width_px = 1.5
        dash = ""
        if node.status == "root":
            width_px = 3.0
        elif node.status in ("unverified", "failed"):
            fill, stroke, dash = "#fce8e6", "#d93025", ' stroke-dasharray="5 3"'
        rx = 20 if node.kind == "step" else 6
        title = html.escape(node.label + (f"\n{node.sublabel}" if node.sublabel else ""))
        box = (
            f'<g class="node node-{node.kind} status-{node.status}" id="svg-{node.id}">'
            f"<title>{title}</title>"
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{_NODE_W}" height="{_NODE_H}" rx="{rx}"'
            f' fill="{fill}" stroke="{stroke}" stroke-width="{width_px}"{dash}/>'
            f'<text x="{x + _NODE_W / 2:.0f}" y="{y + 18:.0f}" text-anchor="middle"'
            f' font-family="sans-serif" font-size="13" font-weight="600" fill="#202124">'
            f"{html.escape(_short(node.label))}</text>"
        )
        if node.sublabel:
            box += (
                f'<text x="{x + _NODE_W / 2:.0f}" y="{y + 35:.0f}" text-anchor="middle"'
                f' font-family="monospace" font-size="10.5" fill="#5f6368">'
                f"{html.escape(_short(node.sublabel, 30))}</text>"
            )
        box += "</g>"
        if node.href:
            box = f'<a href="{html.escape(node.href)}">{box}</a>'
        parts.append(box)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- Graphviz ----------------------------------------------------------------------------


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def diagram_dot(diagram: Diagram) -> str:
    """The diagram as Graphviz DOT, with links (`href`) and the same colours."""
    lines = [
        "digraph lineage {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11];',
        '  edge [color="#5f6368"];',
    ]
    for node in diagram.nodes.values():
        fill, stroke = _STYLE[node.kind]
        attrs = {
            "label": _short(node.label)
            + (f"\n{_short(node.sublabel, 34)}" if node.sublabel else ""),
            "tooltip": node.label,
            "fillcolor": fill,
            "color": stroke,
            "id": f"svg-{node.id}",
            "class": f"node-{node.kind} status-{node.status}",
        }
        if node.kind == "step":
            attrs["shape"] = "box"
            attrs["style"] = "rounded,filled,bold"
        if node.status == "root":
            attrs["penwidth"] = "3"
        if node.status in ("unverified", "failed"):
            attrs.update(fillcolor="#fce8e6", color="#d93025", style="rounded,filled,dashed")
        if node.href:
            attrs["href"] = node.href
        body = ", ".join(f"{k}={_dot_text(v)}" for k, v in attrs.items())
        lines.append(f"  {node.id} [{body}];")
    for arrow in diagram.arrows:
        attrs = {"tooltip": arrow.label} if arrow.label else {}
        if arrow.dashed:
            attrs.update(style="dashed", color="#d93025")
        body = ", ".join(f"{k}={_dot_text(v)}" for k, v in attrs.items())
        lines.append(f"  {arrow.source} -> {arrow.target} [{body}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graphviz() -> str | None:
    """The path of Graphviz's `dot`, if it is installed."""
    return shutil.which("dot")


def run_dot(dot: str, fmt: Literal["svg", "png"]) -> bytes:
    """`dot -T<fmt>` over DOT text; InputError when Graphviz is absent or fails."""
    program = graphviz()
    if program is None:
        raise InputError(f"{fmt} needs Graphviz's dot on PATH (apt-get install graphviz)")
    try:
        done = subprocess.run(
            [program, f"-T{fmt}"],
            input=dot.encode(),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InputError(f"Graphviz dot failed: {exc}") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise InputError(f"Graphviz dot failed: {reason[0] if reason else done.returncode}")
    return done.stdout


_PROLOG = re.compile(rb"^.*?(<svg\b)", re.S)


def render_svg(diagram: Diagram, *, engine: Literal["auto", "dot", "python"] = "auto") -> str:
    """The diagram as an `<svg>` element: Graphviz when asked or present, else pure Python."""
    use_dot = engine == "dot" or (
        engine == "auto" and graphviz() is not None and len(diagram.nodes) <= MAX_DOT_NODES
    )
    if use_dot:
        try:
            svg = run_dot(diagram_dot(diagram), "svg")
        except InputError:
            if engine == "dot":
                raise
        else:
            # Inline in HTML: drop the XML prolog and DOCTYPE, keep the <svg> element.
            return _PROLOG.sub(rb"\1", svg, count=1).decode()
    return layout_svg(diagram)


# -- lineage graphs from the store -------------------------------------------------------


def lineage_diagram(graph: object) -> Diagram:
    """A store `LineageGraph` as a diagram: artifacts as boxes, steps on the arrows."""
    from mlprov.store.lineage import LineageGraph
    from mlprov.store.render import edge_signer, edge_step

    assert isinstance(graph, LineageGraph)
    diagram = Diagram()
    in_cycle = {d for cycle in graph.cycles for d in cycle}
    for digest, node in graph.nodes.items():
        status: Status = "root" if digest == graph.root else "ok"
        if digest in in_cycle:
            status = "failed"
        diagram.add(
            Node(
                node_id(digest),
                node.label if node.names else digest,
                "artifact",
                digest,
                None,
                status,
            )
        )
    for edge in graph.edges:  # each attestation's step as a box between its inputs and outputs
        step = diagram.add(
            Node(
                node_id(edge.attestation),
                edge_step(edge),
                "step",
                edge_signer(edge, short=True),
                None,
                "ok" if edge.verified else "unverified",
            )
        )
        diagram.link(Arrow(node_id(edge.material), step.id, dashed=not edge.verified))
        diagram.link(Arrow(step.id, node_id(edge.product), dashed=not edge.verified))
    return diagram


def render_picture(graph: object, fmt: Literal["svg", "png"]) -> bytes:
    """`lineage --format svg|png`: a standalone SVG document, or PNG through Graphviz."""
    diagram = lineage_diagram(graph)
    if fmt == "png":
        return run_dot(diagram_dot(diagram), "png")
    svg = render_svg(diagram)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + svg).encode()
