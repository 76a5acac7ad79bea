"""in-toto link v0.3 (`https://in-toto.io/attestation/link/v0.3`): a step's command and files.

mlprov reads links written by in-toto tools (the policy engine matches their materials
and products); the model keeps unknown fields so nothing is lost.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlprov.predicates import LINK_V03
from mlprov.predicates.slsa_provenance import check_descriptors
from mlprov.statement import ResourceDescriptor

PREDICATE_TYPE = LINK_V03


class Link(BaseModel):
    """The link v0.3 predicate: step name, command, materials, byproducts, environment."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: str = Field(description="Name of the step (layouts match steps by it)")
    command: list[str] | None = None
    materials: list[ResourceDescriptor] | None = None
    byproducts: dict[str, Any] | None = Field(
        default=None, description="e.g. stdout, stderr, return-value"
    )
    environment: dict[str, Any] | None = None

    @field_validator("materials")
    @classmethod
    def _identified(cls, v: list[ResourceDescriptor] | None) -> list[ResourceDescriptor] | None:
        return check_descriptors(v)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without unset fields, unknown fields kept."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
