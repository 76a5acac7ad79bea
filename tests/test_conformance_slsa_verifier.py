"""mlprov's VSAs against slsa-verifier's `verify-vsa` rules, each implemented as it states it.

slsa-verifier (verifiers/internal/vsa/verifier.go, following
https://slsa.dev/spec/v1.1/verification_summary#how-to-verify): 1. verify the envelope
signature with the given public key, skipping a signature whose keyid is neither empty
nor the expected key id (default `SHA256:` + unpadded base64 of sha256 of the key's DER
SubjectPublicKeyInfo; RSA as PKCS#1 v1.5 with SHA-256); 3. the predicateType is VSA v1;
2. every expected subject digest is in the VSA; 4. verifier.id is non-empty and equal;
5. resourceUri is non-empty and equal; 6. verificationResult is PASSED; 7. every expected
SLSA track level is met (a higher level implies lower ones) and every other expected
level is listed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from securesystemslib.signer import CryptoSigner

from conftest import run_cli
from mlprov.signing.dsse import sign_envelope
from mlprov.signing.keys import load_public_key, public_pem

VSA = "https://slsa.dev/verification_summary/v1"
VERIFIER = "https://gate.example.com/mlprov"


class Rejected(Exception):
    """slsa-verifier would reject the VSA; the message names the rule."""


def _default_key_id(public: Any) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def _verify_signature(public: Any, sig: bytes, data: bytes) -> None:
    # sigstore's LoadVerifier(public, crypto.SHA256)
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(sig, data, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(sig, data)
    else:
        raise Rejected("unsupported public key type")


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return base64.urlsafe_b64decode(text)


_SLSA_LEVEL = re.compile(r"^SLSA_([^_]+)_LEVEL_(.+)$")


def _slsa_levels(levels: list[str]) -> dict[str, int]:
    ladder: dict[str, int] = {}
    for level in levels:
        if not level.startswith("SLSA_"):
            continue
        parts = level.split("_", 3)
        if len(parts) != 4 or parts[2] != "LEVEL" or not parts[3].isdigit():
            raise Rejected(f"invalid SLSA level: {level}")
        ladder[parts[1]] = max(ladder.get(parts[1], 0), int(parts[3]))
    return ladder


def verify_vsa(
    envelope_bytes: bytes,
    *,
    public_key_pem: bytes,
    subject_digests: list[str],
    verifier_id: str,
    resource_uri: str,
    verified_levels: list[str],
    public_key_id: str | None = None,
) -> dict[str, Any]:
    """`slsa-verifier verify-vsa`, rule by rule; returns the VSA Statement or raises Rejected."""
    envelope = json.loads(envelope_bytes)
    public = serialization.load_pem_public_key(public_key_pem)
    key_id = public_key_id or _default_key_id(public)
    payload = _b64(envelope["payload"])
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    # 1. the envelope signature (go-securesystemslib's EnvelopeVerifier, threshold 1)
    verified = False
    for signature in envelope.get("signatures") or []:
        if signature.get("keyid") and signature["keyid"] != key_id:
            continue
        try:
            _verify_signature(public, _b64(signature["sig"]), pae)
            verified = True
        except InvalidSignature:
            continue
    if not verified:
        raise Rejected("no valid signature")
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        raise Rejected("payloadType is not in-toto's")
    statement = json.loads(payload)
    # 3. the predicate type, and the VSA as Go's json.Unmarshal reads it
    if statement.get("predicateType") != VSA:
        raise Rejected(f"expected predicate type {VSA}")
    predicate = statement["predicate"]
    datetime.fromisoformat(predicate["timeVerified"].replace("Z", "+00:00"))
    if not all(isinstance(level, str) for level in predicate.get("verifiedLevels") or []):
        raise Rejected("verifiedLevels is not a list of strings")
    # 2. subject digests
    if not subject_digests:
        raise Rejected("no subject digests provided")
    found: dict[str, set[str]] = {}
    for subject in statement.get("subject") or []:
        for algorithm, value in (subject.get("digest") or {}).items():
            found.setdefault(algorithm, set()).add(value)
    if not found:
        raise Rejected("no subject digests found in the VSA")
    for expected in subject_digests:
        algorithm, sep, value = expected.partition(":")
        if not sep:
            raise Rejected(f"expected digest {expected} is not <digest type>:<digest value>")
        if value not in found.get(algorithm, set()):
            raise Rejected(f"expected digest not found: {expected}")
    # 4. verifier id
    if not (predicate.get("verifier") or {}).get("id"):
        raise Rejected("no verifierID found in the VSA")
    if predicate["verifier"]["id"] != verifier_id:
        raise Rejected(f"verifier ID mismatch: wanted {verifier_id}")
    # 5. resource URI
    if not predicate.get("resourceUri"):
        raise Rejected("no resourceURI provided")
    if predicate["resourceUri"] != resource_uri:
        raise Rejected(
            f"resource URI mismatch: wanted {resource_uri}, got {predicate['resourceUri']}"
        )
    # 6. verification result
    if predicate.get("verificationResult") != "PASSED":
        raise Rejected("verification result is not Passed")
    # 7. verified levels
    got_levels = list(predicate.get("verifiedLevels") or [])
    wanted, got = _slsa_levels(verified_levels), _slsa_levels(got_levels)
    for track, minimum in wanted.items():
        if track not in got:
            raise Rejected(f"expected SLSA level not found: {track}")
        if got[track] < minimum:
            raise Rejected(f"expected SLSA level {track} to be at least {minimum}")
    others = {level for level in got_levels if not level.startswith("SLSA_")}
    for level in verified_levels:
        if not level.startswith("SLSA_") and level not in others:
            raise Rejected(f"expected verified level not found: {level}")
    return statement  # type: ignore[no-any-return]


# -- a release gate that writes VSAs ---------------------------------------------------


@dataclass
class Gate:
    root: Path
    model: Path
    layout: Path
    att: Path
    functionary: CryptoSigner

    def check(self, key: Path, *extra: str | Path, out: str = "model.vsa.json") -> Any:
        return run_cli(
            "policy", "check", self.layout, "--attestations", self.att,
            "--subject", self.model, "--vsa-out", self.root / out, "--vsa-key", key,
            "--verifier-id", VERIFIER, *extra,
        )  # fmt: skip

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.model.read_bytes()).hexdigest()


def _layout(path: Path, functionary: CryptoSigner, **extra: Any) -> Path:
    doc = {
        "expires": "2099-01-01T00:00:00Z",
        "functionaries": {"trainer": {"publicKey": public_pem(functionary.public_key).decode()}},
        "steps": [
            {
                "name": "train",
                "expectedMaterials": ["ALLOW *"],
                "expectedProducts": ["CREATE model.bin", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "functionaries": ["trainer"],
                    }
                ],
            }
        ],
        **extra,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights" * 100)
    functionary = CryptoSigner.generate_ed25519()
    att = tmp_path / "att"
    att.mkdir()
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [
            {
                "name": "model.bin",
                "digest": {"sha256": hashlib.sha256(model.read_bytes()).hexdigest()},
            }
        ],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://mlprov.dev/buildtypes/training/v1",
                "externalParameters": {"step": "train"},
                "resolvedDependencies": [{"name": "data.csv", "digest": {"sha256": "11" * 32}}],
            },
            "runDetails": {"builder": {"id": "https://ci.example.com"}},
        },
    }
    payload = json.dumps(statement).encode()
    (att / "train.intoto.json").write_bytes(sign_envelope(payload, [functionary]).to_json())
    return Gate(tmp_path, model, _layout(tmp_path / "layout.yml", functionary), att, functionary)


def _keygen(root: Path, key_type: str, *extra: str) -> tuple[Path, Path]:
    name = root / f"gate-{key_type}"
    assert run_cli("keygen", "--type", key_type, "--out", name, "--no-password", *extra).code == 0
    return Path(f"{name}.key"), Path(f"{name}.pub")


def _args(gate: Gate, pub: Path, **over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "public_key_pem": pub.read_bytes(),
        "subject_digests": [gate.digest],
        "verifier_id": VERIFIER,
        "resource_uri": gate.model.absolute().as_uri(),
        "verified_levels": ["SLSA_BUILD_LEVEL_1"],
    }
    args.update(over)
    return args


@pytest.mark.parametrize("key_type", ["ecdsa-p256", "ed25519", "rsa-3072"])
def test_slsa_verifier_accepts_mlprovs_vsa_without_extra_flags(gate: Gate, key_type: str) -> None:
    key, pub = _keygen(gate.root, key_type)
    result = gate.check(key)
    assert result.code == 0, result
    vsa = (gate.root / "model.vsa.json").read_bytes()
    statement = verify_vsa(vsa, **_args(gate, pub))
    assert json.loads(vsa)["signatures"][0]["keyid"].startswith("SHA256:")
    # mlprov's own verify accepts it too
    assert run_cli("verify", gate.root / "model.vsa.json", "--key", pub).code == 0
    predicate = statement["predicate"]
    assert predicate["policy"]["uri"] == gate.layout.absolute().as_uri()
    for item in predicate["inputAttestations"]:
        assert item["uri"].startswith("file:///")
        path = Path(item["uri"].removeprefix("file://"))
        assert item["digest"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_rule_1_signature_key_and_keyid(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "ecdsa-p256")
    assert gate.check(key).code == 0
    path = gate.root / "model.vsa.json"
    vsa = json.loads(path.read_bytes())
    _, other = _keygen(gate.root, "ed25519")
    with pytest.raises(Rejected, match="no valid signature"):
        verify_vsa(path.read_bytes(), **_args(gate, other))
    # mlprov's securesystemslib keyid (what it wrote before) is skipped by slsa-verifier
    hex_keyid = load_public_key(pub).keyid
    vsa["signatures"][0]["keyid"] = hex_keyid
    with pytest.raises(Rejected, match="no valid signature"):
        verify_vsa(json.dumps(vsa).encode(), **_args(gate, pub))
    verify_vsa(json.dumps(vsa).encode(), **_args(gate, pub), public_key_id=hex_keyid)
    vsa["signatures"][0]["keyid"] = ""  # no keyid: tried with any key
    verify_vsa(json.dumps(vsa).encode(), **_args(gate, pub))
    tampered = json.loads(path.read_bytes())
    payload = json.loads(base64.b64decode(tampered["payload"]))
    payload["predicate"]["verificationResult"] = "PASSED"
    payload["subject"][0]["digest"]["sha256"] = "00" * 32
    tampered["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(Rejected, match="no valid signature"):
        verify_vsa(json.dumps(tampered).encode(), **_args(gate, pub))


def test_rule_1_rsa_is_pkcs1v15_by_default_and_pss_on_request(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "rsa-3072", "--scheme", "rsa-pkcs1v15-sha256")
    assert gate.check(key).code == 0
    verify_vsa((gate.root / "model.vsa.json").read_bytes(), **_args(gate, pub))
    result = gate.check(key, "--vsa-scheme", "rsassa-pss-sha256", out="pss.vsa.json")
    assert result.code == 0, result
    with pytest.raises(Rejected, match="no valid signature"):
        verify_vsa((gate.root / "pss.vsa.json").read_bytes(), **_args(gate, pub))
    # mlprov verifies an RSA key's signatures in either scheme, counted as one key
    for name in ("model.vsa.json", "pss.vsa.json"):
        assert run_cli("verify", gate.root / name, "--key", pub).code == 0
    ec_key, _ = _keygen(gate.root, "ecdsa-p256")
    refused = gate.check(ec_key, "--vsa-scheme", "rsa-pkcs1v15-sha256", out="x.json")
    assert refused.code == 2 and "--vsa-scheme is for an RSA --vsa-key" in refused.err


def test_rule_2_subject_digests(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "ed25519")
    assert gate.check(key).code == 0
    vsa = (gate.root / "model.vsa.json").read_bytes()
    with pytest.raises(Rejected, match="expected digest not found"):
        verify_vsa(vsa, **_args(gate, pub, subject_digests=["sha256:" + "00" * 32]))
    with pytest.raises(Rejected, match="no subject digests provided"):
        verify_vsa(vsa, **_args(gate, pub, subject_digests=[]))
    with pytest.raises(Rejected, match="expected digest not found"):
        verify_vsa(
            vsa, **_args(gate, pub, subject_digests=[gate.digest.replace("sha256", "sha512")])
        )


def test_rule_3_predicate_type(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "ed25519")
    provenance = next(gate.att.iterdir()).read_bytes()
    statement = base64.b64decode(json.loads(provenance)["payload"])
    (gate.root / "s.json").write_bytes(statement)
    assert (
        run_cli("sign", gate.root / "s.json", "--key", key, "--out", gate.root / "p.json").code == 0
    )
    hex_keyid = load_public_key(pub).keyid  # what `mlprov sign` writes
    with pytest.raises(Rejected, match="expected predicate type"):
        verify_vsa((gate.root / "p.json").read_bytes(), **_args(gate, pub), public_key_id=hex_keyid)


def test_rule_4_verifier_id(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "ed25519")
    assert gate.check(key).code == 0
    with pytest.raises(Rejected, match="verifier ID mismatch"):
        verify_vsa(
            (gate.root / "model.vsa.json").read_bytes(),
            **_args(gate, pub, verifier_id="https://other.example.com"),
        )


def test_rule_5_resource_uri(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    key, pub = _keygen(gate.root, "ed25519")
    monkeypatch.chdir(gate.root)
    relative = Path("model.bin")
    result = run_cli(
        "policy", "check", gate.layout, "--attestations", gate.att, "--subject", relative,
        "--vsa-out", "rel.vsa.json", "--vsa-key", key, "--verifier-id", VERIFIER,
    )  # fmt: skip
    assert result.code == 0, result
    vsa = (gate.root / "rel.vsa.json").read_bytes()
    statement = verify_vsa(vsa, **_args(gate, pub))  # the file:// URI of the absolute path
    assert statement["predicate"]["resourceUri"] == (gate.root / "model.bin").as_uri()
    with pytest.raises(Rejected, match="resource URI mismatch"):
        verify_vsa(vsa, **_args(gate, pub, resource_uri="model.bin"))
    purl = "pkg:huggingface/org/model@abc123"
    assert gate.check(key, "--resource-uri", purl, out="purl.vsa.json").code == 0
    verify_vsa((gate.root / "purl.vsa.json").read_bytes(), **_args(gate, pub, resource_uri=purl))
    for flag in ("--resource-uri", "--policy-uri"):
        bad = gate.check(key, flag, "model.bin", out="bad.vsa.json")
        assert bad.code == 2
        assert f"{flag} 'model.bin' is not an absolute URI" in bad.err
        assert not (gate.root / "bad.vsa.json").exists()


def test_rule_6_verification_result(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "ed25519")
    _layout(gate.layout, CryptoSigner.generate_ed25519())  # the trainer is not trusted now
    result = gate.check(key)
    assert result.code == 1
    vsa = (gate.root / "model.vsa.json").read_bytes()
    with pytest.raises(Rejected, match="verification result is not Passed"):
        verify_vsa(vsa, **_args(gate, pub))
    predicate = json.loads(base64.b64decode(json.loads(vsa)["payload"]))["predicate"]
    assert predicate["verifiedLevels"] == ["FAILED"]


def test_rule_7_verified_levels(gate: Gate) -> None:
    key, pub = _keygen(gate.root, "ed25519")
    _layout(gate.layout, gate.functionary, verifiedLevels=["SLSA_BUILD_LEVEL_2", "ML_EVAL_PASSED"])
    assert gate.check(key).code == 0
    vsa = (gate.root / "model.vsa.json").read_bytes()
    for levels in (["SLSA_BUILD_LEVEL_1"], ["SLSA_BUILD_LEVEL_2", "ML_EVAL_PASSED"], []):
        verify_vsa(vsa, **_args(gate, pub, verified_levels=levels))
    for levels, rule in (
        (["SLSA_BUILD_LEVEL_3"], "to be at least 3"),
        (["SLSA_SOURCE_LEVEL_1"], "expected SLSA level not found: SOURCE"),
        (["ML_OTHER"], "expected verified level not found"),
    ):
        with pytest.raises(Rejected, match=rule):
            verify_vsa(vsa, **_args(gate, pub, verified_levels=levels))


@pytest.mark.parametrize(
    ("levels", "message"),
    [
        (["SLSA_BUILD_LEVEL_1", "SLSA_BUILD_LEVEL_2"], "at most one level per SLSA track"),
        (["SLSA_BUILDL3"], "is not SLSA_<TRACK>_LEVEL_<n>"),
        (["SLSA_BUILD_LEVEL_x"], "is not SLSA_<TRACK>_LEVEL_<n>"),
        (["FAILED"], "FAILED is what a failed check records"),
    ],
)
def test_layout_levels_that_slsa_verifier_would_refuse_are_layout_errors(
    gate: Gate, levels: list[str], message: str
) -> None:
    key, _ = _keygen(gate.root, "ed25519")
    _layout(gate.layout, gate.functionary, verifiedLevels=levels)
    result = gate.check(key)
    assert result.code == 2
    assert message in result.err


def test_several_subjects_need_a_resource_uri(gate: Gate) -> None:
    key, _ = _keygen(gate.root, "ed25519")
    other = gate.root / "other.bin"
    other.write_bytes(b"x")
    result = gate.check(key, "--subject", other)
    assert result.code == 2
    assert "give --resource-uri" in result.err


def test_keygen_scheme_is_for_rsa_and_prints_the_slsa_verifier_keyid(tmp_path: Path) -> None:
    refused = run_cli(
        "keygen", "--type", "ecdsa-p256", "--scheme", "rsa-pkcs1v15-sha256",
        "--out", tmp_path / "x", "--no-password",
    )  # fmt: skip
    assert refused.code == 2 and "--scheme is for RSA keys" in refused.err
    assert not (tmp_path / "x.key").exists()
    made = run_cli(
        "keygen", "--type", "rsa-3072", "--scheme", "rsa-pkcs1v15-sha256",
        "--out", tmp_path / "g", "--no-password", "--json",
    )  # fmt: skip
    assert made.code == 0, made
    info = json.loads(made.out)
    assert info["scheme"] == "rsa-pkcs1v15-sha256"
    public = serialization.load_pem_public_key((tmp_path / "g.pub").read_bytes())
    assert info["spki_keyid"] == _default_key_id(public)
