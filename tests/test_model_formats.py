"""Model facts read from file headers, and headers that lie."""

from __future__ import annotations

import collections
import gzip
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import run_cli
from mlprov.collect.model_formats import (
    PICKLE_SCAN_LIMIT,
    SAFETENSORS_HEADER_LIMIT,
    pickle_imports,
    read_file_facts,
    scan_model,
)
from mlprov.digest import digest_tree


def safetensors(tensors: dict[str, Any], meta: dict[str, str] | None = None) -> bytes:
    """A safetensors file from {name: ndarray}, laid out as the format says."""
    codes = {"float32": "F32", "float16": "F16", "int64": "I64"}
    header: dict[str, Any] = {"__metadata__": meta} if meta is not None else {}
    data = b""
    for name, array in tensors.items():
        raw = array.tobytes()
        header[name] = {
            "dtype": codes[str(array.dtype)],
            "shape": list(array.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def with_header(header: dict[str, Any], data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


class Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo owned",))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- safetensors -------------------------------------------------------------------------


def test_safetensors_facts(tmp_path: Path) -> None:
    data = safetensors(
        {"w": np.zeros((3, 4), np.float32), "b": np.zeros(4, np.float16)}, {"format": "pt"}
    )
    facts = read_file_facts(_write(tmp_path / "m.safetensors", data), "m.safetensors")
    assert facts is not None and facts.malformed is None
    assert (facts.format, facts.tensorCount, facts.parameterCount) == ("safetensors", 2, 16)
    assert facts.dtypes == ["F16", "F32"] and facts.metadata == {"format": "pt"}
    assert facts.canRunCode is False


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (struct.pack("<Q", 10_000) + b"{}", "larger than the file"),
        (struct.pack("<Q", SAFETENSORS_HEADER_LIMIT + 1) + b"{}", "exceeds"),
        (b"\x01\x02", "file ends before 8 bytes"),
        (struct.pack("<Q", 4) + b"nope", "not JSON"),
        (with_header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"x" * 8),
         "outside the 8-byte data"),
        (with_header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"x" * 8),
         "do not hold"),
        (with_header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"x" * 12),
         "overlap or gap"),
        (with_header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"x" * 9),
         "cover 4 of the 9"),
        (with_header({"w": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 4]}}, b"x" * 4),
         "unknown dtype"),
        (with_header({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"x" * 4),
         "bad shape"),
        (with_header({"__metadata__": {"k": 1}}, b""), "not an object of strings"),
        (struct.pack("<Q", 19) + b'{"a": {}, "a": {}} ', "appears twice"),
        (struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    ],
)  # fmt: skip
def test_a_safetensors_header_that_lies_is_malformed(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    facts = read_file_facts(_write(tmp_path / "m.safetensors", data), "m.safetensors")
    assert facts is not None and facts.malformed is not None
    assert reason in facts.malformed
    assert facts.parameterCount is None and facts.tensorCount is None  # nothing trusted


# -- GGUF ---------------------------------------------------------------------------------


def gguf_file(path: Path) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    writer.add_block_count(2)
    writer.add_tensor("tok_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.add_tensor("output.weight", np.ones((16,), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_facts(tmp_path: Path) -> None:
    facts = read_file_facts(gguf_file(tmp_path / "m.gguf"), "m.gguf")
    assert facts is not None and facts.malformed is None
    assert facts.architecture == "llama" and facts.fileType == "MOSTLY_Q8_0"
    assert facts.tensorCount == 2 and facts.parameterCount == 8 * 4 + 16
    assert facts.tensorTypes == {"F16": 1, "F32": 1}


@pytest.mark.parametrize(
    ("offset", "value"), [(8, 2**40), (16, 2**40), (4, 2**31)]
)  # tensor count, kv count, version
def test_a_gguf_header_that_lies_is_malformed(tmp_path: Path, offset: int, value: int) -> None:
    data = bytearray(gguf_file(tmp_path / "m.gguf").read_bytes())
    width = 4 if offset == 4 else 8
    data[offset : offset + width] = value.to_bytes(width, "little")
    facts = read_file_facts(_write(tmp_path / "bad.gguf", bytes(data)), "bad.gguf")
    assert facts is not None and facts.malformed, facts


def test_a_gguf_cut_inside_its_tensors_is_malformed(tmp_path: Path) -> None:
    data = gguf_file(tmp_path / "m.gguf").read_bytes()
    facts = read_file_facts(_write(tmp_path / "cut.gguf", data[:-40]), "cut.gguf")
    assert facts is not None and facts.malformed and facts.parameterCount is None


# -- ONNX ---------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def onnx_model(*, dims: tuple[int, ...] = (3, 4), opset: int = 17) -> bytes:
    """A ModelProto as onnx writes it: ir_version, producer, graph with one initializer."""
    tensor = b"".join(_field(1, d) for d in dims) + _field(2, 1) + _field(8, b"W")
    tensor += _field(9, b"\0" * 4 * 12)  # raw_data, skipped by the reader
    graph = _field(1, _field(4, b"Identity")) + _field(2, b"g") + _field(5, tensor)
    return (
        _field(1, 8)
        + _field(2, b"pytorch")
        + _field(3, b"2.3.0")
        + _field(7, graph)
        + _field(8, _field(1, b"") + _field(2, opset))
        + _field(8, _field(1, b"ai.onnx.ml") + _field(2, 3))
    )


def test_onnx_facts(tmp_path: Path) -> None:
    facts = read_file_facts(_write(tmp_path / "m.onnx", onnx_model()), "m.onnx")
    assert facts is not None and facts.malformed is None, facts
    assert facts.irVersion == 8 and facts.opset == {"": 17, "ai.onnx.ml": 3}
    assert (facts.producerName, facts.producerVersion) == ("pytorch", "2.3.0")
    assert facts.parameterCount == 12 and facts.tensorCount == 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_field(1, 8) + _varint(7 << 3 | 2) + _varint(10**9), "runs past"),
        (_field(1, 8) + b"\xff" * 11, "varint"),
        (_field(1, 8) + _varint(2 << 3 | 2) + _varint(5000) + b"x" * 5000, "exceeds"),
        (_field(2, b"just a producer"), "not an ONNX model"),
        (_varint(1 << 3 | 3), "wire type"),
    ],
)
def test_an_onnx_header_that_lies_is_malformed(tmp_path: Path, data: bytes, reason: str) -> None:
    facts = read_file_facts(_write(tmp_path / "m.onnx", data), "m.onnx")
    assert facts is not None and facts.malformed and reason in facts.malformed, facts


# -- NumPy --------------------------------------------------------------------------------


def test_npy_and_npz_facts(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((3, 5), np.float32))
    facts = read_file_facts(tmp_path / "a.npy", "a.npy")
    assert facts is not None and (facts.shape, facts.dtypes) == ([3, 5], ["<f4"])
    assert facts.parameterCount == 15 and not facts.canRunCode
    np.savez(tmp_path / "b.npz", w=np.zeros((2, 2)), b=np.zeros(3))
    facts = read_file_facts(tmp_path / "b.npz", "b.npz")
    assert facts is not None and facts.arrays == {"w": [2, 2], "b": [3]}
    assert facts.parameterCount == 7
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    facts = read_file_facts(tmp_path / "o.npy", "o.npy")
    assert facts is not None and facts.canRunCode, "object arrays load through pickle"


def test_an_npy_header_that_lies_is_malformed(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros((100,), np.float64))
    data = (tmp_path / "a.npy").read_bytes()
    facts = read_file_facts(_write(tmp_path / "cut.npy", data[:200]), "cut.npy")
    assert facts is not None and facts.malformed and "needs" in facts.malformed
    huge = b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b"{" * 60000
    facts = read_file_facts(_write(tmp_path / "huge.npy", huge), "huge.npy")
    assert facts is not None and facts.malformed
    facts = read_file_facts(_write(tmp_path / "fake.npy", b"not numpy at all"), "fake.npy")
    assert facts is not None and facts.malformed and "magic" in facts.malformed


# -- pickle -------------------------------------------------------------------------------


def test_pickle_imports_are_listed_without_running_them(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = pickle.dumps(
        {"opt": collections.OrderedDict(), "x": Evil(), "touch": _Touch(str(marker))}, protocol=4
    )
    for name, data in [
        ("m.pkl", payload),
        ("m.pt", pickle.dumps(Evil(), protocol=2)),
        ("m.joblib", gzip.compress(payload)),
        ("w.bin", pickle.dumps(Evil(), protocol=3)),
        ("old.pkl", pickle.dumps(Evil(), protocol=0)),
        ("m.sav", __import__("bz2").compress(payload)),
        ("m.pickle", __import__("lzma").compress(payload)),
        ("noext", payload),
    ]:
        facts = read_file_facts(_write(tmp_path / name, data), name)
        assert facts is not None and facts.format == "pickle" and facts.canRunCode, name
        assert facts.imports is not None and "posix.system" in facts.imports, (name, facts)
    assert not marker.exists(), "scanning must never execute the pickle"


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def test_pytorch_zip_archives_are_pickles(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(Evil(), protocol=2))
        archive.writestr("archive/data/0", b"\0" * 16)
        archive.writestr("archive/version", "3\n")
    for name in ("pytorch_model.bin", "model.pt", "weights.ckpt"):
        facts = read_file_facts(_write(tmp_path / name, buffer.getvalue()), name)
        assert facts is not None and facts.format == "pytorch-zip" and facts.canRunCode
        assert facts.imports == ["posix.system"]


def test_legacy_torch_files_are_several_pickles_then_bytes() -> None:
    stream = io.BytesIO(
        pickle.dumps(0x1950A86A20F9469CFC6C, 2)
        + pickle.dumps(1001, 2)
        + pickle.dumps(collections.OrderedDict(), 2)
        + b"\x00\x01raw storage bytes"
    )
    imports, truncated = pickle_imports(stream)
    assert imports == ["collections.OrderedDict"] and not truncated


def test_pickle_scan_is_bounded(tmp_path: Path) -> None:
    data = pickle.dumps(Evil(), 4)[:-1] + b"N" * 64 + b"."  # NONE opcodes, then STOP
    imports, truncated = pickle_imports(io.BytesIO(data), limit=32)
    assert truncated and imports == ["posix.system"]
    assert PICKLE_SCAN_LIMIT <= 64 << 20


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"\x8a"])  # BINBYTES8, BINUNICODE8, LONG4
def test_a_pickle_claiming_a_huge_argument_allocates_nothing(tmp_path: Path, opcode: bytes) -> None:
    import tracemalloc

    width = 4 if opcode == b"\x8a" else 8
    data = b"\x80\x04" + opcode + (2**62 if width == 8 else 2**31 - 1).to_bytes(width, "little")
    tracemalloc.start()
    try:
        facts = read_file_facts(_write(tmp_path / "m.pkl", data + b"x" * 100), "m.pkl")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert facts is not None and facts.canRunCode and (facts.truncated or facts.malformed)
    assert peak < 8 << 20


def test_random_bytes_never_escape_the_pickle_scanner() -> None:
    import random

    rng = random.Random(15)
    seeds = [pickle.dumps({"a": [1, 2.5, "x", b"y"], "o": collections.OrderedDict()}, p)
             for p in range(6)]  # fmt: skip
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            pickle_imports(io.BytesIO(bytes(data)))
        except Exception as exc:
            assert type(exc).__name__ == "Malformed", exc


def test_mutated_model_files_are_described_or_malformed_never_an_error(tmp_path: Path) -> None:
    """Random byte flips and truncations of every format: a fact or `malformed`, no raise."""
    import random

    np.save(tmp_path / "a.npy", np.zeros((3, 4), np.float32))
    np.savez(tmp_path / "b.npz", w=np.zeros(3))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("archive/data.pkl", pickle.dumps(collections.OrderedDict(), 2))
    seeds = {
        "m.safetensors": safetensors({"w": np.zeros((3, 4), np.float32)}, {"k": "v"}),
        "m.onnx": onnx_model(),
        "m.gguf": gguf_file(tmp_path / "seed.gguf").read_bytes(),
        "a.npy": (tmp_path / "a.npy").read_bytes(),
        "b.npz": (tmp_path / "b.npz").read_bytes(),
        "m.pt": archive.getvalue(),
        "m.pkl": pickle.dumps({"a": collections.OrderedDict()}, 4),
    }
    rng = random.Random(15)
    for name, seed in seeds.items():
        for _ in range(60):
            data = bytearray(seed)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.2:
                data = data[: rng.randrange(len(data))]
            read_file_facts(_write(tmp_path / "fuzz" / name, bytes(data)), name)


def test_a_bin_that_is_no_pickle_has_no_facts(tmp_path: Path) -> None:
    assert read_file_facts(_write(tmp_path / "w.bin", b"\x00\x11raw weights"), "w.bin") is None
    facts = read_file_facts(_write(tmp_path / "w.pkl", b"\x00\x11garbage"), "w.pkl")
    assert facts is not None and facts.malformed and facts.canRunCode


# -- a model tree -------------------------------------------------------------------------


def model_tree(root: Path) -> Path:
    _write(root / "model-00001.safetensors", safetensors({"a": np.zeros((10, 10), np.float32)}))
    _write(root / "model-00002.safetensors", safetensors({"b": np.zeros(20, np.float16)}))
    _write(root / "pytorch_model.bin", pickle.dumps(collections.OrderedDict(), 2))
    _write(root / "config.json", b'{"layers": 2}')
    _write(root / "sub" / "broken.safetensors", struct.pack("<Q", 999) + b"{}")
    return root


def test_tree_facts_summarise_the_files(tmp_path: Path) -> None:
    root = model_tree(tmp_path / "model")
    facts = scan_model(root, digest_tree(root))
    assert facts.formats == ["pickle", "safetensors"]
    assert facts.parameterCounts == {"safetensors": 120} and facts.parameterCount == 120
    assert facts.canRunCode and facts.pickleFiles == ["pytorch_model.bin"]
    assert facts.malformedFiles == ["sub/broken.safetensors"]
    assert [f.path for f in facts.files] == [
        "model-00001.safetensors",
        "model-00002.safetensors",
        "pytorch_model.bin",
        "sub/broken.safetensors",
    ]


def test_digest_json_and_attest_record_the_facts(tmp_path: Path) -> None:
    root = model_tree(tmp_path / "model")
    result = run_cli("digest", root, "--json")
    assert result.code == 0, result
    assert json.loads(result.out)[0]["modelFacts"]["pickleFiles"] == ["pytorch_model.bin"]
    out = tmp_path / "t.json"
    made = run_cli("attest", "train", "--model", root, "--no-git", "--no-packages", "--out", out)
    assert made.code == 0, made
    subject = json.loads(out.read_text())["subject"][0]
    assert subject["annotations"]["modelFacts"]["parameterCount"] == 120
    from mlprov.schemagen import validate_document

    validate_document("model-facts", subject["annotations"]["modelFacts"], source="t.json")
    validate_document("statement", json.loads(out.read_text()), source="t.json")


# -- layouts ------------------------------------------------------------------------------

NO_PICKLE = (
    "subject.all(s, !has(s.annotations) || !has(s.annotations.modelFacts)"
    " || !s.annotations.modelFacts.canRunCode)"
)
PINNED = (
    "subject.exists(s, s.name == 'model' && s.annotations.modelFacts.parameterCount == {params})"
)


def _layout(tmp_path: Path, pub: Path) -> Path:
    import yaml

    layout = {
        "expires": "2099-01-01T00:00:00Z",
        "parameters": {"params": 120},
        "functionaries": {"trainer": {"publicKeyPath": str(pub)}},
        "steps": [
            {
                "name": "train",
                "expectedMaterials": ["ALLOW *"],
                "expectedProducts": ["CREATE model", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "functionaries": ["trainer"],
                        "expectedAttributes": [{"rule": NO_PICKLE}, {"rule": PINNED}],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "layout.yaml"
    path.write_text(yaml.safe_dump(layout, sort_keys=False))
    return path


def _train(tmp_path: Path, model: Path, key: Path) -> Path:
    att = tmp_path / "att"
    att.mkdir(exist_ok=True)
    out = att / "train.intoto.json"
    made = run_cli(
        "attest", "train", "--model", model, "--no-git", "--no-packages", "--sign", key,
        "--out", out, "--force",
    )  # fmt: skip
    assert made.code == 0, made
    return att


def test_layout_rules_refuse_pickle_and_pin_the_parameter_count(tmp_path: Path) -> None:
    from mlprov.signing.keys import generate_keypair

    pair = generate_keypair("ecdsa-p256")
    key, pub = tmp_path / "t.key", tmp_path / "t.pub"
    key.write_bytes(pair.private_pem)
    pub.write_bytes(pair.public_pem)
    layout = _layout(tmp_path, pub)
    model = tmp_path / "model"
    _write(model / "a.safetensors", safetensors({"a": np.zeros((10, 12), np.float32)}))
    passed = run_cli("policy", "check", layout, "--attestations", _train(tmp_path, model, key))
    assert passed.code == 0, passed
    _write(model / "pytorch_model.bin", pickle.dumps(collections.OrderedDict(), 2))
    refused = run_cli("policy", "check", layout, "--attestations", _train(tmp_path, model, key))
    assert refused.code == 1
    assert "modelFacts.canRunCode" in refused.err and "does not hold" in refused.err
    (model / "pytorch_model.bin").unlink()
    _write(model / "b.safetensors", safetensors({"b": np.zeros(3, np.float32)}))
    pinned = run_cli("policy", "check", layout, "--attestations", _train(tmp_path, model, key))
    assert pinned.code == 1 and "parameterCount == 120" in pinned.err
    other = run_cli(
        "policy", "check", layout, "--attestations", _train(tmp_path, model, key),
        "--param", "params=123",
    )  # fmt: skip
    assert other.code == 0, other


def test_starter_layout_refuses_pickle_files(tmp_path: Path) -> None:
    from mlprov.policy.attribute_rules import compile_cel
    from mlprov.signing.keys import generate_keypair

    pub = tmp_path / "k.pub"
    pub.write_bytes(generate_keypair("ecdsa-p256").public_pem)
    out = tmp_path / "layout.yaml"
    keys = [arg for step in ("dataset", "train", "eval") for arg in ("--key", f"{step}={pub}")]
    assert run_cli("policy", "init", "--out", out, *keys).code == 0
    text = out.read_text()
    assert "To allow" in text
    assert run_cli("policy", "lint", out).code == 0
    import yaml

    train = next(s for s in yaml.safe_load(text)["steps"] if s["name"] == "train")
    rules = [r["rule"] for r in train["expectedPredicates"][0]["expectedAttributes"]]
    rule = next(r for r in rules if "canRunCode" in r)
    program = compile_cel(rule, where="starter")
    from mlprov.policy.attribute_rules import activation

    model = model_tree(tmp_path / "model")
    facts = scan_model(model, digest_tree(model)).to_annotation()
    refused = {"subject": [{"name": "model", "annotations": {"modelFacts": facts}}]}
    assert not program.evaluate(activation(refused), time_limit=5.0)
    (model / "pytorch_model.bin").unlink()
    facts = scan_model(model, digest_tree(model)).to_annotation()
    allowed = {"subject": [{"name": "model", "annotations": {"modelFacts": facts}}]}
    assert program.evaluate(activation(allowed), time_limit=5.0)
