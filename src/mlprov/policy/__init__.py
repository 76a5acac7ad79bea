"""Layouts: parse, validate, evaluate (artifact rules, CEL, thresholds), verdict.

`load_layout` reads and compiles a layout (every layout error is an InputError, exit
2); `collect_claims` reads attestations; `evaluate` composes the rules into a
`PolicyResult`, whose `passed` is the verdict.
"""

from mlprov.policy.attestations import Claim, ClaimSet, collect_claims
from mlprov.policy.engine import PolicyResult, ReleasedSubject, evaluate
from mlprov.policy.layout import Layout
from mlprov.policy.loader import LAYOUT_PAYLOAD_TYPE, LoadedLayout, load_layout, parse_layout
from mlprov.policy.results import RuleResult, StepReport

__all__ = [
    "LAYOUT_PAYLOAD_TYPE",
    "Claim",
    "ClaimSet",
    "Layout",
    "LoadedLayout",
    "PolicyResult",
    "ReleasedSubject",
    "RuleResult",
    "StepReport",
    "collect_claims",
    "evaluate",
    "load_layout",
    "parse_layout",
]
