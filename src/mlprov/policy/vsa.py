"""The verdict as a SLSA VSA: what was verified, against which policy, from which inputs."""

from __future__ import annotations

import hashlib
from collections import Counter

from mlprov.policy.engine import PolicyResult
from mlprov.policy.loader import LoadedLayout
from mlprov.predicates.vsa import VsaInput, VsaPolicy, build_vsa
from mlprov.statement import DIGEST_OF, ResourceDescriptor, Statement


def vsa_statement(
    result: PolicyResult,
    loaded: LoadedLayout,
    *,
    verifier_id: str,
    policy_uri: str,
    resource_uri: str | None = None,
) -> Statement:
    """A VSA Statement for `result`: subjects are the released artifacts.

    The policy digest is over the layout's exact bytes, and its annotations say whether
    the layout's signature was checked; inputs are every attestation
    read, by the digest of its exact bytes; dependencyLevels count the levels of the
    upstream VSAs the layout required.
    """
    levels: Counter[str] = Counter()
    for claim in result.upstream_vsas:
        predicate = claim.statement.get("predicate") or {}
        levels.update(str(level) for level in predicate.get("verifiedLevels") or [])
    subjects = [
        ResourceDescriptor(
            name=s.name,
            digest=dict(s.digest),
            annotations={DIGEST_OF: s.kind} if s.kind else None,
        )
        for s in result.subjects
    ]
    policy = VsaPolicy(
        uri=policy_uri,
        digest={"sha256": hashlib.sha256(loaded.raw).hexdigest()},
        annotations={
            "mlprov_layoutSignature": result.layout_signature,
            "mlprov_layoutSigned": result.layout_signed,
        },
    )
    return build_vsa(
        subjects=subjects,
        verifier_id=verifier_id,
        resource_uri=resource_uri or ",".join(s.name for s in result.subjects),
        policy=policy,
        inputs=[VsaInput(uri=c.source, digest=c.digest) for c in result.claims],
        passed=result.passed,
        verified_levels=loaded.layout.verifiedLevels,
        dependency_levels=dict(levels),
    )
