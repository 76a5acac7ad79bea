"""Where the policy is decided: compose the layout's rules over the claims into a verdict.

Phase 1 finds, per step, the claims signed by one of its functionaries (anything else is
ignored, never counted). Phase 2 runs each such claim's artifact rules and attribute
rules, step by step in the order cross-step rules need. A functionary counts towards a
threshold when every claim it signed for that step and predicate type passed; the
counted functionaries must report the same artifacts; those claims are then the step's
*counted* claims, and the only ones MATCH (and DISALLOW ... FROM) rules of other steps
see, so a replayed claim that failed its own rules can vouch for nothing. Then the
layout-wide checks: expiry, the layout's signature and key binding, the released
subject (always tied to a counted product), and upstream VSAs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from securesystemslib.signer import Key

from mlprov.policy.artifact_rules import ArtifactKind, ArtifactQueue, depends_on
from mlprov.policy.attestations import Artifacts, Claim, ClaimSet
from mlprov.policy.checks import (
    AgreementRule,
    ExpiryRule,
    KeyBindingRule,
    LayoutSignatureRule,
    SubjectRule,
    ThresholdRule,
    VerificationRule,
)
from mlprov.policy.functionaries import Functionary
from mlprov.policy.layout import SubjectRuleSpec
from mlprov.policy.loader import CompiledStep, LoadedLayout
from mlprov.policy.results import RuleResult, StepReport


@dataclass(frozen=True)
class ReleasedSubject:
    """The artifact being released: its name, digest set, and whether it is a `file` or a
    `tree` (a directory; None when not known)."""

    name: str
    digest: dict[str, str]
    kind: str | None = None


@dataclass
class PolicyResult:
    """The verdict: every step's results, the layout-wide checks, and what was read."""

    layout: StepReport
    steps: list[StepReport]
    claims: list[Claim]
    skipped: list[tuple[str, str]]
    subjects: list[ReleasedSubject]
    #: VSAs that satisfied expectedVerifications, each Statement once (dependencyLevels)
    upstream_vsas: list[Claim] = field(default_factory=list)
    #: `verified`, `failed` or `not checked` (no owner keys given)
    layout_signature: str = "not checked"
    layout_signed: bool = False

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
class _Signed:
    """What one functionary (all its names in the layout) signed for an expected predicate."""

    names: list[str]
    claims: list[Claim] = field(default_factory=list)
    #: who of it signed them (`Functionary.signer`), so one signer counts once
    signers: set[str] = field(default_factory=set)


@dataclass
class _StepEvaluation:
    """Working state of one step: which claims which functionaries signed."""

    compiled: CompiledStep
    #: per expected predicate: functionary identity -> what it signed
    signed: list[dict[str, _Signed]] = field(default_factory=list)
    ignored: list[RuleResult] = field(default_factory=list)
    trusted: list[Claim] = field(default_factory=list)


def steps_by_signer(loaded: LoadedLayout) -> dict[tuple[str, str], set[str]]:
    """(functionary identity, predicate type) -> the steps that expect that type from it."""
    steps: dict[tuple[str, str], set[str]] = {}
    for step in loaded.layout.steps:
        for expected in step.expectedPredicates:
            for name in expected.functionaries:
                key = (loaded.functionaries[name].identity, expected.predicateType)
                steps.setdefault(key, set()).add(step.name)
    return steps


def _authenticate(loaded: LoadedLayout, claims: Sequence[Claim]) -> dict[str, _StepEvaluation]:
    out: dict[str, _StepEvaluation] = {}
    shared = steps_by_signer(loaded)
    for compiled, step in zip(loaded.steps, loaded.layout.steps, strict=True):
        state = _StepEvaluation(compiled)
        step_claims = [c for c in claims if c.step == step.name]
        counted: set[int] = set()
        #: claim -> the other steps its file name could as well have named
        ambiguous: dict[int, set[str]] = {}
        for expected in step.expectedPredicates:
            groups = _dedupe(
                [loaded.functionaries[n] for n in dict.fromkeys(expected.functionaries)]
            )
            signed: dict[str, _Signed] = {}
            for claim in step_claims:
                if claim.predicate_type != expected.predicateType:
                    continue
                for identity, group in groups.items():
                    # Only its file name says this claim's step: when its signer is a
                    # functionary of another step for the same type, a copy or a rename
                    # would move a claim from one step to the other. Never counted.
                    others = shared[(identity, claim.predicate_type)] - {step.name}
                    if claim.step_from_name and others:
                        ambiguous.setdefault(id(claim), set()).update(others)
                        continue
                    who = group[0].signer(claim.attestation)
                    if who is not None:
                        found = signed.setdefault(identity, _Signed([f.name for f in group]))
                        found.claims.append(claim)
                        found.signers.add(who)
                        counted.add(id(claim))
            state.signed.append(signed)
        for claim in step_claims:
            if id(claim) in counted:
                state.trusted.append(claim)
            elif id(claim) in ambiguous:
                state.ignored.append(
                    RuleResult(
                        True,
                        f"ignored: nothing signed says its step, only its file name, and"
                        f" step(s) {', '.join(sorted(ambiguous[id(claim)]))} expect"
                        f" {claim.predicate_type} from the same functionary: record the step"
                        " in the Statement",
                        claim.source,
                        "functionary",
                        skipped=True,
                    )
                )
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


def _evaluation_order(loaded: LoadedLayout) -> list[int]:
    """Step indexes ordered so that a step comes after the steps its cross-step rules read.

    A step in a cycle of MATCH rules sees only what was counted before it (nothing, for
    the first step of the cycle): claims never vouch for each other in a circle.
    """
    index = {step.name: i for i, step in enumerate(loaded.steps)}
    order: list[int] = []
    state: dict[int, str] = {}

    def visit(i: int) -> None:
        if i in state:
            return
        state[i] = "visiting"
        compiled = loaded.steps[i]
        for rule in (*compiled.material_rules, *compiled.product_rules):
            other = depends_on(rule)
            if other is not None and other in index and index[other] != i:
                visit(index[other])
        state[i] = "done"
        order.append(i)

    for i in range(len(loaded.steps)):
        visit(i)
    return order


def _released_results(
    loaded: LoadedLayout,
    released: Sequence[ReleasedSubject],
    counted: dict[str, list[Claim]],
    *,
    given: bool,
) -> list[RuleResult]:
    """The released artifacts against the layout's `subjects` rules.

    A layout with no `subjects` rule still ties a subject the caller names (or a VSA is
    asked about) to a counted product of the step whose products are released without
    `--subject` (the last that has any): no layout passes an arbitrary artifact, nor one
    that only an earlier step's functionaries vouch for.
    """
    layout = loaded.layout
    rules = [SubjectRule(spec) for spec in layout.subjects]
    if not rules and given:
        names = [s.name for s in layout.steps]
        last = _last_producing_step(names, counted) or names[-1]
        rules = [SubjectRule(SubjectRuleSpec(productOf=[last]))]
    results: list[RuleResult] = []
    for rule in rules:
        if not released:
            results.append(
                RuleResult(
                    False,
                    "no released subject: no step has counted products; give --subject",
                    "",
                    "subjects",
                )
            )
        for item in released:
            results.append(rule.evaluate(item, counted=counted))
    return results


def evaluate(
    loaded: LoadedLayout,
    claims: ClaimSet,
    *,
    subjects: Sequence[ReleasedSubject] = (),
    layout_keys: Sequence[Key] = (),
    now: datetime | None = None,
    require_subject: bool = False,
) -> PolicyResult:
    """Evaluate every rule of `loaded` over `claims`; never raises for a failed rule.

    `subjects`: the released artifacts (else the products of the layout's last step);
    `layout_keys`: owner keys that must all have signed the layout; `now`: for expiry;
    `require_subject`: a verdict about a subject will be signed (a VSA), so the subject
    must be tied to a counted product even when the layout has no `subjects` rule.
    """
    now = now or datetime.now(UTC)
    layout = loaded.layout
    layout_report = StepReport("layout")
    layout_report.results.append(ExpiryRule(layout.expires).evaluate(now=now))
    signature = LayoutSignatureRule(loaded.envelope, layout_keys, loaded.source).evaluate()
    layout_report.results.append(signature)
    binding = KeyBindingRule(loaded.layout, signed=loaded.envelope is not None).evaluate()
    if binding is not None:
        layout_report.results.append(binding)
    states = _authenticate(loaded, claims.claims)
    #: step -> the claims that counted towards its thresholds (all that other steps see)
    counted: dict[str, list[Claim]] = {}

    def destinations(step: str, kind: ArtifactKind) -> list[Artifacts]:
        return [getattr(c, kind) for c in counted.get(step, [])]

    reports: dict[str, StepReport] = {}
    for position in _evaluation_order(loaded):
        step = layout.steps[position]
        state = states[step.name]
        report = StepReport(step.name)
        reports[step.name] = report
        report.results.extend(state.ignored)
        if not any(c.step == step.name for c in claims.claims):
            report.results.append(
                RuleResult(False, f"no attestations found for step {step.name}", "", "claims")
            )
            continue
        for index, expected in enumerate(step.expectedPredicates):
            accepted: dict[str, _Signed] = {}
            accepted_claims: list[Claim] = []
            pending: list[RuleResult] = []
            for identity, signed in state.signed[index].items():
                results = [
                    r
                    for claim in signed.claims
                    for r in _check_claim(state, claim, index, destinations)
                ]
                pending.extend(results)
                if all(r.passed for r in results):
                    accepted[identity] = signed
                    accepted_claims.extend(signed.claims)
            threshold = ThresholdRule(step.name, expected.predicateType, expected.threshold)
            verdict = threshold.evaluate(
                {i: a.names for i, a in accepted.items()},
                signers={i: a.signers for i, a in accepted.items()},
                authentic=len(state.signed[index]),
            )
            if verdict.passed:
                pending = [_downgrade(r) for r in pending]
            report.results.extend(pending)
            report.results.append(verdict)
            if verdict.passed:
                agreement = AgreementRule(step.name).evaluate(accepted_claims)
                report.results.append(agreement)
                if agreement.passed:
                    counted.setdefault(step.name, []).extend(accepted_claims)

    released = list(subjects) or _last_products([s.name for s in layout.steps], counted)
    layout_report.results.extend(
        _released_results(loaded, released, counted, given=bool(subjects) or require_subject)
    )
    #: the upstream VSAs used, once each by the Statement they sign (a copy is one VSA)
    upstream: dict[bytes, Claim] = {}
    for expected_vsa in layout.expectedVerifications:
        if expected_vsa.appliesTo == "subject":
            targets = {s.name: s.digest for s in released}
        else:
            targets = {
                name: digest
                for claim in counted.get(expected_vsa.appliesTo, [])
                for name, digest in claim.materials.items()
            }
        result, used = VerificationRule(expected_vsa).evaluate(
            claims.claims,
            functionaries=[loaded.functionaries[n] for n in expected_vsa.functionaries],
            targets=targets,
        )
        layout_report.results.append(result)
        for claim in used:
            upstream.setdefault(claim.attestation.envelope.payload, claim)
    return PolicyResult(
        layout=layout_report,
        steps=[reports[s.name] for s in layout.steps],
        claims=list(claims.claims),
        skipped=[(s.source, s.reason) for s in claims.skipped],
        subjects=released,
        upstream_vsas=list(upstream.values()),
        layout_signature=_signature_state(signature, checked=bool(layout_keys)),
        layout_signed=loaded.envelope is not None,
    )


def _signature_state(result: RuleResult, *, checked: bool) -> str:
    if not checked:
        return "not checked"
    return "verified" if result.passed else "failed"


def _last_producing_step(steps: list[str], counted: dict[str, list[Claim]]) -> str | None:
    """The last step whose counted claims have products (an evaluation step has none)."""
    for step in reversed(steps):
        if any(claim.products for claim in counted.get(step, [])):
            return step
    return None


def _last_products(steps: list[str], counted: dict[str, list[Claim]]) -> list[ReleasedSubject]:
    """The counted products of the last step that has any."""
    step = _last_producing_step(steps, counted)
    seen: dict[str, ReleasedSubject] = {}
    for claim in counted.get(step or "", []):
        for name, digest in claim.products.items():
            seen[name] = ReleasedSubject(name, digest, claim.product_kinds.get(name))
    return [seen[name] for name in sorted(seen)]
