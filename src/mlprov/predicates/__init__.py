"""Predicates mlprov writes and reads, and the facts every later stage asks of a Statement.

`step_of` and `materials_of` are the one place that knows where each predicate keeps
its step name and its inputs, so the policy engine and the store agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mlprov.statement import ResourceDescriptor, Statement

SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
#: Read only (npm, GitHub and older builders write it); mlprov writes v1.
SLSA_PROVENANCE_V02 = "https://slsa.dev/provenance/v0.2"
TEST_RESULT_V01 = "https://in-toto.io/attestation/test-result/v0.1"
LINK_V03 = "https://in-toto.io/attestation/link/v0.3"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
OMS_V1 = "https://model_signing/signature/v1.0"


#: mlprov's extension fields, named `<vendor>_<field>` as SLSA asks, by predicate type and
#: place, each with the un-namespaced name mlprov wrote before (still read).
EXTENSION_FIELDS: dict[str, dict[tuple[str, ...], dict[str, str]]] = {
    TEST_RESULT_V01: {
        (): {"mlprov_step": "step", "mlprov_metrics": "metrics", "mlprov_thresholds": "thresholds"}
    },
    SLSA_PROVENANCE_V1: {("runDetails", "metadata"): {"mlprov_outcome": "mlprov"}},
}


def test_result_field(predicate: Mapping[str, Any], name: str) -> Any:
    """A test-result predicate's mlprov extension `name` (`mlprov_metrics`), read under
    that name or, in a Statement an earlier mlprov wrote, the one it had (`metrics`)."""
    if name in predicate:
        return predicate[name]
    legacy = EXTENSION_FIELDS[TEST_RESULT_V01][()][name]
    return predicate.get(legacy)


def with_extension_aliases(statement: dict[str, Any]) -> dict[str, Any]:
    """A Statement dict whose mlprov extensions answer to both names, for attribute rules.

    A layout's `predicate.mlprov_metrics.accuracy` and older layouts'
    `predicate.metrics.accuracy` both read an evaluation written by any mlprov version.
    Only a name that is absent is filled in (from the other, same value); the input is
    not changed.
    """
    places = EXTENSION_FIELDS.get(str(statement.get("predicateType")))
    predicate = statement.get("predicate")
    if not places or not isinstance(predicate, dict):
        return statement
    for path, names in places.items():
        predicate = _copy_path(predicate, list(path))
        target: Any = predicate
        for part in path:
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        for new, old in names.items():
            if new in target and old not in target:
                target[old] = target[new]
            elif old in target and new not in target:
                target[new] = target[old]
    return {**statement, "predicate": predicate}


def _copy_path(predicate: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """A copy of `predicate` whose dicts along `parts` are copies too (safe to add keys)."""
    top = dict(predicate)
    node = top
    for part in parts:
        child = node.get(part)
        if not isinstance(child, dict):
            break
        node[part] = dict(child)
        node = node[part]
    return top


def step_of(statement: Statement) -> str | None:
    """The pipeline step an attestation records, if it records one.

    SLSA provenance: `buildDefinition.externalParameters.step`; test-result: the
    `mlprov_step` extension field (`step` before); link: its `name`; anything else: None.
    """
    predicate = statement.predicate or {}
    found: Any = None
    if statement.predicateType == SLSA_PROVENANCE_V1:
        found = predicate.get("buildDefinition", {}).get("externalParameters", {}).get("step")
    elif statement.predicateType == TEST_RESULT_V01:
        found = test_result_field(predicate, "mlprov_step")
    elif statement.predicateType == LINK_V03:
        found = predicate.get("name")
    return found if isinstance(found, str) and found else None


def _descriptors(items: Any) -> list[ResourceDescriptor]:
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(ResourceDescriptor.model_validate(item))
    return out


def materials_of(statement: Statement) -> list[ResourceDescriptor]:
    """The inputs an attestation names: what its subjects were made from.

    SLSA v1: resolvedDependencies; SLSA v0.2: materials (`{uri, digest}`, named by their
    URI, as attestation-verifier's getMaterialsAndProducts names them); link: materials;
    test-result: configuration; OMS: the files of the signed model (as `{name, digest}`
    descriptors).
    """
    predicate = statement.predicate or {}
    kind = statement.predicateType
    if kind == SLSA_PROVENANCE_V1:
        return _descriptors(predicate.get("buildDefinition", {}).get("resolvedDependencies"))
    if kind == SLSA_PROVENANCE_V02:
        return _v02_materials(predicate.get("materials"))
    if kind == LINK_V03:
        return _descriptors(predicate.get("materials"))
    if kind == TEST_RESULT_V01:
        return _descriptors(predicate.get("configuration"))
    if kind == OMS_V1:
        resources = predicate.get("resources")
        if not isinstance(resources, list):
            return []
        return [
            ResourceDescriptor(name=r["name"], digest={r["algorithm"]: r["digest"]})
            for r in resources
            if isinstance(r, dict) and {"name", "algorithm", "digest"} <= r.keys()
        ]
    return []


def _v02_materials(items: Any) -> list[ResourceDescriptor]:
    """SLSA v0.2 materials as descriptors: `name` and `uri` are the material's URI.

    A material with neither a URI nor a digest names nothing and is left out.
    """
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        uri = item.get("uri") if isinstance(item.get("uri"), str) else None
        digest = item.get("digest") if isinstance(item.get("digest"), dict) else None
        if uri or digest:
            out.append(
                ResourceDescriptor.model_validate({"name": uri, "uri": uri, "digest": digest})
            )
    return out


def build_type_of(statement: Statement) -> str | None:
    """The SLSA buildType of a provenance Statement (v1 or v0.2), else None."""
    predicate = statement.predicate or {}
    found: Any = None
    if statement.predicateType == SLSA_PROVENANCE_V1:
        found = predicate.get("buildDefinition", {}).get("buildType")
    elif statement.predicateType == SLSA_PROVENANCE_V02:
        found = predicate.get("buildType")
    return found if isinstance(found, str) and found else None


def products_of(statement: Statement) -> list[ResourceDescriptor]:
    """The outputs an attestation names: its subjects."""
    return list(statement.subject)
