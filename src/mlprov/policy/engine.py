"""Where the policy is decided: compose the layout's rules over the claims into a verdict.

Phase 1 finds, per step, the claims signed by one of its functionaries (anything else is
ignored, never counted). Phase 2 runs each such claim's artifact rules (MATCH looks at
the trusted claims of other steps) and attribute rules. A functionary counts towards a
threshold when every claim it signed for that step and predicate type passed; the
counted functionaries must report the same artifacts. Then the layout-wide checks:
expiry, the layout's signature, the released subject, and upstream VSAs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from securesystemslib.signer import Key

from mlprov.policy.artifact_rules import ArtifactKind, ArtifactQueue
from mlprov.policy.attestations import Artifacts, Claim, ClaimSet
from mlprov.policy.checks import (
    AgreementRule,
    ExpiryRule,
    LayoutSignatureRule,
    SubjectRule,
    ThresholdRule,
    VerificationRule,
)
from mlprov.policy.functionaries import Functionary
from mlprov.policy.loader import CompiledStep, LoadedLayout
from mlprov.policy.results import RuleResult, StepReport


@dataclass(frozen=True)
class ReleasedSubject:
    """The artifact being released: its name and digest set."""

    name: str
    digest: dict[str, str]


@dataclass
class PolicyResult:
    """The verdict: every step's results, the layout-wide checks, and what was read."""

    layout: StepReport
    steps: list[StepReport]
    claims: list[Claim]
    skipped: list[tuple[str, str]]
    subjects: list[ReleasedSubject]
    #: VSAs that satisfied expectedVerifications (for the VSA's dependencyLevels)
    upstream_vsas: list[Claim] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.layout.passed and all(s.passed for s in self.steps)

    @property
    def failures(self) -> list[tuple[str, RuleResult]]:
        return [
            (report.name, r)
            for report in (self.layout, *self.steps)
            for r in report.results
            if not r.passed
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "layout": self.layout.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "attestations": [
                {
                    "uri": c.source,
                    "digest": c.digest,
                    "step": c.step,
                    "predicateType": c.predicate_type,
                }
                for c in self.claims
            ],
            "skipped": [{"source": s, "reason": r} for s, r in self.skipped],
            "subjects": [{"name": s.name, "digest": s.digest} for s in self.subjects],
        }


def _dedupe(functionaries: Sequence[Functionary]) -> dict[str, list[Functionary]]:
    by_identity: dict[str, list[Functionary]] = {}
    for f in functionaries:
        by_identity.setdefault(f.identity, []).append(f)
    return by_identity


@dataclass
class _StepEvaluation:
    """Working state of one step: which claims which functionaries signed."""

    compiled: CompiledStep
    #: per expected predicate: identity -> (names, claims signed by that identity)
    signed: list[dict[str, tuple[list[str], list[Claim]]]] = field(default_factory=list)
    ignored: list[RuleResult] = field(default_factory=list)
    trusted: list[Claim] = field(default_factory=list)


def _authenticate(loaded: LoadedLayout, claims: Sequence[Claim]) -> dict[str, _StepEvaluation]:
    out: dict[str, _StepEvaluation] = {}
    for compiled, step in zip(loaded.steps, loaded.layout.steps, strict=True):
        state = _StepEvaluation(compiled)
        step_claims = [c for c in claims if c.step == step.name]
        counted: set[int] = set()
        for expected in step.expectedPredicates:
            groups = _dedupe(
                [loaded.functionaries[n] for n in dict.fromkeys(expected.functionaries)]
            )
            signed: dict[str, tuple[list[str], list[Claim]]] = {}
            for claim in step_claims:
                if claim.predicate_type != expected.predicateType:
                    continue
                for identity, group in groups.items():
                    if group[0].signed(claim.attestation):
                        _, found = signed.setdefault(identity, ([f.name for f in group], []))
                        found.append(claim)
                        counted.add(id(claim))
            state.signed.append(signed)
        for claim in step_claims:
            if id(claim) in counted:
                state.trusted.append(claim)
            else:
                state.ignored.append(
                    RuleResult(
                        True,
                        f"ignored: {claim.predicate_type} not signed by a functionary of"
                        f" step {step.name} for that type",
                        claim.source,
                        "functionary",
                        skipped=True,
                    )
                )
        out[step.name] = state
    return out


def _check_claim(
    state: _StepEvaluation,
    claim: Claim,
    index: int,
    destinations: Any,
) -> list[RuleResult]:
    results: list[RuleResult] = []
    for kind, rules in (
        ("materials", state.compiled.material_rules),
        ("products", state.compiled.product_rules),
    ):
        queue = ArtifactQueue(kind, claim.materials, claim.products, claim.source)  # type: ignore[arg-type]
        for rule in rules:
            results.append(rule.evaluate(queue, destinations=destinations))
    for attribute in state.compiled.attribute_rules[index]:
        results.append(attribute.evaluate(claim.statement, where=claim.source))
    return results


def _downgrade(result: RuleResult) -> RuleResult:
    """A failure of a claim the threshold did not need: shown, not failing."""
    if result.passed:
        return result
    return RuleResult(
        True, result.reason + " (claim not counted)", result.where, result.rule, skipped=True
    )


def evaluate(
    loaded: LoadedLayout,
    claims: ClaimSet,
    *,
    subjects: Sequence[ReleasedSubject] = (),
    layout_keys: Sequence[Key] = (),
    now: datetime | None = None,
) -> PolicyResult:
    """Evaluate every rule of `loaded` over `claims`; never raises for a failed rule.

    `subjects`: the released artifacts (else the products of the layout's last step);
    `layout_keys`: owner keys that must all have signed the layout; `now`: for expiry.
    """
    now = now or datetime.now(UTC)
    layout = loaded.layout
    layout_report = StepReport("layout")
    layout_report.results.append(ExpiryRule(layout.expires).evaluate(now=now))
    layout_report.results.append(
        LayoutSignatureRule(loaded.envelope, layout_keys, loaded.source).evaluate()
    )
    states = _authenticate(loaded, claims.claims)

    def destinations(step: str, kind: ArtifactKind) -> list[Artifacts]:
        state = states.get(step)
        return [getattr(c, kind) for c in state.trusted] if state else []

    reports: list[StepReport] = []
    accepted_products: dict[str, list[Artifacts]] = {}
    accepted_materials: dict[str, list[Artifacts]] = {}
    for step in layout.steps:
        state = states[step.name]
        report = StepReport(step.name)
        report.results.extend(state.ignored)
        if not any(c.step == step.name for c in claims.claims):
            report.results.append(
                RuleResult(False, f"no attestations found for step {step.name}", "", "claims")
            )
            reports.append(report)
            continue
        for index, expected in enumerate(step.expectedPredicates):
            accepted: dict[str, list[str]] = {}
            accepted_claims: list[Claim] = []
            pending: list[RuleResult] = []
            for identity, (names, signed_claims) in state.signed[index].items():
                results = [
                    r
                    for claim in signed_claims
                    for r in _check_claim(state, claim, index, destinations)
                ]
                pending.extend(results)
                if all(r.passed for r in results):
                    accepted[identity] = names
                    accepted_claims.extend(signed_claims)
            threshold = ThresholdRule(step.name, expected.predicateType, expected.threshold)
            verdict = threshold.evaluate(accepted, authentic=len(state.signed[index]))
            if verdict.passed:
                pending = [_downgrade(r) for r in pending]
            report.results.extend(pending)
            report.results.append(verdict)
            if verdict.passed:
                agreement = AgreementRule(step.name).evaluate(accepted_claims)
                report.results.append(agreement)
                if agreement.passed:
                    accepted_products.setdefault(step.name, []).extend(
                        c.products for c in accepted_claims
                    )
                    accepted_materials.setdefault(step.name, []).extend(
                        c.materials for c in accepted_claims
                    )
        reports.append(report)

    released = list(subjects) or _last_products([s.name for s in layout.steps], accepted_products)
    for subject_rule in layout.subjects:
        rule = SubjectRule(subject_rule)
        if not released:
            layout_report.results.append(
                RuleResult(
                    False,
                    "no released subject: no step has accepted products; give --subject",
                    "",
                    "subjects",
                )
            )
        for item in released:
            layout_report.results.append(
                rule.evaluate(item.name, item.digest, products=accepted_products)
            )
    upstream: list[Claim] = []
    for expected_vsa in layout.expectedVerifications:
        if expected_vsa.appliesTo == "subject":
            targets = {s.name: s.digest for s in released}
        else:
            targets = {
                name: digest
                for artifacts in accepted_materials.get(expected_vsa.appliesTo, [])
                for name, digest in artifacts.items()
            }
        result, used = VerificationRule(expected_vsa).evaluate(
            claims.claims,
            functionaries=[loaded.functionaries[n] for n in expected_vsa.functionaries],
            targets=targets,
        )
        layout_report.results.append(result)
        upstream.extend(used)
    return PolicyResult(
        layout=layout_report,
        steps=reports,
        claims=list(claims.claims),
        skipped=[(s.source, s.reason) for s in claims.skipped],
        subjects=released,
        upstream_vsas=upstream,
    )


def _last_products(steps: list[str], products: dict[str, list[Artifacts]]) -> list[ReleasedSubject]:
    """The accepted products of the last step that has any (an evaluation step has none)."""
    for step in reversed(steps):
        seen: dict[str, dict[str, str]] = {}
        for artifacts in products.get(step, []):
            seen.update(artifacts)
        if seen:
            return [ReleasedSubject(name, digest) for name, digest in sorted(seen.items())]
    return []
