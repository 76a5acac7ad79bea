"""The verdict as a SLSA VSA: what was verified, against which policy, from which inputs.

Written so that `slsa-verifier verify-vsa --public-key-path KEY --subject-digest ...
--verifier-id ... --resource-uri ... --verified-level ...` accepts it without further
flags: `resourceUri`, `policy.uri` and `inputAttestations[].uri` are absolute URIs, the
signature's keyid is the one slsa-verifier derives from the key (`spki_keyid`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from securesystemslib.signer import Signer

from mlprov.errors import InputError
from mlprov.policy.engine import PolicyResult
from mlprov.policy.loader import LoadedLayout
from mlprov.predicates.vsa import VsaInput, VsaPolicy, build_vsa
from mlprov.signing.dsse import DsseSignature, Envelope, sign_envelope
from mlprov.signing.keys import spki_keyid
from mlprov.statement import DIGEST_OF, ResourceDescriptor, Statement

#: `scheme:` at the start of an absolute URI (RFC 3986), e.g. `pkg:`, `file:`, `https:`.
_ABSOLUTE_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+\Z")


def file_uri(path: Path | str) -> str:
    """The `file://` URI of a path, made absolute against the working directory."""
    return Path(path).absolute().as_uri()


def absolute_uri(text: str, *, what: str) -> str:
    """`text` when it is an absolute URI (it has a scheme), else InputError naming `what`."""
    if not _ABSOLUTE_URI.match(text):
        raise InputError(f"{what} {text!r} is not an absolute URI (e.g. file:///..., https://...)")
    return text


def default_resource_uri(names: Sequence[str], paths: Sequence[Path] = ()) -> str:
    """What the VSA is about, as a URI, when `--resource-uri` is not given.

    One `--subject PATH`: the `file://` URI of its absolute path. Otherwise one subject
    whose name is already a URI (a purl `pkg:npm/x@1`, `https://...`) is used as is, and
    any other name as the `file://` URI of that path under the working directory. Several
    subjects name no one resource: the caller must say which with `--resource-uri`.
    """
    if len(paths) == 1:
        return file_uri(paths[0])
    if len(names) != 1:
        raise InputError(
            f"the VSA is about {len(names)} subjects: give --resource-uri URI naming the"
            " resource they form"
        )
    name = names[0]
    return name if _ABSOLUTE_URI.match(name) else file_uri(name)


def input_uri(source: str) -> str | None:
    """Where an input attestation was read, as a URI: a file's `file://` URI, a line of a
    `.jsonl` as `file://...#L<n>`; None for the store (its digest identifies it)."""
    if source.startswith("store:"):
        return None
    path, sep, line = source.rpartition(":")
    if sep and line.isdigit() and Path(path).is_file():
        return f"{file_uri(path)}#L{line}"
    return file_uri(source)


def vsa_statement(
    result: PolicyResult,
    loaded: LoadedLayout,
    *,
    verifier_id: str,
    policy_uri: str,
    resource_uri: str,
) -> Statement:
    """A VSA Statement for `result`: subjects are the released artifacts.

    The policy digest is over the layout's exact bytes, and its annotations say whether
    the layout's signature was checked; inputs are every attestation read, by the digest
    of its exact bytes and the URI it was read from; dependencyLevels count the levels of
    the upstream VSAs the layout required.
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
        uri=absolute_uri(policy_uri, what="--policy-uri"),
        digest={"sha256": hashlib.sha256(loaded.raw).hexdigest()},
        annotations={
            "mlprov_layoutSignature": result.layout_signature,
            "mlprov_layoutSigned": result.layout_signed,
        },
    )
    return build_vsa(
        subjects=subjects,
        verifier_id=verifier_id,
        resource_uri=absolute_uri(resource_uri, what="--resource-uri"),
        policy=policy,
        inputs=[VsaInput(uri=input_uri(c.source), digest=c.digest) for c in result.claims],
        passed=result.passed,
        verified_levels=loaded.layout.verifiedLevels,
        dependency_levels=dict(levels),
    )


def sign_vsa(statement: Statement, signer: Signer) -> Envelope:
    """A DSSE envelope over the VSA whose keyid is the one slsa-verifier matches.

    slsa-verifier skips a signature whose keyid differs from `SHA256:` + unpadded base64
    of sha256 of the key's DER SubjectPublicKeyInfo (unless `--public-key-id` is given);
    the keyid is not part of what is signed, so it is set after signing. A key without a
    SubjectPublicKeyInfo gets no keyid, which every DSSE verifier tries.
    """
    envelope = sign_envelope(statement.to_bytes(), [signer])
    try:
        keyid = spki_keyid(signer.public_key)
    except InputError:
        keyid = ""
    envelope.signatures = [DsseSignature(s.sig, keyid) for s in envelope.signatures]
    return envelope
