"""The verified lineage of a model as a CycloneDX 1.6 ML-BOM (JSON).

Components, hashes, licenses, dependencies, properties and external references are
built with `cyclonedx-python-lib`'s model and serialised by its 1.6 JSON outputter.
That library does not model `modelCard` or `formulation` yet (its `Component.model_card`
and `Bom.formulation` are TODOs), so those two are added to the serialised document,
and the whole document is then validated by the library's strict JSON validator
against the 1.6 schema it bundles: a BOM that does not validate is never written.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from mlprov.errors import InputError
from mlprov.export.completeness import completeness
from mlprov.export.evidence import ArtifactFact, AttestationFact, Evidence, pickle_files

#: The predicate type of an in-toto Statement carrying a CycloneDX BOM.
PREDICATE_TYPE = "https://cyclonedx.org/bom"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPEC_VERSION = "1.6"
_HEX = re.compile(r"^[0-9a-fA-F]+\Z")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")
#: CycloneDX's name of each digest algorithm mlprov records, with its hex length.
_ALGORITHMS = {
    "sha256": ("SHA_256", 64),
    "sha384": ("SHA_384", 96),
    "sha512": ("SHA_512", 128),
    "sha1": ("SHA_1", 40),
    "sha3-256": ("SHA3_256", 64),
    "blake3": ("BLAKE3", 64),
}
#: Properties a recorded value may fill, longest first: a bound on a BOM's size.
MAX_VALUE = 2000


def attestation_uri(digest: str) -> str:
    """How a BOM names a stored attestation: a URN holding the digest of its exact bytes."""
    return f"urn:mlprov:attestation:{digest}"


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _hashes(artifact_digests: dict[str, str]) -> list[Any]:
    from cyclonedx.model import HashAlgorithm, HashType

    found = []
    for algorithm, value in sorted(artifact_digests.items()):
        known = _ALGORITHMS.get(algorithm)
        if known and len(value) == known[1] and _HEX.match(value):
            found.append(HashType(alg=getattr(HashAlgorithm, known[0]), content=value.lower()))
    return found


def _describe(fact: AttestationFact) -> str:
    who = ", ".join(fact.signers) or "no signer recorded"
    return f"{fact.kind} {fact.label}: signed by {who}; verified"


def _component(evidence: Evidence, artifact: ArtifactFact) -> Any:
    """A library component for one artifact, typed by its role."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, Property, XsUri
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import LicenseExpression

    kind = {
        "model": ComponentType.MACHINE_LEARNING_MODEL,
        "base-model": ComponentType.MACHINE_LEARNING_MODEL,
        "dataset": ComponentType.DATA,
        "container": ComponentType.CONTAINER,
        "source": ComponentType.APPLICATION,
        "package": ComponentType.LIBRARY,
    }.get(artifact.role, ComponentType.FILE)
    properties = [Property(name="mlprov:role", value=artifact.role)]
    if artifact.digest:
        properties.append(Property(name="mlprov:digest", value=artifact.digest))
    for name in artifact.names[1:]:
        properties.append(Property(name="mlprov:alsoNamed", value=_text(name)))
    for name, value in sorted(artifact.annotations.items()):
        properties.append(Property(name=f"mlprov:annotation:{name}", value=_text(value)))
    for made_by in artifact.produced_by:
        properties.append(Property(name="mlprov:producedBy", value=attestation_uri(made_by)))
    references = []
    purl = None
    version = None
    if artifact.uri and artifact.uri.startswith("pkg:"):
        from packageurl import PackageURL

        try:
            purl = PackageURL.from_string(artifact.uri)
            version = purl.version
        except ValueError:
            properties.append(Property(name="mlprov:uri", value=_text(artifact.uri)))
    elif artifact.uri:
        link = (
            ExternalReferenceType.VCS
            if artifact.role == "source"
            else ExternalReferenceType.DISTRIBUTION
        )
        from cyclonedx.exception import CycloneDxException

        try:
            references.append(ExternalReference(type=link, url=XsUri(artifact.uri)))
        except (ValueError, CycloneDxException):
            properties.append(Property(name="mlprov:uri", value=_text(artifact.uri)))
    if artifact.role == "source" and "gitCommit" in artifact.digests:
        version = artifact.digests["gitCommit"]
    if artifact.role in ("model", "base-model"):
        pickles = pickle_files(artifact.annotations)
        if pickles:
            properties.append(
                Property(
                    name="mlprov:warning",
                    value=_text(f"pickle-based files (loading them can run code): {pickles}"),
                )
            )
    licenses = [LicenseExpression(artifact.license)] if artifact.license else []
    name = artifact.name
    return Component(
        name=name,
        type=kind,
        bom_ref=artifact.key,
        version=version,
        purl=purl,
        hashes=_hashes(artifact.digests),
        licenses=licenses,
        properties=properties,
        external_references=references,
    )


def _model_card(evidence: Evidence, key: str, refs: dict[str, str]) -> dict[str, Any]:
    """The modelCard of a model: its data by reference, task, architecture, metrics."""
    parameters: dict[str, Any] = {}
    task = evidence.model_fact("task", "pipeline_tag", key=key)
    family = evidence.model_fact("architectureFamily", "architecture_family", "model_type", key=key)
    architecture = evidence.model_fact(
        "modelArchitecture", "architecture", "architectures", "typeOfModel", key=key
    )
    if task:
        parameters["task"] = task
    if family:
        parameters["architectureFamily"] = family
    if architecture:
        parameters["modelArchitecture"] = architecture
    datasets: list[str] = []
    for fact in evidence.provenance_of(key):
        for item in evidence.inputs_of(key, fact.digest):
            if item.role == "dataset" and item.key not in datasets:
                datasets.append(item.key)
    evaluations = [e for e in evidence.evaluations if e.model == key]
    for evaluation in evaluations:
        for tested in evaluation.datasets:
            if tested not in datasets:
                datasets.append(tested)
    if datasets:
        parameters["datasets"] = [{"ref": refs[d]} for d in datasets if d in refs]
    card: dict[str, Any] = {"bom-ref": f"model-card:{key}"}
    if parameters:
        card["modelParameters"] = parameters
    metrics = []
    properties = []
    for evaluation in evaluations:
        where = ", ".join(evidence.artifacts[d].name for d in evaluation.datasets)
        for name, value in sorted(evaluation.metrics.items()):
            entry = {"type": _text(name), "value": _text(value)}
            if where:
                entry["slice"] = _text(where)
            metrics.append(entry)
        for check in evaluation.thresholds:
            outcome = "passed" if check.get("passed") else "FAILED"
            properties.append(
                {
                    "name": "mlprov:threshold",
                    "value": _text(
                        f"{check.get('name')}: {outcome} (actual {check.get('actual')})"
                    ),
                }
            )
        properties.append(
            {
                "name": "mlprov:evaluation",
                "value": _text(f"{evaluation.result} {attestation_uri(evaluation.attestation)}"),
            }
        )
    if metrics:
        card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    pickles = pickle_files(evidence.artifacts[key].annotations)
    if pickles:
        card["considerations"] = {
            "technicalLimitations": [
                _text(f"pickle-based model files can run code when loaded: {', '.join(pickles)}")
            ]
        }
    if properties:
        card["properties"] = properties
    return card


def _workflow(evidence: Evidence, fact: AttestationFact, refs: dict[str, str]) -> dict[str, Any]:
    """One formulation workflow from a step's SLSA provenance (or link)."""
    definition, metadata = fact.build_definition, fact.run_metadata
    run = fact.predicate.get("runDetails") or {}
    inputs, outputs = evidence.step_io(fact.digest)
    workflow: dict[str, Any] = {
        "bom-ref": f"workflow:{fact.digest}",
        "uid": _text(metadata.get("invocationId") or fact.digest),
        "name": _text(fact.label),
        "taskTypes": ["build"],
    }
    if fact.build_type:
        workflow["description"] = _text(fact.build_type)
    entries: list[dict[str, Any]] = [{"resource": {"ref": refs[k]}} for k in inputs if k in refs]
    hyper = evidence.hyperparameters(outputs[0]) if outputs else {}
    if hyper:
        entries.append(
            {
                "parameters": [
                    {"name": _text(n), "value": _text(v), "dataType": type(v).__name__}
                    for n, v in sorted(hyper.items())
                ]
            }
        )
    if entries:
        workflow["inputs"] = entries
    produced = [{"resource": {"ref": refs[k]}} for k in outputs if k in refs]
    if produced:
        workflow["outputs"] = produced
    for field, name in (("startedOn", "timeStart"), ("finishedOn", "timeEnd")):
        value = metadata.get(field)
        if isinstance(value, str) and _TIME.match(value):
            workflow[name] = value
    properties = [
        {"name": "mlprov:attestation", "value": attestation_uri(fact.digest)},
        {"name": "mlprov:signers", "value": _text(", ".join(fact.signers))},
    ]
    external = definition.get("externalParameters")
    for name in ("entryPoint", "command", "source"):
        if isinstance(external, dict) and external.get(name):
            properties.append({"name": f"mlprov:{name}", "value": _text(external[name])})
    builder = run.get("builder") if isinstance(run, dict) else None
    if isinstance(builder, dict) and builder.get("id"):
        properties.append({"name": "mlprov:builder", "value": _text(builder["id"])})
    internal = definition.get("internalParameters")
    if isinstance(internal, dict):
        from mlprov.export.evidence import flatten

        for name, value in sorted(flatten(internal).items()):
            properties.append({"name": f"mlprov:internal:{name}", "value": _text(value)})
    workflow["properties"] = properties
    return workflow


def _dependency_graph(evidence: Evidence, components: dict[str, Any]) -> list[Any]:
    """One `Dependency` per component that has inputs (and the root), listing them, and
    one without dependencies per input that has none: the graph `Bom.register_dependency`
    builds, made in one pass (that method searches every registered dependency on each
    call, so a signed attestation of a few hundred inputs and outputs took minutes)."""
    from cyclonedx.model.dependency import Dependency

    graph: dict[str, Any] = {}
    referenced: list[str] = []
    for key, component in components.items():
        inputs = evidence.inputs_of(key)
        if inputs or key == evidence.root:
            graph[key] = Dependency(
                ref=component.bom_ref,
                dependencies=[Dependency(ref=components[i.key].bom_ref) for i in inputs],
            )
            referenced += (i.key for i in inputs)
    for key in referenced:
        if key not in graph:
            graph[key] = Dependency(ref=components[key].bom_ref)
    return list(graph.values())


def build_cyclonedx(evidence: Evidence, *, timestamp: datetime | None = None) -> dict[str, Any]:
    """The CycloneDX 1.6 document (a dict), validated against the bundled 1.6 schema."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, Property, XsUri
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    from mlprov import __version__

    bom = Bom()
    bom.metadata.timestamp = timestamp or datetime.now(UTC)
    bom.metadata.tools.components.add(
        Component(name="mlprov", type=ComponentType.APPLICATION, version=__version__)
    )
    components: dict[str, Any] = {}
    for key, artifact in evidence.artifacts.items():
        components[key] = _component(evidence, artifact)
    root = components[evidence.root]
    bom.metadata.component = root
    for key, component in components.items():
        if key != evidence.root:
            bom.components.add(component)
    refs = {key: key for key in components}
    bom.dependencies = _dependency_graph(evidence, components)
    for fact in evidence.attestations:
        bom.external_references.add(
            ExternalReference(
                type=ExternalReferenceType.ATTESTATION,
                url=XsUri(attestation_uri(fact.digest)),
                comment=_text(_describe(fact)),
                hashes=_hashes({"sha256": fact.digest.partition(":")[2]}),
            )
        )
    for fact in evidence.unverified:
        bom.metadata.properties.add(
            Property(
                name="mlprov:unverified",
                value=_text(f"{fact.digest} ({fact.label}) left out: {fact.reason}"),
            )
        )
    for line in completeness(evidence):
        bom.metadata.properties.add(
            Property(
                name=f"mlprov:completeness:{line.field}", value=f"{line.status}: {line.detail}"
            )
        )
    bom.metadata.properties.add(Property(name="mlprov:verifiedBy", value=evidence.verified_by))
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    document["metadata"]["component"]["modelCard"] = _model_card(evidence, evidence.root, refs)
    by_ref = {c.get("bom-ref"): c for c in document.get("components", [])}
    for artifact in evidence.models():
        if artifact.key != evidence.root and artifact.key in by_ref:
            by_ref[artifact.key]["modelCard"] = _model_card(evidence, artifact.key, refs)
    workflows = [
        _workflow(evidence, fact, refs)
        for fact in evidence.attestations
        if fact.kind in ("provenance", "link")
    ]
    if workflows:
        document["formulation"] = [{"bom-ref": "formulation", "workflows": workflows}]
    validate_cyclonedx(document)
    return document


def validate_cyclonedx(document: dict[str, Any]) -> None:
    """Validate with cyclonedx-python-lib's strict JSON validator (bundled 1.6 schema)."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    if error is not None:
        raise InputError(f"the CycloneDX BOM does not validate against the 1.6 schema: {error}")


def to_bytes(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, sort_keys=False).encode() + b"\n"
