"""The policy verdict for CI systems: JUnit XML, a Markdown summary, GitHub annotations.

Each is built from the same PolicyResult the text report prints: one JUnit testcase per
rule result (grouped in a testsuite per step), a Markdown table per step with every
failure and warning spelled out, and `::error` / `::warning` workflow commands.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from mlprov.policy import PolicyResult
from mlprov.policy.results import RuleResult, StepReport

#: Longest text put into one annotation or table cell (GitHub truncates far longer).
_MAX_TEXT = 2000


def _reports(result: PolicyResult) -> list[StepReport]:
    return [result.layout, *result.steps]


def _label(report: StepReport) -> str:
    return "layout" if report.name == "layout" else f"step {report.name}"


def junit_xml(result: PolicyResult, *, layout: str) -> bytes:
    """A JUnit XML document: a testsuite per step, a testcase per rule result."""
    suites = ET.Element("testsuites", name=f"mlprov policy check {layout}")
    total = failures = skipped = 0
    for report in _reports(result):
        suite = ET.SubElement(suites, "testsuite", name=_label(report))
        suite_failures = suite_skipped = 0
        for r in report.results:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"mlprov.policy.{report.name}",
                name=f"{r.rule}{f' [{r.where}]' if r.where else ''}",
            )
            if not r.passed:
                suite_failures += 1
                ET.SubElement(case, "failure", message=r.reason[:_MAX_TEXT]).text = r.reason
            elif r.skipped:
                suite_skipped += 1
                ET.SubElement(case, "skipped", message=r.reason[:_MAX_TEXT])
            else:
                ET.SubElement(
                    case, "system-out"
                ).text = f"{'warning: ' if r.warning else ''}{r.reason}"
        suite.set("tests", str(len(report.results)))
        suite.set("failures", str(suite_failures))
        suite.set("skipped", str(suite_skipped))
        suite.set("errors", "0")
        total += len(report.results)
        failures += suite_failures
        skipped += suite_skipped
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("skipped", str(skipped))
    suites.set("errors", "0")
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    flat = " ".join(text.split())[:_MAX_TEXT]
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _digests(digest: dict[str, str]) -> str:
    return ", ".join(f"{k}:{v[:16]}…" for k, v in sorted(digest.items()))


def markdown_summary(result: PolicyResult, *, layout: str, vsa: str | None = None) -> str:
    """A Markdown report: the verdict, a row per step, then every failure and warning."""
    verdict = "PASSED" if result.passed else "FAILED"
    icon = "✅" if result.passed else "❌"
    lines = [f"## {icon} mlprov policy check: {verdict}", ""]
    lines.append(f"Layout `{_cell(layout)}`; layout signature: **{result.layout_signature}**.")
    if result.subjects:
        shown = ", ".join(f"`{_cell(s.name)}` ({_digests(s.digest)})" for s in result.subjects)
        lines.append(f"Released: {shown}.")
    if vsa:
        lines.append(f"VSA ({verdict}): `{_cell(vsa)}`.")
    lines += ["", "| step | result | checks | failed | warnings |", "|---|---|---|---|---|"]
    for report in _reports(result):
        failed = sum(1 for r in report.results if not r.passed)
        warned = sum(1 for r in report.results if r.warning)
        lines.append(
            f"| {_cell(_label(report))} | {'pass' if report.passed else '**FAIL**'} |"
            f" {len(report.results)} | {failed} | {warned} |"
        )
    problems = [
        (report, r) for report in _reports(result) for r in report.results
        if not r.passed or r.warning
    ]  # fmt: skip
    if problems:
        lines += ["", "| | step | rule | reason | where |", "|---|---|---|---|---|"]
        for report, r in problems:
            mark = "❌" if not r.passed else "⚠️"
            lines.append(
                f"| {mark} | {_cell(_label(report))} | `{_cell(r.rule)}` | {_cell(r.reason)} |"
                f" {_cell(r.where)} |"
            )
    if result.skipped:
        lines += ["", f"{len(result.skipped)} file(s) skipped as not usable attestations."]
    return "\n".join(lines) + "\n"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _annotation(kind: str, report: StepReport, r: RuleResult) -> str:
    title = _escape_property(f"{_label(report)}: {r.rule}"[:200])
    where = f" [{r.where}]" if r.where else ""
    return f"::{kind} title={title}::{_escape_data((r.reason + where)[:_MAX_TEXT])}"


def github_annotations(result: PolicyResult) -> list[str]:
    """`::error` for each failed rule and `::warning` for each warning (workflow commands)."""
    out = []
    for report in _reports(result):
        for r in report.results:
            if not r.passed:
                out.append(_annotation("error", report, r))
            elif r.warning:
                out.append(_annotation("warning", report, r))
    return out


def on_github_actions() -> bool:
    """True inside a GitHub Actions job."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def github_step_summary() -> Path | None:
    """The job summary file GitHub Actions provides, when running there."""
    name = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(name) if on_github_actions() and name else None
