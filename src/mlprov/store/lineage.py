"""Lineage over the store: walk up from a model to everything it was built from, or down
from a dataset to everything built from it.

A walk is breadth-first, one batched query per level (digests in chunks), so its cost is
the number of levels, not the number of artifacts. Each artifact is expanded once: a
diamond is drawn once, and a cycle ends the walk where it closes and is reported.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from mlprov.store.backend import Database

Direction = Literal["up", "down"]
T = TypeVar("T")
#: Digests per IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


@dataclass
class ArtifactNode:
    """An artifact reached by a walk: its digest, the names attestations give it, its depth."""

    digest: str
    depth: int
    names: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.names[0] if self.names else self.digest

    def add_name(self, name: str | None) -> None:
        if name and name not in self.names:
            self.names.append(name)


@dataclass(frozen=True)
class LineageEdge:
    """`material` went into the attestation's step, which produced `product`."""

    material: str
    product: str
    attestation: str
    predicate_type: str
    build_type: str | None
    step: str | None
    signers: tuple[str, ...]
    verified: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "material": self.material,
            "product": self.product,
            "attestation": self.attestation,
            "predicateType": self.predicate_type,
            "buildType": self.build_type,
            "step": self.step,
            "signers": list(self.signers),
            "verified": self.verified,
        }


@dataclass(frozen=True)
class MissingLink:
    """A link the walk cannot follow: an input an attestation names without any digest."""

    attestation: str
    near: str
    artifact: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {
            "attestation": self.attestation,
            "near": self.near,
            "artifact": self.artifact,
            "reason": self.reason,
        }


@dataclass
class LineageGraph:
    """The result of a lineage walk; the CLI only formats it.

    Edges always point the way data flowed (material → product), whichever the direction
    of the walk. `unattested` (up walks only) are artifacts no stored attestation claims
    to have produced: raw sources, or provenance missing from the store. `truncated` are
    artifacts not expanded because of `max_depth`; `missing` are inputs named without a
    digest, which no walk can follow.
    """

    root: str
    direction: Direction
    found: bool
    max_depth: int | None = None
    nodes: dict[str, ArtifactNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    missing: list[MissingLink] = field(default_factory=list)
    unattested: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)

    def outgoing(self, digest: str) -> list[LineageEdge]:
        """Edges leading away from the root out of `digest` (up: to its materials)."""
        if self.direction == "up":
            return [e for e in self.edges if e.product == digest]
        return [e for e in self.edges if e.material == digest]

    def far_end(self, edge: LineageEdge) -> str:
        """The artifact an edge leads to, seen from the root."""
        return edge.material if self.direction == "up" else edge.product

    def end_artifacts(self) -> list[str]:
        """Where the walk ends: down, the last artifacts built (released models); up, the
        original inputs (raw data, code, base models nobody attests)."""
        has_out = {e.product if self.direction == "up" else e.material for e in self.edges}
        return sorted(d for d in self.nodes if d != self.root and d not in has_out)

    def attestations(self) -> list[str]:
        """Digests of every attestation the walk crossed."""
        return sorted({e.attestation for e in self.edges})

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "found": self.found,
            "maxDepth": self.max_depth,
            "nodes": [
                {"digest": n.digest, "names": n.names, "depth": n.depth}
                for n in sorted(self.nodes.values(), key=lambda n: (n.depth, n.digest))
            ],
            "edges": [e.to_dict() for e in self.edges],
            "ends": self.end_artifacts(),
            "cycles": self.cycles,
            "missing": [m.to_dict() for m in self.missing],
            "unattested": self.unattested,
            "truncated": self.truncated,
        }


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


# Up: attestations whose subject is in the frontier, with each of their materials.
_UP = """
SELECT s.digest, s.name, a.id, a.digest, a.predicate_type, a.build_type, a.step, a.verified,
       m.digest, m.name, m.uri
FROM artifacts s
JOIN attestations a ON a.id = s.attestation
LEFT JOIN artifacts m ON m.attestation = s.attestation AND m.role = 'material'
     AND m.main_digest = 1
WHERE s.role = 'subject' AND s.digest IN ({marks})
ORDER BY a.id, m.position
"""

# Down: attestations naming a frontier digest as a material, with each of their subjects.
_DOWN = """
SELECT m.digest, m.name, a.id, a.digest, a.predicate_type, a.build_type, a.step, a.verified,
       p.digest, p.name, p.uri
FROM artifacts m
JOIN attestations a ON a.id = m.attestation
JOIN artifacts p ON p.attestation = m.attestation AND p.role = 'subject' AND p.main_digest = 1
WHERE m.role = 'material' AND m.digest IN ({marks})
ORDER BY a.id, p.position
"""


class LineageWalker:
    """Walks the store's artifact index level by level in one direction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def walk(self, root: str, direction: Direction, *, max_depth: int | None) -> LineageGraph:
        with self.db.reading() as cur:
            cur.execute(self.db.sql("SELECT 1 FROM artifacts WHERE digest = ? LIMIT 1"), (root,))
            graph = LineageGraph(root, direction, cur.fetchone() is not None, max_depth)
            graph.nodes[root] = ArtifactNode(root, 0)
            meta: dict[str, tuple[str, str | None, str | None, bool]] = {}
            keys: dict[int, str] = {}  # attestation id -> digest
            pairs: list[tuple[str, str, str]] = []  # (material, product, attestation)
            seen_pairs: set[tuple[str, str, str]] = set()
            frontier = [root]
            depth = 0
            query = _UP if direction == "up" else _DOWN
            while frontier:
                rows: list[Any] = []
                for part in chunks(frontier):
                    cur.execute(self.db.sql(query.format(marks=_marks(len(part)))), tuple(part))
                    rows.extend(cur.fetchall())
                continued = {row[0] for row in rows}
                if direction == "up":
                    graph.unattested.extend(sorted(d for d in frontier if d not in continued))
                if max_depth is not None and depth >= max_depth:
                    graph.truncated.extend(sorted(d for d in frontier if d in continued))
                    break
                next_frontier: list[str] = []
                for near, near_name, key, att, ptype, btype, step, ok, far, far_name, uri in rows:
                    graph.nodes[near].add_name(near_name)
                    meta[att] = (ptype, btype, step, bool(ok))
                    keys[key] = att
                    if far is None:  # no materials at all, or one without a digest
                        # A package pinned by a versioned purl (pkg:pypi/x@1.0) is a
                        # reference, not an artifact lineage follows by digest; any other
                        # input without a digest (a mutable URL, a bare name) is a gap.
                        pinned = bool(uri) and uri.startswith("pkg:") and "@" in uri
                        if (far_name or uri) and not pinned:
                            link = MissingLink(att, near, far_name or uri, "material has no digest")
                            if link not in graph.missing:
                                graph.missing.append(link)
                        continue
                    if far not in graph.nodes:
                        graph.nodes[far] = ArtifactNode(far, depth + 1)
                        next_frontier.append(far)
                    graph.nodes[far].add_name(far_name or uri)
                    pair = (far, near, att) if direction == "up" else (near, far, att)
                    if pair not in seen_pairs:
                        seen_pairs.add(pair)
                        pairs.append(pair)
                frontier = next_frontier
                depth += 1
            signers = self._signers(cur, keys)
        for material, product, att in pairs:
            ptype, btype, step, verified = meta[att]
            graph.edges.append(
                LineageEdge(
                    material, product, att, ptype, btype, step, signers.get(att, ()), verified
                )
            )
        graph.cycles = find_cycles(graph.nodes, ((e.material, e.product) for e in graph.edges))
        return graph

    def _signers(self, cur: Any, keys: dict[int, str]) -> dict[str, tuple[str, ...]]:
        """Signers of each attestation: verified ones only, or claimed ones if none verified."""
        verified: dict[int, list[str]] = {}
        claimed: dict[int, list[str]] = {}
        for part in chunks(list(keys)):
            cur.execute(
                self.db.sql(
                    "SELECT attestation, signer, verified FROM signers"
                    f" WHERE attestation IN ({_marks(len(part))}) ORDER BY signer"
                ),
                tuple(part),
            )
            for att, signer, ok in cur.fetchall():
                (verified if ok else claimed).setdefault(att, []).append(signer)
        return {
            digest: tuple(verified.get(key) or claimed.get(key) or ())
            for key, digest in keys.items()
        }


def find_cycles(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Every cycle among the edges, as the sorted digests of each strongly connected
    component with more than one artifact or a self-loop (Tarjan's algorithm, iterative)."""
    graph: dict[str, list[str]] = {n: [] for n in nodes}
    loops: set[str] = set()
    for a, b in edges:
        graph.setdefault(a, []).append(b)
        graph.setdefault(b, [])
        if a == b:
            loops.add(a)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, child_i = work.pop()
            if child_i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            if child_i < len(children):
                work.append((node, child_i + 1))
                child = children[child_i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in loops:
                    found.append(sorted(component))
    return sorted(found)
