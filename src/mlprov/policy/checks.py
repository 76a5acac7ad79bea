"""Layout-wide and per-step checks other than artifact and attribute rules.

Each is a small class with `evaluate(...) -> RuleResult`: expiry, the layout's own
signature, thresholds, agreement between functionaries, the released subject, and
VSAs required from upstream stages.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import Key

from mlprov.errors import MlprovError
from mlprov.policy.attestations import Artifacts, Claim, same_digest
from mlprov.policy.functionaries import Functionary, distinct_signers
from mlprov.policy.layout import ExpectedVerification, Layout, SubjectRuleSpec
from mlprov.policy.results import RuleResult
from mlprov.predicates import VSA_V1
from mlprov.signing.dsse import Envelope, verify_envelope

if TYPE_CHECKING:
    from mlprov.policy.engine import ReleasedSubject


def digest_text(digest: dict[str, str]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(digest.items())) or "(no digest)"


@dataclass(frozen=True)
class ExpiryRule:
    """The layout is valid only until `expires`."""

    expires: datetime

    def evaluate(self, *, now: datetime) -> RuleResult:
        stamp = self.expires.isoformat().replace("+00:00", "Z")
        if now >= self.expires:
            return RuleResult(False, f"layout expired at {stamp}", "layout", "expires")
        return RuleResult(True, f"layout valid until {stamp}", "layout", "expires")


@dataclass(frozen=True)
class LayoutSignatureRule:
    """When owner keys are given, every one of them must have signed the layout (DSSE).

    Without owner keys nothing vouches for the layout: a warning, never a silent pass.
    """

    envelope: Envelope | None
    keys: Sequence[Key]
    source: str

    def evaluate(self) -> RuleResult:
        rule = "layout signature"
        if not self.keys:
            how = "signed, but no --layout-key given" if self.envelope else "unsigned"
            return RuleResult(
                True,
                f"layout {how}: its signature is not checked (give --layout-key, or"
                " --require-signed-layout to refuse this)",
                "layout",
                rule,
                warning=True,
            )
        if self.envelope is None:
            return RuleResult(False, "layout is not signed, but owner keys are required", "", rule)
        missing = []
        for key in self.keys:
            try:
                verify_envelope(self.envelope, [key], source=self.source)
            except MlprovError:
                missing.append(key.keyid[:16])
        if missing:
            return RuleResult(
                False, f"layout not signed by owner key(s) {', '.join(missing)}", self.source, rule
            )
        return RuleResult(True, f"signed by all {len(self.keys)} owner key(s)", self.source, rule)


@dataclass(frozen=True)
class KeyBindingRule:
    """A signed layout must hold its functionaries' keys, not paths to key files.

    A signature over `publicKeyPath: trainer.pub` covers the path, not the key: whoever
    can replace the file chooses the trainer. `mlprov policy sign` embeds the keys.
    """

    layout: Layout
    signed: bool

    def evaluate(self) -> RuleResult | None:
        files = sorted(
            f"{name} ({spec.publicKeyPath})"
            for name, spec in self.layout.functionaries.items()
            if spec.publicKeyPath is not None
        )
        if not files:
            return None
        rule = "functionary keys bound"
        if self.signed:
            return RuleResult(
                False,
                f"publicKeyPath of {', '.join(files)} is not covered by the layout's signature:"
                " re-sign with `mlprov policy sign`, which embeds the keys",
                "layout",
                rule,
            )
        return RuleResult(
            True, f"key files read as they are now: {', '.join(files)}", "layout", rule
        )


@dataclass(frozen=True)
class ThresholdRule:
    """At least `threshold` distinct functionaries must vouch for a step's predicate."""

    step: str
    predicate_type: str
    threshold: int

    def evaluate(
        self,
        accepted: dict[str, list[str]],
        *,
        signers: dict[str, set[str]],
        authentic: int,
    ) -> RuleResult:
        """`accepted`: functionary identity -> names, of those whose claims passed every
        rule; `signers`: functionary identity -> who of it signed (one signer that two
        functionaries' identities both match counts once)."""
        rule = f"threshold {self.threshold}"
        names = sorted(n for group in accepted.values() for n in group)
        count = distinct_signers(signers)
        if count >= self.threshold:
            return RuleResult(
                True,
                f"{count} functionary(ies) vouch: {', '.join(names)}",
                f"{self.step} {self.predicate_type}",
                rule,
            )
        if authentic == 0:
            why = f"no attestation of type {self.predicate_type} signed by a functionary"
        else:
            why = (
                f"{count} distinct functionary(ies) passed"
                + (f" ({', '.join(names)})" if names else "")
                + _shared_signer_note(len(accepted), count)
                + f", {self.threshold} needed"
            )
        return RuleResult(False, why, f"step {self.step}", rule)


def _shared_signer_note(functionaries: int, signers: int) -> str:
    if signers >= functionaries:
        return ""
    return f" ({functionaries} functionaries matched, but only {signers} distinct signer(s))"


#: What the claims counted for one threshold must agree on: Claim field -> how to say it.
_AGREED = {
    "materials": "materials",
    "products": "products",
    "product_kinds": "kinds of products (digestOf: tree or file)",
}


@dataclass(frozen=True)
class AgreementRule:
    """The functionaries counted for a threshold must report the same artifacts, and say
    the same of what each product is (`digestOf`: a tree or a file), since the released
    subject is matched against every counted claim."""

    step: str

    def evaluate(self, claims: Sequence[Claim]) -> RuleResult:
        rule = "functionaries agree"
        if len(claims) < 2:
            return RuleResult(True, "one claim", f"step {self.step}", rule)
        first = claims[0]
        for other in claims[1:]:
            for kind, what in _AGREED.items():
                if getattr(first, kind) != getattr(other, kind):
                    return RuleResult(
                        False,
                        f"{first.source} and {other.source} report different {what}",
                        f"step {self.step}",
                        rule,
                    )
        return RuleResult(True, f"{len(claims)} claims report the same artifacts", "", rule)


@dataclass(frozen=True)
class SubjectRule:
    """The released artifact must be a product of a counted claim of one of the named steps:
    the same digest, and a directory only a tree product, a file never one."""

    spec: SubjectRuleSpec

    def evaluate(self, subject: ReleasedSubject, *, counted: dict[str, list[Claim]]) -> RuleResult:
        rule = f"subject is a product of {' or '.join(self.spec.productOf)}"
        name, digest = subject.name, subject.digest
        if self.spec.name and not fnmatch.fnmatch(name, self.spec.name):
            return RuleResult(
                False, f"subject name {name} does not match {self.spec.name}", name, rule
            )
        other_kind: list[str] = []
        for step in self.spec.productOf:
            for claim in counted.get(step, []):
                for product, product_digest in claim.products.items():
                    if not same_digest(digest, product_digest):
                        continue
                    kind = claim.product_kinds.get(product)
                    if _kinds_agree(subject.kind, kind):
                        return RuleResult(True, f"product {product} of step {step}", name, rule)
                    other_kind.append(f"{product} of step {step} is a {kind or 'file (unmarked)'}")
        why = f"; a {subject.kind} never matches: {', '.join(other_kind)}" if other_kind else ""
        return RuleResult(
            False,
            f"digest {digest_text(digest)} is not a product of a counted claim of"
            f" {' or '.join(self.spec.productOf)}{why}",
            name,
            rule,
        )


def _object(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: a field of the wrong type
    in a signed document answers nothing, instead of crashing the gate."""
    return value if isinstance(value, dict) else {}


def _kinds_agree(subject: str | None, product: str | None) -> bool:
    """A directory matches only tree products; a file never matches a tree product."""
    if subject == "tree":
        return product == "tree"
    if subject == "file":
        return product != "tree"
    return True


@dataclass(frozen=True)
class VerificationRule:
    """An upstream stage's signed VSA must say PASSED about the artifacts it applies to."""

    spec: ExpectedVerification

    def evaluate(
        self,
        claims: Sequence[Claim],
        *,
        functionaries: Sequence[Functionary],
        targets: Artifacts,
    ) -> tuple[RuleResult, list[Claim]]:
        """Returns the result and the VSAs that satisfied it (for dependencyLevels)."""
        spec = self.spec
        rule = f"VSA {spec.name} from {spec.verifierId}"
        names: dict[str, list[str]] = {}
        signers: dict[str, set[str]] = {}
        used: list[Claim] = []
        reasons: list[str] = []
        for claim in claims:
            if claim.predicate_type != VSA_V1:
                continue
            # Who signed it first: what a VSA says is read only once a functionary said it.
            who = [(f, f.signer(claim.attestation)) for f in functionaries]
            who = [(f, s) for f, s in who if s is not None]
            if not who:
                reasons.append(f"{claim.source}: not signed by {', '.join(spec.functionaries)}")
                continue
            why = self._mismatch(claim, targets)
            if why:
                reasons.append(f"{claim.source}: {why}")
                continue
            used.append(claim)
            for f, signer in who:
                names.setdefault(f.identity, []).append(f.name)
                signers.setdefault(f.identity, set()).add(str(signer))
        count = distinct_signers(signers)
        if count >= spec.threshold:
            shown = sorted({n for group in names.values() for n in group})
            return RuleResult(
                True, f"PASSED, signed by {', '.join(shown)}", spec.appliesTo, rule
            ), used
        reason = (
            f"{count} of {spec.threshold} required signer(s) left a matching VSA"
            + _shared_signer_note(len(signers), count)
        )
        if reasons:
            reason += ": " + "; ".join(reasons[:3])
        return RuleResult(False, reason, spec.appliesTo, rule), used

    def _mismatch(self, claim: Claim, targets: Artifacts) -> str | None:
        predicate = _object(claim.statement.get("predicate"))
        verifier = _object(predicate.get("verifier")).get("id")
        if verifier != self.spec.verifierId:
            return f"verifier {verifier!r}"
        if predicate.get("verificationResult") != "PASSED":
            return f"verificationResult {predicate.get('verificationResult')!r}"
        if (
            self.spec.policyUri
            and _object(predicate.get("policy")).get("uri") != self.spec.policyUri
        ):
            return "different policy uri"
        levels = predicate.get("verifiedLevels") or []
        if not isinstance(levels, list) or not all(isinstance(lv, str) for lv in levels):
            return "verifiedLevels is not a list of strings"
        missing = [lv for lv in self.spec.verifiedLevels if lv not in levels]
        if missing:
            return f"lacks verified level(s) {', '.join(missing)}"
        subjects = [s.get("digest") or {} for s in claim.statement.get("subject") or []]
        if not any(same_digest(s, t) for s in subjects for t in targets.values()):
            return f"its subject is none of the artifacts of {self.spec.appliesTo}"
        return None
