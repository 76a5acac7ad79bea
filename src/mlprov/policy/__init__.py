"""Layouts: parse, validate, evaluate (artifact rules, CEL, thresholds), verdict.

`load_layout` reads and compiles a layout (every layout error is an InputError, exit
2); `collect_claims` reads attestations; `evaluate` composes the rules into a
`PolicyResult`, whose `passed` is the verdict.

The names are imported on first use (PEP 562), so that reading the layout model alone
(`mlprov.policy.layout`, for the schemas) does not load the engine and cel-python.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlprov.policy.attestations import Claim, ClaimSet, collect_claims
    from mlprov.policy.engine import PolicyResult, ReleasedSubject, evaluate
    from mlprov.policy.layout import Layout
    from mlprov.policy.loader import LAYOUT_PAYLOAD_TYPE, LoadedLayout, load_layout, parse_layout
    from mlprov.policy.results import RuleResult, StepReport

_WHERE = {
    "Claim": "attestations",
    "ClaimSet": "attestations",
    "collect_claims": "attestations",
    "PolicyResult": "engine",
    "ReleasedSubject": "engine",
    "evaluate": "engine",
    "Layout": "layout",
    "LAYOUT_PAYLOAD_TYPE": "loader",
    "LoadedLayout": "loader",
    "load_layout": "loader",
    "parse_layout": "loader",
    "RuleResult": "results",
    "StepReport": "results",
}

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


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'mlprov.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"mlprov.policy.{module}"), name)
