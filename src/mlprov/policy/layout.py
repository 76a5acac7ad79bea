"""The layout document: a pydantic model of in-toto attestation layouts (ITE-10/11), extended.

Field names follow in-toto/attestation-verifier (camelCase), so its layouts load
unchanged. mlprov adds functionaries that are PEM public keys or Sigstore identities,
`parameters` with defaults, `subjects` rules for the released artifact, and
`expectedVerifications` (VSAs an upstream stage must have left). Unknown fields are
rejected: a misspelt rule name in a policy must not silently mean "no rule".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class KeyValue(_Strict):
    """Public key material in securesystemslib's form (`keyVal`)."""

    public: str


class SigstoreIdentitySpec(_Strict):
    """A keyless signer: the OIDC issuer plus an exact subject or a subject regex."""

    issuer: str = Field(description="OIDC issuer URL, matched exactly")
    subject: str | None = Field(default=None, description="Certificate identity (SAN), exact")
    subjectRegex: str | None = Field(default=None, description="Certificate identity, regex")

    @model_validator(mode="after")
    def _one_subject(self) -> SigstoreIdentitySpec:
        if (self.subject is None) == (self.subjectRegex is None):
            raise ValueError("give exactly one of subject or subjectRegex")
        return self


class FunctionarySpec(_Strict):
    """Who may sign for a step: a securesystemslib key, a PEM public key, or a Sigstore identity.

    attestation-verifier writes keys as `{keyType, scheme, keyVal: {public}, keyID,
    keyIDHashAlgorithms}`; mlprov also accepts `publicKey` (PEM text), `publicKeyPath`
    (a PEM file, relative to the layout) and `sigstore` (issuer + subject).
    """

    keyType: str | None = None
    scheme: str | None = None
    keyVal: KeyValue | None = None
    keyID: str | None = None
    keyIDHashAlgorithms: list[str] | None = None
    publicKey: str | None = Field(default=None, description="PEM public key")
    publicKeyPath: str | None = Field(default=None, description="PEM file, relative to layout")
    sigstore: SigstoreIdentitySpec | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> FunctionarySpec:
        kinds = [
            self.keyVal is not None,
            self.publicKey is not None,
            self.publicKeyPath is not None,
            self.sigstore is not None,
        ]
        if sum(kinds) != 1:
            raise ValueError(
                "a functionary is exactly one of keyVal (+keyType, scheme), publicKey,"
                " publicKeyPath or sigstore"
            )
        if self.keyVal is not None and not (self.keyType and self.scheme):
            raise ValueError("a keyVal functionary needs keyType and scheme")
        return self


class AttributeRuleSpec(_Strict):
    """A CEL expression over `subject`, `predicateType` and `predicate` that must be true."""

    rule: str
    allowIfNoClaim: bool = Field(default=False, description="Pass when the claim is absent")
    warn: bool = Field(default=False, description="Report a failure without failing")
    debug: str | None = Field(default=None, description="Shown with a failure (informational)")


class ExpectedPredicate(_Strict):
    """Attestations of one predicate type a step needs, who may sign them, and how many."""

    predicateType: str
    functionaries: list[str] = Field(min_length=1)
    threshold: int = Field(default=1, ge=0, description="Distinct functionaries needed (0 = 1)")
    expectedAttributes: list[AttributeRuleSpec] = Field(default_factory=list)

    @field_validator("threshold")
    @classmethod
    def _zero_means_one(cls, value: int) -> int:
        return value or 1  # attestation-verifier treats an absent (0) threshold as 1


class Step(_Strict):
    """One step of the pipeline: its artifact rules and the predicates it must attest."""

    name: str = Field(min_length=1)
    command: str | None = Field(default=None, description="Informational only")
    expectedMaterials: list[str] = Field(default_factory=list)
    expectedProducts: list[str] = Field(default_factory=list)
    expectedPredicates: list[ExpectedPredicate] = Field(min_length=1)


class SubjectRuleSpec(_Strict):
    """What the released artifact (the model) must be: a product of one of the named steps."""

    productOf: list[str] = Field(min_length=1, description="Steps whose products may be released")
    name: str | None = Field(default=None, description="Glob the product's name must match")


class ExpectedVerification(_Strict):
    """A SLSA VSA an upstream stage must have issued (e.g. a dataset gate's verdict).

    Passes when a VSA among the attestations says PASSED, was issued by `verifierId`,
    is signed by `threshold` of `functionaries`, lists every level in `verifiedLevels`,
    and is about an artifact of `appliesTo`: the materials of that step, or, when
    `appliesTo` is `subject`, the released artifact.
    """

    name: str = Field(min_length=1, description="Label used in the report")
    verifierId: str
    functionaries: list[str] = Field(min_length=1)
    threshold: int = Field(default=1, ge=1)
    appliesTo: str = Field(description="A step name (its materials) or 'subject'")
    policyUri: str | None = None
    verifiedLevels: list[str] = Field(default_factory=list)


class Layout(_Strict):
    """An in-toto attestation layout, as mlprov reads and writes it."""

    expires: datetime = Field(description="RFC 3339; an expired layout fails every check")
    functionaries: dict[str, FunctionarySpec] = Field(default_factory=dict)
    parameters: dict[str, str | int | float | None] = Field(
        default_factory=dict,
        description="Names substituted as {name} into rules; null means 'must be given'",
    )
    steps: list[Step] = Field(min_length=1)
    subjects: list[SubjectRuleSpec] = Field(default_factory=list)
    expectedVerifications: list[ExpectedVerification] = Field(default_factory=list)
    verifiedLevels: list[str] = Field(
        default_factory=lambda: ["SLSA_BUILD_LEVEL_1"],
        description="What a pass vouches for: the VSA's verifiedLevels when PASSED",
    )
    inspections: list[dict[str, Any]] | None = Field(
        default=None, description="Not supported: a layout with inspections is refused"
    )

    @field_validator("verifiedLevels")
    @classmethod
    def _slsa_levels(cls, value: list[str]) -> list[str]:
        from mlprov.predicates.vsa import check_verified_levels

        check_verified_levels(value)
        return value

    @field_validator("expires")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("expires needs a timezone (e.g. 2030-01-01T00:00:00Z)")
        return value

    def step(self, name: str) -> Step | None:
        """The step called `name`, if any."""
        return next((s for s in self.steps if s.name == name), None)
