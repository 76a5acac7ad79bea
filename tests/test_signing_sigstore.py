"""Sigstore bundles verify offline against a pinned root, with a required identity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import shared_testdata
from mlprov.errors import InputError, VerificationError
from mlprov.signing.files import parse_attestation, read_attestations
from mlprov.signing.sigstore_bundle import SigstoreIdentity, verify_bundle
from mlprov.signing.verify import verify_attestation

BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
GITHUB = "https://token.actions.githubusercontent.com"
IBM = SigstoreIdentity(
    issuer="https://sigstore.verify.ibm.com/oauth2", subject="stefanb@us.ibm.com"
)


def _staging_bundle() -> Path:
    return shared_testdata("sigstore", "a.dsse.staging-rekor-v2.txt.sigstore.json")


def test_staging_bundle_verifies_with_staging_root() -> None:
    attestation = read_attestations(_staging_bundle())[0]
    root = shared_testdata("sigstore", "staging_trusted_root.json")
    identity = SigstoreIdentity(issuer=GITHUB, subject=BEACON)
    assert verify_bundle(attestation, identity=identity, trusted_root=root) == BEACON
    assert verify_bundle(attestation, identity=identity, staging=True) == BEACON
    regex = SigstoreIdentity(
        issuer=GITHUB, subject_regex=r"https://github\.com/sigstore-conformance/.*"
    )
    assert verify_bundle(attestation, identity=regex, staging=True) == BEACON
    verified = verify_attestation(attestation, identities=[identity], staging=True)
    assert verified.statement.predicateType == "https://slsa.dev/provenance/v1"
    assert verified.signers == [BEACON]


def test_staging_bundle_fails_with_production_root() -> None:
    attestation = read_attestations(_staging_bundle())[0]
    root = shared_testdata("sigstore", "production_trusted_root.json")
    identity = SigstoreIdentity(issuer=GITHUB, subject=BEACON)
    with pytest.raises(VerificationError, match="trusted root"):
        verify_bundle(attestation, identity=identity, trusted_root=root)


def test_expired_root_fails(tmp_path: Path) -> None:
    """A root whose CAs and logs stopped being valid before the signing time fails."""
    root = json.loads(shared_testdata("sigstore", "staging_trusted_root.json").read_text())
    for group in ("certificateAuthorities", "timestampAuthorities"):
        for item in root.get(group, []):
            item["validFor"] = {"start": "2001-01-01T00:00:00Z", "end": "2002-01-01T00:00:00Z"}
    for group in ("tlogs", "ctlogs"):
        for item in root.get(group, []):
            item["publicKey"]["validFor"] = {
                "start": "2001-01-01T00:00:00Z",
                "end": "2002-01-01T00:00:00Z",
            }
    expired = tmp_path / "expired_root.json"
    expired.write_text(json.dumps(root))
    attestation = read_attestations(_staging_bundle())[0]
    with pytest.raises(VerificationError):
        verify_bundle(
            attestation,
            identity=SigstoreIdentity(issuer=GITHUB, subject=BEACON),
            trusted_root=expired,
        )


@pytest.mark.parametrize(
    "identity",
    [
        SigstoreIdentity(issuer=GITHUB, subject=BEACON + "x"),
        SigstoreIdentity(issuer="https://accounts.google.com", subject=BEACON),
        SigstoreIdentity(issuer=GITHUB, subject_regex="https://github.com/sigstore-conformance"),
    ],
)
def test_wrong_identity_fails(identity: SigstoreIdentity) -> None:
    attestation = read_attestations(_staging_bundle())[0]
    with pytest.raises(VerificationError, match=r"(identity|issuer)"):
        verify_bundle(attestation, identity=identity, staging=True)


def test_identity_needs_exactly_one_subject() -> None:
    with pytest.raises(InputError):
        SigstoreIdentity(issuer=GITHUB)
    with pytest.raises(InputError):
        SigstoreIdentity(issuer=GITHUB, subject="a", subject_regex="b")
    with pytest.raises(InputError):
        SigstoreIdentity(issuer="", subject="a")
    with pytest.raises(TypeError):
        SigstoreIdentity(GITHUB, "a")  # type: ignore[misc]


@pytest.mark.parametrize("name", ["v1.0.0-sigstore", "v0.3.1-sigstore"])
def test_oms_production_bundles(name: str) -> None:
    attestation = read_attestations(shared_testdata("oms", name, "model.sig"))[0]
    assert verify_bundle(attestation, identity=IBM) == "stefanb@us.ibm.com"
    with pytest.raises(VerificationError):
        verify_bundle(attestation, identity=IBM, staging=True)


def test_keyless_bundle_needs_identity_and_changed_payload_fails() -> None:
    path = shared_testdata("oms", "v1.0.0-sigstore", "model.sig")
    attestation = read_attestations(path)[0]
    with pytest.raises(VerificationError, match="--identity"):
        verify_attestation(attestation)
    raw = json.loads(path.read_bytes())
    import base64

    payload = base64.b64decode(raw["dsseEnvelope"]["payload"]).replace(b"signme-1", b"signme-X")
    raw["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    changed = parse_attestation(json.dumps(raw).encode(), source="changed.sig")
    with pytest.raises(VerificationError):
        verify_bundle(changed, identity=IBM)


def test_garbage_bundle_is_input_error() -> None:
    data = json.dumps(
        {
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"certificate": {"rawBytes": "AAAA"}},
            "dsseEnvelope": {"payload": "", "payloadType": "x", "signatures": []},
        }
    ).encode()
    attestation = parse_attestation(data, source="junk.sigstore.json")
    with pytest.raises(InputError, match=r"junk\.sigstore\.json"):
        verify_bundle(attestation, identity=IBM)
