"""CEL attribute rules over a Statement: compiled when the layout loads, run per claim.

The expression sees `subject` (list of ResourceDescriptors), `predicateType` and
`predicate`, converted from the signed JSON with their JSON types kept (an int stays
an int: compare `predicate.epochs == 3`, or a float metric with `>= 0.9`). A claim
that is absent (a missing field) fails unless `allowIfNoClaim`; a `warn` rule that does
not hold is reported but does not fail.

Every rule has a budget, so a layout cannot hang or crash a release check: when it
compiles, its syntax tree may be at most `MAX_CEL_DEPTH` deep (cel-python evaluates by
recursion) and its estimated cost (`estimate_cost`) at most `MAX_CEL_COST`; each
evaluation may run at most `CEL_TIME_LIMIT` seconds. `policy lint` compiles exactly as
`policy check` does, so it refuses the same rules.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel
from celpy.celparser import CELParseError
from celpy.evaluation import Activation, CELEvalError, Evaluator

from mlprov.errors import InputError
from mlprov.policy.layout import AttributeRuleSpec
from mlprov.policy.results import RuleResult

#: Deepest CEL syntax tree compiled (about 30 nested parentheses or 300 `&&` terms);
#: cel-python needs about five stack frames per level when it evaluates.
MAX_CEL_DEPTH = 300
#: Largest estimated cost of one rule, in syntax-tree nodes evaluated (about 6 µs each).
MAX_CEL_COST = 250_000
#: Size assumed for a list or map that comes from the claim, when estimating a macro.
UNKNOWN_SIZE = 10
#: Longest one rule may run on one claim, in seconds.
CEL_TIME_LIMIT = 5.0
#: Macros that evaluate their expression once per element of their target.
_COMPREHENSIONS = {"all", "exists", "exists_one", "map", "filter", "reduce"}
#: Arguments each macro takes, and how many of them are variables (as cel-python reads them).
_MACRO_ARITY = {
    "all": (2, 1),
    "exists": (2, 1),
    "exists_one": (2, 1),
    "map": (2, 1),
    "filter": (2, 1),
    "reduce": (4, 2),
    "min": (0, 0),
}
# cel-python logs (then re-raises) unexpected errors itself; mlprov reports them as one line.
logging.getLogger("celpy").addHandler(logging.NullHandler())
logging.getLogger("celpy").propagate = False


class _OverTime(BaseException):
    """Raised inside cel-python when a rule runs past its deadline.

    A BaseException, so that cel-python's own `except Exception` handlers (which log
    and re-raise) let it through untouched.
    """


def _bound_error(error: CELEvalError) -> None:
    """Cut an error's details to a fixed size, as soon as it is produced.

    cel-python builds some messages from the repr of their operands, errors included, and
    each repr escapes the one inside it again: nested failures double their text per level
    (30 failing `||` terms, as a claim missing their fields gives, would need gigabytes).
    """
    args = error.args
    if len(args) <= 2 and not (args and isinstance(args[0], str) and len(args[0]) > 300):
        return
    head = args[0][:300] if isinstance(args[0], str) else args[0]
    detail = (
        tuple(a[:100] if isinstance(a, str) else type(a).__name__ for a in args[2][:3])
        if len(args) > 2 and isinstance(args[2], tuple)
        else ()
    )
    error.args = (head, *args[1:2], detail)
    error.__cause__ = None


class _BudgetedEvaluator(Evaluator):
    """cel-python's tree interpreter, checking a deadline at every node it visits."""

    deadline = 0.0

    def _visit_tree(self, tree: lark.Tree) -> Any:  # type: ignore[type-arg]
        if time.monotonic() > self.deadline:
            raise _OverTime
        result = super()._visit_tree(tree)
        if isinstance(result, CELEvalError):
            _bound_error(result)
        return result

    def conditionalor(self, tree: lark.Tree) -> Any:  # type: ignore[type-arg]
        return self._logical(tree, "_||_")

    def conditionaland(self, tree: lark.Tree) -> Any:  # type: ignore[type-arg]
        return self._logical(tree, "_&&_")

    def _logical(self, tree: lark.Tree, operator: str) -> Any:  # type: ignore[type-arg]
        """`||` and `&&` as cel-python has them, but `error op error` is the left error.

        cel-python describes that case with the repr of both operands, each holding a
        dump of its syntax tree: quadratic in the length of a chain of failing terms.
        """
        if len(tree.children) != 2:
            return (
                super().conditionalor(tree) if operator == "_||_" else super().conditionaland(tree)
            )
        left, right = self.visit_children(tree)
        if isinstance(left, CELEvalError) and isinstance(right, CELEvalError):
            return left
        try:
            return self.activation.resolve_function(operator)(left, right)
        except TypeError as exc:
            message = (
                f"found no matching overload for {operator} applied to"
                f" '({type(left)}, {type(right)})'"
            )
            return CELEvalError(message, exc.__class__, exc.args, tree=tree)

    def sub_evaluator(self, ast: lark.Tree) -> Evaluator:  # type: ignore[type-arg]
        nested = _BudgetedEvaluator(ast, activation=self.activation)
        nested.deadline = self.deadline
        return nested


@dataclass(frozen=True)
class CelProgram:
    """A compiled, budget-checked CEL expression."""

    ast: lark.Tree  # type: ignore[type-arg]
    cost: int

    def evaluate(self, context: dict[str, Any], *, time_limit: float) -> Any:
        """The expression's value; `_OverTime` once it runs past `time_limit` seconds."""
        return _evaluate_node(self.ast, context, deadline=time.monotonic() + time_limit)

    def explain(self, expression: str, context: dict[str, Any], *, time_limit: float) -> list[str]:
        """Why a rule that gave false does not hold: the values its comparison's operands
        had (`0.71 < 0.8` for `double(predicate.m.accuracy) >= double(0.8)`), or for each
        failing `&&` term that is a comparison, the term and its values.

        The operands are evaluated by the same budgeted evaluator, within `time_limit`
        seconds in all; past it, what was found so far is returned.
        """
        found: list[str] = []
        with contextlib.suppress(_OverTime):
            _explain(self.ast, expression, context, time.monotonic() + time_limit, found)
        return found


#: Syntax-tree nodes that only wrap one child (a term without its operator).
_WRAPPERS = {
    "expr",
    "conditionalor",
    "conditionaland",
    "relation",
    "addition",
    "multiplication",
    "unary",
    "member",
    "primary",
    "paren_expr",
}
#: Each comparison, as the operator that held instead of it.
_NEGATED = {
    "relation_lt": ">=",
    "relation_le": ">",
    "relation_gt": "<=",
    "relation_ge": "<",
    "relation_eq": "!=",
    "relation_ne": "==",
    "relation_in": "not in",
}
#: Failing terms of one rule explained, and the length of each value shown.
_MAX_EXPLAINED = 5
_MAX_VALUE_TEXT = 80


def _evaluate_node(node: lark.Tree, context: dict[str, Any], *, deadline: float) -> Any:  # type: ignore[type-arg]
    evaluator = _BudgetedEvaluator(node, activation=_new_activation())
    evaluator.deadline = deadline
    return evaluator.evaluate(context)


def _explain(
    node: lark.Tree,  # type: ignore[type-arg]
    expression: str,
    context: dict[str, Any],
    deadline: float,
    found: list[str],
) -> None:
    while (
        node.data in _WRAPPERS
        and len(node.children) == 1
        and isinstance(node.children[0], lark.Tree)
    ):
        node = node.children[0]
    parts = _children(node)
    if node.data == "conditionaland" and len(parts) == 2:
        for term in parts:
            if len(found) >= _MAX_EXPLAINED:
                return
            value = _evaluate_node(term, context, deadline=deadline)
            if isinstance(value, celtypes.BoolType) and not bool(value):
                _explain(term, expression, context, deadline, found)
        return
    if node.data != "relation" or len(parts) != 2 or parts[0].data not in _NEGATED:
        return
    comparison, right = parts
    left = _evaluate_node(_children(comparison)[0], context, deadline=deadline)
    value = _evaluate_node(right, context, deadline=deadline)
    meta = node.meta
    text = " ".join(expression[meta.start_pos : meta.end_pos].split()) if not meta.empty else ""
    values = f"{_shown(left)} {_NEGATED[comparison.data]} {_shown(value)}"
    # The whole rule is printed before its reason already: then the values alone.
    whole = not text or text == " ".join(expression.split())
    found.append(values if whole else f"{text}: {values}")


def _shown(value: Any) -> str:
    """A CEL value as a rule would write it, cut to a bounded length."""
    if isinstance(value, CELEvalError):
        text = f"<{value.args[0] if value.args else 'error'}>"
    elif isinstance(value, celtypes.BoolType):
        text = "true" if value else "false"
    elif isinstance(value, celtypes.StringType):
        text = json.dumps(str(value))
    elif isinstance(value, celtypes.DoubleType):
        text = repr(float(value))
    elif isinstance(value, (celtypes.IntType, celtypes.UintType)):
        text = str(int(value))
    else:
        try:
            text = json.dumps(value, default=str, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            text = type(value).__name__
    text = " ".join(text.split())
    return text if len(text) <= _MAX_VALUE_TEXT else text[: _MAX_VALUE_TEXT - 3] + "..."


@functools.cache
def _environment() -> Any:
    """The CEL environment, built once and only when a layout has attribute rules
    (cel-python builds its grammar's parser tables then: a quarter of a second)."""
    return celpy.Environment()


def _new_activation() -> Activation:
    """The variables and functions every rule starts from (as celpy's Runner builds them)."""
    env = _environment()
    return Activation(package=env.package, annotations=env.annotations, functions=None)


def _children(node: lark.Tree) -> list[lark.Tree]:  # type: ignore[type-arg]
    return [c for c in node.children if isinstance(c, lark.Tree)]


def _depth(ast: lark.Tree) -> int:  # type: ignore[type-arg]
    deepest, stack = 0, [(ast, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in _children(node))
    return deepest


def _literal_size(node: lark.Tree) -> int:  # type: ignore[type-arg]
    """Elements of a list or map literal written in the rule, else `UNKNOWN_SIZE`."""
    while node.data in _WRAPPERS:
        inner = _children(node)
        if len(inner) != 1 or len(node.children) != 1:
            break
        node = inner[0]
    if node.data in ("list_lit", "map_lit"):
        items = _children(node)
        if not items:
            return 0
        return len(_children(items[0]))
    return UNKNOWN_SIZE


def estimate_cost(ast: lark.Tree) -> int:  # type: ignore[type-arg]
    """Syntax-tree nodes an evaluation visits, a comprehension's body once per element.

    A comprehension over a list written in the rule counts its elements; over a list
    from the claim, `UNKNOWN_SIZE`; nested comprehensions multiply. Call only on a tree
    no deeper than `MAX_CEL_DEPTH` (it recurses).
    """
    children = _children(ast)
    if ast.data == "member_dot_arg" and len(ast.children) >= 2:
        name = ast.children[1]
        if isinstance(name, lark.Token) and name.value in _COMPREHENSIONS and children:
            target, *arguments = children
            body = sum(estimate_cost(a) for a in arguments)
            return 1 + estimate_cost(target) + max(1, _literal_size(target)) * body
    return 1 + sum(estimate_cost(child) for child in children)


def compile_cel(expression: str, *, where: str) -> CelProgram:
    """A runnable, budget-checked CEL program; any problem is an InputError naming the rule."""
    try:
        ast = _environment().compile(expression)
    except CELParseError as exc:
        detail = " ".join(str(exc).split())
        raise InputError(f"{where}: CEL syntax error in {expression!r}: {detail}") from None
    except RecursionError:
        raise InputError(f"{where}: CEL rule {expression!r} is nested too deeply") from None
    _check_macros(ast, expression, where)
    depth = _depth(ast)
    if depth > MAX_CEL_DEPTH:
        raise InputError(
            f"{where}: CEL rule {_short(expression)} is nested too deeply (syntax tree"
            f" {depth} levels deep, at most {MAX_CEL_DEPTH}: fewer parentheses or terms)"
        )
    cost = estimate_cost(ast)
    if cost > MAX_CEL_COST:
        raise InputError(
            f"{where}: CEL rule {_short(expression)} is too costly (estimated {cost}"
            f" evaluation steps, at most {MAX_CEL_COST}: nested comprehensions multiply)"
        )
    return CelProgram(ast=ast, cost=cost)


def _check_macros(ast: lark.Tree, expression: str, where: str) -> None:  # type: ignore[type-arg]
    """Each macro call has the arguments it needs (cel-python fails at run time otherwise)."""
    for node in ast.iter_subtrees():
        if node.data != "member_dot_arg" or len(node.children) < 2:
            continue
        name = node.children[1]
        if not isinstance(name, lark.Token) or name.value not in _MACRO_ARITY:
            continue
        count, variables = _MACRO_ARITY[name.value]
        arguments = _children(node)[1:]
        given = _children(arguments[0]) if arguments else []
        simple = all(len(list(v.find_data("ident"))) == 1 for v in given[:variables])
        if len(given) != count or not simple:
            shape = {0: "no arguments", 2: "a variable and an expression"}.get(
                count, "two variables and two expressions"
            )
            raise InputError(
                f"{where}: CEL rule {_short(expression)}: {name.value}() takes {shape}"
            )


def _short(expression: str) -> str:
    """The rule for a message: a long one shortened, never spanning lines."""
    text = " ".join(expression.split())
    return repr(text if len(text) <= 120 else text[:117] + "...")


def activation(statement: dict[str, Any]) -> dict[str, Any]:
    """The variables a rule sees, as CEL values (JSON types preserved)."""

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
    program: CelProgram
    #: where the rule is written (`layout.yaml: step train`), for budget errors
    origin: str = ""

    @classmethod
    def compile(cls, spec: AttributeRuleSpec, *, where: str) -> AttributeRule:
        return cls(spec=spec, program=compile_cel(spec.rule, where=where), origin=where)

    def evaluate(self, statement: dict[str, Any], *, where: str) -> RuleResult:
        """The rule over one claim; InputError (exit 2) when it runs past its time limit."""
        rule = self.spec.rule
        try:
            value = self.program.evaluate(activation(statement), time_limit=CEL_TIME_LIMIT)
        except _OverTime:
            raise InputError(
                f"{self.origin or 'layout'}: CEL rule {_short(rule)} ran past its time limit"
                f" of {CEL_TIME_LIMIT:g} s on {where}"
            ) from None
        except RecursionError:
            return self._failed("cannot evaluate: the claim is nested too deeply", where)
        except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as exc:
            # cel-python raises these for some expressions and values it cannot handle.
            return self._failed(f"cannot evaluate ({type(exc).__name__}: {exc})", where)
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
        why = self.program.explain(rule, activation(statement), time_limit=CEL_TIME_LIMIT)
        return self._failed("; ".join(why) if why else "does not hold", where)

    def _failed(self, reason: str, where: str) -> RuleResult:
        if self.spec.debug:
            reason += f" ({self.spec.debug})"
        if self.spec.warn:
            return RuleResult(True, reason, where, self.spec.rule, warning=True)
        return RuleResult(False, reason, where, self.spec.rule)
