"""Big lineage shapes, small enough for the suite: a 2,000-step chain and a dense DAG.

Every artifact is reported once, every edge once, cuts are announced, the tree stays
narrow and nothing recurses. (Timings live in benchmarks/bench_store.py.)
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from conftest import run_cli
from mlprov.display import display_name
from mlprov.store import UNVERIFIED, LineageGraph, Store, open_store
from mlprov.store.render import SECTION_DEPTH, iter_json, render
from store_support import d, descriptor, new_signer, provenance, sign


def _load(store: Store, materials_of: dict[int, list[int]], prefix: str) -> None:
    """Node i is the subject of one attestation with the given earlier nodes as materials."""
    signer = new_signer()
    items = []
    for i, earlier in materials_of.items():
        statement = provenance(
            f"step{i}",
            "training",
            [descriptor(f"{prefix}{i}")],
            [descriptor(f"{prefix}{j}") for j in earlier],
        )
        items.append((sign(statement, signer), UNVERIFIED))
    store.add_many(items)


def chain(n: int) -> dict[int, list[int]]:
    return {i: [i - 1] for i in range(1, n)}


def dense(n: int, fan_in: int, seed: int = 3) -> dict[int, list[int]]:
    rng = random.Random(seed)
    return {i: [i - 1, *rng.sample(range(i - 1), min(fan_in - 1, i - 1))] for i in range(1, n)}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store holding a 2,000-step chain (c*) and a dense DAG (g*: 300 nodes,
    each made from 30 earlier ones, 8,600 edges)."""
    location = tmp_path_factory.mktemp("shapes") / "store.sqlite3"
    with open_store(str(location)) as store:
        _load(store, chain(2000), "c")
        _load(store, dense(300, 30), "g")
    return location


def _expansions(text: str) -> dict[str, int]:
    """How many times the tree expands (or defers) each artifact: lines naming it that
    are not a reference (`shown above`, `see [N] below`, `cycle`), a section header or a
    note."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("!") or "attestation sha256:" in line:
            continue
        if any(m in line for m in ("(shown above)", "(see [", "(continued from", "(cycle)")):
            continue
        for digest in re.findall(r"sha256:[0-9a-f]{64}", line):
            counts[digest] = counts.get(digest, 0) + 1
    return counts


def _edge_lines(text: str) -> list[str]:
    """Tree lines naming an artifact reached by an edge (not the root, a step, a section
    header or a note)."""
    return [
        line
        for line in text.splitlines()[1:]
        if "── " in line and "attestation sha256:" not in line
    ]


def test_a_2000_step_chain_shows_every_artifact_once_in_narrow_lines(shapes: Path) -> None:
    with open_store(str(shapes)) as store:
        graph = store.lineage_up(d("c1999"))
    assert len(graph.nodes) == 2000 and len(graph.edges) == 1999
    assert graph.unattested == [d("c0")] and graph.cycles == []
    tree = render(graph, "tree")
    assert _expansions(tree) == {d(f"c{i}"): 1 for i in range(2000)}
    assert len(_edge_lines(tree)) == 1999
    # Branches continue as numbered sections instead of indenting 2,000 levels.
    numbers = re.findall(r"continued below at \[(\d+)\]", tree)
    headers = re.findall(r"^\[(\d+)\] .*\(continued from above\)$", tree, re.M)
    assert numbers == headers and len(numbers) == 1999 // SECTION_DEPTH
    assert max(len(line) for line in tree.splitlines()) < 80 + 8 * SECTION_DEPTH + 100
    down = render(open_store(str(shapes)).lineage_down(d("c0")), "tree")
    assert len(_edge_lines(down)) == 1999


def test_a_dense_dag_shows_every_artifact_once_and_every_edge(shapes: Path) -> None:
    with open_store(str(shapes)) as store:
        graph = store.lineage_up(d("g299"))
    expected_edges = sum(len(m) for m in dense(300, 30).values())
    assert len(graph.nodes) == 300 and len(graph.edges) == expected_edges
    tree = render(graph, "tree")
    assert _expansions(tree) == {d(f"g{i}"): 1 for i in range(300)}
    assert len(_edge_lines(tree)) == expected_edges  # each edge once: expanded or referenced
    dot = render(graph, "dot")
    assert dot.count(" -> ") == expected_edges
    mermaid = render(graph, "mermaid")
    assert sum(" --> " in line or " -.-> " in line for line in mermaid.splitlines()) == 0
    assert sum("-.->|" in line for line in mermaid.splitlines()) == expected_edges


@pytest.mark.parametrize("root", ["c1999", "g299"])
def test_streamed_json_is_exactly_the_graph(shapes: Path, root: str) -> None:
    with open_store(str(shapes)) as store:
        graph = store.lineage_up(d(root), max_nodes=150)
    streamed = "".join(iter_json(graph))
    assert streamed == json.dumps(graph.to_dict(), indent=2, sort_keys=True) + "\n"
    assert len(json.loads(streamed)["nodes"]) == 150


def test_max_nodes_reports_what_it_cut(shapes: Path) -> None:
    result = run_cli("lineage", d("g299"), "--up", "--max-nodes", "50", "--format", "json",
                     "--store", shapes)  # fmt: skip
    assert result.code == 0, result
    document = json.loads(result.out)
    shown = {n["digest"] for n in document["nodes"]}
    assert len(shown) == 50 and document["maxNodes"] == 50
    assert all(e["material"] in shown and e["product"] in shown for e in document["edges"])
    assert document["cutEdges"] == sum(document["cut"].values()) > 0
    assert set(document["cut"]) <= shown
    tree = run_cli("lineage", d("g299"), "--up", "--max-nodes", "50", "--store", shapes)
    assert f"! stopped at --max-nodes 50: 50 artifacts shown; {document['cutEdges']} edge(s)" in (
        tree.out
    )
    assert tree.out.count("! not fully expanded (max nodes 50") == len(document["cut"])
    assert "more not shown: max nodes 50)" in tree.out


def test_max_depth_on_a_deep_chain(shapes: Path) -> None:
    result = run_cli("lineage", d("c1999"), "--up", "--max-depth", "10", "--store", shapes)
    assert result.code == 0
    assert result.out.count("── c") == 10
    assert f"! not expanded (max depth 10): c1989  {d('c1989')}" in result.out
    assert "(not expanded: max depth 10)" in result.out


def test_lineage_written_to_a_file_as_it_is_produced(shapes: Path, tmp_path: Path) -> None:
    out = tmp_path / "lineage.json"
    result = run_cli("lineage", d("g299"), "--up", "--format", "json", "--out", out,
                     "--store", shapes)  # fmt: skip
    assert result.code == 0
    with open_store(str(shapes)) as store:
        assert out.read_text() == render(store.lineage_up(d("g299")), "json")


def test_a_cycle_closing_a_deep_chain(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "s.sqlite3")) as store:
        _load(store, {**chain(300), 0: [299]}, "k")
        graph = store.lineage_up(d("k299"))
    assert graph.cycles == [sorted(d(f"k{i}") for i in range(300))]
    tree = render(graph, "tree")
    assert "! cycle: " in tree
    assert tree.count("(cycle)") + tree.count("(shown above)") == 1


def test_deep_and_wide_lineage_on_both_backends(store_url: str) -> None:
    with open_store(store_url) as store:
        _load(store, chain(400), "c")
        _load(store, dense(80, 20), "g")
        up = store.lineage_up(d("c399"))
        wide = store.lineage_down(d("g0"))
    assert len(up.nodes) == 400 and len(up.edges) == 399
    assert len(_edge_lines(render(up, "tree"))) == 399
    assert isinstance(wide, LineageGraph) and len(wide.nodes) >= 2
    assert wide.edges and all(e.material in wide.nodes for e in wide.edges)


def test_names_with_control_characters_are_quoted_in_the_tree(tmp_path: Path) -> None:
    forged = "evil\n\x1b[31msha256:" + "0" * 64
    with open_store(str(tmp_path / "s.sqlite3")) as store:
        signer = new_signer()
        statement = provenance(
            "s\x1b[2J",
            "training",
            [descriptor("m")],
            [{"name": forged, "digest": {"sha256": "1" * 64}}],
        )
        store.add(sign(statement, signer))
        graph = store.lineage_up(d("m"))
    for color in (False, True):
        tree = render(graph, "tree", color=color)
        assert "\x1b[2J" not in tree and "\x1b[31msha" not in tree
        assert display_name(forged) in tree and display_name(forged).startswith('"')
        assert len(tree.splitlines()) == 4  # root, step, input, the unattested-input note
    assert "\x1b[36m" in render(graph, "tree", color=True)
