"""Models where they live: Hugging Face hub caches, `hf://` references, one symlink rule.

Every test builds a real cache layout (snapshots/, blobs/, refs/) and checks it with
`huggingface_hub.scan_cache_dir` before using it; HF_HUB_OFFLINE is set, nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli
from mlprov.digest import digest_tree
from mlprov.signing.keys import generate_keypair

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], meta: dict[str, str]) -> bytes:
    sizes = {"F32": 4, "F16": 2, "I64": 8}
    header: dict[str, object] = {"__metadata__": meta}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + os.urandom(offset)


TINY_LM = {
    "config.json": b'{"model_type": "gpt2", "n_layer": 2}\n',
    "model.safetensors": safetensors_bytes(
        {"wte": ("F32", [8, 4]), "h.0.w": ("F16", [4, 4])}, {"format": "pt"}
    ),
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    ".gitattributes": b"*.safetensors filter=lfs\n",
}


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_repo(
    cache: Path,
    repo_id: str,
    files: dict[str, bytes],
    *,
    kind: str = "model",
    commit: str = COMMIT,
    refs: tuple[str, ...] = ("main",),
) -> Path:
    """A hub cache repository as huggingface_hub writes it; returns the snapshot folder.

    Large-file-storage files (weights) are blobs named by their sha256, the others by
    their git blob id; every snapshot file is a relative symlink into ../../blobs/.
    """
    repo = cache / f"{kind}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        lfs = name.endswith((".safetensors", ".gguf", ".bin", ".onnx", ".pt"))
        blob = repo / "blobs" / (hashlib.sha256(data).hexdigest() if lfs else git_blob_id(data))
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)  # huggingface_hub writes no newline
    return snapshot


def check_layout(cache: Path, repo_id: str, kind: str = "model") -> None:
    """The layout is one huggingface_hub itself reads, without complaint."""
    from huggingface_hub import scan_cache_dir

    info = scan_cache_dir(cache)
    assert not info.warnings, info.warnings
    repo = next(r for r in info.repos if r.repo_id == repo_id and r.repo_type == kind)
    assert {r.commit_hash for r in repo.revisions} >= {COMMIT}
    assert all(f.blob_path.parent.name == "blobs" for r in repo.revisions for f in r.files)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    yield cache


@pytest.fixture
def tiny_lm(hub: Path) -> Path:
    snapshot = make_repo(hub, "acme/tiny-lm", TINY_LM)
    check_layout(hub, "acme/tiny-lm")
    return snapshot


def plain_copy(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "plain"
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# -- one symlink rule --------------------------------------------------------------------


def test_snapshot_digests_without_flags_as_its_plain_copy(tmp_path: Path, tiny_lm: Path) -> None:
    expected = digest_tree(plain_copy(tmp_path, TINY_LM)).digest
    result = run_cli("digest", tiny_lm)
    assert result.code == 0, result
    assert result.out == f"sha256:{expected}  {tiny_lm}\n"
    # A subfolder of a snapshot and a single file of it follow the same rule.
    assert run_cli("digest", tiny_lm / "tokenizer").code == 0
    single = run_cli("digest", tiny_lm / "config.json", "--files")
    assert single.code == 0 and hashlib.sha256(TINY_LM["config.json"]).hexdigest() in single.out


def test_every_tree_command_has_the_one_symlink_option() -> None:
    for command in (
        ["digest"],
        ["attest", "train"],
        ["attest", "finetune"],
        ["attest", "convert"],
        ["attest", "dataset"],
        ["attest", "eval"],
        ["run"],
        ["model", "sign"],
        ["model", "verify"],
        ["verify"],
        ["lineage"],
    ):
        text = run_cli(*command, "--help").out
        assert "--follow-symlinks, --allow-symlinks, --allow_symlinks" in text, command


def test_links_leaving_the_repository_blobs_are_refused_unless_asked(
    hub: Path, tiny_lm: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("not part of the model")
    other = make_repo(hub, "acme/other", {"w.bin": b"other repo"})
    (tiny_lm / "leak.txt").symlink_to(outside)
    result = run_cli("digest", tiny_lm)
    assert result.code == 2
    assert "leak.txt is a symlink pointing outside the tree and its repository's blobs/" in (
        result.err
    )
    assert "--follow-symlinks" in result.err and result.err.count("\n") == 1
    asked = run_cli("digest", tiny_lm, "--allow-symlinks", "--files")
    assert asked.code == 0, asked
    assert f"{hashlib.sha256(outside.read_bytes()).hexdigest()}  leak.txt" in asked.out
    # Another repository's blob is outside this repository too.
    (tiny_lm / "leak.txt").unlink()
    (tiny_lm / "borrowed.bin").symlink_to((other / "w.bin").resolve())
    assert "borrowed.bin is a symlink" in run_cli("digest", tiny_lm).err


@pytest.mark.parametrize("name", ["model.safetensors", "config.json"])
def test_a_blob_that_does_not_hash_to_its_name_is_a_tampered_download(
    tiny_lm: Path, name: str
) -> None:
    blob = (tiny_lm / name).resolve()
    data = bytearray(blob.read_bytes())
    data[-2] ^= 1
    blob.write_bytes(bytes(data))
    for command in (["digest", tiny_lm], ["digest", tiny_lm, "--algorithm", "blake3"]):
        result = run_cli(*command, "--no-cache")
        assert result.code == 1, result
        assert f"{tiny_lm / name}: corrupted or tampered download" in result.err
        assert blob.name in result.err
    shards = run_cli("digest", tiny_lm, "--shard-size", "16")
    assert shards.code == 1 and "tampered" in shards.err


# -- hf:// references ---------------------------------------------------------------------


def test_hub_references_resolve_offline_through_refs(tmp_path: Path, tiny_lm: Path) -> None:
    expected = digest_tree(plain_copy(tmp_path, TINY_LM)).digest
    for ref in ("hf://acme/tiny-lm@main", f"hf://acme/tiny-lm@{COMMIT}", "hf://acme/tiny-lm"):
        result = run_cli("digest", ref)
        assert result.code == 0, result
        assert result.out == f"sha256:{expected}  {ref}\n"
    data = json.loads(run_cli("digest", "hf://acme/tiny-lm@main", "--json").out)[0]
    assert data["uri"] == f"hf://acme/tiny-lm@{COMMIT}"
    assert data["huggingFace"]["revision"] == COMMIT
    assert data["huggingFace"]["requestedRevision"] == "main"
    facts = data["modelFacts"]
    assert facts["formats"] == ["safetensors"] and facts["parameterCount"] == 8 * 4 + 4 * 4
    assert facts["files"][0]["metadata"] == {"format": "pt"}


def test_hf_hub_cache_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "elsewhere"))
    cache = tmp_path / "explicit-cache"
    make_repo(cache, "acme/tiny-lm", TINY_LM)
    check_layout(cache, "acme/tiny-lm")
    assert run_cli("digest", "hf://acme/tiny-lm@main").code == 2
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    assert run_cli("digest", "hf://acme/tiny-lm@main").code == 0


@pytest.mark.parametrize(
    ("ref", "hint"),
    [
        ("hf://acme/absent@v1.0", "hf download acme/absent --revision v1.0"),
        ("hf://acme/tiny-lm@no-such-branch", "hf download acme/tiny-lm --revision no-such-branch"),
        (f"hf://acme/tiny-lm@{OTHER_COMMIT}", f"--revision {OTHER_COMMIT}"),
        ("hf://datasets/acme/absent@main", "hf download acme/absent --repo-type dataset"),
    ],
)
def test_a_reference_not_in_the_cache_says_how_to_download_it(
    tiny_lm: Path, ref: str, hint: str
) -> None:
    result = run_cli("digest", ref)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "Traceback" not in result.err
    assert f"{ref} is not in the Hugging Face cache" in result.err and hint in result.err


@pytest.mark.parametrize(
    "ref", ["hf://acme/tiny-lm@../../../etc", "hf://acme/tiny-lm@/abs", "hf://a/b/c@main", "hf://"]
)
def test_a_malformed_reference_is_refused(tiny_lm: Path, ref: str) -> None:
    result = run_cli("digest", ref)
    assert result.code == 2 and result.err.startswith("mlprov: error: ")


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    pair = generate_keypair("ecdsa-p256")
    priv, pub = tmp_path / "k.key", tmp_path / "k.pub"
    priv.write_bytes(pair.private_pem)
    pub.write_bytes(pair.public_pem)
    return priv, pub


def test_base_model_and_datasets_from_the_hub(hub: Path, tiny_lm: Path, tmp_path: Path) -> None:
    make_repo(hub, "acme/reviews", {"train.csv": b"a,b\n1,2\n"}, kind="dataset")
    check_layout(hub, "acme/reviews", "dataset")
    out_model = plain_copy(tmp_path, {"adapter.safetensors": TINY_LM["model.safetensors"]})
    out = tmp_path / "ft.statement.json"
    result = run_cli(
        "attest", "finetune", "--model", out_model, "--base-model", "hf://acme/tiny-lm@main",
        "--dataset", "hf://datasets/acme/reviews@main", "--no-git", "--no-packages",
        "--no-manifests", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    deps = json.loads(out.read_text())["predicate"]["buildDefinition"]["resolvedDependencies"]
    base = next(d for d in deps if d["annotations"]["role"] == "base-model")
    assert base["name"] == "acme/tiny-lm"
    assert base["uri"] == f"hf://acme/tiny-lm@{COMMIT}"
    assert base["digest"] == {"sha256": digest_tree(tiny_lm).digest, "gitCommit": COMMIT}
    assert base["annotations"]["huggingFace"] == {
        "repoType": "model",
        "repoId": "acme/tiny-lm",
        "revision": COMMIT,
        "requestedRevision": "main",
    }
    assert base["annotations"]["modelFacts"]["formats"] == ["safetensors"]
    data = next(d for d in deps if d["annotations"]["role"] == "dataset")
    assert data["name"] == "acme/reviews"
    assert data["uri"] == f"hf://datasets/acme/reviews@{COMMIT}"
    assert data["digest"]["gitCommit"] == COMMIT


def test_base_model_reference_not_cached_is_not_called_a_dataset(
    tiny_lm: Path, tmp_path: Path
) -> None:
    """The reproduction: `--base-model hf://…@0123` said "dataset tiny-lm@0123"."""
    model = plain_copy(tmp_path, {"w.safetensors": TINY_LM["model.safetensors"]})
    common = ["--model", model, "--no-git", "--no-packages", "--out", tmp_path / "o.json"]
    result = run_cli("attest", "finetune", *common, "--base-model", "hf://acme/tiny-lm@0123")
    assert result.code == 2
    assert "dataset" not in result.err
    assert "hf download acme/tiny-lm --revision 0123" in result.err
    commit = run_cli("attest", "finetune", *common, "--base-model", f"hf://acme/tiny-lm@{COMMIT}")
    assert commit.code == 0, commit
    remote = run_cli(
        "attest", "finetune", *common, "--force", "--base-model", "ftp://x.example/m.bin"
    )
    assert remote.code == 2 and "base model m.bin" in remote.err


def test_training_run_api_takes_hub_references(tiny_lm: Path, tmp_path: Path) -> None:
    from mlprov import TrainingRun

    out_model = plain_copy(tmp_path, {"w.safetensors": TINY_LM["model.safetensors"]})
    with TrainingRun(step="ft", out=tmp_path / "r.json", source_dir=None) as run:
        base = run.base_model("hf://acme/tiny-lm@main")
        run.model(out_model)
    assert base.name == "acme/tiny-lm" and base.digest is not None
    assert base.digest["gitCommit"] == COMMIT


def test_lineage_of_a_hub_reference(tiny_lm: Path, tmp_path: Path) -> None:
    priv, pub = _keys(tmp_path)
    out_model = plain_copy(tmp_path, {"w.safetensors": TINY_LM["model.safetensors"]})
    out = tmp_path / "ft.statement.json"
    made = run_cli(
        "attest", "finetune", "--model", out_model, "--base-model", "hf://acme/tiny-lm@main",
        "--no-git", "--no-packages", "--sign", priv, "--out", out,
    )  # fmt: skip
    assert made.code == 0, made
    assert run_cli("store", "add", out, "--key", pub).code == 0
    down = run_cli("lineage", "hf://acme/tiny-lm@main", "--down")
    assert down.code == 0, down
    assert "plain" in down.out, down.out
    assert "model facts  acme/tiny-lm: safetensors; 48 parameters; no pickle" in down.out
    up = run_cli("lineage", out_model, "--up", "--json")
    assert up.code == 0, up
    document = json.loads(up.out)
    assert f"sha256:{digest_tree(tiny_lm).digest}" in {n["digest"] for n in document["nodes"]}
    assert document["modelFacts"][f"sha256:{digest_tree(tiny_lm).digest}"]["parameterCount"] == 48
    ends = run_cli("lineage", "hf://acme/tiny-lm@main", "--down", "--only-models")
    assert ends.code == 0 and "model facts" not in ends.out
    assert ends.out.count("\n") == 1 and "fine-tuned from acme/tiny-lm" in ends.out, ends.out
    by_commit = run_cli("lineage", f"hf://acme/tiny-lm@{COMMIT}", "--down")
    assert by_commit.code == 0 and by_commit.out == down.out


def test_verify_subject_path_on_a_snapshot(tiny_lm: Path, tmp_path: Path) -> None:
    priv, pub = _keys(tmp_path)
    out = tmp_path / "eval.statement.json"
    metrics = tmp_path / "m.json"
    metrics.write_text('{"accuracy": 0.9}')
    made = run_cli(
        "attest", "eval", "--model", "hf://acme/tiny-lm@main", "--metrics", metrics,
        "--sign", priv, "--out", out,
    )  # fmt: skip
    assert made.code == 0, made
    result = run_cli("verify", out, "--key", pub, "--subject-path", tiny_lm)
    assert result.code == 0, result


# -- model_signing interop on snapshots ---------------------------------------------------


def _model_signing_cli(*args: str | Path) -> tuple[int, str]:
    from click.testing import CliRunner
    from model_signing._cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def test_model_signing_signs_a_snapshot_mlprov_verifies(tiny_lm: Path, tmp_path: Path) -> None:
    pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path)
    sig = tmp_path / "theirs.sig"
    code, output = _model_signing_cli(
        "sign", "key", tiny_lm, "--private_key", priv, "--signature", sig, "--allow_symlinks"
    )
    assert code == 0, output
    result = run_cli("model", "verify", tiny_lm, "--signature", sig, "--key", pub)
    assert result.code == 0, result
    blob = (tiny_lm / "tokenizer" / "vocab.txt").resolve()
    blob.write_bytes(b"changed")
    result = run_cli("model", "verify", tiny_lm, "--signature", sig, "--key", pub)
    assert result.code == 1 and "tokenizer/vocab.txt" in result.err


def test_mlprov_signs_a_snapshot_model_signing_verifies(tiny_lm: Path, tmp_path: Path) -> None:
    pytest.importorskip("model_signing")
    priv, pub = _keys(tmp_path)
    sig = tmp_path / "ours.sig"
    assert run_cli("model", "sign", tiny_lm, "--key", priv, "--out", sig).code == 0
    statement = json.loads(
        __import__("base64").b64decode(json.loads(sig.read_text())["dsseEnvelope"]["payload"])
    )
    assert statement["predicate"]["serialization"]["allow_symlinks"] is True
    facts = statement["subject"][0]["annotations"]["modelFacts"]
    assert facts["parameterCount"] == 48
    code, output = _model_signing_cli(
        "verify", "key", tiny_lm, "--signature", sig, "--public_key", pub, "--allow_symlinks"
    )
    assert code == 0, output


def test_every_tree_command_follows_other_links_only_when_asked(tmp_path: Path) -> None:
    """Outside a hub snapshot a link is refused by every command, and followed when asked."""
    outside = tmp_path / "elsewhere.bin"
    outside.write_bytes(b"weights kept elsewhere")
    model = plain_copy(tmp_path, {"config.json": b"{}"})
    (model / "weights.bin").symlink_to(outside)
    priv, pub = _keys(tmp_path)
    metrics = tmp_path / "m.json"
    metrics.write_text('{"accuracy": 1.0}')
    signed = tmp_path / "signed.intoto.json"
    quiet = ["--no-git", "--no-packages"]
    commands: list[list[str | Path]] = [
        ["digest", model],
        ["attest", "train", "--model", model, *quiet, "--out", tmp_path / "t.json"],
        ["attest", "eval", "--model", model, "--metrics", metrics, "--out", tmp_path / "e.json"],
        ["run", "--step", "s", "--products", model, *quiet, "--out", tmp_path / "r.json", "--force",
         "--", "true"],
        ["model", "sign", model, "--key", priv, "--out", tmp_path / "m.sig"],
        ["model", "verify", model, "--signature", tmp_path / "m.sig", "--key", pub],
        ["attest", "train", "--model", model, *quiet, "--sign", priv, "--out", signed],
        ["verify", signed, "--key", pub, "--subject-path", model],
        ["lineage", model, "--up"],
    ]  # fmt: skip
    for command in commands:
        refused = run_cli(*command)
        assert refused.code == 2, (command, refused)
        assert "weights.bin is a symlink (use --follow-symlinks" in refused.err, command
        at = command.index("--") if "--" in command else len(command)
        asked = run_cli(*command[:at], "--follow-symlinks", *command[at:])
        expected = 1 if command[0] == "lineage" else 0  # lineage: nothing in the store
        assert asked.code == expected, (command, asked)
    statement = json.loads(
        __import__("base64").b64decode(
            json.loads((tmp_path / "m.sig").read_text())["dsseEnvelope"]["payload"]
        )
    )
    assert statement["predicate"]["serialization"]["allow_symlinks"] is True
    code, output = _model_signing_cli(
        "verify", "key", model, "--signature", tmp_path / "m.sig", "--public_key", pub,
        "--allow_symlinks",
    )  # fmt: skip
    assert code == 0, output


def test_an_incomplete_snapshot_is_refused(hub: Path, tiny_lm: Path) -> None:
    """huggingface_hub (2.x) keeps the commit's file listing; a snapshot missing a listed
    file is incomplete (an interrupted download), and is not attested as the model."""
    tree_cache = pytest.importorskip("huggingface_hub._tree_cache")
    entries = {
        name: tree_cache.TreeCacheEntry(size=len(data), blob_id=git_blob_id(data))
        for name, data in {**TINY_LM, "extra.bin": b"never downloaded"}.items()
    }
    tree_cache.write_tree_cache(str(tiny_lm.parent.parent), COMMIT, entries)
    result = run_cli("digest", "hf://acme/tiny-lm@main")
    assert result.code == 2 and result.err.count("\n") == 1
    assert "is incomplete in the Hugging Face cache" in result.err
    assert "hf download acme/tiny-lm --revision main" in result.err


def test_the_examples_hub_cache_is_one_huggingface_hub_reads(tmp_path: Path) -> None:
    """examples/hub_cache.py (what the docs' Hub examples run on) writes a real layout."""
    script = Path(__file__).resolve().parent.parent / "examples" / "hub_cache.py"
    cache = tmp_path / "hub"
    done = subprocess.run(
        [sys.executable, str(script), "--cache", str(cache)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    check_layout(cache, "acme/tiny-lm")
    check_layout(cache, "acme/reviews", "dataset")
    assert Path(done.stdout.strip()) == cache / "models--acme--tiny-lm" / "snapshots" / COMMIT
