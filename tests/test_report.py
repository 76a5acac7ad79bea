"""`mlprov report --html` and `lineage --format svg|png`: self-contained, escaped, linked."""

from __future__ import annotations

import base64
import html
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bom_support import Pipeline, build_pipeline
from conftest import run_cli
from mlprov.report.html import anchor
from mlprov.report.svg import Arrow, Diagram, Node, graphviz, layers, render_svg

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return build_pipeline(tmp_path)


def _report(pipeline: Pipeline, out: Path, *extra: str) -> str:
    result = run_cli("report", pipeline.model, "--store", pipeline.store, "--html", out, *extra)
    assert result.code == 0, result
    return out.read_text()


def test_report_holds_every_attestation_dataset_and_the_verdict(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    page = _report(pipeline, tmp_path / "report.html", "--graph", "python")
    for digest in pipeline.trusted + pipeline.untrusted:
        assert f'id="{anchor("att", digest)}"' in page
    for digest in (pipeline.train, pipeline.test):
        assert f'id="{anchor("art", digest)}"' in page
    assert page.count("UNVERIFIED") >= 2  # the attacker's attestations stand out
    assert re.search(r'id="verdict".*?PASSED', page, re.S)
    assert "accuracy" in page and "0.91" in page and "&gt;= 0.8" in page
    assert "Pickle-based files" in page and "pytorch_model.bin" in page
    assert "CC-BY-4.0" in page
    # Graph nodes link to the rows that describe them.
    assert f'href="#{anchor("art", pipeline.train)}"' in page
    assert f'href="#{anchor("att", pipeline.trusted[2])}"' in page
    # The AI-BOMs are embedded, and each is the real document.
    embedded = r'download="([^"]+)" href="data:application/json;base64,([^"]+)"'
    links = dict(re.findall(embedded, page))
    cdx = json.loads(base64.b64decode(links["tuned-model.cdx.json"]))
    spdx = json.loads(base64.b64decode(links["tuned-model.spdx.json"]))
    assert cdx["specVersion"] == "1.6" and spdx["@context"].endswith("spdx-context.jsonld")


def test_report_fetches_nothing(pipeline: Pipeline, tmp_path: Path) -> None:
    page = _report(pipeline, tmp_path / "report.html")
    assert "<script" not in page.lower()
    assert not re.search(r"<link\b", page, re.I)
    for attribute in re.findall(r'\b(?:src|href|xlink:href)="([^"]*)"', page):
        assert attribute.startswith(("#", "data:")), attribute
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "@import" not in page and "url(http" not in page


def test_attacker_controlled_names_are_escaped(tmp_path: Path) -> None:
    pipeline = build_pipeline(
        tmp_path, model_name=f'"><img src=x onerror=alert(1)>{HOSTILE}', dataset_name=HOSTILE
    )
    for engine in ("python", "dot") if graphviz() else ("python",):
        page = _report(pipeline, tmp_path / f"report-{engine}.html", "--graph", engine)
        assert HOSTILE not in page and "<img src=x" not in page
        assert html.escape(HOSTILE) in page
        assert "<script" not in page.lower()
    svg = run_cli("lineage", pipeline.model, "--up", "--format", "svg", "--store", pipeline.store)
    assert svg.code == 0 and HOSTILE not in svg.out and "<img" not in svg.out
    ET.fromstring(svg.out.split("\n", 1)[1])  # well-formed XML, the names inside as text


def test_report_refuses_to_overwrite_and_wants_an_html_name(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    out.write_text("keep")
    again = run_cli("report", pipeline.model, "--store", pipeline.store, "--html", out)
    assert again.code == 2 and "--force" in again.err and out.read_text() == "keep"
    wrong = run_cli("report", pipeline.model, "--store", pipeline.store, "--html", tmp_path / "r")
    assert wrong.code == 2 and ".html" in wrong.err


def test_lineage_svg_without_graphviz(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot on PATH: the pure-Python layout draws
    out = tmp_path / "lineage.svg"
    result = run_cli("lineage", pipeline.model, "--up", "--format", "svg", "--store",
                     pipeline.store, "--out", out)  # fmt: skip
    assert result.code == 0, result
    root = ET.fromstring(out.read_bytes())
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "tuned-model" in texts and "finetune" in texts and "train" in texts
    png = run_cli("lineage", pipeline.model, "--up", "--format", "png", "--store",
                  pipeline.store, "--out", tmp_path / "l.png")  # fmt: skip
    assert png.code == 2 and "Graphviz" in png.err and not (tmp_path / "l.png").exists()


@pytest.mark.skipif(graphviz() is None, reason="Graphviz dot is not installed")
def test_lineage_png_and_svg_with_graphviz(pipeline: Pipeline, tmp_path: Path) -> None:
    out = tmp_path / "lineage.png"
    result = run_cli("lineage", pipeline.model, "--up", "--format", "png", "--store",
                     pipeline.store, "--out", out)  # fmt: skip
    assert result.code == 0, result
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    diagram = Diagram()
    diagram.add(Node("a", "data", "dataset", href="#x"))
    diagram.add(Node("b", "model", "model", status="root"))
    diagram.link(Arrow("a", "b", "train"))
    svg = render_svg(diagram, engine="dot")
    assert svg.startswith("<svg") and 'href="#x"' in svg and "<!DOCTYPE" not in svg


def test_layered_layout_survives_cycles_and_orders_columns() -> None:
    diagram = Diagram()
    for name in ("raw", "prep", "data", "train", "model", "loop"):
        diagram.add(Node(name, name))
    for a, b in [("raw", "prep"), ("prep", "data"), ("data", "train"), ("train", "model"),
                 ("model", "loop"), ("loop", "model")]:  # fmt: skip
        diagram.link(Arrow(a, b))
    columns = layers(diagram)
    flat = [n for column in columns for n in column]
    assert sorted(flat) == sorted(diagram.nodes)
    assert flat.index("raw") < flat.index("data") < flat.index("model")
    svg = render_svg(diagram, engine="python")
    ET.fromstring(svg)
    assert svg.count("<g class=") == 6 and svg.count("<path d=") == 7  # 6 arrows + marker


def test_failed_evaluation_and_failed_verdict_stand_out(tmp_path: Path) -> None:
    from bom_support import evaluation, vsa
    from mlprov.store import SignatureVerifier, open_store
    from store_support import hexdigest, sign

    pipeline = build_pipeline(tmp_path)
    model = {"name": "tuned-model", "digest": {"sha256": hexdigest("tuned")}}
    later = vsa(model, "FAILED")
    assert later.predicate is not None
    later.predicate["timeVerified"] = "2026-02-01T00:00:00Z"
    test = {"name": "test", "digest": {"sha256": hexdigest("test-data")}}
    with open_store(pipeline.store) as store:
        for who, statement in (("trainer", evaluation(model, test, 0.5)), ("gate", later)):
            signed = sign(statement, pipeline.signers[who])
            verifier = SignatureVerifier(keys=[pipeline.signers[who].public_key])
            store.add(signed, evidence=verifier.verify(signed))
    page = _report(pipeline, tmp_path / "report.html", "--graph", "python")
    verdict = re.search(r'<p id="verdict">(.*?)</p>', page, re.S)
    assert verdict and "FAILED" in verdict.group(1) and "badge verdict bad" in verdict.group(1)
    failed_rows = re.findall(r'<tr class="bad">(.*?)</tr>', page, re.S)
    assert any("accuracy" in row and "0.5" in row and "FAILED" in row for row in failed_rows)
    assert "status-failed" in page  # the failed evaluation's box in the graph
