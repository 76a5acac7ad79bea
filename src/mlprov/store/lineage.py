"""Lineage over the store: walk up from a model to everything it was built from, or down
from a dataset to everything built from it.

A walk is breadth-first, a few batched queries per level (digests in chunks), so its cost
follows the nodes and edges it reports, not the size of the store. Each artifact is
expanded once: a diamond is drawn once, and a cycle ends the walk where it closes and is
reported. `max_depth` and `max_nodes` bound a walk; what they cut is recorded.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from operator import itemgetter
from typing import Any, Literal, NamedTuple, TypeVar

from mlprov.predicates import OMS_V1, TEST_RESULT_V01
from mlprov.store.backend import Cursor, Database

Direction = Literal["up", "down"]
T = TypeVar("T")
#: Digests per IN (...) list: well under SQLite's and PostgreSQL's parameter limits.
CHUNK = 500


#: How a product relates to a material, by the buildType's name (the word before `/v1`):
#: "MODEL trained on DATASET". Anything else is "built from".
RELATIONS = {
    "training": "trained on",
    "fine-tuning": "fine-tuned from",
    "conversion": "converted from",
    "quantization": "converted from",
    "evaluation": "evaluated on",
    "dataset-preparation": "prepared from",
}
EVALUATED_ON = "evaluated on"
BUILT_FROM = "built from"
#: Relations that make a product out of its material (not an evaluation of it).
BUILDING = frozenset({"trained on", "fine-tuned from", "converted from", "prepared from"})
#: Relations whose product is a model.
MODEL_RELATIONS = frozenset({"trained on", "fine-tuned from", "converted from", EVALUATED_ON})


@functools.lru_cache(maxsize=1024)
def relation_of(predicate_type: str, build_type: str | None) -> str:
    """How an attestation's subject relates to its inputs: `trained on`, `fine-tuned from`,
    `converted from`, `evaluated on` (a test-result, or an evaluation buildType),
    `prepared from`, else `built from`."""
    if predicate_type == TEST_RESULT_V01:
        return EVALUATED_ON
    if build_type:
        parts = [p for p in build_type.rstrip("/").split("/") if p]
        if len(parts) >= 2 and parts[-1].startswith("v") and parts[-1][1:].isdigit():
            parts.pop()
        if parts and parts[-1] in RELATIONS:
            return RELATIONS[parts[-1]]
    return BUILT_FROM


@dataclass(slots=True)
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


class LineageEdge(NamedTuple):
    """`material` went into the attestation's step, which produced `product`.

    A NamedTuple, its strings shared with the graph's nodes and attestations: a dense
    lineage has a million of them.
    """

    material: str
    product: str
    attestation: str
    predicate_type: str
    build_type: str | None
    step: str | None
    signers: tuple[str, ...]
    verified: bool

    @property
    def relation(self) -> str:
        """How the product relates to the material (`trained on`, `evaluated on`, ...)."""
        return relation_of(self.predicate_type, self.build_type)

    def to_dict(self) -> dict[str, Any]:
        return {
            "material": self.material,
            "product": self.product,
            "attestation": self.attestation,
            "predicateType": self.predicate_type,
            "buildType": self.build_type,
            "relation": self.relation,
            "step": self.step,
            "signers": list(self.signers),
            "verified": self.verified,
        }


@dataclass(frozen=True)
class ReachedModel:
    """A model a down walk reached: how it relates to what led to it, and the way there.

    `how` lists the relations of every edge into it the walk shows (`trained on`,
    `evaluated on`, ...); `path` is the shortest way from the root, as alternating
    artifact digests and relations: `[root, "prepared from", d1, "trained on", model]`.
    """

    digest: str
    names: tuple[str, ...]
    how: tuple[str, ...]
    path: tuple[str, ...]
    steps: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "names": list(self.names),
            "how": list(self.how),
            "path": [
                {"artifact": part} if i % 2 == 0 else {"relation": part}
                for i, part in enumerate(self.path)
            ],
            "steps": list(self.steps),
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
    artifacts not expanded because of `max_depth`; `cut` are artifacts some of whose
    edges lead to artifacts beyond `max_nodes` (`cut_edges` of them, not shown);
    `missing` are inputs named without a digest, which no walk can follow.
    """

    root: str
    direction: Direction
    found: bool
    max_depth: int | None = None
    max_nodes: int | None = None
    nodes: dict[str, ArtifactNode] = field(default_factory=dict)
    edges: list[LineageEdge] = field(default_factory=list)
    cycles: list[list[str]] = field(default_factory=list)
    missing: list[MissingLink] = field(default_factory=list)
    unattested: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    cut: dict[str, int] = field(default_factory=dict)
    _index: dict[str, list[LineageEdge]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _indexed: int = field(default=-1, init=False, repr=False, compare=False)

    @property
    def cut_edges(self) -> int:
        """Edges not shown because they lead beyond `max_nodes`."""
        return sum(self.cut.values())

    def outgoing_index(self) -> dict[str, list[LineageEdge]]:
        """Artifact -> the edges leading away from the root out of it (do not modify)."""
        if self._indexed != len(self.edges):  # built once, rebuilt if edges were added
            index: dict[str, list[LineageEdge]] = {}
            up = self.direction == "up"
            for edge in self.edges:
                index.setdefault(edge.product if up else edge.material, []).append(edge)
            self._index, self._indexed = index, len(self.edges)
        return self._index

    def outgoing(self, digest: str) -> list[LineageEdge]:
        """Edges leading away from the root out of `digest` (up: to its materials)."""
        return list(self.outgoing_index().get(digest, ()))

    def far_end(self, edge: LineageEdge) -> str:
        """The artifact an edge leads to, seen from the root."""
        return edge.material if self.direction == "up" else edge.product

    def end_artifacts(self) -> list[str]:
        """Where the walk ends: down, the last artifacts built (released models); up, the
        original inputs (raw data, code, base models nobody attests)."""
        has_out = self.outgoing_index()
        return sorted(d for d in self.nodes if d != self.root and d not in has_out)

    def attestations(self) -> list[str]:
        """Digests of every attestation the walk crossed."""
        return sorted({e.attestation for e in self.edges})

    def models_reached(self, *, trained_on: bool = False) -> list[ReachedModel]:
        """Down walks: every model reached (the product of a training, fine-tuning,
        conversion or evaluation edge), nearest first, each with how and the path.

        `trained_on`: only models built from the root, through building edges alone (an
        evaluation does not make a model depend on its test data). One pass over the edges.
        """
        if self.direction != "down":
            raise ValueError("models are reached by walking down")
        parent: dict[str, LineageEdge] = {}  # artifact -> the first edge reaching it
        how: dict[str, dict[str, None]] = {}
        steps: dict[str, dict[str, None]] = {}
        for edge in self.edges:  # in the order the walk found them: nearest first
            relation = edge.relation
            product = edge.product
            if product == self.root:
                continue
            if product not in parent:
                parent[product] = edge
            if relation in MODEL_RELATIONS:
                how.setdefault(product, {})[relation] = None
                if edge.step:
                    steps.setdefault(product, {})[edge.step] = None
        built = self._built_closure()
        building: dict[str, LineageEdge] = {}  # the first building edge from a built artifact
        for edge in self.edges:
            if edge.material in built and edge.relation in BUILDING:
                building.setdefault(edge.product, edge)
        found = []
        for digest in how:
            if trained_on and digest not in built:
                continue
            relations = tuple(how[digest])
            if trained_on:
                relations = tuple(r for r in relations if r != EVALUATED_ON)
            found.append(
                ReachedModel(
                    digest,
                    tuple(self.nodes[digest].names),
                    relations,
                    self._path(digest, parent, building, built),
                    tuple(steps.get(digest, ())),
                )
            )
        return sorted(found, key=lambda m: (self.nodes[m.digest].depth, m.digest))

    def _built_closure(self) -> set[str]:
        """Artifacts reached from the root through building edges only (iterative)."""
        building: dict[str, list[str]] = {}
        for edge in self.edges:
            if edge.relation in BUILDING:
                building.setdefault(edge.material, []).append(edge.product)
        built = {self.root}
        todo = [self.root]
        while todo:
            for product in building.get(todo.pop(), ()):
                if product not in built:
                    built.add(product)
                    todo.append(product)
        return built

    def _path(
        self,
        digest: str,
        parent: dict[str, LineageEdge],
        building: dict[str, LineageEdge],
        built: set[str],
    ) -> tuple[str, ...]:
        """Root to `digest`, alternating digests and relations: the way it was built from
        the root where there is one, else the shortest way (through an evaluation)."""
        parts = [digest]
        seen = {digest}
        while digest != self.root and digest in parent:
            edge = building.get(digest) or parent[digest]
            parts += [edge.relation, edge.material]
            digest = edge.material
            if digest in seen:
                break
            seen.add(digest)
        return tuple(reversed(parts))

    def only_steps(self, steps: Iterable[str]) -> LineageGraph:
        """The graph with only the edges of the named steps, and the artifacts they touch."""
        wanted = set(steps)
        return self.filtered(lambda edge: edge.step in wanted)

    def without_evaluations(self) -> LineageGraph:
        """The graph without evaluation edges: only what was built from what."""
        return self.filtered(lambda edge: edge.relation != EVALUATED_ON)

    def filtered(self, keep: Callable[[LineageEdge], bool]) -> LineageGraph:
        """The graph with the edges `keep` accepts and the artifacts they touch (the root
        always), with the walk's notes about those artifacts."""
        kept = LineageGraph(self.root, self.direction, self.found, self.max_depth, self.max_nodes)
        kept.edges = [e for e in self.edges if keep(e)]
        touched = {self.root}
        for edge in kept.edges:
            touched.add(edge.material)
            touched.add(edge.product)
        kept.nodes = {d: n for d, n in self.nodes.items() if d in touched}
        kept.cycles = [c for c in self.cycles if all(d in touched for d in c)]
        kept.missing = list(self.missing)
        kept.unattested = [d for d in self.unattested if d in touched]
        kept.truncated = [d for d in self.truncated if d in touched]
        kept.cut = {d: n for d, n in self.cut.items() if d in touched}
        return kept

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "direction": self.direction,
            "found": self.found,
            "maxDepth": self.max_depth,
            "maxNodes": self.max_nodes,
            "nodes": [node_dict(n) for n in self.sorted_nodes()],
            "edges": [e.to_dict() for e in self.edges],
            "ends": self.end_artifacts(),
            "cycles": self.cycles,
            "missing": [m.to_dict() for m in self.missing],
            "unattested": self.unattested,
            "truncated": self.truncated,
            "cut": dict(sorted(self.cut.items())),
            "cutEdges": self.cut_edges,
        }

    def sorted_nodes(self) -> list[ArtifactNode]:
        """The nodes nearest the root first, then by digest."""
        return sorted(self.nodes.values(), key=lambda n: (n.depth, n.digest))


def node_dict(node: ArtifactNode) -> dict[str, Any]:
    """A node as `LineageGraph.to_dict` lists it."""
    return {"digest": node.digest, "names": node.names, "depth": node.depth}


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Pause the cyclic garbage collector while a walk builds its graph: a million edges
    are a million tracked objects, each young-generation pass walking them again (measured
    at half the time of a dense walk). Nothing a walk builds is a reference cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ", ".join("?" * count)


# The attestations naming a frontier digest on the near side (up: as a subject; down: as
# a material), one row each.
_NEAR = """
SELECT digest, name, attestation FROM artifacts
WHERE role = ? AND digest IN ({marks})
ORDER BY attestation, position
"""

# What an edge needs to know of an attestation.
_ATTESTATIONS = """
SELECT id, digest, predicate_type, build_type, step, verified FROM attestations
WHERE id IN ({marks})
"""

# The far side of those attestations (up: their materials; down: their subjects), by the
# main digest of each descriptor (NULL for one named without a digest).
_FAR = """
SELECT attestation, digest, name, uri FROM artifacts
WHERE role = ? AND main_digest = 1 AND attestation IN ({marks})
ORDER BY attestation, position
"""

_SIGNERS = "SELECT attestation, signer, verified FROM signers WHERE attestation IN ({marks})"

#: What an edge takes from its attestation: digest, predicate type, buildType, step,
#: signers, verified.
_Attestation = tuple[str, str, str | None, str | None, tuple[str, ...], bool]


class LineageWalker:
    """Walks the store's artifact index level by level in one direction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def walk(
        self,
        root: str,
        direction: Direction,
        *,
        max_depth: int | None,
        max_nodes: int | None = None,
    ) -> LineageGraph:
        near_role, far_role = (
            ("subject", "material") if direction == "up" else ("material", "subject")
        )
        sql = self.db.sql
        with _no_gc_pauses(), self.db.reading() as cur:
            cur.execute(sql("SELECT 1 FROM artifacts WHERE digest = ? LIMIT 1"), (root,))
            graph = LineageGraph(root, direction, cur.fetchone() is not None, max_depth, max_nodes)
            nodes = graph.nodes
            nodes[root] = ArtifactNode(root, 0)
            attestations: dict[int, _Attestation] = {}
            frontier = [root]
            depth = 0
            while frontier:
                # Near side: which attestations name each frontier artifact (up: as a
                # subject; down: as a material). Down a dense lineage that is one row per
                # edge: rows are taken a chunk of the frontier at a time, kept as ids.
                nears: dict[int, list[str]] = {}  # attestation id -> near artifacts
                for part in chunks(frontier):
                    cur.execute(sql(_NEAR.format(marks=_marks(len(part)))), (near_role, *part))
                    for near, near_name, key in cur.fetchall():
                        node = nodes[near]
                        if near_name and near_name not in node.names:
                            node.names.append(near_name)
                        nears.setdefault(key, []).append(node.digest)
                self._remember(cur, [k for k in nears if k not in attestations], attestations)
                # A model signature (OMS) lists the model's own files, not what it was
                # built from: neither a way up nor down, nor provenance of the model.
                for key in [k for k in nears if attestations[k][1] == OMS_V1]:
                    del nears[key]
                continued = {near for group in nears.values() for near in group}
                if direction == "up":
                    graph.unattested.extend(sorted(d for d in frontier if d not in continued))
                if max_depth is not None and depth >= max_depth:
                    graph.truncated.extend(sorted(d for d in frontier if d in continued))
                    break
                next_frontier: list[str] = []
                edges = graph.edges
                up = direction == "up"
                # The far sides of a few hundred attestations at a time: a level of a
                # dense lineage has hundreds of thousands of rows.
                for far_rows in self._far_sides(cur, far_role, list(nears)):
                    for key, rows in far_rows:
                        digest, ptype, btype, step, signers, verified = attestations[key]
                        for near in dict.fromkeys(nears[key]):
                            seen: set[str] = set()
                            for _, far, far_name, uri in rows:
                                if far is None:  # an input without any digest
                                    self._missing(graph, digest, near, far_name, uri, far_role)
                                    continue
                                reached = nodes.get(far)
                                if reached is None:
                                    if max_nodes is not None and len(nodes) >= max_nodes:
                                        graph.cut[near] = graph.cut.get(near, 0) + 1
                                        continue
                                    reached = nodes[far] = ArtifactNode(far, depth + 1)
                                    next_frontier.append(far)
                                name = far_name or uri
                                if name and name not in reached.names:
                                    reached.names.append(name)
                                far = reached.digest  # one string per artifact, for all edges
                                if far in seen:
                                    continue  # the same input named twice by one attestation
                                seen.add(far)
                                edges.append(
                                    LineageEdge(
                                        far, near, digest, ptype, btype, step, signers, verified
                                    )
                                    if up
                                    else LineageEdge(
                                        near, far, digest, ptype, btype, step, signers, verified
                                    )
                                )
                frontier = next_frontier
                depth += 1
            graph.cycles = find_cycles(graph.nodes, ((e.material, e.product) for e in graph.edges))
        return graph

    def _remember(self, cur: Cursor, fresh: list[int], known: dict[int, _Attestation]) -> None:
        """Add the attestations first met at this level, with their signers: the verified
        ones, or the claimed ones if none verified."""
        for part in chunks(fresh):
            marks = _marks(len(part))
            verified: dict[int, list[str]] = {}
            claimed: dict[int, list[str]] = {}
            cur.execute(self.db.sql(_SIGNERS.format(marks=marks)), tuple(part))
            for key, signer, ok in cur.fetchall():
                (verified if ok else claimed).setdefault(key, []).append(signer)
            cur.execute(self.db.sql(_ATTESTATIONS.format(marks=marks)), tuple(part))
            for key, digest, ptype, btype, step, ok in cur.fetchall():
                signers = tuple(sorted(verified.get(key) or claimed.get(key) or ()))
                known[key] = (digest, ptype, btype, step, signers, bool(ok))

    def _far_sides(
        self, cur: Cursor, role: str, keys: list[int]
    ) -> Iterator[list[tuple[int, list[Any]]]]:
        """Per chunk of attestation ids: each id with its (id, digest, name, uri) rows on
        the far side (ids without any are left out)."""
        for part in chunks(keys):
            cur.execute(self.db.sql(_FAR.format(marks=_marks(len(part)))), (role, *part))
            yield [(key, list(rows)) for key, rows in groupby(cur.fetchall(), itemgetter(0))]

    @staticmethod
    def _missing(
        graph: LineageGraph,
        attestation: str,
        near: str,
        name: str | None,
        uri: str | None,
        role: str,
    ) -> None:
        # A package pinned by a versioned purl (pkg:pypi/x@1.0) is a reference, not an
        # artifact lineage follows by digest; any other input without a digest (a mutable
        # URL, a bare name) is a gap.
        pinned = bool(uri) and str(uri).startswith("pkg:") and "@" in str(uri)
        if (name or uri) and not pinned:
            link = MissingLink(attestation, near, str(name or uri), f"{role} has no digest")
            if link not in graph.missing:
                graph.missing.append(link)


def find_cycles(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Every cycle among the edges, as the sorted digests of each strongly connected
    component with more than one artifact or a self-loop.

    Lineage is almost always acyclic: a topological sort (Kahn's algorithm) first removes
    every artifact on no cycle, cheaply; Tarjan's algorithm (iterative) then runs on what
    is left, usually nothing.
    """
    full: dict[str, list[str]] = {n: [] for n in nodes}
    indegree: dict[str, int] = dict.fromkeys(full, 0)
    for a, b in edges:
        full.setdefault(a, []).append(b)
        if b not in full:
            full[b] = []
        indegree[b] = indegree.get(b, 0) + 1
    ready = [n for n in full if not indegree.get(n)]
    while ready:
        node = ready.pop()
        for child in full[node]:
            indegree[child] -= 1
            if not indegree[child]:
                ready.append(child)
    left = {n for n, count in indegree.items() if count}
    if not left:
        return []
    graph = {n: [c for c in full[n] if c in left] for n in left}
    loops = {n for n in left if n in graph[n]}
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
