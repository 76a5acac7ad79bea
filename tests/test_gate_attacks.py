"""The release gate attacked as an attacker would, through the CLI: each test performs one
attack from issue #10 (new keys, re-signed statements, replayed claims, swapped key files,
a poisoned cache, forged certificate chains) and asserts that the gate refuses it: exit 1
with the rule and artifact named, and no PASSED VSA written.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli

VERIFIER = "https://ci.example.com/release-gate"


@dataclass
class Pipeline:
    """A small pipeline recorded and signed through the CLI, as the demo does."""

    root: Path
    att: Path
    layout: Path

    def key(self, name: str) -> Path:
        return self.root / f"{name}.key"

    def pub(self, name: str) -> Path:
        return self.root / f"{name}.pub"

    @property
    def model(self) -> Path:
        return self.root / "lr-model"

    def check(self, *args: str | Path, layout: Path | None = None) -> Any:
        return run_cli("policy", "check", layout or self.layout, *args)

    def check_vsa(self, *args: str | Path, layout: Path | None = None) -> tuple[Any, Path]:
        vsa = self.root / f"vsa-{len(list(self.root.glob('vsa-*')))}.intoto.json"
        result = self.check(
            *args,
            "--vsa-out", vsa, "--vsa-key", self.key("gate"), "--verifier-id", VERIFIER,
            layout=layout,
        )  # fmt: skip
        return result, vsa


def ok(result: Any) -> Any:
    assert result.code == 0, result
    return result


def vsa_verdict(path: Path) -> str | None:
    """The verificationResult of the VSA at `path`, or None when none was written."""
    if not path.exists():
        return None
    envelope = json.loads(path.read_bytes())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return str(statement["predicate"]["verificationResult"])


def payload(envelope_path: Path) -> dict[str, Any]:
    doc = json.loads(envelope_path.read_bytes())
    return dict(json.loads(base64.b64decode(doc["payload"])))


def resign(statement: dict[str, Any], key: Path, out: Path) -> None:
    """Sign a (maybe edited) Statement with `key`, as an attacker with that key would."""
    plain = out.with_suffix(".statement.json")
    plain.write_text(json.dumps(statement))
    ok(run_cli("sign", plain, "--key", key, "--out", out, "--force"))
    plain.unlink()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def attest_train(p: Pipeline, model: Path, out: Path, *, dataset: str, key: str) -> None:
    ok(
        run_cli(
            "attest", "train", "--model", model, "--dataset", dataset, "--no-git",
            "--no-packages", "--no-manifests", "--sign", p.key(key), "--out", out, "--force",
        )
    )  # fmt: skip


def attest_eval(p: Pipeline, model: Path, out: Path, *, accuracy: float, key: str) -> None:
    metrics = out.parent / f"{out.name}.metrics.json"
    metrics.write_text(json.dumps({"accuracy": accuracy}))
    result = run_cli(
        "attest", "eval", "--model", model, "--dataset", f"test={p.root / 'data' / 'test'}",
        "--metrics", metrics, "--threshold", "accuracy>=0.8", "--sign", p.key(key),
        "--out", out, "--force",
    )  # fmt: skip
    assert result.code in (0, 1), result
    metrics.unlink()


@pytest.fixture()
def pipeline(tmp_path: Path) -> Pipeline:
    """keys → dataset (mlprov run) → train → eval, all signed; the starter layout passes."""
    root = tmp_path
    for name in ("data", "trainer", "gate"):
        ok(run_cli("keygen", "--out", root / name, "--no-password"))
    att = root / "att"
    att.mkdir()
    write_tree(root / "data" / "train", {"part-0.csv": b"x,y\n1,0\n2,1\n"})
    write_tree(root / "data" / "test", {"part-0.csv": b"x,y\n3,1\n"})
    ok(
        run_cli(
            "run", "--step", "dataset", "--products", root / "data" / "train",
            root / "data" / "test", "--no-git", "--no-packages", "--sign", root / "data.key",
            "--out", att / "dataset.intoto.json", "--", sys.executable, "-c", "pass",
        )
    )  # fmt: skip
    write_tree(root / "lr-model", {"weights.npy": b"\x93NUMPY good weights", "config.json": b"{}"})
    p = Pipeline(root, att, root / "layout.yaml")
    attest_train(p, p.model, att / "train.intoto.json", dataset=f"train={root / 'data/train'}",
                 key="trainer")  # fmt: skip
    attest_eval(p, p.model, att / "eval.intoto.json", accuracy=0.93, key="trainer")
    ok(
        run_cli(
            "policy", "init", "--out", p.layout, "--key", f"dataset={p.pub('data')}",
            "--key", f"train={p.pub('trainer')}", "--key", f"eval={p.pub('trainer')}",
        )
    )  # fmt: skip
    result, vsa = p.check_vsa("--attestations", att, "--subject", p.model)
    ok(result)
    assert vsa_verdict(vsa) == "PASSED"
    return p


def assert_refused(result: Any, vsa: Path | None, *needles: str) -> None:
    """Exit 1, the reason named, and no PASSED VSA."""
    assert result.code == 1, result
    text = result.out + result.err
    for needle in needles:
        assert needle in text, (needle, result)
    assert "PASSED:" not in result.out, result
    if vsa is not None:
        assert vsa_verdict(vsa) != "PASSED"


# 1. A signed layout must bind its functionaries' key material, not a path to it.


def _path_layout(p: Pipeline) -> Path:
    """The starter layout with its functionaries as key *files* (as older mlprov wrote)."""
    doc = _yaml(p.layout)
    for name in doc["functionaries"]:
        role = "data" if name.startswith("data") else "trainer"
        doc["functionaries"][name] = {"publicKeyPath": f"{role}.pub"}
    path = p.root / "layout-paths.yaml"
    path.write_text(json.dumps(doc))
    return path


def _yaml(path: Path) -> dict[str, Any]:
    import yaml

    return dict(yaml.safe_load(path.read_bytes()))


def _swap_trainer_key(p: Pipeline) -> None:
    """Replace trainer.pub with a new key and re-sign train and eval with it."""
    ok(run_cli("keygen", "--out", p.root / "evil", "--no-password"))
    shutil.copy(p.pub("evil"), p.pub("trainer"))
    for step in ("train", "eval"):
        envelope = p.att / f"{step}.intoto.json"
        resign(payload(envelope), p.key("evil"), envelope)


def test_signed_layout_binds_key_files_it_names(pipeline: Pipeline) -> None:
    p = pipeline
    layout = _path_layout(p)
    signed = p.root / "layout.signed.json"
    ok(run_cli("policy", "sign", layout, "--key", p.key("gate"), "--out", signed))
    ok(p.check("--attestations", p.att, "--layout-key", p.pub("gate"), layout=signed))
    _swap_trainer_key(p)
    result, vsa = p.check_vsa(
        "--attestations", p.att, "--subject", p.model, "--layout-key", p.pub("gate"),
        layout=signed,
    )  # fmt: skip
    assert_refused(result, vsa, "threshold", "step train")


def test_signed_layout_with_an_unbound_key_file_is_refused(pipeline: Pipeline) -> None:
    """A layout signed by other means (not `policy sign`) that still names key files."""
    from mlprov.policy.loader import LAYOUT_PAYLOAD_TYPE
    from mlprov.signing.dsse import sign_envelope
    from mlprov.signing.keys import load_signer

    p = pipeline
    layout = _path_layout(p)
    envelope = sign_envelope(
        layout.read_bytes(), [load_signer(str(p.key("gate")))], payload_type=LAYOUT_PAYLOAD_TYPE
    )
    signed = p.root / "hand.signed.json"
    signed.write_bytes(envelope.to_json())
    result, vsa = p.check_vsa(
        "--attestations", p.att, "--subject", p.model, "--layout-key", p.pub("gate"),
        layout=signed,
    )  # fmt: skip
    assert_refused(result, vsa, "publicKeyPath", "not covered by the layout's signature")


def test_policy_init_embeds_the_keys(pipeline: Pipeline) -> None:
    doc = _yaml(pipeline.layout)
    for spec in doc["functionaries"].values():
        assert "publicKeyPath" not in spec
        assert spec["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    # Swapping the key files after init changes nothing: the layout holds the keys.
    _swap_trainer_key(pipeline)
    result, vsa = pipeline.check_vsa("--attestations", pipeline.att, "--subject", pipeline.model)
    assert_refused(result, vsa, "threshold")


# 2. Cross-step rules see only the claims that counted.


def test_replayed_uncounted_claim_does_not_satisfy_match(pipeline: Pipeline) -> None:
    p = pipeline
    # Model A: an old build recorded by `mlprov run` (buildType run: not a training run),
    # and a good evaluation of it.
    old = p.root / "old"
    write_tree(old / "lr-model", {"weights.npy": b"\x93NUMPY model A", "config.json": b"{}"})
    ok(
        run_cli(
            "run", "--step", "train", "--products", old / "lr-model", "--no-git",
            "--no-packages", "--sign", p.key("trainer"), "--out", p.att / "train-a.intoto.json",
            "--", sys.executable, "-c", "pass",
        )
    )  # fmt: skip
    attest_eval(p, old / "lr-model", p.att / "eval-a.intoto.json", accuracy=0.99, key="trainer")
    # Model B: properly trained, but its evaluation failed.
    new = p.root / "new"
    write_tree(new / "lr-model", {"weights.npy": b"\x93NUMPY model B", "config.json": b"{}"})
    attest_train(p, new / "lr-model", p.att / "train.intoto.json",
                 dataset=f"train={p.root / 'data/train'}", key="trainer")  # fmt: skip
    (p.att / "eval.intoto.json").unlink()
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", new / "lr-model")
    assert_refused(result, vsa, "step eval", "MATCH lr-model WITH products FROM train")


def test_match_sees_only_counted_claims_of_a_failed_step(pipeline: Pipeline) -> None:
    """A train step whose only claim fails gives MATCH nothing to match."""
    p = pipeline
    statement = payload(p.att / "train.intoto.json")
    statement["predicate"]["buildDefinition"]["buildType"] = "https://example.com/other/v1"
    resign(statement, p.key("trainer"), p.att / "train.intoto.json")
    result = p.check("--attestations", p.att, "--subject", p.model)
    assert result.code == 1
    assert "step eval" in result.out and "FAIL" in result.out
    assert "no counted claims of step train" in result.out, result.out


# 3. A layout must tie the released subject to a product of a counted step.


def test_layout_without_subjects_does_not_pass_any_artifact(pipeline: Pipeline) -> None:
    p = pipeline
    doc = _yaml(p.layout)
    del doc["subjects"]
    nosubj = p.root / "nosubj.yaml"
    nosubj.write_text(json.dumps(doc))
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", "/etc/passwd", layout=nosubj)
    assert_refused(result, vsa, "passwd", "not a product of a counted claim")
    # The real model is a product of the train step: that still passes.
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model, layout=nosubj)
    ok(result)
    assert vsa_verdict(vsa) == "PASSED"
    lint = run_cli("policy", "lint", nosubj)
    assert lint.code == 0
    assert "warning" in lint.out and "subjects" in lint.out


# 4. One key written two ways is one signer.


def _ec_key_two_ways(root: Path) -> tuple[Path, Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    key = root / "one.key"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    normal = root / "one.pub"
    normal.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    # The same public key with a compressed point: SEQUENCE { AlgorithmIdentifier,
    # BIT STRING (0 unused bits, 02|03 || x) }, re-using the AlgorithmIdentifier.
    normal_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    algorithm = normal_der[2 : 4 + normal_der[3]]
    point = private.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    body = algorithm + b"\x03" + bytes([len(point) + 1]) + b"\x00" + point
    der = b"\x30" + bytes([len(body)]) + body
    compressed = root / "one-compressed.pub"
    compressed.write_bytes(
        b"-----BEGIN PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END PUBLIC KEY-----\n"
    )
    return key, normal, compressed


def _duplicate_signature(envelope_path: Path) -> None:
    doc = json.loads(envelope_path.read_bytes())
    doc["signatures"] = doc["signatures"] * 2
    envelope_path.write_text(json.dumps(doc))


def test_one_ecdsa_key_in_two_encodings_is_one_signer(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key, normal, compressed = _ec_key_two_ways(tmp_path)
    assert normal.read_bytes() != compressed.read_bytes()
    assert load_pem_public_key(compressed.read_bytes()) == load_pem_public_key(normal.read_bytes())
    statement = tmp_path / "s.json"
    statement.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "m", "digest": {"sha256": "ab" * 32}}],
                "predicateType": "https://example.com/p/v1",
                "predicate": {},
            }
        )
    )
    envelope = tmp_path / "s.intoto.json"
    ok(run_cli("sign", statement, "--key", key, "--out", envelope))
    _duplicate_signature(envelope)
    result = run_cli("verify", envelope, "--key", normal, "--key", compressed, "--threshold", "2")
    assert result.code == 1, result
    assert "same key" in result.err or "distinct" in result.err, result


def test_one_ed25519_key_in_two_hex_cases_is_one_functionary(pipeline: Pipeline) -> None:
    """A layout with threshold 2 whose two functionaries are one key (hex lower/upper)."""
    from securesystemslib.signer import CryptoSigner

    p = pipeline
    signer = CryptoSigner.generate_ed25519()
    public = signer.public_key.keyval["public"]
    doc = _yaml(p.layout)
    doc["functionaries"]["twin-a"] = {
        "keyType": "ed25519", "scheme": "ed25519", "keyVal": {"public": public.lower()},
        "keyID": signer.public_key.keyid,
    }  # fmt: skip
    doc["functionaries"]["twin-b"] = {
        "keyType": "ed25519", "scheme": "ed25519", "keyVal": {"public": public.upper()},
        "keyID": signer.public_key.keyid,
    }  # fmt: skip
    train = next(s for s in doc["steps"] if s["name"] == "train")
    train["expectedPredicates"][0]["functionaries"] = ["twin-a", "twin-b"]
    train["expectedPredicates"][0]["threshold"] = 2
    twins = p.root / "twins.yaml"
    twins.write_text(json.dumps(doc))
    from mlprov.signing.dsse import sign_envelope

    envelope = p.att / "train.intoto.json"
    signed = sign_envelope(json.dumps(payload(envelope)).encode(), [signer])
    signed.signatures = [signed.signatures[0]] * 2
    envelope.write_bytes(signed.to_json())
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model, layout=twins)
    assert_refused(result, vsa, "threshold 2", "step train")


def test_same_owner_key_twice_is_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    p = pipeline
    signed = p.root / "layout.signed.json"
    ok(run_cli("policy", "sign", p.layout, "--key", p.key("gate"), "--out", signed))
    copy = tmp_path / "gate-copy.pub"
    copy.write_bytes(p.pub("gate").read_bytes().replace(b"\n", b"\r\n"))
    result = p.check(
        "--attestations", p.att, "--layout-key", p.pub("gate"), "--layout-key", copy,
        layout=signed,
    )  # fmt: skip
    assert result.code == 2, result
    assert "same key" in result.err


# 5. Verification never trusts the writable digest cache.


def _poison_cache(model: Path, name: str, digest: str) -> None:
    """Write a cache record that gives `model/name`'s current stat the digest `digest`."""
    from mlprov.digest import DigestCache

    path = model / name
    st = os.lstat(path)
    parent = os.stat(model)
    cache = DigestCache()
    session = cache.session("sha256")
    when = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns - 10**10, st.st_ctime_ns - 10**10)
    session.put((parent.st_dev, parent.st_ino), str(path), name, when, digest)
    session.flush()
    # The poisoned record matches the file's stat as it is now.
    records = cache.load("sha256", [(parent.st_dev, parent.st_ino)])
    record = records[(parent.st_dev, parent.st_ino)]
    record[name] = (*(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns), 0, -1,
                    bytes.fromhex(digest))  # fmt: skip
    cache.save("sha256", {(parent.st_dev, parent.st_ino): record})
    cache.close()


def test_poisoned_cache_does_not_pass_a_tampered_model(pipeline: Pipeline) -> None:
    p = pipeline
    sig = p.root / "model.sig"
    ok(run_cli("model", "sign", p.model, "--key", p.key("trainer"), "--out", sig))
    weights = p.model / "weights.npy"
    good = hashlib.sha256(weights.read_bytes()).hexdigest()
    weights.write_bytes(b"\x93NUMPY evil weights")
    _poison_cache(p.model, "weights.npy", good)
    # The poisoned record is what a cached digest would now say:
    assert run_cli("digest", p.model, "--json").code == 0
    result = run_cli("model", "verify", p.model, "--signature", sig, "--key", p.pub("trainer"))
    assert result.code == 1, result
    assert "weights.npy" in result.err
    # --trust-cache opts in (documented as unsafe when others can write the cache).
    trusted = run_cli(
        "model", "verify", p.model, "--signature", sig, "--key", p.pub("trainer"),
        "--trust-cache",
    )  # fmt: skip
    assert trusted.code == 0, trusted
    result = run_cli(
        "verify", p.att / "train.intoto.json", "--key", p.pub("trainer"), "--subject-path", p.model
    )
    assert result.code == 1, result
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model)
    assert_refused(result, vsa, "lr-model")


# 6. A file never passes for a directory.


def _concatenated_digests(tree: Path) -> bytes:
    from mlprov.digest import digest_tree

    manifest = digest_tree(tree)
    return b"".join(bytes.fromhex(f.digest) for f in manifest.files)


def test_file_of_raw_digests_does_not_pass_for_the_tree(pipeline: Pipeline) -> None:
    p = pipeline
    from mlprov.digest import digest_tree

    fake = p.root / "fake" / "lr-model"
    fake.parent.mkdir()
    fake.write_bytes(_concatenated_digests(p.model))
    assert hashlib.sha256(fake.read_bytes()).hexdigest() == digest_tree(p.model).digest
    forged = p.att / "train.intoto.json"
    attest_train(p, fake, forged, dataset=f"train={p.root / 'data/train'}", key="trainer")
    result = run_cli("verify", forged, "--key", p.pub("trainer"), "--subject-path", p.model)
    assert result.code == 1, result
    assert "directory" in result.err or "tree" in result.err, result
    ok(run_cli("verify", forged, "--key", p.pub("trainer"), "--subject-path", fake))
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model)
    assert_refused(result, vsa, "lr-model")


def test_subjects_say_whether_they_are_files_or_trees(pipeline: Pipeline) -> None:
    statement = payload(pipeline.att / "train.intoto.json")
    [subject] = statement["subject"]
    assert subject["annotations"]["digestOf"] == "tree"
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {d["annotations"]["digestOf"] for d in deps if d["name"] == "train"} == {"tree"}


# 7. Certificate chains are checked by a maintained path builder.


@dataclass
class Ca:
    key: Any
    cert: Any


def _name(cn: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    issuer: Ca | None,
    *,
    ca: bool,
    eku: Any = None,
    days: tuple[int, int] = (-30, 365),
) -> Ca:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.cert.subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=days[0]))
        .not_valid_after(now + datetime.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Ca(key, cert)


def _key_usage(ca: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _pem(path: Path, *certs: Any) -> Path:
    from cryptography.hazmat.primitives import serialization

    path.write_bytes(b"".join(c.cert.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def _sign_with_certificate(model: Path, leaf: Ca, chain: list[Ca], root: Path) -> Path:
    """An OMS certificate bundle made by OpenSSF's own model_signing."""
    from cryptography.hazmat.primitives import serialization

    pytest.importorskip("model_signing")
    key = root / "leaf.key"
    key.write_bytes(
        leaf.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sig = root / f"model-{len(list(root.glob('model-*.sig')))}.sig"
    code = (
        "import sys, model_signing; "
        "model_signing.signing.Config().use_certificate_signer("
        "private_key=sys.argv[1], signing_certificate=sys.argv[2], "
        "certificate_chain=sys.argv[3:4]).sign(sys.argv[4], sys.argv[5])"
    )
    cert = _pem(root / "leaf.pem", leaf)
    bundle_chain = _pem(root / "bundle-chain.pem", *chain)
    subprocess.run(
        [sys.executable, "-c", code, str(key), str(cert), str(bundle_chain), str(model), str(sig)],
        check=True,
        capture_output=True,
    )
    return sig


CODE_SIGNING = "1.3.6.1.5.5.7.3.3"


def _eku(*oids: str) -> list[Any]:
    from cryptography.x509 import ObjectIdentifier

    return [ObjectIdentifier(o) for o in oids]


@pytest.fixture()
def pki(tmp_path: Path) -> dict[str, Any]:
    root = _cert("root-ca", None, ca=True)
    intermediate = _cert("intermediate-ca", root, ca=True)
    leaf = _cert("signer", intermediate, ca=False, eku=_eku(CODE_SIGNING))
    model = write_tree(tmp_path / "model", {"w.bin": b"weights", "c.json": b"{}"})
    return {"root": root, "int": intermediate, "leaf": leaf, "model": model, "dir": tmp_path}


def _verify_chain(pki: dict[str, Any], sig: Path, *anchors: Ca) -> Any:
    chain = _pem(pki["dir"] / f"anchors-{len(list(pki['dir'].glob('anchors-*')))}.pem", *anchors)
    return run_cli(
        "model", "verify", pki["model"], "--signature", sig, "--certificate-chain", chain
    )


def test_certificate_chain_to_the_root_passes(pki: dict[str, Any]) -> None:
    sig = _sign_with_certificate(pki["model"], pki["leaf"], [pki["int"]], pki["dir"])
    ok(_verify_chain(pki, sig, pki["root"]))
    ok(_verify_chain(pki, sig, pki["root"], pki["int"]))


def test_intermediate_or_leaf_given_as_anchor_is_refused(pki: dict[str, Any]) -> None:
    sig = _sign_with_certificate(pki["model"], pki["leaf"], [pki["int"]], pki["dir"])
    for anchor in (pki["int"], pki["leaf"]):
        result = _verify_chain(pki, sig, anchor)
        assert result.code == 1, result
        assert "self-signed root" in result.err, result


def test_evil_ca_is_refused(pki: dict[str, Any]) -> None:
    evil_root = _cert("root-ca", None, ca=True)  # same name, another key
    evil_int = _cert("intermediate-ca", evil_root, ca=True)
    evil_leaf = _cert("signer", evil_int, ca=False, eku=_eku(CODE_SIGNING))
    sig = _sign_with_certificate(pki["model"], evil_leaf, [evil_int], pki["dir"])
    result = _verify_chain(pki, sig, pki["root"])
    assert result.code == 1, result
    assert "chain" in result.err


def test_expired_leaf_is_refused(pki: dict[str, Any]) -> None:
    leaf = _cert("signer", pki["int"], ca=False, eku=_eku(CODE_SIGNING), days=(-20, -1))
    sig = _sign_with_certificate(pki["model"], leaf, [pki["int"]], pki["dir"])
    result = _verify_chain(pki, sig, pki["root"])
    assert result.code == 1, result
    assert "expired" in result.err or "validity" in result.err, result


def test_leaf_without_code_signing_eku_is_refused(pki: dict[str, Any]) -> None:
    server_auth = "1.3.6.1.5.5.7.3.1"
    leaf = _cert("signer", pki["int"], ca=False, eku=_eku(server_auth))
    sig = _sign_with_certificate(pki["model"], leaf, [pki["int"]], pki["dir"])
    result = _verify_chain(pki, sig, pki["root"])
    assert result.code == 1, result
    assert "code signing" in result.err, result


# 8. The starter layout refuses failed runs and training on the test split.


def test_starter_layout_refuses_a_failed_dataset_run(pipeline: Pipeline) -> None:
    p = pipeline
    result = run_cli(
        "run", "--step", "dataset", "--products", p.root / "data" / "train",
        p.root / "data" / "test", "--no-git", "--no-packages", "--sign", p.key("data"),
        "--out", p.att / "dataset.intoto.json", "--force", "--", "sh", "-c", "exit 1",
    )  # fmt: skip
    assert result.code == 1, result
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model)
    assert_refused(result, vsa, "step dataset", "succeeded")


def test_starter_layout_refuses_training_on_the_test_split_by_any_name(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    attest_train(p, p.model, p.att / "train.intoto.json",
                 dataset=f"holdout={p.root / 'data/test'}", key="trainer")  # fmt: skip
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model)
    assert_refused(result, vsa, "step train", "holdout")


# 9. An unsigned layout is never silent.


def test_unsigned_layout_is_a_warning_and_recorded_in_the_vsa(pipeline: Pipeline) -> None:
    p = pipeline
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", p.model)
    ok(result)
    assert "warn  layout signature" in result.out
    summary = result.out.strip().splitlines()[-2]
    assert "1 warning(s)" in summary and "layout signature not checked" in summary, summary
    statement = json.loads(base64.b64decode(json.loads(vsa.read_bytes())["payload"]))
    annotations = statement["predicate"]["policy"]["annotations"]
    assert annotations["mlprov_layoutSignature"] == "not checked"
    result = p.check("--attestations", p.att, "--subject", p.model, "--require-signed-layout")
    assert result.code == 2 and "--layout-key" in result.err, result
    signed = p.root / "layout.signed.json"
    ok(run_cli("policy", "sign", p.layout, "--key", p.key("gate"), "--out", signed))
    result, vsa = p.check_vsa(
        "--attestations", p.att, "--subject", p.model, "--require-signed-layout",
        "--layout-key", p.pub("gate"), layout=signed,
    )  # fmt: skip
    ok(result)
    statement = json.loads(base64.b64decode(json.loads(vsa.read_bytes())["payload"]))
    annotations = statement["predicate"]["policy"]["annotations"]
    assert annotations["mlprov_layoutSignature"] == "verified"
    # An unsigned layout with --layout-key --require-signed-layout: refused, exit 1.
    result = p.check(
        "--attestations", p.att, "--require-signed-layout", "--layout-key", p.pub("gate")
    )
    assert result.code == 1, result


# 15. One step's key cannot release a model through a layout without `subjects`.


def test_dataset_key_alone_cannot_release_a_model_without_subjects_rule(
    pipeline: Pipeline,
) -> None:
    """A layout with no `subjects:` rule (as every attestation-verifier layout): the holder
    of the dataset step's key only re-signs the dataset step with its test split's digest
    set to an evil model's. That model is a counted product of *a* step, but not of the
    step whose products are released (train): no PASSED VSA."""
    from mlprov.digest import digest_tree

    p = pipeline
    doc = _yaml(p.layout)
    del doc["subjects"]
    nosubj = p.root / "nosubj.yaml"
    nosubj.write_text(json.dumps(doc))
    evil = write_tree(p.root / "evil" / "lr-model", {"weights.npy": b"\x93NUMPY evil"})
    statement = payload(p.att / "dataset.intoto.json")
    for subject in statement["subject"]:
        if subject["name"] == "test":
            subject["digest"] = {"sha256": digest_tree(evil).digest}
    resign(statement, p.key("data"), p.att / "dataset.intoto.json")
    result, vsa = p.check_vsa("--attestations", p.att, "--subject", evil, layout=nosubj)
    assert_refused(result, vsa, "not a product of a counted claim of train")


# 16. Functionaries that agree must agree on what each product is.


def test_co_functionary_cannot_turn_a_tree_product_into_a_file(pipeline: Pipeline) -> None:
    """Two functionaries may vouch for train (threshold 1 or 2): the one an attacker holds
    re-signs the honest claim with the model's `digestOf: tree` dropped, so that a file of
    the tree's concatenated raw digests (its sha256 is the tree digest) passes as the
    released model. The claims disagree on what the product is: they do not agree."""
    p = pipeline
    ok(run_cli("keygen", "--out", p.root / "ci", "--no-password"))
    doc = _yaml(p.layout)
    doc["functionaries"]["ci"] = {"publicKey": p.pub("ci").read_text()}
    train = next(s for s in doc["steps"] if s["name"] == "train")
    train["expectedPredicates"][0]["functionaries"].append("ci")
    two = p.root / "two.yaml"
    two.write_text(json.dumps(doc))
    statement = payload(p.att / "train.intoto.json")
    for subject in statement["subject"]:
        subject.get("annotations", {}).pop("digestOf", None)
    resign(statement, p.key("ci"), p.att / "train-ci.intoto.json")
    fake = p.root / "fake" / "lr-model"
    fake.parent.mkdir()
    fake.write_bytes(_concatenated_digests(p.model))
    for threshold in (1, 2):
        train["expectedPredicates"][0]["threshold"] = threshold
        two.write_text(json.dumps(doc))
        result, vsa = p.check_vsa("--attestations", p.att, "--subject", fake, layout=two)
        assert_refused(result, vsa, "functionaries agree", "report different")
