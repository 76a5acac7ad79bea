"""Which facts a reviewer of an AI-BOM expects are present, and which are missing.

Each check is one small function of the verified evidence returning a `Completeness`
line; nothing here looks at unverified attestations except to count them as missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from mlprov.export.evidence import Evidence

Status = Literal["present", "missing", "n/a"]


@dataclass(frozen=True)
class Completeness:
    """One expected field: present, missing, or not applicable, with what was found."""

    field: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:8} {self.field}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "status": self.status, "detail": self.detail}


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:5])
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def training_provenance(evidence: Evidence) -> Completeness:
    found = evidence.provenance_of(evidence.root)
    if found:
        steps = [f.label for f in found]
        return Completeness("model provenance", "present", f"made by step {_names(steps)}")
    return Completeness(
        "model provenance", "missing", "no verified provenance names the model as its subject"
    )


def dataset_licenses(evidence: Evidence) -> Completeness:
    datasets = evidence.datasets()
    if not datasets:
        return Completeness("datasets with licenses", "missing", "no dataset is recorded")
    unlicensed = [d.name for d in datasets if not d.license]
    if unlicensed:
        return Completeness(
            "datasets with licenses",
            "missing",
            f"{len(unlicensed)} of {len(datasets)} dataset(s) without a license:"
            f" {_names(unlicensed)}",
        )
    return Completeness(
        "datasets with licenses", "present", f"all {len(datasets)} dataset(s) have a license"
    )


def evaluation_metrics(evidence: Evidence) -> Completeness:
    mine = [e for e in evidence.evaluations if e.model == evidence.root and e.metrics]
    if not mine:
        return Completeness(
            "evaluation metrics", "missing", "no verified evaluation of the model records metrics"
        )
    metrics = sorted({name for e in mine for name in e.metrics})
    return Completeness(
        "evaluation metrics",
        "present",
        f"{len(mine)} evaluation(s): {_names(metrics)}",
    )


def base_model_lineage(evidence: Evidence) -> Completeness:
    bases = evidence.by_role("base-model")
    if not bases:
        return Completeness("base model lineage", "n/a", "no base model (trained from data)")
    orphans = [b.name for b in bases if not evidence.provenance_of(b.key)]
    if orphans:
        return Completeness(
            "base model lineage",
            "missing",
            f"no verified provenance for base model(s) {_names(orphans)}",
        )
    return Completeness(
        "base model lineage", "present", f"{len(bases)} base model(s), each with provenance"
    )


def signer_identities(evidence: Evidence) -> Completeness:
    unsigned = [f.label for f in evidence.attestations if not f.signers]
    if evidence.unverified or unsigned:
        parts = []
        if evidence.unverified:
            parts.append(f"{len(evidence.unverified)} attestation(s) could not be verified")
        if unsigned:
            parts.append(f"no signer identity recorded for {_names(unsigned)}")
        return Completeness("signer identities", "missing", "; ".join(parts))
    signers = sorted({s for f in evidence.attestations for s in f.signers})
    return Completeness(
        "signer identities",
        "present",
        f"{len(evidence.attestations)} attestation(s) signed by {_names(signers)}",
    )


def release_verdict(evidence: Evidence) -> Completeness:
    verdict = evidence.latest_verdict()
    if verdict is None:
        return Completeness("policy verdict (VSA)", "missing", "no verified VSA about the model")
    return Completeness(
        "policy verdict (VSA)", "present", f"{verdict.result} by {verdict.verifier} {verdict.time}"
    )


CHECKS: tuple[Callable[[Evidence], Completeness], ...] = (
    training_provenance,
    dataset_licenses,
    evaluation_metrics,
    base_model_lineage,
    signer_identities,
    release_verdict,
)


def completeness(evidence: Evidence) -> list[Completeness]:
    """Every check, in a fixed order."""
    return [check(evidence) for check in CHECKS]
