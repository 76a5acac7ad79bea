"""What a rule says: passed or not, why, and where (which attestation, which artifact)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["pass", "fail", "warn", "skip"]


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one thing.

    `passed` is False only for a failure that fails the policy; a `warn` rule that does
    not hold has `passed=True, warning=True`; a claim left out of a threshold count is
    `skipped`: reported, never failing on its own.
    """

    passed: bool
    reason: str
    where: str = ""
    rule: str = ""
    warning: bool = False
    skipped: bool = False

    @property
    def status(self) -> Status:
        if not self.passed:
            return "fail"
        if self.skipped:
            return "skip"
        return "warn" if self.warning else "pass"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class StepReport:
    """Every result of one step (or of the layout-wide checks, under a pseudo-step name)."""

    name: str
    results: list[RuleResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "results": [r.to_dict() for r in self.results],
        }
