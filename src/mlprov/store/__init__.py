"""The attestation store: exact bytes by digest, indexed by subject and material, with
lineage queries up (what a model came from) and down (what a dataset reached)."""

from mlprov.store.ingest import AttestationVerifier, SignatureVerifier
from mlprov.store.lineage import ArtifactNode, LineageEdge, LineageGraph, MissingLink
from mlprov.store.record import ArtifactRef, AttestationRecord, attestation_digest, parse_digest
from mlprov.store.render import FORMATS, render
from mlprov.store.store import (
    STORE_ENV,
    UNVERIFIED,
    AddResult,
    SignerEvidence,
    Store,
    StoredAttestation,
    default_store_path,
    open_store,
)

__all__ = [
    "FORMATS",
    "STORE_ENV",
    "UNVERIFIED",
    "AddResult",
    "ArtifactNode",
    "ArtifactRef",
    "AttestationRecord",
    "AttestationVerifier",
    "LineageEdge",
    "LineageGraph",
    "MissingLink",
    "SignatureVerifier",
    "SignerEvidence",
    "Store",
    "StoredAttestation",
    "attestation_digest",
    "default_store_path",
    "open_store",
    "parse_digest",
    "render",
]
