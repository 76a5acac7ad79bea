"""CEL attribute rules over a Statement: compiled when the layout loads, run per claim.

The expression sees `subject` (list of ResourceDescriptors), `predicateType` and
`predicate`, converted from the signed JSON with their JSON types kept (an int stays
an int: compare `predicate.epochs == 3`, or a float metric with `>= 0.9`). A claim
that is absent (a missing field) fails unless `allowIfNoClaim`; a `warn` rule that does
not hold is reported but does not fail.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlprov.errors import InputError
from mlprov.policy.results import RuleResult

if TYPE_CHECKING:
    from celpy.evaluation import CELEvalError

    from mlprov.policy.layout import AttributeRuleSpec


@functools.cache
def _environment() -> Any:
    """The CEL environment, built once and only when a layout has attribute rules
    (cel-python builds its grammar's parser tables then: a quarter of a second)."""
    import celpy

    return celpy.Environment()


def compile_cel(expression: str, *, where: str) -> Any:
    """A runnable CEL program; a syntax error is an InputError naming the rule."""
    from celpy.celparser import CELParseError

    env = _environment()
    try:
        return env.program(env.compile(expression))
    except CELParseError as exc:
        detail = " ".join(str(exc).split())
        raise InputError(f"{where}: CEL syntax error in {expression!r}: {detail}") from None


def activation(statement: dict[str, Any]) -> dict[str, Any]:
    """The variables a rule sees, as CEL values (JSON types preserved)."""
    from celpy.adapter import json_to_cel

    return {
        "subject": json_to_cel(statement.get("subject") or []),
        "predicateType": json_to_cel(statement.get("predicateType") or ""),
        "predicate": json_to_cel(statement.get("predicate") or {}),
    }


def _missing_claim(exc: CELEvalError) -> bool:
    return len(exc.args) > 1 and exc.args[1] is KeyError


@dataclass(frozen=True)
class AttributeRule:
    """One `expectedAttributes` entry: a compiled CEL expression that must be true."""

    spec: AttributeRuleSpec
    program: Any

    @classmethod
    def compile(cls, spec: AttributeRuleSpec, *, where: str) -> AttributeRule:
        return cls(spec=spec, program=compile_cel(spec.rule, where=where))

    def evaluate(self, statement: dict[str, Any], *, where: str) -> RuleResult:
        from celpy import celtypes
        from celpy.evaluation import CELEvalError

        rule = self.spec.rule
        try:
            value = self.program.evaluate(activation(statement))
        except CELEvalError as exc:
            if _missing_claim(exc):
                if self.spec.allowIfNoClaim:
                    return RuleResult(True, f"no claim ({exc.args[0]}); allowed", where, rule)
                return self._failed(f"no claim: {exc.args[0]}", where)
            return self._failed(f"cannot evaluate: {exc.args[0]}", where)
        if not isinstance(value, celtypes.BoolType):
            return self._failed(f"rule gave {type(value).__name__}, not a bool", where)
        if bool(value):
            return RuleResult(True, "holds", where, rule)
        return self._failed("does not hold", where)

    def _failed(self, reason: str, where: str) -> RuleResult:
        if self.spec.debug:
            reason += f" ({self.spec.debug})"
        if self.spec.warn:
            return RuleResult(True, reason, where, self.spec.rule, warning=True)
        return RuleResult(False, reason, where, self.spec.rule)
