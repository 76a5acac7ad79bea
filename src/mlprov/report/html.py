"""The audit report: one self-contained HTML file a person can open offline.

No script, font, stylesheet or image is fetched: the style is inline, the lineage graph
is inline SVG and the AI-BOMs are embedded as `data:` links. A Content-Security-Policy
forbids every fetch, so a name in an attestation cannot pull anything in either; and
every text taken from an attestation (names are attacker controlled) is HTML-escaped
here, once, by `_e`.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from mlprov.export.completeness import Completeness, completeness
from mlprov.export.evidence import ArtifactFact, AttestationFact, Evidence, flatten, pickle_files
from mlprov.report.svg import Arrow, Diagram, Node, node_id, render_svg

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none';"
    " form-action 'none'"
)
_CSS = """
body{
  font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  margin:0;
  color:#202124;
  background:#fff;
}
header{padding:20px 32px;background:#f8f9fa;border-bottom:1px solid #dadce0}
main{padding:8px 32px 40px}
h1{font-size:22px;margin:0 0 6px}
h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e0e0e0;padding-bottom:4px}
code,.digest{
  font-family:ui-monospace,Menlo,Consolas,monospace;
  font-size:12px;
  word-break:break-all;
}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f1f3f4;font-weight:600}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;font-weight:600}
.ok{background:#e6f4ea;color:#137333}
.bad{background:#fce8e6;color:#c5221f}
.na{background:#f1f3f4;color:#5f6368}
tr.bad td{background:#fce8e6}
.verdict{font-size:18px;padding:4px 12px}
.graph{overflow:auto;border:1px solid #e0e0e0;border-radius:6px;padding:8px;background:#fff}
.warn{border-left:4px solid #d93025;background:#fce8e6;padding:8px 12px;margin:8px 0}
:target{outline:3px solid #fbbc04}
.muted{color:#5f6368}
td code{word-break:break-all}
.graph svg{max-width:100%;height:auto}
#attestations{table-layout:fixed}
#attestations th:nth-child(1),#attestations th:nth-child(2){width:9%}
#attestations th:nth-child(3){width:24%}#attestations th:nth-child(4){width:22%}
#attestations th:nth-child(5){width:12%}#attestations th:nth-child(6){width:24%}
.badge{white-space:nowrap}
td{overflow-wrap:break-word}
"""


def _e(value: Any) -> str:
    """Text from anywhere, safe inside HTML text and attribute values."""
    return html.escape(value if isinstance(value, str) else json.dumps(value, sort_keys=True))


def anchor(kind: str, key: str) -> str:
    """A fragment id for an artifact or attestation that no attestation text can shape."""
    return f"{kind}-{node_id(key)[1:]}"


def _badge(ok: bool | None, text: str) -> str:
    css = "na" if ok is None else ("ok" if ok else "bad")
    return f'<span class="badge {css}">{_e(text)}</span>'


def _signers(fact: AttestationFact) -> str:
    if fact.verified:
        return "<br>".join(f"<code>{_e(s)}</code>" for s in fact.signers) or "(none recorded)"
    claims = ", ".join(fact.claimed) or "nobody"
    return f'<span class="muted">claims {_e(claims)}</span>'


def _digests(artifact: ArtifactFact) -> str:
    if not artifact.digests:
        return f"<code>{_e(artifact.uri or artifact.key)}</code>"
    return "<br>".join(
        f'<code class="digest">{_e(alg)}:{_e(value)}</code>'
        for alg, value in sorted(artifact.digests.items())
    )


def _link(kind: str, key: str, text: str) -> str:
    return f'<a href="#{anchor(kind, key)}">{_e(text)}</a>'


def diagram(evidence: Evidence) -> Diagram:
    """Artifacts and the steps between them; packages folded into one box per step."""
    picture = Diagram()
    for key, artifact in evidence.artifacts.items():
        if artifact.role == "package":
            continue
        kind = {"model": "model", "base-model": "model", "dataset": "dataset"}.get(
            artifact.role, "artifact"
        )
        picture.add(
            Node(
                node_id(key),
                artifact.name,
                kind,  # type: ignore[arg-type]
                artifact.digest or artifact.role,
                f"#{anchor('art', key)}",
                "root" if key == evidence.root else "ok",
            )
        )
    for fact in evidence.attestations:
        if fact.kind not in ("provenance", "link", "evaluation"):
            continue
        failed = fact.kind == "evaluation" and fact.predicate.get("result") == "FAILED"
        step = picture.add(
            Node(
                node_id(fact.digest),
                fact.label,
                "step",
                fact.kind,
                f"#{anchor('att', fact.digest)}",
                "failed" if failed else "ok",
            )
        )
        inputs, outputs = evidence.step_io(fact.digest)
        if fact.kind == "evaluation":
            for evaluation in evidence.evaluations:
                if evaluation.attestation == fact.digest:
                    inputs += evaluation.datasets
                    picture.link(Arrow(step.id, node_id(evaluation.model), "evaluated"))
        packages = [k for k in inputs if evidence.artifacts[k].role == "package"]
        if packages:
            group = picture.add(
                Node(
                    node_id(f"packages:{fact.digest}"),
                    f"{len(packages)} packages",
                    "group",
                    "installed distributions",
                    f"#{anchor('pkgs', fact.digest)}",
                )
            )
            picture.link(Arrow(group.id, step.id))
        for key in inputs:
            if evidence.artifacts[key].role != "package":
                picture.link(Arrow(node_id(key), step.id))
        for key in outputs:
            picture.link(Arrow(step.id, node_id(key)))
    for fact in evidence.unverified:
        node = picture.add(
            Node(
                node_id(fact.digest),
                f"{fact.label} (UNVERIFIED)",
                "step",
                fact.kind,
                f"#{anchor('att', fact.digest)}",
                "unverified",
            )
        )
        if fact.statement is not None:
            for subject in fact.statement.subject:
                from mlprov.store.record import digest_keys

                for key in digest_keys(subject.digest)[:1]:
                    if key in evidence.artifacts:
                        picture.link(Arrow(node.id, node_id(key), "unverified", dashed=True))
    return picture


def _completeness_table(lines: list[Completeness]) -> str:
    rows = []
    for line in lines:
        ok = None if line.status == "n/a" else line.status == "present"
        css = ' class="bad"' if ok is False else ""
        rows.append(
            f"<tr{css}><td>{_e(line.field)}</td><td>{_badge(ok, line.status)}</td>"
            f"<td>{_e(line.detail)}</td></tr>"
        )
    return (
        '<table id="completeness"><tr><th>Expected</th><th>Status</th><th>Found</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _attestation_rows(evidence: Evidence) -> str:
    rows = []
    for fact in [*evidence.attestations, *evidence.unverified]:
        status = _badge(True, "verified") if fact.verified else _badge(False, "UNVERIFIED")
        reason = "" if fact.verified else f'<br><span class="muted">{_e(fact.reason)}</span>'
        css = "" if fact.verified else ' class="bad"'
        rows.append(
            f'<tr id="{anchor("att", fact.digest)}"{css} data-attestation="{_e(fact.digest)}">'
            f"<td>{_e(fact.label)}</td><td>{_e(fact.kind)}</td><td>{_signers(fact)}</td>"
            f"<td>{status}{reason}</td><td>{_e(fact.time)}</td>"
            f'<td><code class="digest">{_e(fact.digest)}</code></td></tr>'
        )
    return (
        '<table id="attestations"><tr><th>Step</th><th>Kind</th><th>Signer</th>'
        "<th>Verification</th><th>Time</th><th>Attestation digest</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _produced_by(evidence: Evidence, artifact: ArtifactFact) -> str:
    links = [
        _link("att", d, evidence.attestation(d).label)
        for d in artifact.produced_by
        if any(f.digest == d for f in evidence.attestations)
    ]
    return ", ".join(links) or '<span class="muted">no verified provenance</span>'


def _dataset_rows(evidence: Evidence) -> str:
    rows = []
    for artifact in evidence.datasets():
        license_cell = (
            f"<code>{_e(artifact.license)}</code>" if artifact.license else _badge(False, "missing")
        )
        split = artifact.annotations.get("split", "")
        size = artifact.annotations.get("byteSize", "")
        rows.append(
            f'<tr id="{anchor("art", artifact.key)}" data-dataset="{_e(artifact.key)}">'
            f"<td>{_e(artifact.name)}</td><td>{_digests(artifact)}</td><td>{license_cell}</td>"
            f"<td>{_e(split)}</td><td>{_e(size)}</td>"
            f"<td>{_produced_by(evidence, artifact)}</td></tr>"
        )
    if not rows:
        return '<p class="warn">No dataset is recorded in the verified lineage.</p>'
    return (
        '<table id="datasets"><tr><th>Dataset</th><th>Digest</th><th>License</th><th>Split</th>'
        "<th>Bytes</th><th>Produced by</th></tr>" + "".join(rows) + "</table>"
    )


def _evaluation_rows(evidence: Evidence) -> str:
    rows = []
    for evaluation in evidence.evaluations:
        checks = {str(t.get("metric")): t for t in evaluation.thresholds}
        model = evidence.artifacts[evaluation.model].name
        for name, value in sorted(evaluation.metrics.items()):
            check = checks.get(name)
            if check is None:
                bound, verdict, css = "", _badge(None, "no threshold"), ""
            else:
                passed = bool(check.get("passed"))
                bound = f"{check.get('operator')} {check.get('value')}"
                verdict = _badge(passed, "passed" if passed else "FAILED")
                css = "" if passed else ' class="bad"'
            step = _link("att", evaluation.attestation, evaluation.step or "eval")
            rows.append(
                f"<tr{css}><td>{_e(model)}</td><td>{step}</td>"
                f"<td>{_e(name)}</td><td>{_e(value)}</td><td>{_e(bound)}</td><td>{verdict}</td></tr>"
            )
        for name, check in checks.items():
            if name not in evaluation.metrics:
                rows.append(
                    f'<tr class="bad"><td>{_e(model)}</td><td>{_e(evaluation.step or "eval")}</td>'
                    f"<td>{_e(name)}</td><td>missing</td>"
                    f"<td>{_e(check.get('operator'))} {_e(check.get('value'))}</td>"
                    f"<td>{_badge(False, 'FAILED')}</td></tr>"
                )
    if not rows:
        return '<p class="warn">No verified evaluation records metrics for this model.</p>'
    return (
        '<table id="metrics"><tr><th>Model</th><th>Evaluation</th><th>Metric</th><th>Value</th>'
        "<th>Threshold</th><th>Result</th></tr>" + "".join(rows) + "</table>"
    )


def _verdict(evidence: Evidence) -> str:
    verdict = evidence.latest_verdict()
    if verdict is None:
        return (
            '<p id="verdict">'
            + _badge(None, "no policy verdict")
            + " No verified VSA about this model is in the store.</p>"
        )
    passed = verdict.result == "PASSED"
    policy = verdict.policy_uri or "(policy not named)"
    digests = ", ".join(f"{a}:{v}" for a, v in sorted(verdict.policy_digest.items()))
    return (
        f'<p id="verdict"><span class="badge verdict {"ok" if passed else "bad"}">'
        f"{_e(verdict.result)}</span> by <code>{_e(verdict.verifier)}</code>"
        f" at {_e(verdict.time)}</p>"
        f"<table><tr><th>Policy</th><td>{_e(policy)}"
        f' <code class="digest">{_e(digests)}</code></td></tr>'
        f"<tr><th>Levels</th><td>{_e(', '.join(verdict.levels) or '(none)')}</td></tr>"
        f"<tr><th>Attestations read</th><td>{verdict.inputs}</td></tr>"
        f"<tr><th>VSA</th><td>{_link('att', verdict.attestation, verdict.attestation)}"
        "</td></tr></table>"
    )


def _model_facts(evidence: Evidence) -> str:
    parts = []
    for artifact in evidence.models():
        pickles = pickle_files(artifact.annotations)
        warn = (
            '<p class="warn">Pickle-based files (loading them can run code):'
            f" {_e(', '.join(pickles))}</p>"
            if pickles
            else ""
        )
        facts = flatten(artifact.annotations)
        hyper = evidence.hyperparameters(artifact.key)
        rows = (
            "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in sorted(facts.items()))
            or '<tr><td colspan="2" class="muted">no file facts recorded</td></tr>'
        )
        hyper_rows = "".join(
            f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in sorted(hyper.items())
        )
        task = evidence.model_fact("task", key=artifact.key)
        parts.append(
            f'<div id="{anchor("art", artifact.key)}" data-model="{_e(artifact.key)}">'
            f'<h3>{_e(artifact.name)} <span class="muted">({_e(artifact.role)})</span></h3>'
            f"{warn}<p>{_digests(artifact)}</p><p>Produced by {_produced_by(evidence, artifact)}"
            + (f"; task {_e(task)}" if task else "")
            + f"</p><table><tr><th>Recorded fact</th><th>Value</th></tr>{rows}</table>"
            + (
                f"<details><summary>Parameters ({len(hyper)})</summary>"
                f"<table>{hyper_rows}</table></details>"
                if hyper
                else ""
            )
            + "</div>"
        )
    return "".join(parts)


def _other_rows(evidence: Evidence) -> str:
    rows = []
    others = evidence.by_role("source", "config", "container", "material")
    for artifact in others:
        rows.append(
            f'<tr id="{anchor("art", artifact.key)}"><td>{_e(artifact.name)}</td>'
            f"<td>{_e(artifact.role)}</td>"
            f"<td>{_digests(artifact)}</td><td>{_e(artifact.uri or '')}</td>"
            f"<td>{_produced_by(evidence, artifact)}</td></tr>"
        )
    table = (
        "<table><tr><th>Name</th><th>Role</th><th>Digest</th><th>Location</th>"
        "<th>Produced by</th></tr>" + "".join(rows) + "</table>"
        if rows
        else '<p class="muted">none</p>'
    )
    groups = []
    all_packages = evidence.by_role("package")
    for fact in evidence.attestations:
        inputs = set(evidence.step_io(fact.digest)[0])
        packages = [a for a in all_packages if a.key in inputs]
        if packages:
            items = "".join(f"<li><code>{_e(p.uri or p.name)}</code></li>" for p in packages)
            groups.append(
                f'<details id="{anchor("pkgs", fact.digest)}"><summary>{len(packages)} packages'
                " of step"
                f" {_e(fact.label)}</summary><ul>{items}</ul></details>"
            )
    return table + "".join(groups)


def _downloads(boms: Iterable[tuple[str, str, bytes]]) -> str:
    links = []
    for label, filename, data in boms:
        uri = "data:application/json;base64," + base64.b64encode(data).decode()
        links.append(
            f'<li><a download="{_e(filename)}" href="{uri}" data-bom="{_e(label)}">{_e(label)}</a>'
            f' <span class="muted">({len(data)} bytes)</span></li>'
        )
    return '<ul id="downloads">' + "".join(links) + "</ul>"


def render_report(
    evidence: Evidence,
    *,
    boms: Iterable[tuple[str, str, bytes]] = (),
    engine: str = "auto",
    generated: datetime | None = None,
) -> str:
    """The whole report as one HTML document (text)."""
    from mlprov import __version__

    model = evidence.model
    verdict = evidence.latest_verdict()
    lines = completeness(evidence)
    svg = render_svg(diagram(evidence), engine=engine)  # type: ignore[arg-type]
    headline = (
        _badge(verdict.result == "PASSED", f"policy {verdict.result}")
        if verdict
        else _badge(None, "no policy verdict")
    )
    unverified = (
        f'<p class="warn">{len(evidence.unverified)} attestation(s) could not be verified and are'
        " left out of everything below except the attestation list.</p>"
        if evidence.unverified
        else ""
    )
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = f"""<header>
<h1>Audit report: {_e(model.name)} {headline}</h1>
<div><code class="digest">{_e(evidence.root)}</code></div>
<div class="muted">{len(evidence.attestations)} verified attestation(s),
checked by {_e(evidence.verified_by)}; store {_e(evidence.store)}</div>
</header>
<main>
{unverified}
<h2>Completeness</h2>
{_completeness_table(lines)}
<h2>Lineage</h2>
<div class="graph">{svg}</div>
<p class="muted">Boxes link to their details below. Red dashed items did not verify or failed.</p>
<h2>Policy verdict</h2>
{_verdict(evidence)}
<h2>Attestations</h2>
{_attestation_rows(evidence)}
<h2>Datasets</h2>
{_dataset_rows(evidence)}
<h2>Evaluation metrics</h2>
{_evaluation_rows(evidence)}
<h2>Models</h2>
{_model_facts(evidence)}
<h2>Code, configuration, containers and packages</h2>
{_other_rows(evidence)}
<h2>AI-BOMs</h2>
{_downloads(boms)}
<p class="muted">Generated by mlprov {_e(__version__)} at {_e(when)}.</p>
</main>"""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mlprov audit report: {_e(model.name)}</title>"
        f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n"
    )
