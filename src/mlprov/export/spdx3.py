"""The verified lineage of a model as an SPDX 3.0.1 document (JSON-LD): AI, Dataset, Build.

Built with SPDX's generated Python bindings (`spdx-python-model`, module
`spdx_python_model.v3_0_1`), which check every property's type as it is set and
every required property when the document is serialised. Models are `ai_AIPackage`,
datasets `dataset_DatasetPackage`, each step's provenance a `build_Build` with its
inputs and outputs; `trainedOn`, `testedOn`, `ancestorOf` and `dependsOn`
relationships carry the lineage; completeness and what was left unverified are
`Annotation`s on the model.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from mlprov.export.completeness import completeness
from mlprov.export.cyclonedx import attestation_uri
from mlprov.export.evidence import ArtifactFact, AttestationFact, Evidence, flatten, pickle_files

#: The predicate type of an in-toto Statement carrying an SPDX document.
PREDICATE_TYPE = "https://spdx.dev/Document"
MEDIA_TYPE = "application/spdx+json"
SPEC_VERSION = "3.0.1"
_HASHES = {
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha1": "sha1",
    "sha3-256": "sha3_256",
    "blake3": "blake3",
}
_ENERGY_STAGES = {
    "training": "ai_trainingEnergyConsumption",
    "finetuning": "ai_finetuningEnergyConsumption",
    "fine-tuning": "ai_finetuningEnergyConsumption",
    "inference": "ai_inferenceEnergyConsumption",
}
_ENERGY_UNITS = {"kwh": "kilowattHour", "kilowatthour": "kilowattHour", "mj": "megajoule"}
MAX_VALUE = 2000


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _time(value: Any) -> datetime | None:
    """An RFC 3339 time as SPDX wants it: UTC, whole seconds."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).replace(microsecond=0)


class _Builder:
    """Creates elements with unique ids in one namespace and keeps them for the document."""

    def __init__(self, spdx: Any, evidence: Evidence, created: datetime) -> None:
        self.spdx = spdx
        self.evidence = evidence
        self.namespace = f"urn:mlprov:spdx:{uuid.uuid4()}:"
        self.count = 0
        self.elements: list[Any] = []
        from mlprov import __version__

        self.info = spdx.CreationInfo(
            specVersion=SPEC_VERSION, created=created.astimezone(UTC).replace(microsecond=0)
        )
        agent = self.add(spdx.SoftwareAgent, "agent", name=f"mlprov {__version__}")
        tool = self.add(spdx.Tool, "tool", name=f"mlprov {__version__}")
        self.info.createdBy = [agent]
        self.info.createdUsing = [tool]
        self.by_key: dict[str, Any] = {}

    def add(self, cls: Any, kind: str, **props: Any) -> Any:
        self.count += 1
        element = cls(spdxId=f"{self.namespace}{kind}-{self.count}", creationInfo=self.info)
        for name, value in props.items():
            if value is not None and value != []:
                setattr(element, name, value)
        self.elements.append(element)
        return element

    def hashes(self, artifact: ArtifactFact) -> list[Any]:
        found = []
        for algorithm, value in sorted(artifact.digests.items()):
            if algorithm in _HASHES:
                found.append(
                    self.spdx.Hash(
                        algorithm=getattr(self.spdx.HashAlgorithm, _HASHES[algorithm]),
                        hashValue=value,
                    )
                )
        return found

    def relate(self, source: Any, kind: str, targets: list[Any], **props: Any) -> None:
        if targets:
            self.add(
                self.spdx.Relationship,
                "relationship",
                from_=source,
                to=targets,
                relationshipType=getattr(self.spdx.RelationshipType, kind),
                **props,
            )

    def reference(self, fact: AttestationFact, kind: str) -> Any:
        who = ", ".join(fact.signers) or "no signer recorded"
        return self.spdx.ExternalRef(
            externalRefType=getattr(self.spdx.ExternalRefType, kind),
            locator=[attestation_uri(fact.digest)],
            comment=_text(f"{fact.kind} {fact.label}: signed by {who}; verified"),
        )


def _entries(spdx: Any, values: dict[str, Any]) -> list[Any]:
    return [spdx.DictionaryEntry(key=_text(k), value=_text(v)) for k, v in sorted(values.items())]


def _energy(spdx: Any, evidence: Evidence, key: str) -> Any:
    """ai_EnergyConsumption from an `energyConsumption` object recorded for the model:
    `{"training": 12.5}` (kWh) or `{"training": {"quantity": 3, "unit": "megajoule"}}`."""
    sources: list[Any] = [evidence.artifacts[key].annotations]
    for fact in evidence.provenance_of(key):
        definition = fact.build_definition
        sources += [definition.get("externalParameters"), definition.get("internalParameters")]
    for source in sources:
        recorded = source.get("energyConsumption") if isinstance(source, dict) else None
        if not isinstance(recorded, dict):
            continue
        energy = spdx.ai_EnergyConsumption()
        found = False
        for stage, value in recorded.items():
            prop = _ENERGY_STAGES.get(str(stage).lower())
            quantity, unit = value, "kilowattHour"
            if isinstance(value, dict):
                quantity = value.get("quantity", value.get("value"))
                unit = str(value.get("unit", "kilowattHour"))
                unit = _ENERGY_UNITS.get(unit.lower(), unit)
            if prop is None or isinstance(quantity, bool) or not isinstance(quantity, int | float):
                continue
            if unit not in ("kilowattHour", "megajoule"):
                unit = "other"
            getattr(energy, prop).append(
                spdx.ai_EnergyConsumptionDescription(
                    ai_energyQuantity=float(quantity),
                    ai_energyUnit=getattr(spdx.ai_EnergyUnitType, unit),
                )
            )
            found = True
        if found:
            return energy
    return None


def _artifact(b: _Builder, artifact: ArtifactFact) -> Any:
    spdx, evidence = b.spdx, b.evidence
    purpose = spdx.software_SoftwarePurpose
    common: dict[str, Any] = {
        "name": _text(artifact.name),
        "verifiedUsing": b.hashes(artifact),
    }
    facts = {k: v for k, v in artifact.annotations.items()}
    if artifact.digest:
        facts["digest"] = artifact.digest
    common["comment"] = _text(facts) if facts else None
    download = artifact.uri if artifact.uri and "://" in artifact.uri else None
    if artifact.role in ("model", "base-model"):
        key = artifact.key
        metrics: dict[str, Any] = {}
        thresholds: dict[str, Any] = {}
        evaluations = [e for e in evidence.evaluations if e.model == key]
        for evaluation in evaluations:
            metrics.update(evaluation.metrics)
            for check in evaluation.thresholds:
                thresholds[str(check.get("metric"))] = (
                    f"{check.get('operator')}{check.get('value')}"
                )
        kind = evidence.model_fact(
            "typeOfModel", "model_type", "architecture", "architectures", key=key
        )
        training = [
            f"{f.label} ({f.build_type}), {attestation_uri(f.digest)}"
            for f in evidence.provenance_of(key)
        ]
        pickles = pickle_files(artifact.annotations)
        element = b.add(
            spdx.ai_AIPackage,
            "model",
            software_primaryPurpose=purpose.model,
            software_downloadLocation=download,
            ai_hyperparameter=_entries(spdx, evidence.hyperparameters(key)),
            ai_metric=_entries(spdx, metrics),
            ai_metricDecisionThreshold=_entries(spdx, thresholds),
            ai_typeOfModel=[_text(kind)] if kind else [],
            ai_energyConsumption=_energy(spdx, evidence, key),
            ai_informationAboutTraining=_text("; ".join(training)) if training else None,
            ai_limitation=_text(
                f"pickle-based model files can run code when loaded: {', '.join(pickles)}"
            )
            if pickles
            else None,
            externalRef=[
                b.reference(evidence.attestation(e.attestation), "qualityAssessmentReport")
                for e in evaluations
            ]
            + [
                b.reference(evidence.attestation(v.attestation), "certificationReport")
                for v in evidence.verdicts
                if key == evidence.root
            ],
            **common,
        )
    elif artifact.role == "dataset":
        size = artifact.annotations.get("byteSize")
        element = b.add(
            spdx.dataset_DatasetPackage,
            "dataset",
            software_primaryPurpose=purpose.data,
            software_downloadLocation=download,
            dataset_datasetType=[spdx.dataset_DatasetType.noAssertion],
            dataset_datasetSize=size if isinstance(size, int) and size >= 0 else None,
            **common,
        )
        if artifact.license:
            license_element = b.add(
                spdx.simplelicensing_LicenseExpression,
                "license",
                simplelicensing_licenseExpression=artifact.license,
            )
            b.relate(element, "hasDeclaredLicense", [license_element])
    elif artifact.role in ("package", "container", "source"):
        version = None
        url = None
        if artifact.role == "source":
            version = artifact.digests.get("gitCommit")
        elif artifact.uri and artifact.uri.startswith("pkg:"):
            url = artifact.uri
            version = artifact.uri.rpartition("@")[2] if "@" in artifact.uri else None
        element = b.add(
            spdx.software_Package,
            artifact.role,
            software_primaryPurpose={
                "package": purpose.library,
                "container": purpose.container,
                "source": purpose.source,
            }[artifact.role],
            software_packageVersion=version,
            software_packageUrl=url,
            software_downloadLocation=download,
            **common,
        )
    else:
        element = b.add(
            spdx.software_File,
            "file",
            software_primaryPurpose=purpose.configuration
            if artifact.role == "config"
            else purpose.other,
            **common,
        )
    b.by_key[artifact.key] = element
    return element


def _build(b: _Builder, fact: AttestationFact) -> None:
    spdx, evidence = b.spdx, b.evidence
    definition, metadata = fact.build_definition, fact.run_metadata
    external = definition.get("externalParameters")
    internal = definition.get("internalParameters")
    inputs, outputs = evidence.step_io(fact.digest)
    parameters = {
        k: v
        for k, v in flatten(external if isinstance(external, dict) else {}).items()
        if not k.startswith("source.")
    }
    entry = external.get("entryPoint") if isinstance(external, dict) else None
    repository = (
        (external.get("source") or {}).get("repository") if isinstance(external, dict) else None
    )
    config_digests = [
        h
        for k in inputs
        if evidence.artifacts[k].role == "config"
        for h in b.hashes(evidence.artifacts[k])
    ]
    build = b.add(
        spdx.build_Build,
        "build",
        name=_text(fact.label),
        build_buildType=_text(fact.build_type or fact.predicate_type),
        build_buildId=_text(metadata.get("invocationId")) if metadata.get("invocationId") else None,
        build_buildStartTime=_time(metadata.get("startedOn")),
        build_buildEndTime=_time(metadata.get("finishedOn")),
        build_parameter=_entries(spdx, parameters),
        build_environment=_entries(spdx, flatten(internal) if isinstance(internal, dict) else {}),
        build_configSourceEntrypoint=[_text(entry)] if isinstance(entry, str) else [],
        build_configSourceUri=[repository]
        if isinstance(repository, str) and "://" in repository
        else [],
        build_configSourceDigest=config_digests,
        externalRef=[b.reference(fact, "buildMeta")],
    )
    b.relate(build, "hasInput", [b.by_key[k] for k in inputs if k in b.by_key])
    b.relate(build, "hasOutput", [b.by_key[k] for k in outputs if k in b.by_key])


def build_spdx3(evidence: Evidence, *, created: datetime | None = None) -> dict[str, Any]:
    """The SPDX 3.0.1 JSON-LD document (a dict) built and type-checked by spdx-python-model."""
    from spdx_python_model import v3_0_1 as spdx

    b = _Builder(spdx, evidence, created or datetime.now(UTC))
    for artifact in evidence.artifacts.values():
        _artifact(b, artifact)
    for fact in evidence.attestations:
        if fact.kind in ("provenance", "link"):
            _build(b, fact)
    for key, element in b.by_key.items():
        artifact = evidence.artifacts[key]
        if artifact.role not in ("model", "base-model"):
            continue
        trained, depends, ancestors = [], [], []
        for item in evidence.inputs_of(key):
            target = b.by_key[item.key]
            if item.role == "dataset":
                trained.append(target)
            elif item.role in ("base-model", "model"):
                ancestors.append(target)
            else:
                depends.append(target)
        b.relate(element, "trainedOn", trained)
        b.relate(element, "dependsOn", depends)
        for ancestor in ancestors:
            b.relate(ancestor, "ancestorOf", [element])
        tested = [b.by_key[d] for e in evidence.evaluations if e.model == key for d in e.datasets]
        b.relate(element, "testedOn", list(dict.fromkeys(tested)))
    model = b.by_key[evidence.root]
    for line in completeness(evidence):
        b.add(
            spdx.Annotation,
            "annotation",
            annotationType=spdx.AnnotationType.review,
            subject=model,
            statement=_text(f"completeness: {line.field}: {line.status}: {line.detail}"),
        )
    for fact in evidence.unverified:
        b.add(
            spdx.Annotation,
            "annotation",
            annotationType=spdx.AnnotationType.review,
            subject=model,
            statement=_text(f"left out, not verified: {fact.digest} ({fact.label}): {fact.reason}"),
        )
    document = spdx.SpdxDocument(
        spdxId=f"{b.namespace}document",
        creationInfo=b.info,
        name=_text(f"AI-BOM of {evidence.model.name}"),
        comment=_text(f"verified lineage of {evidence.root}, checked by {evidence.verified_by}"),
        rootElement=[model],
        element=list(b.elements),
        profileConformance=[
            spdx.ProfileIdentifierType.core,
            spdx.ProfileIdentifierType.software,
            spdx.ProfileIdentifierType.ai,
            spdx.ProfileIdentifierType.dataset,
            spdx.ProfileIdentifierType.build,
            spdx.ProfileIdentifierType.simpleLicensing,
        ],
    )
    objects = spdx.SHACLObjectSet([document, *b.elements])
    data: dict[str, Any] = spdx.JSONLDSerializer().serialize_data(objects)
    return data


def load_spdx3(data: dict[str, Any]) -> Any:
    """Read an SPDX 3.0.1 JSON-LD document back with spdx-python-model's deserializer."""
    from spdx_python_model import v3_0_1 as spdx

    objects = spdx.SHACLObjectSet()
    spdx.JSONLDDeserializer().deserialize_data(data, objects)
    return objects
