"""`mlprov report`: the self-contained HTML audit report of a model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from mlprov.cli._common import force_option, json_option
from mlprov.cli.bom import build_document, collect_evidence, evidence_options, report_summary
from mlprov.errors import InputError

EPILOG = """\b
Examples:
  mlprov report ./model --html report.html
  mlprov report sha256:<model digest> --html report.html --key team.pub.pem
  mlprov report ./model --html report.html --graph python   # no Graphviz even if installed
"""


@click.command(epilog=EPILOG)
@evidence_options
@click.option(
    "--html",
    "html_out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Write the report to this HTML file.",
)
@click.option(
    "--graph",
    type=click.Choice(["auto", "dot", "python"]),
    default="auto",
    show_default=True,
    help="Lineage layout: Graphviz dot where installed (auto), or the built-in layout.",
)
@force_option
@json_option
def report(
    model: str, html_out: Path, graph: str, force: bool, as_json: bool, **verify_opts: Any
) -> None:
    """Write an HTML audit report of MODEL (a model PATH or its DIGEST) from the store.

    One file that opens offline: the lineage graph, every attestation with its step,
    signer, verification status and time, the datasets with digests and licenses, the
    evaluation metrics against their thresholds, the latest policy verdict (VSA), the
    model facts, and both AI-BOMs to download. Attestations that do not verify are
    shown as such and used for nothing else.
    """
    from mlprov.fsio import check_writable, write_bytes_atomic
    from mlprov.report.html import render_report

    if html_out.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"--html {html_out}: give a file name ending in .html")
    check_writable(html_out, force=force)
    evidence = collect_evidence(model, **verify_opts)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", evidence.model.name).strip("._") or "model"
    boms = []
    for fmt, suffix in (("cyclonedx", "cdx.json"), ("spdx3", "spdx.json")):
        document, _ = build_document(evidence, fmt)
        label = "CycloneDX 1.6" if fmt == "cyclonedx" else "SPDX 3.0.1"
        boms.append((label, f"{stem}.{suffix}", json.dumps(document, indent=2).encode()))
    text = render_report(evidence, boms=boms, engine=graph)
    write_bytes_atomic(html_out, text.encode(), force=force)
    report_summary(evidence, as_json=as_json, html=str(html_out))
    if not as_json:
        click.echo(f"wrote the audit report of {evidence.root} to {html_out}", err=True)
