"""`--sign KEY` on the recording commands: what is written is a DSSE envelope over the Statement."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import run_cli
from mlprov.digest import digest_tree
from mlprov.signing.files import read_attestations


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _keys(tmp_path: Path) -> tuple[Path, Path]:
    assert run_cli("keygen", "--out", tmp_path / "k", "--no-password").code == 0
    return tmp_path / "k.key", tmp_path / "k.pub"


def test_attest_train_sign_writes_a_verifiable_envelope(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    model = _tree(tmp_path / "model", {"w.npy": b"weights"})
    data = _tree(tmp_path / "data", {"x.csv": b"1,2\n"})
    out = tmp_path / "train.intoto.json"
    result = run_cli(
        "attest", "train", "--model", model, "--dataset", f"train={data}", "--no-git",
        "--no-packages", "--out", out, "--sign", key,
    )  # fmt: skip
    assert result.code == 0, result
    attestation = read_attestations(out)[0]
    assert attestation.kind == "dsse"
    statement = attestation.envelope.statement()
    assert statement.subject[0].digest == {"sha256": digest_tree(model).digest}
    assert run_cli("verify", out, "--key", pub).code == 0
    (tmp_path / "other").mkdir()
    _, other_pub = _keys(tmp_path / "other")
    assert run_cli("verify", out, "--key", other_pub).code == 1


def test_attest_eval_and_run_sign(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    model = _tree(tmp_path / "model", {"w.npy": b"weights"})
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"accuracy": 0.9}))
    out = tmp_path / "eval.intoto.json"
    result = run_cli("attest", "eval", "--model", model, "--metrics", metrics, "--out", out,
                     "--sign", key)  # fmt: skip
    assert result.code == 0, result
    assert run_cli("verify", out, "--key", pub).code == 0
    product = tmp_path / "product.txt"
    out = tmp_path / "run.intoto.json"
    result = run_cli(
        "run", "--step", "make", "--products", product, "--out", out, "--no-git", "--no-packages",
        "--sign", key, "--", sys.executable, "-c", f"open({str(product)!r}, 'w').write('x')",
    )  # fmt: skip
    assert result.code == 0, result
    assert run_cli("verify", out, "--key", pub).code == 0


def test_sign_with_missing_key_is_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    model = _tree(tmp_path / "model", {"w.npy": b"weights"})
    out = tmp_path / "train.intoto.json"
    result = run_cli("attest", "train", "--model", model, "--no-git", "--no-packages",
                     "--out", out, "--sign", tmp_path / "nope.key")  # fmt: skip
    assert result.code == 2 and "Traceback" not in result.err
    assert not out.exists()


def test_verify_subject_path_names_files_of_per_file_subjects(tmp_path: Path) -> None:
    key, pub = _keys(tmp_path)
    model = _tree(tmp_path / "model", {"a.bin": b"a", "b.bin": b"b", "c.bin": b"c"})
    out = tmp_path / "train.intoto.json"
    result = run_cli(
        "attest", "train", "--model", model, "--no-git", "--no-packages", "--file-subjects",
        "--out", out, "--sign", key,
    )  # fmt: skip
    assert result.code == 0, result
    assert run_cli("verify", out, "--key", pub, "--subject-path", model).code == 0
    (model / "a.bin").write_bytes(b"changed")
    (model / "b.bin").unlink()
    (model / "d.bin").write_bytes(b"new")
    result = run_cli("verify", out, "--key", pub, "--subject-path", model)
    assert result.code == 1
    combined = result.out + result.err
    assert "changed: a.bin" in combined and "missing: b.bin" in combined
    assert "added: d.bin" in combined
