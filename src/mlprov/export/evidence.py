"""What an AI-BOM or audit report may say about a model: its verified lineage, from the store.

The walk starts at the model and follows, level by level, only attestations that verify
— with the caller's verifier (`--key`, identities), or else the verification the store
recorded when they were added. An attestation that does not verify is listed in
`Evidence.unverified` with the reason and contributes nothing: none of its subjects,
materials, metrics or licenses reach a BOM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlprov.errors import InputError, VerificationError
from mlprov.predicates import (
    LINK_V03,
    OMS_V1,
    SLSA_PROVENANCE_V1,
    TEST_RESULT_V01,
    VSA_V1,
    materials_of,
    step_of,
    test_result_field,
)
from mlprov.statement import ResourceDescriptor, Statement
from mlprov.store.ingest import AttestationVerifier
from mlprov.store.record import digest_keys
from mlprov.store.store import Store

#: Attestations one walk reads at most: a bound on memory for a hostile or huge store.
MAX_ATTESTATIONS = 5000
#: Edges (input, output, attestation) a lineage may have: one attestation of S subjects
#: and M materials makes S x M of them (1,000 x 1,000 from 400 KB).
MAX_EDGES = 1_000_000
#: How deep annotations are searched for model facts (pickle files, task, architecture).
MAX_FACT_DEPTH = 8

#: Roles an artifact can play, most specific first (an artifact seen in two roles keeps
#: the earlier one).
ROLES = (
    "model",
    "base-model",
    "dataset",
    "container",
    "source",
    "package",
    "config",
    "material",
)
#: Descriptor roles that are records of a run, not inputs of the model.
_NOT_INPUTS = {"metrics", "manifest", "log"}
_MODEL_BUILDS = ("training", "fine-tuning", "conversion")
_CONTAINER_URI = re.compile(r"^(pkg:(oci|docker)/|oci://|docker://)")
_PARAMETER_SKIP = {"step", "source", "command", "entryPoint", "configFile"}


@dataclass
class AttestationFact:
    """One attestation of the walk: what it is, who signed it, and whether that verified."""

    digest: str
    predicate_type: str
    step: str | None
    build_type: str | None
    added_at: str
    source: str | None
    verified: bool
    signers: tuple[str, ...]
    claimed: tuple[str, ...] = ()
    reason: str = ""
    statement: Statement | None = None

    @property
    def kind(self) -> str:
        """provenance, evaluation, vsa, model-signature, link, or the predicate type."""
        return {
            SLSA_PROVENANCE_V1: "provenance",
            TEST_RESULT_V01: "evaluation",
            VSA_V1: "vsa",
            OMS_V1: "model-signature",
            LINK_V03: "link",
            "https://cyclonedx.org/bom": "ai-bom",
            "https://spdx.dev/Document": "ai-bom",
        }.get(self.predicate_type, self.predicate_type)

    @property
    def predicate(self) -> dict[str, Any]:
        return dict(self.statement.predicate or {}) if self.statement else {}

    @property
    def build_definition(self) -> dict[str, Any]:
        found = self.predicate.get("buildDefinition")
        return found if isinstance(found, dict) else {}

    @property
    def run_metadata(self) -> dict[str, Any]:
        found = _get(self.predicate, "runDetails", "metadata")
        return found if isinstance(found, dict) else {}

    @property
    def time(self) -> str:
        """When the step ran or the verdict was given, else when the store received it."""
        predicate = self.predicate
        metadata = _get(predicate, "runDetails", "metadata")
        for value in (
            metadata.get("finishedOn") if isinstance(metadata, dict) else None,
            metadata.get("startedOn") if isinstance(metadata, dict) else None,
            predicate.get("timeVerified"),
        ):
            if isinstance(value, str) and value:
                return value
        return self.added_at

    @property
    def label(self) -> str:
        """The step name, else the kind."""
        return self.step or self.kind


@dataclass
class ArtifactFact:
    """An artifact the verified lineage names: digests, names, role, license, annotations."""

    key: str
    digests: dict[str, str] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    uri: str | None = None
    role: str = "material"
    annotations: dict[str, Any] = field(default_factory=dict)
    licenses: list[str] = field(default_factory=list)
    produced_by: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.names[0] if self.names else (self.uri or self.key)

    @property
    def digest(self) -> str | None:
        """The identity digest (`sha256:<hex>`), or None for a reference such as a purl."""
        return self.key if ":" in self.key and not self.key.startswith(("pkg:", "name:")) else None

    @property
    def license(self) -> str | None:
        """The recorded license; several different ones recorded are all required (AND)."""
        if not self.licenses:
            return None
        if len(self.licenses) == 1:
            return self.licenses[0]
        return " AND ".join(f"({item})" for item in self.licenses)


@dataclass(frozen=True)
class Edge:
    """`material` went into the step of `attestation`, which produced `product`."""

    material: str
    product: str
    attestation: str


@dataclass
class Evaluation:
    """A verified evaluation of a model: metrics, thresholds and the data it was tested on."""

    attestation: str
    model: str
    step: str | None
    result: str | None
    metrics: dict[str, Any]
    thresholds: list[dict[str, Any]]
    datasets: list[str]
    url: str | None = None


@dataclass
class Verdict:
    """A verified SLSA VSA about a model: the release gate's decision."""

    attestation: str
    result: str
    verifier: str
    time: str
    policy_uri: str | None
    policy_digest: dict[str, str]
    levels: list[str]
    inputs: int


@dataclass
class Evidence:
    """Everything verified about one model, and what was left out because it did not verify."""

    root: str
    store: str
    verified_by: str
    artifacts: dict[str, ArtifactFact] = field(default_factory=dict)
    attestations: list[AttestationFact] = field(default_factory=list)
    unverified: list[AttestationFact] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    #: `edges` by product, and `attestations` by digest: lookups that lists made quadratic.
    _into: dict[str, dict[Edge, None]] = field(default_factory=dict, repr=False)
    _facts: dict[str, AttestationFact] = field(default_factory=dict, repr=False)

    def add_edge(self, edge: Edge) -> None:
        """Record an edge once; past MAX_EDGES, refuse the lineage."""
        into = self._into.setdefault(edge.product, {})
        if edge in into:
            return
        if len(self.edges) >= MAX_EDGES:
            raise InputError(f"the lineage of {self.root} has more than {MAX_EDGES} edges")
        into[edge] = None
        self.edges.append(edge)

    @property
    def model(self) -> ArtifactFact:
        return self.artifacts[self.root]

    def attestation(self, digest: str) -> AttestationFact:
        if len(self._facts) != len(self.attestations):  # appended to since last asked
            self._facts = {fact.digest: fact for fact in self.attestations}
        return self._facts[digest]

    def by_role(self, *roles: str) -> list[ArtifactFact]:
        return [a for a in self.artifacts.values() if a.role in roles and a.key != self.root]

    def datasets(self) -> list[ArtifactFact]:
        return self.by_role("dataset")

    def models(self) -> list[ArtifactFact]:
        """The model and every model in its lineage (base models, models converted from)."""
        return [a for a in self.artifacts.values() if a.role in ("model", "base-model")]

    def provenance_of(self, key: str) -> list[AttestationFact]:
        """Verified provenance (SLSA or link) whose subject is the artifact."""
        artifact = self.artifacts.get(key)
        if artifact is None:
            return []
        return [
            self.attestation(d)
            for d in artifact.produced_by
            if self.attestation(d).kind in ("provenance", "link")
        ]

    def step_io(self, attestation: str) -> tuple[list[str], list[str]]:
        """(inputs, outputs) of one verified step, as artifact keys."""
        outputs = [k for k, a in self.artifacts.items() if attestation in a.produced_by]
        inputs: list[str] = []
        for key in outputs:
            for item in self.inputs_of(key, attestation):
                if item.key not in inputs:
                    inputs.append(item.key)
        return inputs, outputs

    def inputs_of(self, key: str, attestation: str | None = None) -> list[ArtifactFact]:
        """What went into the artifact (optionally: in one attestation's step)."""
        seen: dict[str, None] = {}
        for edge in self._into.get(key, {}):
            if attestation is None or edge.attestation == attestation:
                seen[edge.material] = None
        return [self.artifacts[k] for k in seen]

    def latest_verdict(self) -> Verdict | None:
        """The most recent verified VSA about the model."""
        return max(self.verdicts, key=lambda v: v.time) if self.verdicts else None

    def hyperparameters(self, key: str | None = None) -> dict[str, Any]:
        """The user's choices in the provenance of the model: config, then overrides."""
        found: dict[str, Any] = {}
        for fact in self.provenance_of(key or self.root):
            external = _get(fact.predicate, "buildDefinition", "externalParameters")
            if not isinstance(external, dict):
                continue
            config = external.get("config")
            if isinstance(config, dict):
                found.update(flatten(config))
            parameters = external.get("parameters")
            if isinstance(parameters, dict):
                found.update(flatten(parameters))
            for name, value in external.items():
                if name not in _PARAMETER_SKIP | {"config", "parameters"}:
                    found.update(flatten({name: value}))
        return found

    def model_fact(self, *names: str, key: str | None = None) -> str | None:
        """A fact recorded about the model (`task`, `architecture`, ...): in its annotations,
        else in the configuration of its provenance."""
        target = key or self.root
        artifact = self.artifacts.get(target)
        sources: list[Mapping[str, Any]] = [artifact.annotations] if artifact else []
        for fact in self.provenance_of(target):
            external = _get(fact.predicate, "buildDefinition", "externalParameters")
            if isinstance(external, dict):
                for part in ("parameters", "config"):
                    if isinstance(external.get(part), dict):
                        sources.append(external[part])
        for source in sources:
            found = find_value(source, names)
            if found is not None:
                return found
        return None


def _get(data: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def flatten(data: Mapping[str, Any], prefix: str = "", depth: int = 0) -> dict[str, Any]:
    """Nested mappings as dotted keys (`optimizer.lr`); lists and scalars kept as values."""
    out: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict) and depth < MAX_FACT_DEPTH:
            out.update(flatten(value, f"{key}.", depth + 1))
        else:
            out[key] = value
    return out


def find_value(data: Any, names: Iterable[str], depth: int = 0) -> str | None:
    """The first scalar value under any of `names` (case-insensitive), searched breadth-first."""
    wanted = {n.lower() for n in names}
    level: list[Any] = [data]
    while level and depth <= MAX_FACT_DEPTH:
        nested: list[Any] = []
        for item in level:
            if not isinstance(item, dict):
                continue
            for key, value in item.items():
                scalar = isinstance(value, str | int | float) and not isinstance(value, bool)
                if str(key).lower() in wanted and scalar:
                    return str(value)
                if isinstance(value, dict):
                    nested.append(value)
        level = nested
        depth += 1
    return None


def pickle_files(annotations: Mapping[str, Any]) -> list[str]:
    """Files the model facts mark as pickle-based (loading them can run code)."""
    found: list[str] = []

    def visit(item: Any, where: str, depth: int) -> None:
        if depth > MAX_FACT_DEPTH:
            return
        if isinstance(item, dict):
            kind = str(item.get("format") or item.get("type") or "").lower()
            if "pickle" in kind or item.get("pickle") is True:
                name = item.get("path") or item.get("name") or item.get("file") or where
                found.append(str(name))
            for key, value in item.items():
                visit(value, str(key), depth + 1)
        elif isinstance(item, list):
            for value in item:
                visit(value, where, depth + 1)

    visit(dict(annotations), "(model)", 0)
    return sorted(dict.fromkeys(found))


def _role(descriptor: ResourceDescriptor, *, subject: bool, fact: AttestationFact) -> str:
    notes = descriptor.annotations or {}
    declared = notes.get("role")
    if declared in ROLES or declared in _NOT_INPUTS:
        return str(declared)
    uri = descriptor.uri or ""
    if _CONTAINER_URI.match(uri):
        return "container"
    if uri.startswith("pkg:"):
        return "package"
    if "gitCommit" in (descriptor.digest or {}):
        return "source"
    if declared == "source":
        return "source"
    if subject:
        build = (fact.build_type or "").lower()
        if "dataset" in build:
            return "dataset"
        if any(kind in build for kind in _MODEL_BUILDS) or fact.kind in ("evaluation", "vsa"):
            return "model"
    return "material"


def _key(descriptor: ResourceDescriptor) -> str | None:
    keys = digest_keys(descriptor.digest)
    if keys:
        return keys[0]
    if descriptor.uri:
        return descriptor.uri
    if descriptor.name:
        return f"name:{descriptor.name}"
    return None


class EvidenceWalker:
    """Walks the store up from a model over the attestations that verify."""

    def __init__(self, store: Store, *, verifier: AttestationVerifier | None = None) -> None:
        self.store = store
        self.verifier = verifier
        self.facts: dict[str, AttestationFact] = {}

    def _load(self, digest: str) -> AttestationFact:
        stored = self.store.get(digest)
        if stored is None:  # removed between the listing and now
            raise InputError(f"attestation {digest} vanished from the store")
        claimed = tuple(s for s, ok in stored.signers if not ok)
        fact = AttestationFact(
            digest=stored.digest,
            predicate_type=stored.predicate_type,
            step=stored.step,
            build_type=stored.build_type,
            added_at=stored.added_at,
            source=stored.source,
            verified=False,
            signers=(),
            claimed=claimed,
        )
        try:
            signed = stored.signed()
            fact.statement = signed.envelope.statement(source=stored.digest)
        except InputError as exc:
            fact.reason = f"unreadable: {exc}"
            return fact
        except VerificationError as exc:
            fact.reason = str(exc)
            return fact
        if self.verifier is not None:
            try:
                evidence = self.verifier.verify(signed)
            except VerificationError as exc:
                fact.reason = str(exc).removeprefix(f"{stored.digest}: ")
                return fact
            fact.verified, fact.signers = True, evidence.signers
        elif stored.verified:
            fact.verified = True
            fact.signers = tuple(s for s, ok in stored.signers if ok)
        else:
            who = ", ".join(claimed) if claimed else "nobody"
            fact.reason = (
                f"stored unverified (added without --key/--identity; claims {who}):"
                " give --key or --identity to verify it now"
            )
        fact.step = fact.step or (step_of(fact.statement) if fact.statement else None)
        return fact

    def _about(self, key: str) -> Iterator[AttestationFact]:
        for stored in self.store.ls(subject=key):
            if stored.digest not in self.facts:
                if len(self.facts) >= MAX_ATTESTATIONS:
                    raise InputError(
                        f"the lineage of {key} crosses more than {MAX_ATTESTATIONS} attestations"
                    )
                self.facts[stored.digest] = self._load(stored.digest)
            yield self.facts[stored.digest]

    def walk(self, root: str) -> Evidence:
        evidence = Evidence(
            root=root,
            store=self.store.location,
            verified_by="the given keys/identities" if self.verifier else "the store's record",
        )
        evidence.artifacts[root] = ArtifactFact(root, role="model")
        used: set[str] = set()
        frontier, seen = [root], {root}
        while frontier:
            next_frontier: list[str] = []
            for key in frontier:
                for fact in self._about(key):
                    if not fact.verified:
                        if fact not in evidence.unverified:
                            evidence.unverified.append(fact)
                        continue
                    if fact.digest in used:
                        continue
                    used.add(fact.digest)
                    evidence.attestations.append(fact)
                    for found in self._take(evidence, fact):
                        if found not in seen:
                            seen.add(found)
                            next_frontier.append(found)
            frontier = next_frontier
        evidence.attestations.sort(key=lambda f: (f.time, f.digest))
        evidence.unverified.sort(key=lambda f: (f.added_at, f.digest))
        self._settle_roles(evidence)
        return evidence

    def _artifact(
        self, evidence: Evidence, descriptor: ResourceDescriptor, role: str
    ) -> ArtifactFact | None:
        key = _key(descriptor)
        if key is None:
            return None
        artifact = evidence.artifacts.setdefault(key, ArtifactFact(key, role=role))
        for item in digest_keys(descriptor.digest):
            algorithm, _, value = item.partition(":")
            artifact.digests.setdefault(algorithm, value)
        if descriptor.name and descriptor.name not in artifact.names:
            artifact.names.append(descriptor.name)
        artifact.uri = artifact.uri or descriptor.uri
        notes = {k: v for k, v in (descriptor.annotations or {}).items() if k != "role"}
        license_text = notes.pop("license", None)
        if isinstance(license_text, str):
            from mlprov.export.licenses import normalize_license

            normalized = normalize_license(
                license_text, what=f"license of {artifact.name} in the store"
            )
            if normalized not in artifact.licenses:
                artifact.licenses.append(normalized)
        for name, value in notes.items():
            artifact.annotations.setdefault(name, value)
        if role in ROLES and ROLES.index(role) < ROLES.index(artifact.role):
            artifact.role = role
        return artifact

    def _take(self, evidence: Evidence, fact: AttestationFact) -> list[str]:
        """Record what one verified attestation says; return artifacts to walk next."""
        statement = fact.statement
        assert statement is not None
        predicate = fact.predicate
        subjects: list[str] = []
        for descriptor in statement.subject:
            role = _role(descriptor, subject=True, fact=fact)
            artifact = self._artifact(evidence, descriptor, role if role in ROLES else "material")
            if artifact is not None:
                subjects.append(artifact.key)
                if fact.kind in ("provenance", "link") and fact.digest not in artifact.produced_by:
                    artifact.produced_by.append(fact.digest)
        follow: list[str] = []
        if fact.kind in ("provenance", "link", "evaluation"):
            inputs: list[str] = []
            for descriptor in materials_of(statement):
                role = _role(descriptor, subject=False, fact=fact)
                if role in _NOT_INPUTS:
                    continue
                artifact = self._artifact(evidence, descriptor, role)
                if artifact is None:
                    continue
                inputs.append(artifact.key)
                if artifact.digest:
                    follow.append(artifact.key)
            if fact.kind == "evaluation":
                metrics = test_result_field(predicate, "mlprov_metrics")
                checks = test_result_field(predicate, "mlprov_thresholds")
                # What an evaluation read is the data it was tested on, unless it says
                # otherwise (a config file, a container).
                datasets = [
                    k for k in inputs if evidence.artifacts[k].role in ("dataset", "material")
                ]
                for k in datasets:
                    evidence.artifacts[k].role = "dataset"
                for model in subjects:
                    evidence.evaluations.append(
                        Evaluation(
                            attestation=fact.digest,
                            model=model,
                            step=fact.step,
                            result=predicate.get("result"),
                            metrics=dict(metrics) if isinstance(metrics, dict) else {},
                            thresholds=[t for t in checks if isinstance(t, dict)]
                            if isinstance(checks, list)
                            else [],
                            datasets=datasets,
                            url=predicate.get("url"),
                        )
                    )
            else:
                for product in subjects:
                    for material in inputs:
                        evidence.add_edge(Edge(material, product, fact.digest))
        elif fact.kind == "vsa":
            policy = predicate.get("policy") or {}
            verifier = predicate.get("verifier") or {}
            evidence.verdicts.append(
                Verdict(
                    attestation=fact.digest,
                    result=str(predicate.get("verificationResult", "")),
                    verifier=str(verifier.get("id", "")) if isinstance(verifier, dict) else "",
                    time=str(predicate.get("timeVerified") or fact.added_at),
                    policy_uri=policy.get("uri") if isinstance(policy, dict) else None,
                    policy_digest=dict(policy.get("digest") or {})
                    if isinstance(policy, dict)
                    else {},
                    levels=[str(v) for v in predicate.get("verifiedLevels") or []],
                    inputs=len(predicate.get("inputAttestations") or []),
                )
            )
        return follow

    def _settle_roles(self, evidence: Evidence) -> None:
        """A model some verified step produced, used as another step's input, is a base model."""
        for edge in evidence.edges:
            material = evidence.artifacts[edge.material]
            if material.key == evidence.root:
                continue
            produced_model = any(
                evidence.attestation(d).kind == "provenance"
                and any(
                    kind in (evidence.attestation(d).build_type or "") for kind in _MODEL_BUILDS
                )
                for d in material.produced_by
            )
            if material.role == "model" or (material.role == "material" and produced_model):
                material.role = "base-model"
        evidence.artifacts[evidence.root].role = "model"


def gather_evidence(
    store: Store, root: str, *, verifier: AttestationVerifier | None = None
) -> Evidence:
    """The verified lineage of the model `root` (`sha256:<hex>`) in `store`.

    Raises VerificationError when no attestation about the model verifies (the message
    says how many were found and why the first failed), and InputError when the store
    names the model nowhere.
    """
    walker = EvidenceWalker(store, verifier=verifier)
    evidence = walker.walk(root)
    about_root = [f for f in walker.facts.values() if _names(f, root)]
    if not about_root:
        raise VerificationError(f"NOT FOUND: no attestation in {store.location} is about {root}")
    if not any(f.verified for f in about_root):
        first = about_root[0]
        raise VerificationError(
            f"none of the {len(about_root)} attestation(s) about {root} verifies"
            f" (first: {first.digest}: {first.reason})"
        )
    return evidence


def _names(fact: AttestationFact, key: str) -> bool:
    if fact.statement is None:
        return True
    return any(key in digest_keys(s.digest) for s in fact.statement.subject)
