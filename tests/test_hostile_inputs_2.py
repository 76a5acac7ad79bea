"""Hostile input, second round: crafted files whose cost grows faster than their size.

Model headers that announce shapes with astronomically many elements, pickles made of
millions of one-byte opcodes (deflated 1000:1 inside a torch zip), metadata arrays of
millions of elements, and names that break out of the text formats mlprov writes. Each
must end quickly (hang guards run the CLI in a subprocess, killed if it runs long) with a
fact, a `malformed` reason or one line `mlprov: error: ...`, never a traceback.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli, time_limit
from mlprov.collect import model_formats
from mlprov.collect.model_formats import pickle_imports, read_file_facts, scan_model
from mlprov.digest import digest_tree


def run_bounded(*args: str | Path, timeout: int = 45) -> subprocess.CompletedProcess[str]:
    """`mlprov ARGS` in a child process; a hang fails the test instead of stalling it."""
    command = [sys.executable, "-m", "mlprov", *map(str, args)]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"mlprov {' '.join(map(str, args))}: still running after {timeout} s"
        ) from None


class Evil:
    def __reduce__(self) -> tuple[object, ...]:
        import os

        return (os.system, ("echo owned",))


def facts_of(tree: Path) -> dict[str, object]:
    done = run_bounded("digest", tree, "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    facts: dict[str, object] = json.loads(done.stdout)[0]["modelFacts"]
    return facts


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, body: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(body)) + body


def onnx_with_dims(dims: list[int]) -> bytes:
    """A ModelProto (ir_version 8, opset 17) whose one initializer has these packed dims."""
    graph = field(5, field(1, b"".join(map(varint, dims))))
    return varint(1 << 3) + varint(8) + field(8, varint(2 << 3) + varint(17)) + field(7, graph)


# -- shapes whose element count is astronomical --------------------------------------------


def test_a_safetensors_shape_of_200000_huge_dims_is_malformed_fast(tmp_path: Path) -> None:
    """The product of 200,000 dims of 2**64-1 is a 12-million-bit number: computing it took
    minutes; the count is bounded by the data bytes, so it stops at the second dim."""
    header = {"t": {"dtype": "F32", "shape": [2**64 - 1] * 200_000, "data_offsets": [0, 0]}}
    text = json.dumps(header).encode()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text)
    facts = facts_of(tmp_path / "m")
    assert facts["malformedFiles"] == ["model.safetensors"]
    [file] = facts["files"]  # type: ignore[misc]
    assert "do not hold" in file["malformed"] and len(file["malformed"]) < 400, file


def test_an_onnx_initializer_of_200000_huge_dims_is_malformed_fast(tmp_path: Path) -> None:
    """Took minutes, then a traceback: a parameter count too long to write as JSON."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.onnx").write_bytes(onnx_with_dims([2**63] * 200_000))
    facts = facts_of(tmp_path / "m")
    assert facts["malformedFiles"] == ["model.onnx"], facts
    [file] = facts["files"]  # type: ignore[misc]
    assert "elements" in file["malformed"] and len(file["malformed"]) < 400, file


def test_parameter_counts_past_int64_are_malformed(tmp_path: Path) -> None:
    """CEL integers are 64-bit: a count no int64 holds is a header that lies."""
    for dims in ([2**62, 4], [2**40, 2**40]):
        (tmp_path / "m.onnx").write_bytes(onnx_with_dims(dims))
        facts = read_file_facts(tmp_path / "m.onnx", "m.onnx")
        assert facts is not None and facts.malformed and "elements" in facts.malformed, facts
    (tmp_path / "m.onnx").write_bytes(onnx_with_dims([3, 0, 2**62]))
    facts = read_file_facts(tmp_path / "m.onnx", "m.onnx")
    assert facts is not None and not facts.malformed and facts.parameterCount == 0, facts


def test_an_onnx_walk_reads_a_bounded_number_of_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each one-byte field costs a microsecond of Python: 1 GB of them would be 15 minutes."""
    (tmp_path / "m.onnx").write_bytes(onnx_with_dims([1] * 2000))
    facts = read_file_facts(tmp_path / "m.onnx", "m.onnx")
    assert facts is not None and not facts.malformed and facts.parameterCount == 1
    monkeypatch.setattr(model_formats, "ONNX_VARINT_LIMIT", 1000)
    facts = read_file_facts(tmp_path / "m.onnx", "m.onnx")
    assert facts is not None and facts.malformed == "ONNX: more than 1000 fields and values"


# -- pickles of millions of opcodes --------------------------------------------------------


def test_a_torch_zip_of_deflated_one_byte_opcodes_is_scanned_in_bounded_time(
    tmp_path: Path,
) -> None:
    """16 members of 8 million MARK opcodes deflate to ~150 KB; each was decoded in full
    (~2 minutes). A file's members share one opcode budget; the scan says it was cut."""
    body = b"\x80\x02" + b"(" * 8_000_000 + b"."
    (tmp_path / "m").mkdir()
    with zipfile.ZipFile(tmp_path / "m" / "model.pt", "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(16):
            archive.writestr(f"archive/{'data' if index == 0 else index}.pkl", body)
    facts = facts_of(tmp_path / "m")
    [file] = facts["files"]  # type: ignore[misc]
    assert file["format"] == "pytorch-zip" and file["canRunCode"] and file["truncated"], file


def test_a_pickle_of_half_a_million_memo_entries_allocates_little() -> None:
    """Every MEMOIZE was remembered: 64 MiB of them held gigabytes. Only strings are kept
    (what STACK_GLOBAL needs), and only the first PICKLE_MEMO_LIMIT of them."""
    import tracemalloc

    data = b"\x80\x04\x8c\x00" + b"\x94" * 500_000 + b"."
    tracemalloc.start()
    try:
        imports, truncated = pickle_imports(io.BytesIO(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert imports == [] and not truncated
    assert peak < 12 << 20, peak


def test_memo_lookups_still_resolve_stack_global() -> None:
    """Protocol 4 memoizes module and name before STACK_GLOBAL reads them back."""
    data = pickle.dumps([Evil(), Evil()], 4)
    assert pickle_imports(io.BytesIO(data)) == (["posix.system"], False)


def test_a_tree_of_pickles_shares_one_opcode_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 small deflated pickles could each take a file's budget: the tree has one too.
    Files past it are still pickles (`canRunCode`), marked as not fully scanned."""
    monkeypatch.setattr(model_formats, "PICKLE_FILE_OPS", 40)
    monkeypatch.setattr(model_formats, "PICKLE_TREE_OPS", 50)
    root = tmp_path / "m"
    root.mkdir()
    data = pickle.dumps(Evil(), 2)[:-1] + b"N0" * 10 + b"."  # ~30 opcodes
    for name in ("a.pkl", "b.pkl", "c.pkl"):
        (root / name).write_bytes(data)
    facts = scan_model(root, digest_tree(root))
    a, b, c = facts.files
    assert a.imports == ["posix.system"] and not a.truncated, a
    assert b.truncated and c.truncated and c.imports == [], (b, c)
    assert facts.pickleFiles == ["a.pkl", "b.pkl", "c.pkl"] and facts.canRunCode


# -- GGUF metadata arrays of millions of items ----------------------------------------------


def gguf_string(text: bytes) -> bytes:
    return struct.pack("<Q", len(text)) + text


def test_gguf_arrays_of_millions_of_items_are_read_fast(tmp_path: Path) -> None:
    """The gguf package's reader builds objects per array item (~10 us each): 8 million
    uint8s and 500,000 empty strings (12 MB) took minutes. Numbers are skipped whole."""
    kv = gguf_string(b"general.architecture") + struct.pack("<I", 8) + gguf_string(b"llama")
    kv += gguf_string(b"junk.bytes") + struct.pack("<IIQ", 9, 0, 8_000_000) + bytes(8_000_000)
    kv += gguf_string(b"junk.strings") + struct.pack("<IIQ", 9, 8, 500_000)
    kv += struct.pack("<Q", 0) * 500_000
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.gguf").write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 3) + kv)
    facts = facts_of(tmp_path / "m")
    [file] = facts["files"]  # type: ignore[misc]
    assert file["format"] == "gguf" and "malformed" not in file, file
    assert file["architecture"] == "llama" and file["tensorCount"] == 0, file


def test_gguf_counts_that_lie_are_malformed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string(b"a")
    cases = {
        "nested": struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 20 + struct.pack("<IQ", 0, 0),
        "past end": struct.pack("<IIQ", 9, 6, 2**62),
        "many": struct.pack("<IIQ", 9, 8, 2000) + struct.pack("<Q", 0) * 2000,
    }
    monkeypatch.setattr(model_formats, "GGUF_ITEM_LIMIT", 1000)
    for case, value in cases.items():
        (tmp_path / "m.gguf").write_bytes(head + value)
        facts = read_file_facts(tmp_path / "m.gguf", "m.gguf")
        assert facts is not None and facts.malformed, (case, facts)


# -- names that break out of the text formats mlprov writes --------------------------------


def test_a_subject_name_cannot_close_the_markdown_fence_of_mermaid_output(tmp_path: Path) -> None:
    """`lineage --format mermaid` is pasted into GitHub markdown: a raw newline in a name
    let a signed attestation end the ```mermaid fence and write its own markdown."""
    evil = 'model"]\n```\n\n# RELEASE APPROVED\n\n```mermaid\nflowchart LR\n  x["'
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": evil, "digest": {"sha256": "b" * 64}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://mlprov.dev/buildtypes/training/v1",
                "externalParameters": {},
                "resolvedDependencies": [{"name": "data\r\n%% x", "digest": {"sha256": "c" * 64}}],
            },
            "runDetails": {"builder": {"id": "https://ci.example"}, "metadata": {}},
        },
    }
    (tmp_path / "s.json").write_text(json.dumps(statement))
    assert run_cli("keygen", "--out", tmp_path / "k", "--no-password").code == 0
    signed = tmp_path / "s.intoto.json"
    assert (
        run_cli("sign", tmp_path / "s.json", "--key", tmp_path / "k.key", "--out", signed).code == 0
    )
    assert run_cli("store", "add", signed).code == 0
    done = run_cli("lineage", "sha256:" + "b" * 64, "--up", "--format", "mermaid")
    assert done.code == 0, done
    lines = done.out.splitlines()
    assert lines[0] == "flowchart LR" and all(line.startswith("  ") for line in lines[1:]), lines
    assert len(lines) == 6 and "RELEASE APPROVED" in lines[1] and "\\n" in lines[1], lines


def test_model_sign_refuses_a_file_name_that_is_not_utf8(tmp_path: Path) -> None:
    """A name with undecodable bytes was signed as a lone surrogate that no JSON reader
    (our own `model verify` included) accepts: the signature could never be verified, and
    other tools read b"\\xff" and b"\\xfe" alike as U+FFFD. Refused before signing."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    try:
        (model / "w\udcff.bin").write_bytes(b"x")
    except (UnicodeEncodeError, OSError):
        pytest.skip("this file system refuses names that are not UTF-8")
    assert run_cli("keygen", "--out", tmp_path / "k", "--no-password").code == 0
    key, signature = tmp_path / "k.key", tmp_path / "s"
    done = run_cli("model", "sign", model, "--key", key, "--signature", signature)
    assert done.code == 2 and done.err.count("\n") == 1, done
    assert done.err.startswith("mlprov: error: ") and '"w\\xff.bin"' in done.err, done
    assert "not UTF-8" in done.err and not signature.exists(), done


def test_a_config_with_an_int_of_5000_digits_is_one_line(tmp_path: Path) -> None:
    """Python refuses to parse ints over 4,300 digits with a plain ValueError, which the
    TOML and JSON config readers let through as a traceback."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w.bin").write_bytes(b"w")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "d.csv").write_text("x\n")
    digits = "1" + "0" * 5000
    for name, text in (("c.toml", f"lr = {digits}\n"), ("c.json", f'{{"lr": {digits}}}')):
        (tmp_path / name).write_text(text)
        out = tmp_path / f"{name}.statement.json"
        done = run_cli(
            "attest", "train", "--model", tmp_path / "model", "--dataset",
            f"train={tmp_path / 'data'}", "--config", tmp_path / name, "--out", out,
        )  # fmt: skip
        assert done.code == 2 and done.err.count("\n") == 1, done
        assert done.err.startswith(f"mlprov: error: {tmp_path / name}: ") and "4300" in done.err
        assert not out.exists()


# -- one attestation whose subjects times materials is large ------------------------------


def dense_provenance(tmp_path: Path, subjects: int, materials: int) -> tuple[Path, str]:
    """A signed SLSA provenance of `subjects` outputs and `materials` inputs (each output
    is built from each input: subjects x materials edges), and the first output's digest."""

    def descriptor(name: str, number: int) -> dict[str, object]:
        return {"name": name, "digest": {"sha256": f"{number:064x}"}}

    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [descriptor(f"out{i}", i) for i in range(subjects)],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://mlprov.dev/buildtypes/training/v1",
                "externalParameters": {},
                "resolvedDependencies": [descriptor(f"in{i}", 10**6 + i) for i in range(materials)],
            },
            "runDetails": {"builder": {"id": "https://ci.example"}, "metadata": {}},
        },
    }
    (tmp_path / "dense.json").write_text(json.dumps(statement))
    assert run_cli("keygen", "--out", tmp_path / "k", "--no-password").code == 0
    signed = tmp_path / "dense.intoto.json"
    key = tmp_path / "k.key"
    assert run_cli("sign", tmp_path / "dense.json", "--key", key, "--out", signed).code == 0
    assert run_cli("store", "add", signed, "--key", tmp_path / "k.pub").code == 0
    return tmp_path / "k.pub", "sha256:" + f"{0:064x}"


def test_the_bom_of_an_attestation_with_200_subjects_and_200_materials_ends(
    tmp_path: Path,
) -> None:
    """Its 40,000 edges were deduplicated by a list scan (800 million comparisons): the BOM
    took minutes. Edges are indexed; each output lists its 200 inputs."""
    key, model = dense_provenance(tmp_path, 200, 200)
    bom = tmp_path / "bom.json"
    with time_limit(60):
        done = run_cli("bom", model, "--key", key, "--out", bom)
    assert done.code == 0, done
    document = json.loads(bom.read_text())
    [root] = [
        d
        for d in document["dependencies"]
        if d["ref"] == document["metadata"]["component"]["bom-ref"]
    ]
    assert len(root["dependsOn"]) == 200, root


def test_lineage_evidence_past_a_million_edges_is_refused(tmp_path: Path) -> None:
    """1,100 x 1,000 edges from one 400 KB attestation: refused in one line, not gigabytes."""
    key, model = dense_provenance(tmp_path, 1100, 1000)
    with time_limit(60):
        done = run_cli("bom", model, "--key", key, "--out", tmp_path / "bom.json")
    assert done.code == 2 and done.err.count("\n") == 1, done
    assert "more than 1000000 edges" in done.err and not (tmp_path / "bom.json").exists()
