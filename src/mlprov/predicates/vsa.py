"""SLSA Verification Summary Attestation v1: the signed verdict a policy check leaves behind.

https://slsa.dev/spec/v1.0/verification_summary — every field of the predicate is
modelled; unknown fields of VSAs read from elsewhere are kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlprov.predicates import VSA_V1
from mlprov.statement import ResourceDescriptor, Statement

SLSA_VERSION = "1.0"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class VsaVerifier(_Model):
    """Who verified: a URI naming the verifier (and optionally its component versions)."""

    id: str
    version: dict[str, str] | None = None


class VsaPolicy(_Model):
    """The policy (layout) evaluated, by URI and digest of its exact bytes."""

    uri: str | None = None
    digest: dict[str, str] | None = None
    annotations: dict[str, Any] | None = Field(
        default=None,
        description="mlprov_layoutSignature: verified | failed | not checked;"
        " mlprov_layoutSigned: whether the layout was DSSE-signed at all",
    )


class VsaInput(_Model):
    """One attestation the verifier read, by URI and digest of its exact bytes."""

    uri: str | None = None
    digest: dict[str, str]


class VerificationSummary(_Model):
    """The predicate of a VSA v1."""

    verifier: VsaVerifier
    timeVerified: str = Field(description="RFC 3339, UTC")
    resourceUri: str
    policy: VsaPolicy
    inputAttestations: list[VsaInput] = Field(default_factory=list)
    verificationResult: Literal["PASSED", "FAILED"]
    verifiedLevels: list[str] = Field(default_factory=list)
    dependencyLevels: dict[str, int] | None = None
    slsaVersion: str | None = SLSA_VERSION


def build_vsa(
    *,
    subjects: list[ResourceDescriptor],
    verifier_id: str,
    resource_uri: str,
    policy: VsaPolicy,
    inputs: list[VsaInput],
    passed: bool,
    verified_levels: list[str],
    dependency_levels: dict[str, int] | None = None,
    time_verified: datetime | None = None,
) -> Statement:
    """A Statement carrying a VSA about `subjects`.

    A FAILED verdict lists no verified levels: nothing was verified to any level.
    """
    when = (time_verified or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    predicate = VerificationSummary(
        verifier=VsaVerifier(id=verifier_id),
        timeVerified=when.isoformat().replace("+00:00", "Z"),
        resourceUri=resource_uri,
        policy=policy,
        inputAttestations=inputs,
        verificationResult="PASSED" if passed else "FAILED",
        verifiedLevels=list(verified_levels) if passed else [],
        dependencyLevels=dependency_levels or None,
    )
    return Statement(
        subject=subjects,
        predicateType=VSA_V1,
        predicate=predicate.model_dump(mode="json", exclude_none=True),
    )
