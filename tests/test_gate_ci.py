"""The release gate in CI: JUnit XML, a Markdown summary, GitHub annotations and job summary."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from test_gate_attacks import Pipeline, payload, pipeline, resign

__all__ = ["pipeline"]  # the fixture, re-used


def _break_eval(p: Pipeline) -> None:
    statement = payload(p.att / "eval.intoto.json")
    statement["predicate"]["mlprov_metrics"]["accuracy"] = 0.1
    resign(statement, p.key("trainer"), p.att / "eval.intoto.json")


def test_junit_has_a_testcase_per_rule(pipeline: Pipeline) -> None:
    p = pipeline
    junit = p.root / "gate.xml"
    summary = p.root / "gate.md"
    result = p.check(
        "--attestations", p.att, "--subject", p.model, "--junit", junit, "--summary", summary
    )
    assert result.code == 0, result
    suites = ET.fromstring(junit.read_bytes())
    names = [s.get("name") for s in suites]
    assert names == ["layout", "step dataset", "step train", "step eval"]
    checks = int(result.out.split(" checks,")[0].rsplit(" ", 1)[1])
    assert int(suites.get("tests") or 0) == checks
    assert suites.get("failures") == "0"
    text = summary.read_text()
    assert text.startswith("## ✅ mlprov policy check: PASSED")
    assert "layout signature: **not checked**" in text and "⚠️" in text


def test_failures_reach_junit_summary_and_annotations(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = pipeline
    _break_eval(p)
    step_summary = p.root / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    junit = p.root / "gate.xml"
    result = p.check("--attestations", p.att, "--subject", p.model, "--junit", junit)
    assert result.code == 1, result
    suites = ET.fromstring(junit.read_bytes())
    failed = [
        (suite.get("name"), case.get("name"), case.find("failure"))
        for suite in suites
        for case in suite
        if case.find("failure") is not None
    ]
    assert any(
        name == "step eval" and "accuracy" in str(case) and failure is not None
        for name, case, failure in failed
    ), failed
    errors = [line for line in result.out.splitlines() if line.startswith("::error ")]
    assert any("step eval%3A double(predicate.mlprov_metrics.accuracy)" in e for e in errors), (
        errors
    )
    assert all("\n" not in e for e in errors)
    warnings = [line for line in result.out.splitlines() if line.startswith("::warning ")]
    assert any("layout signature" in w for w in warnings), warnings
    text = step_summary.read_text()
    assert text.startswith("earlier step\n")
    assert "## ❌ mlprov policy check: FAILED" in text
    assert "| ❌ | step eval |" in text
    # --json keeps stdout a JSON document: annotations go to stderr.
    result = p.check("--attestations", p.att, "--subject", p.model, "--json")
    assert json.loads(result.out)["passed"] is False
    assert "::error " in result.err


def test_report_files_are_not_overwritten_without_force(pipeline: Pipeline) -> None:
    p = pipeline
    junit = p.root / "gate.xml"
    junit.write_text("keep")
    result = p.check("--attestations", p.att, "--junit", junit)
    assert result.code == 2 and "already exists" in result.err
    assert junit.read_text() == "keep"
    result = p.check("--attestations", p.att, "--junit", junit, "--force")
    assert result.code == 0
    assert junit.read_text().startswith("<?xml")


def test_markdown_escapes_what_attestations_say() -> None:
    from mlprov.cli.gate_reports import markdown_summary
    from mlprov.policy import PolicyResult, RuleResult, StepReport

    evil = StepReport("train", [RuleResult(False, "a | b <script>\nnew row", "x|y", "rule|")])
    result = PolicyResult(StepReport("layout"), [evil], [], [], [])
    text = markdown_summary(result, layout="layout.yaml")
    row = next(line for line in text.splitlines() if line.startswith("| ❌"))
    assert "a \\| b &lt;script> new row" in row and "x\\|y" in row
