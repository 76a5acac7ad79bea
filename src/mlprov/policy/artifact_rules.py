"""in-toto artifact rules, with in-toto's exact semantics.

A step's materials (or products) go into a queue; rules run in order, each consuming
the artifacts it authorises; DISALLOW fails on whatever is still queued and REQUIRE
fails when its file is not queued. Parsing is in-toto's own (`in_toto.rulelib`);
patterns are fnmatch globs (`*` also matches `/`), as in `in_toto.verifylib`.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from mlprov.errors import InputError
from mlprov.policy.attestations import Artifacts, same_digest
from mlprov.policy.results import RuleResult

ArtifactKind = Literal["materials", "products"]
#: (step, materials|products) -> the artifacts each *counted* claim of that step reports:
#: a claim that did not count towards the step's threshold is never seen by another step.
DestinationLookup = Callable[[str, ArtifactKind], list[Artifacts]]


@dataclass
class ArtifactQueue:
    """The artifacts of one claim that rules have not yet consumed."""

    kind: ArtifactKind
    materials: Artifacts
    products: Artifacts
    where: str
    queue: set[str] = field(default_factory=set)
    #: why a MATCH rule did not consume an artifact, for the DISALLOW message later.
    unmatched: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.queue = set(self.artifacts)

    @property
    def artifacts(self) -> Artifacts:
        return self.materials if self.kind == "materials" else self.products

    def matching(self, pattern: str) -> set[str]:
        return set(fnmatch.filter(sorted(self.queue), pattern))


class ArtifactRule(Protocol):
    """One rule of `expectedMaterials` / `expectedProducts`."""

    @property
    def text(self) -> str:
        """The rule as written in the layout."""
        ...

    def evaluate(self, queue: ArtifactQueue, *, destinations: DestinationLookup) -> RuleResult:
        """Apply the rule, consuming from `queue`; say what it did."""
        ...


def _digest_text(digest: dict[str, str]) -> str:
    return ", ".join(f"{k}:{v}" for k, v in sorted(digest.items())) or "(none)"


#: Names listed in a passing rule's reason before the rest are only counted.
SHOWN_NAMES = 12


def _names(items: set[str], *, limit: int | None = SHOWN_NAMES) -> str:
    """Sorted names; a passing rule lists the first `limit`, a failure (limit=None) all."""
    if not items:
        return "nothing"
    names = sorted(items)
    if limit is None or len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


@dataclass(frozen=True)
class ConsumingRule:
    """CREATE, DELETE, MODIFY and ALLOW: consume matching artifacts; never fail."""

    text: str
    verb: Literal["create", "delete", "modify", "allow"]
    pattern: str

    def evaluate(self, queue: ArtifactQueue, *, destinations: DestinationLookup) -> RuleResult:
        candidates = queue.matching(self.pattern)
        materials, products = queue.materials, queue.products
        if self.verb == "create":
            consumed = candidates & (products.keys() - materials.keys())
        elif self.verb == "delete":
            consumed = candidates & (materials.keys() - products.keys())
        elif self.verb == "modify":
            consumed = {
                p
                for p in candidates & materials.keys() & products.keys()
                if materials[p] != products[p]
            }
        else:
            consumed = candidates
        queue.queue -= consumed
        return RuleResult(True, f"consumed {_names(consumed)}", queue.where, self.text)


@dataclass(frozen=True)
class DisallowRule:
    """DISALLOW: fail if any artifact still queued matches."""

    text: str
    pattern: str

    def evaluate(self, queue: ArtifactQueue, *, destinations: DestinationLookup) -> RuleResult:
        hit = queue.matching(self.pattern)
        if hit:
            what = queue.kind[:-1]
            notes = "; ".join(
                f"{n}: {queue.unmatched[n]}" for n in sorted(hit & queue.unmatched.keys())
            )
            return RuleResult(
                False,
                f"{what} {_names(hit, limit=None)} not allowed by any earlier rule"
                + (f" ({notes})" if notes else ""),
                queue.where,
                self.text,
            )
        return RuleResult(True, "nothing left that it disallows", queue.where, self.text)


@dataclass(frozen=True)
class RequireRule:
    """REQUIRE: fail unless the named artifact (a literal name) is still queued."""

    text: str
    name: str

    def evaluate(self, queue: ArtifactQueue, *, destinations: DestinationLookup) -> RuleResult:
        if self.name in queue.queue:
            return RuleResult(True, f"{self.name} present", queue.where, self.text)
        return RuleResult(
            False, f"required {queue.kind[:-1]} {self.name} not found", queue.where, self.text
        )


@dataclass(frozen=True)
class MatchRule:
    """MATCH: consume artifacts whose digests equal those another step reports."""

    text: str
    pattern: str
    source_prefix: str
    dest_prefix: str
    dest_kind: ArtifactKind
    dest_step: str

    def evaluate(self, queue: ArtifactQueue, *, destinations: DestinationLookup) -> RuleResult:
        reports = destinations(self.dest_step, self.dest_kind)
        if self.source_prefix:
            prefix = posixpath.join(self.source_prefix, "")
            relative = {p[len(prefix) :]: p for p in queue.queue if p.startswith(prefix)}
        else:
            relative = {p: p for p in queue.queue}
        consumed: set[str] = set()
        unmatched: set[str] = set()
        for rel in fnmatch.filter(sorted(relative), self.pattern):
            full = relative[rel]
            dest = posixpath.join(self.dest_prefix, rel) if self.dest_prefix else rel
            digest = queue.artifacts[full]
            if any(dest in r and r[dest] == digest for r in reports):
                consumed.add(full)
            else:
                unmatched.add(full)
                queue.unmatched[full] = (
                    f"{self.text!r} found no {self.dest_kind[:-1]} {dest} of step"
                    f" {self.dest_step} with digest {_digest_text(digest)}"
                    + ("" if reports else f": no counted claims of step {self.dest_step}")
                )
        queue.queue -= consumed
        reason = f"consumed {_names(consumed)}"
        if unmatched:
            reason += (
                f"; no {self.dest_kind[:-1]} of step {self.dest_step} with the same digest"
                f" for {_names(unmatched, limit=None)}"
            )
            if not reports:
                reason += f" (no counted claims of step {self.dest_step})"
        return RuleResult(True, reason, queue.where, self.text)


@dataclass(frozen=True)
class DigestDisallowRule:
    """`DISALLOW <pattern> WITH products|materials [IN <prefix>] FROM <step>` (mlprov's own).

    Fails when an artifact still queued that matches `pattern` has, whatever it is
    called, the digest of an artifact that step's counted claims report (under `prefix`).
    After `MATCH train WITH products FROM dataset` has consumed the training split,
    `DISALLOW * WITH products FROM dataset` refuses the test split under any name.
    """

    text: str
    pattern: str
    dest_prefix: str
    dest_kind: ArtifactKind
    dest_step: str

    def evaluate(self, queue: ArtifactQueue, *, destinations: DestinationLookup) -> RuleResult:
        prefix = posixpath.join(self.dest_prefix, "") if self.dest_prefix else ""
        theirs = [
            (name, digest)
            for report in destinations(self.dest_step, self.dest_kind)
            for name, digest in report.items()
            if name.startswith(prefix)
        ]
        hits: list[str] = []
        for name in sorted(queue.matching(self.pattern)):
            mine = queue.artifacts[name]
            for other, digest in theirs:
                if same_digest(mine, digest):
                    hits.append(f"{name} has the digest of {self.dest_kind[:-1]} {other}")
                    break
        if hits:
            return RuleResult(
                False,
                f"{queue.kind[:-1]} {'; '.join(hits)} of step {self.dest_step}",
                queue.where,
                self.text,
            )
        return RuleResult(
            True, f"no {queue.kind[:-1]} has a digest of step {self.dest_step}", queue.where,
            self.text,
        )  # fmt: skip


def depends_on(rule: ArtifactRule) -> str | None:
    """The step whose counted claims a rule reads (MATCH and DISALLOW ... FROM), if any."""
    if isinstance(rule, MatchRule | DigestDisallowRule):
        return rule.dest_step
    return None


def _digest_disallow(text: str) -> DigestDisallowRule | None:
    """Parse mlprov's `DISALLOW pattern WITH kind [IN prefix] FROM step`, else None."""
    words = text.split()
    if len(words) < 5 or words[0].upper() != "DISALLOW" or words[2].upper() != "WITH":
        return None
    pattern, kind, rest = words[1], words[3].lower(), words[4:]
    prefix = ""
    if len(rest) == 4 and rest[0].upper() == "IN" and rest[2].upper() == "FROM":
        prefix, rest = rest[1], rest[2:]
    if kind not in ("materials", "products") or len(rest) != 2 or rest[0].upper() != "FROM":
        raise InputError(
            f"bad artifact rule {text!r}: expected DISALLOW <pattern> WITH materials|products"
            " [IN <prefix>] FROM <step>"
        )
    return DigestDisallowRule(
        text=text,
        pattern=pattern,
        dest_prefix=prefix,
        dest_kind="materials" if kind == "materials" else "products",
        dest_step=rest[1],
    )


def parse_artifact_rule(text: str) -> ArtifactRule:
    """Parse one rule string with in-toto's parser; raise InputError for a bad rule."""
    import securesystemslib.exceptions
    from in_toto.rulelib import unpack_rule

    extension = _digest_disallow(text)
    if extension is not None:
        return extension
    try:
        data = unpack_rule(text.split())
    except securesystemslib.exceptions.FormatError as exc:
        first = str(exc).splitlines()[0].rstrip(":,")
        raise InputError(f"bad artifact rule {text!r}: {first}") from None
    verb = data["rule_type"]
    if verb == "match":
        return MatchRule(
            text=text,
            pattern=data["pattern"],
            source_prefix=data["source_prefix"],
            dest_prefix=data["dest_prefix"],
            dest_kind=data["dest_type"],
            dest_step=data["dest_name"],
        )
    if verb == "disallow":
        return DisallowRule(text=text, pattern=data["pattern"])
    if verb == "require":
        return RequireRule(text=text, name=data["pattern"])
    if verb in ("create", "delete", "modify", "allow"):
        return ConsumingRule(text=text, verb=verb, pattern=data["pattern"])
    raise InputError(f"bad artifact rule {text!r}: unknown verb {verb!r}")  # pragma: no cover
