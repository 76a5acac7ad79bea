"""SLSA Provenance v1 (`https://slsa.dev/provenance/v1`) and mlprov's ML buildTypes.

The models cover every field of the spec and keep unknown fields, so a provenance
document written by another tool survives a round trip. The buildTypes are documented in
docs/buildtypes/; their externalParameters are described by `MLExternalParameters`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlprov.predicates import SLSA_PROVENANCE_V1
from mlprov.statement import ResourceDescriptor

#: Where mlprov's buildTypes live; each is documented in docs/buildtypes/<name>.md.
BUILD_TYPE_BASE = "https://mlprov.dev/buildtypes"
#: buildType name -> the step name recorded when the user does not choose one.
BUILD_TYPES: dict[str, str] = {
    "training": "train",
    "fine-tuning": "finetune",
    "dataset-preparation": "dataset",
    "evaluation": "eval",
    "conversion": "convert",
    "run": "run",
}
#: RFC 3339 timestamps as SLSA requires (`2024-05-01T12:00:00Z`, fractions and offsets allowed).
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"


def build_type_uri(name: str) -> str:
    """The buildType URI of one of mlprov's buildTypes (`training`, `run`, ...)."""
    if name not in BUILD_TYPES:
        raise ValueError(f"unknown buildType {name!r}; known: {', '.join(BUILD_TYPES)}")
    return f"{BUILD_TYPE_BASE}/{name}/v1"


def check_descriptors(items: list[ResourceDescriptor] | None) -> list[ResourceDescriptor] | None:
    """Every ResourceDescriptor needs a name, a uri or a digest (in-toto's rule)."""
    for index, item in enumerate(items or []):
        if not (item.name or item.uri or item.digest):
            raise ValueError(f"item {index} has none of name, uri, digest")
    return items


class _Open(BaseModel):
    """A document part that keeps fields it does not know."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class BuildDefinition(_Open):
    """What was built and from what: the inputs a verifier compares to expectations."""

    buildType: str = Field(description="URI of the template of this build (see docs/buildtypes)")
    externalParameters: dict[str, Any] = Field(description="Parameters the user chose")
    internalParameters: dict[str, Any] | None = Field(
        default=None, description="Parameters the platform chose"
    )
    resolvedDependencies: list[ResourceDescriptor] | None = Field(
        default=None, description="Artifacts fetched or read during the build"
    )

    @field_validator("resolvedDependencies")
    @classmethod
    def _identified(cls, v: list[ResourceDescriptor] | None) -> list[ResourceDescriptor] | None:
        return check_descriptors(v)


class Builder(_Open):
    """The trust boundary that ran the build."""

    id: str = Field(description="URI of the builder")
    builderDependencies: list[ResourceDescriptor] | None = None
    version: dict[str, str] | None = None

    @field_validator("builderDependencies")
    @classmethod
    def _identified(cls, v: list[ResourceDescriptor] | None) -> list[ResourceDescriptor] | None:
        return check_descriptors(v)


class BuildMetadata(_Open):
    """When and as which invocation the build ran (mlprov adds `mlprov_outcome`, a RunOutcome;
    `mlprov` before)."""

    invocationId: str | None = None
    startedOn: str | None = Field(default=None, pattern=TIMESTAMP_PATTERN)
    finishedOn: str | None = Field(default=None, pattern=TIMESTAMP_PATTERN)


class UndigestedProduct(BaseModel):
    """A declared product that exists but could not be digested, so is not a subject."""

    model_config = ConfigDict(extra="allow")

    path: str = Field(description="The product as declared")
    reason: str = Field(description="Why it could not be digested, in one line")


class RunOutcome(BaseModel):
    """mlprov's extension of BuildMetadata: how the run ended (key `mlprov_outcome`)."""

    model_config = ConfigDict(extra="allow")

    outcome: Literal["succeeded", "failed"]
    exitCode: int | None = None
    error: str | None = Field(default=None, description="Why the run failed, in one line")
    undigested: list[UndigestedProduct] | None = Field(
        default=None,
        description="Declared products that could not be digested (the run is then failed)",
    )


class RunDetails(_Open):
    """Who ran the build, when, and what else it produced."""

    builder: Builder
    metadata: BuildMetadata | None = None
    byproducts: list[ResourceDescriptor] | None = None

    @field_validator("byproducts")
    @classmethod
    def _identified(cls, v: list[ResourceDescriptor] | None) -> list[ResourceDescriptor] | None:
        return check_descriptors(v)


class SLSAProvenance(_Open):
    """The SLSA Provenance v1 predicate."""

    buildDefinition: BuildDefinition
    runDetails: RunDetails

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without unset fields, unknown fields kept."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SourceReference(_Open):
    """The code a step ran: repository and ref (the commit is a resolvedDependency)."""

    repository: str | None = Field(default=None, description="Remote URL, credentials removed")
    ref: str | None = Field(default=None, description="Branch as refs/heads/NAME, if on one")
    absent: str | None = Field(default=None, description="Why no source was recorded")


class MLExternalParameters(_Open):
    """externalParameters of mlprov's ML buildTypes: what the user chose."""

    step: str = Field(description="Pipeline step name (layouts match steps by it)")
    config: dict[str, Any] | None = Field(default=None, description="Parsed configuration file")
    configFile: str | None = Field(default=None, description="Name of the configuration file")
    parameters: dict[str, Any] | None = Field(
        default=None, description="Overrides given as key=value, types kept"
    )
    entryPoint: str | None = Field(default=None, description="Script or module that ran")
    command: list[str] | None = Field(default=None, description="argv of the command (`run`)")
    source: SourceReference | None = None


class MLInternalParameters(_Open):
    """internalParameters of mlprov's ML buildTypes: what the platform chose."""

    python: dict[str, str] | None = None
    platform: dict[str, str] | None = None
    frameworks: dict[str, str] | None = Field(
        default=None, description="Installed ML framework versions"
    )
    hardware: dict[str, Any] | None = None
    hostname: str | None = Field(default=None, description="Only with --record-host")
    seeds: dict[str, int] | None = None


PREDICATE_TYPE = SLSA_PROVENANCE_V1
