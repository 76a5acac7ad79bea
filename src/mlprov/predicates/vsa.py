"""SLSA Verification Summary Attestation v1: the signed verdict a policy check leaves behind.

https://slsa.dev/spec/v1.0/verification_summary — every field of the predicate is
modelled; unknown fields of VSAs read from elsewhere are kept.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlprov.errors import InputError
from mlprov.predicates import VSA_V1
from mlprov.statement import ResourceDescriptor, Statement

SLSA_VERSION = "1.0"
#: The SlsaResult of a failed verification.
FAILED_LEVEL = "FAILED"
#: `SLSA_<TRACK>_LEVEL_<n>`: the only shape a level starting with `SLSA_` may have.
_SLSA_LEVEL = re.compile(r"^SLSA_([A-Z0-9]+)_LEVEL_(\d+)\Z")


def check_verified_levels(levels: list[str]) -> None:
    """The spec's rules for verifiedLevels, and slsa-verifier's reading of them.

    A level starting with `SLSA_` is `SLSA_<TRACK>_LEVEL_<n>` (custom values must not
    start with `SLSA_`); at most one level per track; `FAILED` is not a level a pass
    vouches for. Raises ValueError naming the offending value.
    """
    tracks: dict[str, str] = {}
    for level in levels:
        if level == FAILED_LEVEL:
            raise ValueError("FAILED is what a failed check records, not a verified level")
        if not level.startswith("SLSA_"):
            continue
        match = _SLSA_LEVEL.match(level)
        if not match:
            raise ValueError(
                f"verified level {level!r} starts with SLSA_ but is not SLSA_<TRACK>_LEVEL_<n>"
                " (custom levels must not start with SLSA_)"
            )
        track = match.group(1)
        if track in tracks:
            raise ValueError(
                f"verified levels {tracks[track]!r} and {level!r}: at most one level per"
                f" SLSA track ({track})"
            )
        tracks[track] = level


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

    A FAILED verdict's verifiedLevels is `["FAILED"]`, as the spec's SlsaResult says;
    a PASSED one lists `verified_levels` (checked by `check_verified_levels`).
    """
    try:
        check_verified_levels(verified_levels)
    except ValueError as exc:
        raise InputError(f"verifiedLevels: {exc}") from None
    when = (time_verified or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    predicate = VerificationSummary(
        verifier=VsaVerifier(id=verifier_id),
        timeVerified=when.isoformat().replace("+00:00", "Z"),
        resourceUri=resource_uri,
        policy=policy,
        inputAttestations=inputs,
        verificationResult="PASSED" if passed else "FAILED",
        verifiedLevels=list(verified_levels) if passed else [FAILED_LEVEL],
        dependencyLevels=dependency_levels or None,
    )
    return Statement(
        subject=subjects,
        predicateType=VSA_V1,
        predicate=predicate.model_dump(mode="json", exclude_none=True),
    )
