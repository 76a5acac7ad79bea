"""in-toto test-result v0.1 with mlprov's evaluation extensions.

An evaluation's Statement names the model as subject; `configuration` names what the
evaluation read (datasets, config). The extensions are named `<vendor>_<field>` as SLSA
asks: `mlprov_step` (the pipeline step), `mlprov_metrics` (the scores) and
`mlprov_thresholds` (each `metric OP value` check, whose names also appear in
passedTests / failedTests). Predicates written before under `step`, `metrics` and
`thresholds` are read the same.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from mlprov.errors import InputError
from mlprov.predicates import TEST_RESULT_V01
from mlprov.predicates.slsa_provenance import check_descriptors
from mlprov.statement import ResourceDescriptor

PREDICATE_TYPE = TEST_RESULT_V01

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
_THRESHOLD = re.compile(r"^\s*([A-Za-z0-9_.\-/]+)\s*(>=|<=|==|>|<)\s*(\S+)\s*\Z")


class ThresholdResult(BaseModel):
    """One `metric OP value` check and whether the measured value met it."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="The check as written, e.g. accuracy>=0.9")
    metric: str
    operator: Literal[">=", "<=", ">", "<", "=="]
    value: float
    actual: float | None = Field(default=None, description="Measured value; absent if missing")
    passed: bool


class Threshold(BaseModel):
    """A check on one metric, parsed from `metric>=value` (also <=, >, <, ==)."""

    metric: str
    operator: Literal[">=", "<=", ">", "<", "=="]
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse `accuracy>=0.9`; raises InputError naming the bad text."""
        match = _THRESHOLD.match(text)
        if not match:
            raise InputError(
                f"threshold {text!r} is not of the form METRIC>=VALUE (or <=, >, <, ==)"
            )
        metric, op, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"threshold {text!r}: {raw!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(f"threshold {text!r}: value must be finite")
        return cls(metric=metric, operator=op, value=value)

    @property
    def name(self) -> str:
        return f"{self.metric}{self.operator}{self.value:g}"

    def evaluate(self, metrics: Mapping[str, Any]) -> ThresholdResult:
        """Compare the measured metric with the bound; a missing or non-number metric fails."""
        actual = metrics.get(self.metric)
        number = (
            float(actual)
            if isinstance(actual, int | float) and not isinstance(actual, bool)
            else None
        )
        passed = number is not None and _OPERATORS[self.operator](number, self.value)
        return ThresholdResult(
            name=self.name,
            metric=self.metric,
            operator=self.operator,
            value=self.value,
            actual=number,
            passed=passed,
        )


class TestResult(BaseModel):
    """The test-result v0.1 predicate plus mlprov's `step`, `metrics` and `thresholds`."""

    __test__ = False  # not a pytest test class
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    result: Literal["PASSED", "WARNED", "FAILED"]
    configuration: list[ResourceDescriptor] | None = None
    url: str | None = None
    passedTests: list[str] | None = None
    warnedTests: list[str] | None = None
    failedTests: list[str] | None = None
    step: str | None = Field(
        default=None,
        alias="mlprov_step",
        validation_alias=AliasChoices("mlprov_step", "step"),
        description="mlprov extension: pipeline step name (`step` before)",
    )
    metrics: dict[str, Any] | None = Field(
        default=None,
        alias="mlprov_metrics",
        validation_alias=AliasChoices("mlprov_metrics", "metrics"),
        description="mlprov extension: evaluation scores (`metrics` before)",
    )
    thresholds: list[ThresholdResult] | None = Field(
        default=None,
        alias="mlprov_thresholds",
        validation_alias=AliasChoices("mlprov_thresholds", "thresholds"),
        description="mlprov extension: each threshold checked and its outcome",
    )

    @field_validator("configuration")
    @classmethod
    def _identified(cls, v: list[ResourceDescriptor] | None) -> list[ResourceDescriptor] | None:
        return check_descriptors(v)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without unset fields, unknown fields kept."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def evaluate(
        cls,
        *,
        step: str,
        metrics: Mapping[str, Any],
        thresholds: list[Threshold],
        configuration: list[ResourceDescriptor],
        url: str | None = None,
    ) -> TestResult:
        """The predicate of an evaluation: FAILED when any threshold fails, else PASSED."""
        results = [t.evaluate(metrics) for t in thresholds]
        passed = [r.name for r in results if r.passed]
        failed = [r.name for r in results if not r.passed]
        return cls(
            result="FAILED" if failed else "PASSED",
            configuration=configuration or None,
            url=url,
            passedTests=passed,
            failedTests=failed,
            step=step,
            metrics=dict(metrics),
            thresholds=results or None,
        )
