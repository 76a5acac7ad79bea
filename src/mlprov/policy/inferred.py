"""A starter layout written from real attestations (`mlprov policy init --from`).

The steps, artifact names, signers and metrics are the ones the attestations record; the
rules are the starter layout's: each step's materials must be what the step before it
produced (MATCH, then nothing else of that step under another name), products are
created and nothing else, runs must have succeeded, evaluations must have passed their
recorded thresholds, and the released model must be a product of the step that made it.
The layout passes the attestations it was written from; review it before it gates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from securesystemslib.signer import Key

from mlprov.errors import InputError
from mlprov.policy.attestations import Claim, same_digest
from mlprov.policy.starter import SUCCEEDED
from mlprov.predicates import SLSA_PROVENANCE_V1, TEST_RESULT_V01, test_result_field
from mlprov.signing.dsse import key_identity

_SAFE = re.compile(r"^[A-Za-z0-9_.\-/]+\Z")
#: A step name a layout can refer to (`FROM name`, `productOf: [name]`, parameter names).
_STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}\Z")


@dataclass
class _Signer:
    name: str
    spec: dict[str, Any]


@dataclass
class _Step:
    name: str
    predicate_type: str
    claims: list[Claim] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)


def _keyless_identity(claim: Claim) -> tuple[str, str] | None:
    """(issuer, SAN) of a Sigstore bundle's signing certificate, if it has one."""
    import base64

    from cryptography import x509

    material = (claim.attestation.bundle or {}).get("verificationMaterial") or {}
    raw = (material.get("certificate") or {}).get("rawBytes")
    if raw is None:
        chain = (material.get("x509CertificateChain") or {}).get("certificates") or []
        raw = chain[0].get("rawBytes") if chain else None
    if not isinstance(raw, str):
        return None
    try:
        cert = x509.load_der_x509_certificate(base64.b64decode(raw))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.RFC822Name)]
        names += san.get_values_for_type(x509.UniformResourceIdentifier)
        issuer = _fulcio_issuer(cert)
    except (ValueError, x509.ExtensionNotFound):
        return None
    return (issuer, names[0]) if issuer and names else None


def _fulcio_issuer(cert: Any) -> str | None:
    from cryptography import x509

    for oid, der in (("1.3.6.1.4.1.57264.1.8", True), ("1.3.6.1.4.1.57264.1.1", False)):
        try:
            value = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(oid)).value.value
        except x509.ExtensionNotFound:
            continue
        data = bytes(value)
        if der and len(data) > 2 and data[0] == 0x0C:  # DER UTF8String, short form
            data = data[2:]
        return data.decode("utf-8", "replace")
    return None


def _signer_of(claim: Claim, keys: Sequence[tuple[str, Key]], signers: dict[str, _Signer]) -> str:
    """The functionary name for whoever signed `claim` (added to `signers` once)."""
    from mlprov.signing.keys import public_pem
    from mlprov.signing.verify import verify_signatures

    if claim.attestation.kind == "bundle":
        identity = _keyless_identity(claim)
        if identity is not None:
            issuer, subject = identity
            keyless = f"sigstore:{issuer}:{subject}"
            if keyless not in signers:
                spec = {"sigstore": {"issuer": issuer, "subject": subject}}
                signers[keyless] = _Signer(f"signer-{len(signers) + 1}", spec)
            return signers[keyless].name
    for label, key in keys:
        try:
            verify_signatures(claim.attestation, keys=[key])
        except Exception:  # any failure means "not this key"
            continue
        identity_key = key_identity(key)
        if identity_key not in signers:
            taken = {s.name for s in signers.values()}
            name = (
                label
                if _SAFE.fullmatch(label) and label not in taken
                else f"signer-{len(taken) + 1}"
            )
            signers[identity_key] = _Signer(name, {"publicKey": public_pem(key).decode()})
        return signers[identity_key].name
    raise InputError(
        f"{claim.source} is signed by none of the --key keys: give the public key of its signer"
    )


def _order(steps: dict[str, _Step]) -> list[_Step]:
    """Steps so that a step comes after the steps whose products it consumes."""
    produced = {
        name: [d for c in step.claims for d in c.products.values()] for name, step in steps.items()
    }
    order: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> None:
        if name in order or name in seen:
            return
        for other, digests in produced.items():
            if other != name and any(
                same_digest(m, d)
                for c in steps[name].claims
                for m in c.materials.values()
                for d in digests
            ):
                visit(other, seen | {name})
        order.append(name)

    for name in steps:
        visit(name, frozenset())
    return [steps[n] for n in order]


def _q(text: str) -> str:
    return json.dumps(text)


def _material_rules(step: _Step, earlier: list[_Step]) -> list[str]:
    rules: list[str] = []
    sources: list[str] = []
    for name, digest in sorted({n: d for c in step.claims for n, d in c.materials.items()}.items()):
        for other in earlier:
            products = {n: d for c in other.claims for n, d in c.products.items()}
            if name in products and same_digest(digest, products[name]) and _SAFE.fullmatch(name):
                rules.append(f"MATCH {name} WITH products FROM {other.name}")
                if other.name not in sources:
                    sources.append(other.name)
                break
    # Nothing else the source steps produced, whatever it is called (the test split).
    rules += [f"DISALLOW * WITH products FROM {name}" for name in sources]
    rules.append("ALLOW *")
    return rules


def _product_rules(step: _Step) -> list[str]:
    names = sorted({n for c in step.claims for n in c.products})
    if not names:
        return []
    return [f"CREATE {n}" for n in names if _SAFE.fullmatch(n)] + ["DISALLOW *"]


def _attributes(step: _Step, parameters: dict[str, float]) -> list[str]:
    if step.predicate_type == SLSA_PROVENANCE_V1:
        types = sorted(
            {
                str(
                    (c.statement.get("predicate") or {}).get("buildDefinition", {}).get("buildType")
                )
                for c in step.claims
            }
        )
        rules = [f"predicate.buildDefinition.buildType in {json.dumps(types)}"]
        return [*rules, SUCCEEDED]
    if step.predicate_type == TEST_RESULT_V01:
        rules = ["predicate.result == 'PASSED'"]
        for claim in step.claims:
            predicate = claim.statement.get("predicate") or {}
            checks = test_result_field(predicate, "mlprov_thresholds")
            for check in checks if isinstance(checks, list) else []:
                if not isinstance(check, dict):
                    continue
                metric, op = str(check.get("metric", "")), str(check.get("operator", ""))
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", metric) or op not in {
                    ">=", "<=", ">", "<", "==",
                }:  # fmt: skip
                    continue
                stem = re.sub(r"[^A-Za-z0-9_]", "_", step.name)
                param = f"{stem}_{metric}_{'min' if '>' in op else 'max'}"
                parameters[param] = float(check.get("value", 0))
                rule = f"double(predicate.mlprov_metrics.{metric}) {op} double({{{param}}})"
                if rule not in rules:
                    rules.append(rule)
        return rules
    return []


def layout_from_claims(
    claims: Sequence[Claim],
    *,
    subject: dict[str, str],
    subject_name: str,
    keys: Sequence[tuple[str, Key]],
    expires: datetime,
) -> str:
    """The YAML text of a layout that the given (signed) claims pass for `subject`;
    `keys` are (functionary name, public key) of the signers to look for."""
    steps: dict[str, _Step] = {}
    signers: dict[str, _Signer] = {}
    for claim in claims:
        if claim.step is None:
            raise InputError(f"{claim.source}: records no step name")
        if not _STEP_NAME.fullmatch(claim.step):
            # The signer's text: pasted into rules and YAML, it would write its own.
            raise InputError(
                f"{claim.source}: step name {json.dumps(claim.step)} cannot name a layout step"
                " (letters, digits, '_', '.', '-'; starting with a letter or digit)"
            )
        step = steps.setdefault(claim.step, _Step(claim.step, claim.predicate_type))
        if step.predicate_type != claim.predicate_type:
            raise InputError(
                f"step {claim.step} has attestations of two predicate types"
                f" ({step.predicate_type}, {claim.predicate_type}): give one step name each"
            )
        step.claims.append(claim)
        name = _signer_of(claim, keys, signers)
        if name not in step.signers:
            step.signers.append(name)
    if not steps:
        raise InputError("no attestations found to write a layout from")
    producers = [
        s.name
        for s in steps.values()
        if any(same_digest(subject, d) for c in s.claims for d in c.products.values())
    ]
    if not producers:
        raise InputError(f"no attestation has {subject_name} as a product: is it the right model?")
    parameters: dict[str, float] = {}
    lines = [
        "# mlprov layout written by `mlprov policy init --from` from these attestations:",
        *(f"#   {c.source}" for c in claims),
        "# Review every rule before it gates a release; see docs/policy.md.",
        f"expires: {_q(expires.replace(microsecond=0).isoformat().replace('+00:00', 'Z'))}",
        "",
        "functionaries:",
    ]
    for signer in signers.values():
        if "publicKey" in signer.spec:
            pem = signer.spec["publicKey"].strip().replace("\n", "\n      ")
            lines += [f"  {signer.name}:", "    publicKey: |", f"      {pem}"]
        else:
            identity = signer.spec["sigstore"]
            lines += [
                f"  {signer.name}:",
                "    sigstore:",
                f"      issuer: {_q(identity['issuer'])}",
                f"      subject: {_q(identity['subject'])}",
            ]
    lines += ["", "steps:"]
    earlier: list[_Step] = []
    for step in _order(steps):
        lines += [f"  - name: {_q(step.name)}"]
        lines += [
            "    expectedMaterials:",
            *(f"      - {_q(r)}" for r in _material_rules(step, earlier)),
        ]
        products = _product_rules(step)
        if products:
            lines += ["    expectedProducts:", *(f"      - {_q(r)}" for r in products)]
        lines += [
            "    expectedPredicates:",
            f"      - predicateType: {step.predicate_type}",
            f"        functionaries: [{', '.join(step.signers)}]",
        ]
        attributes = _attributes(step, parameters)
        if attributes:
            lines += [
                "        expectedAttributes:",
                *(f"          - rule: {_q(r)}" for r in attributes),
            ]
        earlier.append(step)
    if parameters:
        lines[lines.index("functionaries:") : lines.index("functionaries:")] = [
            "# Thresholds the evaluations recorded; raise them with --param NAME=VALUE.",
            "parameters:",
            *(f"  {name}: {value}" for name, value in sorted(parameters.items())),
            "",
        ]
    lines += [
        "",
        f"# The released model ({subject_name}) must be a product of the step that made it.",
        "subjects:",
        f"  - productOf: [{', '.join(producers)}]",
    ]
    return "\n".join(lines) + "\n"
