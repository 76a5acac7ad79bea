"""OMS v1.0 as the spec's JSON Schemas and test vectors define it, and model_signing's forms.

Every bundle `mlprov model sign` writes validates against the spec's bundle schema (and,
decoded, the statement schema); every invalid vector is refused with exit 2 before any
file is hashed; mlprov's own copy of the schemas' rules agrees with the schemas.
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, shared_testdata
from mlprov.errors import InputError
from mlprov.predicates.oms import check_oms_bundle, parse_oms
from mlprov.signing.oms import read_model_signature, resolve_ignore_paths
from test_signing_oms import _keys

VECTORS = ("oms-spec", "test-vectors", "v1.0")


class OmsSchemas:
    """The spec's four schemas, the bundle's references resolved by `$id`."""

    def __init__(self) -> None:
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource

        root = shared_testdata("oms-spec", "schemas", "v1.0")
        docs = {p.name: json.loads(p.read_text()) for p in root.glob("*.schema.json")}
        registry: Registry[Any] = Registry().with_resources(
            (doc["$id"], Resource.from_contents(doc)) for doc in docs.values()
        )
        self.bundle = Draft202012Validator(docs["bundle.schema.json"], registry=registry)
        self.statement = Draft202012Validator(docs["statement.schema.json"], registry=registry)

    def errors(self, bundle: Any) -> list[str]:
        """Every violation of the bundle schema, then of the statement schema (decoded)."""
        found = [f"bundle {e.json_path}: {e.message}" for e in self.bundle.iter_errors(bundle)]
        try:
            payload = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
        except (KeyError, TypeError, ValueError):
            return found or ["payload: not base64 JSON"]
        found += [
            f"statement {e.json_path}: {e.message}" for e in self.statement.iter_errors(payload)
        ]
        return found


@pytest.fixture(scope="module")
def schemas() -> OmsSchemas:
    return OmsSchemas()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "sub").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(5000))
    (root / "sub" / "config.json").write_text('{"layers": 2}')
    (root / "ignore-me").write_text("scratch")
    return root


# -- what mlprov writes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_type", "extra"),
    [
        ("ecdsa-p256", []),
        ("ecdsa-p384", ["--hash", "blake2b"]),
        ("ecdsa-p256", ["--hash", "blake3"]),
        ("ed25519", []),
        ("rsa-3072", ["--ignore-path", "ignore-me"]),
    ],
)
def test_every_files_bundle_mlprov_writes_validates(
    tmp_path: Path, model: Path, schemas: OmsSchemas, key_type: str, extra: list[str]
) -> None:
    priv, _ = _keys(tmp_path, key_type)
    sig = tmp_path / "model.sig"
    result = run_cli("model", "sign", model, "--key", priv, "--out", sig, *extra)
    assert result.code == 0, result
    assert schemas.errors(json.loads(sig.read_bytes())) == []
    single = run_cli(
        "model", "sign", model / "weights.bin", "--key", priv, "--out", tmp_path / "one.sig"
    )
    assert single.code == 0
    assert schemas.errors(json.loads((tmp_path / "one.sig").read_bytes())) == []


@pytest.mark.parametrize("algorithm", ["sha256", "blake2b"])
def test_shard_bundles_differ_from_the_schema_only_in_model_signings_algorithm_names(
    tmp_path: Path, model: Path, schemas: OmsSchemas, algorithm: str
) -> None:
    # model_signing writes and verifies shards as `<hash>-sharded-<size>`, which the
    # spec's schema does not list: mlprov writes what model_signing verifies, and says so.
    priv, _ = _keys(tmp_path)
    sig = tmp_path / "model.sig"
    args = ("--hash", algorithm, "--shard-size", "2048")
    result = run_cli("model", "sign", model, "--key", priv, "--out", sig, *args)
    assert result.code == 0, result
    assert "`<hash>-sharded-<size>`" in result.err
    errors = schemas.errors(json.loads(sig.read_bytes()))
    assert errors, "shard bundles now validate: drop the note"
    for error in errors:
        assert error.startswith("statement $.predicate.resources[")
        assert f"'{algorithm}-sharded-2048' is not one of" in error


def test_blake3_shards_are_refused_and_nothing_is_written(tmp_path: Path, model: Path) -> None:
    priv, _ = _keys(tmp_path)
    sig = tmp_path / "model.sig"
    result = run_cli(
        "model", "sign", model, "--key", priv, "--out", sig, "--hash", "blake3",
        "--shard-size", "1024",
    )  # fmt: skip
    assert result.code == 2
    assert "--shard-size cannot be used with --hash blake3" in result.err
    assert not sig.exists()


# -- the spec's test vectors -----------------------------------------------------------


INVALID = {
    "invalid/empty.bundle.json": "empty file",
    "invalid/missing-envelope.bundle.json": "at /dsseEnvelope: Field required",
    "invalid/missing-tlog-entries.bundle.json": "at /verificationMaterial: tlogEntries: Field req",
    "invalid/missing-verification-material.bundle.json": "at /verificationMaterial: Field req",
    "invalid-payload/wrong-predicate.bundle.json": "predicateType is 'https://example.com/",
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_vectors_are_refused_before_any_hashing(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    bundle = shared_testdata(*VECTORS, *name.split("/"))
    _, pub = _keys(tmp_path)
    hashed: list[Path] = []
    import mlprov.signing.oms as oms

    real = oms.digest_tree
    monkeypatch.setattr(oms, "digest_tree", lambda p, **kw: hashed.append(p) or real(p, **kw))
    result = run_cli("model", "verify", model, "--signature", bundle, "--key", pub)
    assert result.code == 2, result
    assert INVALID[name] in result.err
    assert result.err.startswith("mlprov: error: ") and result.err.count("\n") == 1
    assert hashed == []


def test_invalid_vectors_fail_the_schemas_too(schemas: OmsSchemas) -> None:
    for name in INVALID:
        data = shared_testdata(*VECTORS, *name.split("/")).read_bytes()
        if data:
            assert schemas.errors(json.loads(data)), name


@pytest.mark.parametrize("name", ["certificate", "key", "sigstore"])
def test_valid_vectors_parse(schemas: OmsSchemas, name: str) -> None:
    path = shared_testdata(*VECTORS, "valid", f"{name}.bundle.json")
    assert schemas.errors(json.loads(path.read_bytes())) == []
    attestation = read_model_signature(path)
    statement = attestation.envelope.statement(source=str(path))
    predicate = parse_oms(statement, source=str(path))
    assert predicate.serialization.method == "files"
    assert len(predicate.resources) == 2


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], None]]]:
    def payload(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
        def apply(bundle: dict[str, Any]) -> None:
            envelope = bundle["dsseEnvelope"]
            statement = json.loads(base64.b64decode(envelope["payload"]))
            change(statement)
            envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

        return apply

    def put(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        *parents, last = path.split(".")

        def apply(doc: dict[str, Any]) -> None:
            for part in parents:
                doc = doc[int(part)] if part.isdigit() else doc[part]  # type: ignore[index]
            if value is _DELETE:
                del doc[last]
            else:
                doc[last] = value

        return apply

    return [
        ("nothing", lambda b: None),
        ("extra bundle field", put("extra", 1)),
        ("media type", put("mediaType", "application/json")),
        ("no signatures", put("dsseEnvelope.signatures", [])),
        ("empty sig", put("dsseEnvelope.signatures.0.sig", "")),
        ("null keyid", put("dsseEnvelope.signatures.0.keyid", None)),
        ("no keyid", put("dsseEnvelope.signatures.0.keyid", _DELETE)),
        ("int keyid", put("dsseEnvelope.signatures.0.keyid", 7)),
        ("extra signature field", put("dsseEnvelope.signatures.0.cert", "x")),
        ("payload type", put("dsseEnvelope.payloadType", "text/plain")),
        ("extra envelope field", put("dsseEnvelope.x", 1)),
        ("no material", put("verificationMaterial", {})),
        ("tlog string", put("verificationMaterial.tlogEntries", "x")),
        ("hint int", put("verificationMaterial.publicKey", {"hint": 3})),
        ("key no hint", put("verificationMaterial.publicKey", {})),
        ("statement type", payload(put("_type", "https://in-toto.io/Statement/v0.1"))),
        ("two subjects", payload(lambda s: s["subject"].append(s["subject"][0]))),
        ("subject no name", payload(put("subject.0.name", _DELETE))),
        ("subject upper hex", payload(put("subject.0.digest.sha256", "AB"))),
        ("subject empty digest", payload(put("subject.0.digest", {}))),
        ("extra statement field", payload(put("x", 1))),
        ("no predicate", payload(put("predicate", _DELETE))),
        ("extra predicate field", payload(put("predicate.x", 1))),
        ("resource algorithm", payload(put("predicate.resources.0.algorithm", "md5"))),
        ("resource hex", payload(put("predicate.resources.0.digest", "xyz"))),
        ("resource extra ok", payload(put("predicate.resources.0.uri", "file:///x"))),
        ("resource no name", payload(put("predicate.resources.0.name", _DELETE))),
        ("method", payload(put("predicate.serialization.method", "file-shard-1"))),
        ("hash type", payload(put("predicate.serialization.hash_type", "sha512"))),
        ("blake2b ok", payload(put("predicate.serialization.hash_type", "blake2b"))),
        ("symlinks string", payload(put("predicate.serialization.allow_symlinks", "false"))),
        ("no symlinks", payload(put("predicate.serialization.allow_symlinks", _DELETE))),
        ("shards no size", payload(put("predicate.serialization.method", "shards"))),
        ("shard size 0", payload(put("predicate.serialization.shard_size", 0))),
        ("shard size float", payload(put("predicate.serialization.shard_size", 1024.0))),
        ("shard size text", payload(put("predicate.serialization.shard_size", "1024"))),
        ("empty ignore path", payload(put("predicate.serialization.ignore_paths", [""]))),
        ("extra serialization", payload(put("predicate.serialization.x", 1))),
    ]


_DELETE = object()


@pytest.mark.parametrize("name", ["key", "certificate", "sigstore"])
def test_mlprovs_rules_agree_with_the_schemas(schemas: OmsSchemas, name: str) -> None:
    original = json.loads(shared_testdata(*VECTORS, "valid", f"{name}.bundle.json").read_bytes())
    for label, mutate in _mutations():
        bundle = copy.deepcopy(original)
        try:
            mutate(bundle)
        except (KeyError, IndexError):
            continue  # the field is not in this kind of bundle
        schema_refuses = bool(schemas.errors(bundle))
        try:
            check_oms_bundle(bundle, source=label)
            mlprov_refuses = False
        except InputError:
            mlprov_refuses = True
        assert mlprov_refuses == schema_refuses, f"{name}: {label}"


# -- blake2b ---------------------------------------------------------------------------


def test_blake2b_both_ways_with_model_signing(tmp_path: Path, model: Path) -> None:
    model_signing = pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path)
    ours = tmp_path / "ours.sig"
    assert (
        run_cli("model", "sign", model, "--key", priv, "--out", ours, "--hash", "blake2").code == 0
    )
    statement = read_model_signature(ours).envelope.statement()
    predicate = parse_oms(statement, source="ours")
    assert predicate.serialization.hash_type == "blake2b"
    assert {r.algorithm for r in predicate.resources} == {"blake2b"}
    assert all(len(r.digest) == 128 for r in predicate.resources)  # 64-byte BLAKE2b
    hashing = model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake2")
    verifier = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=pub)
    verifier.set_hashing_config(hashing).verify(model, ours)

    theirs = tmp_path / "theirs.sig"
    signer = model_signing.signing.Config().use_elliptic_key_signer(private_key=priv)
    signer.set_hashing_config(
        model_signing.hashing.Config().use_shard_serialization(
            hashing_algorithm="blake2", shard_size=1024
        )
    ).sign(model, theirs)
    result = run_cli("model", "verify", model, "--signature", theirs, "--key", pub)
    assert result.code == 0, result
    assert "blake2b" in result.out
    (model / "weights.bin").write_bytes(os.urandom(5000))
    for sig in (ours, theirs):
        result = run_cli("model", "verify", model, "--signature", sig, "--key", pub)
        assert result.code == 1
        assert "weights.bin" in result.err


# -- ignore paths ----------------------------------------------------------------------


def test_model_signings_ignore_paths_form_is_accepted(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_signing = pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path)
    monkeypatch.chdir(tmp_path)
    sig = tmp_path / "model.sig"
    # model_signing's CLI form: the path as given on the command line
    result = run_cli(
        "model", "sign", "model", "--key", priv, "--out", sig, "--ignore-paths",
        "./model/ignore-me",
    )  # fmt: skip
    assert result.code == 0, result
    assert "warning" not in result.err
    recorded = parse_oms(read_model_signature(sig).envelope.statement(), source="s")
    assert "ignore-me" in recorded.serialization.ignore_paths
    (model / "ignore-me").write_text("changed after signing")
    assert run_cli("model", "verify", "model", "--signature", sig, "--key", pub).code == 0

    theirs = tmp_path / "theirs.sig"
    config = model_signing.signing.Config().use_elliptic_key_signer(private_key=priv)
    config.set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(paths=[model / "ignore-me"])
    ).sign(model, theirs)
    for form in ("./model/ignore-me", "ignore-me", str(model / "ignore-me")):
        result = run_cli(
            "model", "verify", "model", "--signature", theirs, "--key", pub,
            "--ignore-paths", form,
        )  # fmt: skip
        assert result.code == 0, (form, result)


def test_an_ignore_path_that_matches_nothing_is_warned_about(tmp_path: Path, model: Path) -> None:
    priv, pub = _keys(tmp_path)
    sig = tmp_path / "model.sig"
    result = run_cli(
        "model", "sign", model, "--key", priv, "--out", sig, "--ignore-path", "ignore-mee"
    )
    assert result.code == 0
    assert f"warning: ignore path 'ignore-mee' matches nothing in {model}" in result.err
    result = run_cli(
        "model", "verify", model, "--signature", sig, "--key", pub, "--ignore-paths",
        "elsewhere/ignore-me",
    )  # fmt: skip
    assert result.code == 0
    assert "warning: ignore path 'elsewhere/ignore-me' matches nothing" in result.err


def test_ignore_path_forms_resolve(
    tmp_path: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (model / "model").mkdir()
    (model / "model" / "ignore-me").write_text("nested")
    with pytest.raises(InputError, match="ambiguous"):
        resolve_ignore_paths(Path("model"), ["model/ignore-me"])
    resolved = resolve_ignore_paths(Path("model"), ["./model/sub", "sub/config.json", "/etc"])
    assert resolved.relative == ["sub", "sub/config.json"]
    assert resolved.unmatched == ["/etc"]
    with pytest.raises(InputError, match="relative path inside the model"):
        resolve_ignore_paths(Path("model"), ["."])


# -- other formats and options ---------------------------------------------------------


def _pre_1_0_bundle(tmp_path: Path, model: Path, priv: Path) -> Path:
    """A model_signing 0.2.x signature: per-file subjects, predicate Digests/v0.1."""
    import hashlib

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    subjects = [
        {
            "name": p.relative_to(model).as_posix(),
            "digest": {"sha256": hashlib.sha256(p.read_bytes()).hexdigest()},
            "annotations": {"actual_hash_algorithm": "file-sha256"},
        }
        for p in sorted(model.rglob("*"))
        if p.is_file()
    ]
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": subjects,
        "predicateType": "https://model_signing/Digests/v0.1",
        "predicate": {"unused": "Unused, just passed due to API requirements"},
    }
    payload = json.dumps(statement).encode()
    key = serialization.load_pem_private_key(priv.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    kind = "application/vnd.in-toto+json"
    pae = f"DSSEV1 {len(kind)} {kind} {len(payload)} {payload!r}".encode()  # 0.2.x's PAE
    sig = key.sign(pae, ec.ECDSA(hashes.SHA256()))
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    bundle = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"rawBytes": base64.b64encode(public).decode()}},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": kind,
            "signatures": [{"sig": base64.b64encode(sig).decode()}],
        },
    }
    path = tmp_path / "old.sig"
    path.write_text(json.dumps(bundle))
    return path


def test_pre_1_0_bundles_say_the_format_is_not_supported(tmp_path: Path, model: Path) -> None:
    priv, pub = _keys(tmp_path)
    old = _pre_1_0_bundle(tmp_path, model, priv)
    result = run_cli("model", "verify", model, "--signature", old, "--key", pub)
    assert result.code == 2
    assert "a model_signing 0.2.x signature (https://model_signing/Digests/v0.1)" in result.err
    assert "not supported" in result.err
    assert "model_signing 0.3.1 and later" in result.err
    assert "signed it" not in result.err


def test_a_bare_envelope_is_named_as_such(tmp_path: Path, model: Path) -> None:
    _, pub = _keys(tmp_path)
    bundle = json.loads(shared_testdata(*VECTORS, "valid", "key.bundle.json").read_bytes())
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(bundle["dsseEnvelope"]))
    result = run_cli("model", "verify", model, "--signature", bare, "--key", pub)
    assert result.code == 2
    assert "a bare DSSE envelope; an OMS signature is a Sigstore bundle" in result.err


def test_certificate_chain_examples_work_as_documented(tmp_path: Path) -> None:
    keys = shared_testdata("oms", "keys")
    cert = shared_testdata("oms", "v1.0.0-certificate")
    docs = (Path(__file__).parents[1] / "docs" / "model-signing.md").read_text()
    help_text = run_cli("model", "verify", "--help").out
    for text in (docs, help_text):
        assert "--certificate-chain ca.pem int.pem" not in text
        assert "--certificate-chain ca.pem --certificate-chain int.pem" in text
    for flag in ("--certificate-chain", "--certificate_chain"):
        result = run_cli(
            "model", "verify", cert, "--signature", cert / "model.sig",
            flag, keys / "ca-cert.pem", flag, keys / "int-ca-cert.pem",
        )  # fmt: skip
        assert result.code == 0, result
    bundle_pem = tmp_path / "chain.pem"
    bundle_pem.write_bytes(
        (keys / "ca-cert.pem").read_bytes() + (keys / "int-ca-cert.pem").read_bytes()
    )
    result = run_cli(
        "model", "verify", cert, "--signature", cert / "model.sig",
        "--certificate-chain", bundle_pem,
    )  # fmt: skip
    assert result.code == 0, result


def test_model_sign_help_says_one_signer(tmp_path: Path, model: Path) -> None:
    help_text = " ".join(run_cli("model", "sign", "--help").out.split())
    assert "One signer: give --key once." in help_text
    assert "Repeatable: every key signs" not in help_text
    assert "Repeatable: every key signs" in " ".join(run_cli("sign", "--help").out.split())
    a, _ = _keys(tmp_path, "ecdsa-p256")
    b, _ = _keys(tmp_path, "ecdsa-p384")
    result = run_cli("model", "sign", model, "--key", a, "--key", b, "--out", tmp_path / "x.sig")
    assert result.code == 2
    assert "one signer" in result.err
