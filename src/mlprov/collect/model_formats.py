"""What is inside model files, read from their headers without loading a weight.

safetensors (tensor count, dtypes, parameter count, `__metadata__`), GGUF (architecture,
file type, tensor types, parameter count; a walk of its header that skips arrays of
numbers whole, with the `gguf` package's type tables), ONNX (IR version, opsets,
producer, initializer parameter count; a minimal protobuf walk that skips every tensor's
bytes), NumPy `.npy`/`.npz` (dtype, shape), and pickle-based files
(`.bin`, `.pt`, `.pth`, `.ckpt`, `.pkl`, joblib, PyTorch zip archives with `data.pkl`),
which can run code when loaded: their GLOBAL / STACK_GLOBAL imports are listed with
`pickletools.genops`, which only decodes opcodes and never executes one.

Every header is distrusted: its length is capped and checked against the file's size,
every offset must lie inside the file, and a header that lies is reported as malformed
(with why), never used. The facts go into a model's ResourceDescriptor annotations as
`modelFacts` (the `model-facts` schema), where layouts' CEL rules can test them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickletools
import stat
import struct
import warnings
import zipfile
from collections.abc import Iterator
from math import prod
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlprov.digest.manifest import TreeManifest

#: safetensors' own limit on its JSON header (the `safetensors` library refuses more).
SAFETENSORS_HEADER_LIMIT = 100_000_000
#: NumPy's default limit on an .npy header.
NPY_HEADER_LIMIT = 10_000
#: Bytes of pickle opcodes scanned per pickle stream (data.pkl of a 70B model is ~1 MiB).
PICKLE_SCAN_LIMIT = 64 << 20
#: Pickle opcodes decoded per file (a torch zip's members share them) and per tree:
#: pickletools decodes about a million a second, and a deflated member of one-byte opcodes
#: is 1000 times its size, so a 1 MB file could take minutes and a tree of them hours.
#: A real 70B model's data.pkl has a few hundred thousand.
PICKLE_FILE_OPS = 2_000_000
PICKLE_TREE_OPS = 16_000_000
#: Memoized strings remembered for STACK_GLOBAL (a pickle may memoize millions of values).
PICKLE_MEMO_LIMIT = 65_536
#: ONNX top-level fields other than the graph (producer, doc string…) read at most this.
ONNX_FIELD_LIMIT = 1 << 20
#: Varints (field keys, lengths, values) an ONNX walk reads: ~6 s of Python, where a real
#: model's graph needs a few per initializer (node and tensor bytes are skipped whole).
ONNX_VARINT_LIMIT = 8_000_000
#: Files of one tree whose headers are read; the rest are counted as not scanned.
MAX_SCANNED_FILES = 10_000
#: Imports, metadata entries and npz members recorded per file.
MAX_LISTED = 256
METADATA_VALUE_LIMIT = 1024
#: Characters of a `malformed` reason (a lying header's shape or name can be megabytes).
REASON_LIMIT = 300
#: Elements one tensor, or one file's tensors together, may hold: CEL integers are int64.
MAX_ELEMENTS = 2**63 - 1

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".sav"}
#: Text and data files never sniffed for a model format (any other name is: a pickle
#: renamed `weights.dat` still loads through pickle).
TEXT_SUFFIXES = {
    ".json", ".jsonl", ".txt", ".md", ".py", ".yaml", ".yml", ".toml", ".csv", ".tsv",
    ".parquet", ".arrow", ".html", ".png", ".jpg", ".jpeg", ".gif", ".cfg", ".ini", ".log",
    ".model", ".tiktoken", ".vocab", ".merges", ".spm", ".xml", ".gitattributes",
}  # fmt: skip
Format = Literal["safetensors", "gguf", "onnx", "npy", "npz", "pickle", "pytorch-zip"]

#: safetensors dtypes and their width in bits.
_ST_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16,
    "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64,
    "I64": 64, "U64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "C64": 64,
}  # fmt: skip


class Malformed(Exception):
    """A header that cannot be trusted; the text says why."""


class FileFacts(BaseModel):
    """What one file's header says. Only the fields its format has are set."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="The file's path in the model tree (POSIX).")
    format: Format
    canRunCode: bool = Field(
        False, description="Loading it runs pickle (arbitrary code) unless a safe loader is used."
    )
    malformed: str | None = Field(None, description="Why the header was not trusted.")
    tensorCount: int | None = None
    parameterCount: int | None = None
    dtypes: list[str] | None = None
    metadata: dict[str, str] | None = Field(None, description="safetensors `__metadata__`.")
    architecture: str | None = Field(None, description="GGUF general.architecture.")
    fileType: str | None = Field(None, description="GGUF general.file_type (quantisation).")
    tensorTypes: dict[str, int] | None = Field(None, description="GGUF tensors per type.")
    irVersion: int | None = None
    opset: dict[str, int] | None = Field(None, description="ONNX opset per domain ('' = ai.onnx).")
    producerName: str | None = None
    producerVersion: str | None = None
    shape: list[int] | None = Field(None, description="An .npy array's shape.")
    arrays: dict[str, list[int]] | None = Field(None, description="An .npz's arrays and shapes.")
    imports: list[str] | None = Field(
        None, description="`module.name` a pickle imports (GLOBAL, STACK_GLOBAL, INST)."
    )
    truncated: bool | None = Field(None, description="A limit stopped the scan early.")


class ModelFacts(BaseModel):
    """The `modelFacts` annotation of a model: every recognised file, and summaries that
    layouts test (`canRunCode`, `pickleFiles`, `parameterCount`, `formats`)."""

    model_config = ConfigDict(extra="forbid")

    formats: list[str] = Field(description="Formats found, sorted.")
    parameterCount: int | None = Field(
        None,
        description="Largest per-format total (shards of one format add up; the same "
        "weights saved in two formats count once).",
    )
    parameterCounts: dict[str, int] = Field(default_factory=dict)
    canRunCode: bool = Field(description="Some file loads through pickle.")
    pickleFiles: list[str] = Field(description="Files that load through pickle.")
    malformedFiles: list[str] = Field(description="Files whose header lies.")
    unscannedFiles: int = 0
    files: list[FileFacts]

    def to_annotation(self) -> dict[str, Any]:
        """As recorded: unset fields, empty `parameterCounts` and zero `unscannedFiles` left out."""
        data = self.model_dump(mode="json", exclude_none=True)
        for key in ("parameterCounts", "unscannedFiles"):
            if not data.get(key):
                data.pop(key, None)
        return data


# -- opening ------------------------------------------------------------------------------


def _open_regular(path: Path) -> tuple[IO[bytes], int]:
    """A regular file opened for reading (no FIFO can hang it) and its size."""
    # Links were vetted by the digest walk that listed the file (hub blobs, or asked for).
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise Malformed("not a regular file")
    return os.fdopen(fd, "rb"), st.st_size


def _read_exact(handle: IO[bytes], n: int, what: str) -> bytes:
    data = handle.read(n)
    if len(data) != n:
        raise Malformed(f"{what}: file ends before {n} bytes")
    return data


def _strict_json(data: bytes, what: str) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise Malformed(f"{what}: key {key!r} appears twice")
            out[key] = value
        return out

    try:
        return json.loads(data, object_pairs_hook=pairs)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"{what}: not JSON ({str(exc)[:80]})") from None


# -- safetensors --------------------------------------------------------------------------


def read_safetensors(path: Path, name: str) -> FileFacts:
    """8-byte little-endian header length, a JSON header, then the tensors' bytes."""
    with _open_regular(path)[0] as handle:
        size = os.fstat(handle.fileno()).st_size
        (length,) = struct.unpack("<Q", _read_exact(handle, 8, "header length"))
        if length > SAFETENSORS_HEADER_LIMIT:
            raise Malformed(f"header length {length} exceeds {SAFETENSORS_HEADER_LIMIT}")
        if length > size - 8:
            raise Malformed(f"header length {length} is larger than the file ({size} bytes)")
        header = _strict_json(_read_exact(handle, length, "header"), "header")
    if not isinstance(header, dict):
        raise Malformed("header is not a JSON object")
    buffer = size - 8 - length
    metadata = header.pop("__metadata__", None)
    spans: list[tuple[int, int, str]] = []
    params = 0
    dtypes: set[str] = set()
    for tensor, info in header.items():
        if not isinstance(info, dict):
            raise Malformed(f"tensor {tensor!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in _ST_BITS:
            raise Malformed(f"tensor {tensor!r}: unknown dtype {dtype!r}")
        if not (isinstance(shape, list) and all(_uint(d) for d in shape)):
            raise Malformed(f"tensor {tensor!r}: bad shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_uint, offsets))):
            raise Malformed(f"tensor {tensor!r}: bad data_offsets {offsets!r}")
        begin, end = offsets
        if begin > end or end > buffer:
            raise Malformed(
                f"tensor {tensor!r}: offsets [{begin}, {end}] lie outside the {buffer}-byte data"
            )
        count = _elements(shape, (end - begin) * 8 // _ST_BITS[dtype])
        if count is None or (end - begin) * 8 != count * _ST_BITS[dtype]:
            raise Malformed(f"tensor {tensor!r}: {end - begin} bytes do not hold {shape} {dtype}")
        spans.append((begin, end, tensor))
        params += count
        dtypes.add(dtype)
    position = 0
    for begin, end, tensor in sorted(spans):
        if begin != position:
            raise Malformed(f"tensor {tensor!r} starts at {begin}, not {position} (overlap or gap)")
        position = end
    if position != buffer:
        raise Malformed(f"tensors cover {position} of the {buffer} data bytes")
    facts = FileFacts(
        path=name, format="safetensors", tensorCount=len(spans), parameterCount=params,
        dtypes=sorted(dtypes),
    )  # fmt: skip
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise Malformed("__metadata__ is not an object of strings")
        items = sorted(metadata.items())
        facts.metadata = {k[:256]: _clip(v) for k, v in items[:MAX_LISTED]}
        if len(items) > MAX_LISTED or any(len(v) > METADATA_VALUE_LIMIT for _, v in items):
            facts.truncated = True
    return facts


def _uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _elements(dims: list[int], cap: int = MAX_ELEMENTS) -> int | None:
    """The product of `dims`, or None past `cap`: it stops there, where multiplying out
    200,000 dims of 2**64 would build a 12-million-bit number for minutes."""
    if 0 in dims:
        return 0
    count = 1
    for dim in dims:
        count *= dim
        if count > cap:
            return None
    return count


def _clip(text: str) -> str:
    return text if len(text) <= METADATA_VALUE_LIMIT else text[: METADATA_VALUE_LIMIT - 1] + "…"


# -- GGUF ---------------------------------------------------------------------------------

#: GGUF metadata value types of a fixed width (struct codes), and the two that are not.
_GGUF_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                 11: "q", 12: "d"}  # fmt: skip
_GGUF_STRING, _GGUF_ARRAY = 8, 9
#: Strings, arrays and tensors a GGUF header may hold (each costs a read here; arrays of
#: numbers are skipped whole): a 262,144-token vocabulary with its merges is under 800,000.
GGUF_ITEM_LIMIT = 4_000_000
#: Nesting of GGUF arrays of arrays, and dims of a tensor (ggml has 4).
GGUF_DEPTH_LIMIT = 8
GGUF_DIMS_LIMIT = 8


class _GGUFHeader:
    """A GGUF header walked as the format says, each count checked against the bytes left:
    an array of scalars is skipped whole, never built item by item."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle, self.size, self.order = handle, size, "<"
        self.items = self.pos = 0  # the position is kept here: asking the file is a syscall

    def read(self, n: int) -> bytes:
        self.room(n)
        self.pos += n
        return _read_exact(self.handle, n, "GGUF header")

    def skip(self, n: int) -> None:
        self.room(n)
        self.pos += n
        if n > 1 << 16:
            self.handle.seek(n, io.SEEK_CUR)
        else:
            self.handle.read(n)

    def unpack(self, code: str) -> Any:
        return struct.unpack(self.order + code, self.read(struct.calcsize(code)))[0]

    def spend(self, items: int) -> None:
        self.items += items
        if self.items > GGUF_ITEM_LIMIT:
            raise Malformed(f"GGUF header: more than {GGUF_ITEM_LIMIT} strings, arrays and tensors")

    def string(self, limit: int | None = None) -> bytes:
        self.spend(1)
        length = self.unpack("Q")
        if limit is not None and length > limit:
            self.skip(length)
            return b""
        return self.read(length)

    def room(self, length: int) -> None:
        if length > self.size - self.pos:
            raise Malformed(f"GGUF header: {length} bytes announced past the end of the file")

    def value(self, kind: int, depth: int = 0) -> Any:
        """A metadata value: scalars and strings as Python values, arrays skipped (None)."""
        if kind in _GGUF_SCALARS:
            return self.unpack(_GGUF_SCALARS[kind])
        if kind == _GGUF_STRING:
            return self.string(METADATA_VALUE_LIMIT).decode("utf-8", "replace")
        if kind != _GGUF_ARRAY:
            raise Malformed(f"GGUF header: unknown value type {kind}")
        if depth >= GGUF_DEPTH_LIMIT:
            raise Malformed(f"GGUF header: arrays nested deeper than {GGUF_DEPTH_LIMIT}")
        item, count = self.unpack("I"), self.unpack("Q")
        if item in _GGUF_SCALARS:
            self.skip(count * struct.calcsize(_GGUF_SCALARS[item]))
            return None
        self.spend(count)
        if item == _GGUF_STRING:  # a vocabulary: only each string's length is read
            length = struct.Struct(self.order + "Q").unpack
            for _ in range(count):
                self.skip(length(self.read(8))[0])
            return None
        for _ in range(count):
            self.value(item, depth + 1)
        return None


def read_gguf(path: Path, name: str) -> FileFacts:
    """GGUF's metadata and tensor infos, walked here (the `gguf` package's reader builds an
    object per array item: seconds for a real vocabulary, hours for a crafted one); its
    tables name the tensor and file types."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

    handle, size = _open_regular(path)
    with handle:  # buffered: each string of a vocabulary is two small reads
        header = _GGUFHeader(handle, size)
        if header.read(4) != b"GGUF":
            raise Malformed("GGUF: no GGUF magic")
        version = header.unpack("I")
        if version & 0xFFFF == 0:  # written on a big-endian machine
            header.order, version = ">", int.from_bytes(version.to_bytes(4, "little"), "big")
        if version not in (2, 3):
            raise Malformed(f"GGUF version {version} is not read here")
        tensor_count, kv_count = header.unpack("Q"), header.unpack("Q")
        fields: dict[str, Any] = {}
        for _ in range(kv_count):
            key = header.string(1024).decode("utf-8", "replace")
            kind = header.unpack("I")
            if key in fields:
                raise Malformed(f"GGUF header: key {key[:80]!r} appears twice")
            fields[key] = (kind, header.value(kind))
        tensors: list[tuple[str, int, int, int]] = []
        names: set[bytes] = set()
        for _ in range(tensor_count):
            raw = header.string(1024)
            if not raw:
                raise Malformed("GGUF tensor with no name, or one over 1024 bytes")
            if raw in names:
                raise Malformed(f"GGUF tensor {raw[:80]!r} appears twice")
            names.add(raw)
            n_dims = header.unpack("I")
            if n_dims > GGUF_DIMS_LIMIT:
                raise Malformed(f"GGUF tensor {raw[:80]!r} has {n_dims} dims")
            dims = [header.unpack("Q") for _ in range(n_dims)]
            kind, offset = header.unpack("I"), header.unpack("Q")
            count = _elements(dims)
            if count is None:
                raise Malformed(f"GGUF tensor {raw[:80]!r} holds more than {MAX_ELEMENTS} elements")
            tensors.append((raw.decode("utf-8", "replace"), count, kind, offset))
        alignment = fields.get("general.alignment", (4, 32))
        if alignment[0] != 4 or alignment[1] <= 0 or alignment[1] & (alignment[1] - 1):
            raise Malformed("GGUF: general.alignment is not a power of two (uint32)")
        start = -(-header.pos // alignment[1]) * alignment[1]
    params = 0
    types: dict[str, int] = {}
    for tensor, count, kind, offset in tensors:
        try:
            quant = GGMLQuantizationType(kind)
        except ValueError:
            raise Malformed(f"GGUF tensor {tensor[:80]!r}: unknown type {kind}") from None
        block, width = GGML_QUANT_SIZES[quant]
        length = count * width // block
        if start + offset + length > size:
            raise Malformed(
                f"tensor {tensor!r}: data [{start + offset}, {start + offset + length}) past end"
            )
        params += count
        types[quant.name] = types.get(quant.name, 0) + 1
    if params > MAX_ELEMENTS:
        raise Malformed(f"GGUF: tensors hold more than {MAX_ELEMENTS} elements")

    def field(key: str, kind: int) -> Any:
        found = fields.get(key)
        return found[1] if found is not None and found[0] == kind else None

    architecture = field("general.architecture", _GGUF_STRING)
    file_type = field("general.file_type", 4)
    try:
        file_type_name = LlamaFileType(file_type).name if file_type is not None else None
    except ValueError:
        file_type_name = str(file_type)
    return FileFacts(
        path=name, format="gguf", tensorCount=len(tensors), parameterCount=params,
        architecture=architecture, fileType=file_type_name, tensorTypes=dict(sorted(types.items())),
    )  # fmt: skip


# -- ONNX ---------------------------------------------------------------------------------


class _Proto:
    """Just enough of the protobuf wire format to walk a message and skip what is not read."""

    def __init__(self, handle: IO[bytes], end: int) -> None:
        self.handle, self.end = handle, end
        self.left = ONNX_VARINT_LIMIT

    def varint(self) -> int:
        self.left -= 1
        if self.left < 0:  # millions of one-byte fields cost a microsecond each
            raise Malformed(f"ONNX: more than {ONNX_VARINT_LIMIT} fields and values")
        value = shift = 0
        for _ in range(10):
            byte = self.handle.read(1)
            if not byte:
                raise Malformed("ONNX: truncated varint")
            value |= (byte[0] & 0x7F) << shift
            if byte[0] < 0x80:
                return value
            shift += 7
        raise Malformed("ONNX: varint longer than 10 bytes")

    def fields(self, end: int) -> Iterator[tuple[int, int, int]]:
        """(field number, wire type, length or value) until `end`; length-delimited
        fields are left for the caller to read or `skip`."""
        while self.handle.tell() < end:
            key = self.varint()
            number, wire = key >> 3, key & 7
            if wire == 0:
                yield number, wire, self.varint()
            elif wire == 2:
                length = self.varint()
                if self.handle.tell() + length > end:
                    raise Malformed(f"ONNX: field {number} of {length} bytes runs past its end")
                yield number, wire, length
            elif wire in (1, 5):
                self.skip(8 if wire == 1 else 4, end)
                yield number, wire, 0
            else:
                raise Malformed(f"ONNX: unsupported wire type {wire}")
        if self.handle.tell() != end:
            raise Malformed("ONNX: a field runs past its message")

    def skip(self, length: int, end: int) -> None:
        if self.handle.tell() + length > end:
            raise Malformed("ONNX: field runs past the end")
        self.handle.seek(length, io.SEEK_CUR)

    def text(self, length: int, limit: int = ONNX_FIELD_LIMIT) -> str:
        if length > limit:
            raise Malformed(f"ONNX: a {length}-byte text field exceeds {limit}")
        return self.handle.read(length).decode("utf-8", "replace")


def read_onnx(path: Path, name: str) -> FileFacts:
    """ModelProto's IR version, producer and opsets, and the graph's initializers' sizes."""
    handle, size = _open_regular(path)
    with handle:
        proto = _Proto(handle, size)
        facts = FileFacts(path=name, format="onnx", opset={}, parameterCount=0, tensorCount=0)
        assert facts.opset is not None
        for number, wire, value in proto.fields(size):
            start = handle.tell()
            if wire == 0 and number == 1:
                facts.irVersion = value
            elif wire == 2 and number == 2:
                facts.producerName = proto.text(value, 1024)
            elif wire == 2 and number == 3:
                facts.producerVersion = proto.text(value, 1024)
            elif wire == 2 and number == 8:
                domain, version = "", 0
                for sub, sub_wire, sub_value in proto.fields(start + value):
                    if sub == 1 and sub_wire == 2:
                        domain = proto.text(sub_value, 1024)
                    elif sub == 2 and sub_wire == 0:
                        version = sub_value
                    elif sub_wire == 2:
                        proto.skip(sub_value, start + value)
                facts.opset[domain] = version
            elif wire == 2 and number == 7:
                _onnx_graph(proto, start + value, facts)
            elif wire == 2:
                proto.skip(value, size)
    if facts.irVersion is None or not facts.opset:
        raise Malformed("ONNX: no ir_version or opset_import (not an ONNX model)")
    return facts


def _onnx_graph(proto: _Proto, end: int, facts: FileFacts) -> None:
    """GraphProto field 5 is `initializer` (TensorProto): dims are field 1; data skipped."""
    assert facts.parameterCount is not None and facts.tensorCount is not None
    for number, wire, value in proto.fields(end):
        start = proto.handle.tell()
        if number == 5 and wire == 2:
            dims: list[int] = []
            for sub, sub_wire, sub_value in proto.fields(start + value):
                if sub == 1 and sub_wire == 0:
                    dims.append(sub_value)
                elif sub == 1 and sub_wire == 2:  # packed dims
                    stop = proto.handle.tell() + sub_value
                    while proto.handle.tell() < stop:
                        dims.append(proto.varint())
                elif sub_wire == 2:
                    proto.skip(sub_value, start + value)
            count = _elements(dims)
            if count is None or facts.parameterCount + count > MAX_ELEMENTS:
                raise Malformed(f"ONNX: initializers hold more than {MAX_ELEMENTS} elements")
            facts.parameterCount += count
            facts.tensorCount += 1
        elif wire == 2:
            proto.skip(value, end)


# -- NumPy --------------------------------------------------------------------------------


def _npy_header(handle: IO[bytes]) -> tuple[list[int], Any, int]:
    """(shape, dtype, bytes of data it announces) of an .npy stream at its start."""
    from numpy.lib import format as npformat

    if handle.read(6) != b"\x93NUMPY":
        raise Malformed(".npy: no \\x93NUMPY magic")
    handle.seek(0)
    try:
        major, _minor = npformat.read_magic(handle)
        reader = {1: npformat.read_array_header_1_0, 2: npformat.read_array_header_2_0}.get(major)
        if reader is None:
            raise Malformed(f".npy format version {major}.{_minor} is not read here")
        shape, _, dtype = reader(handle, max_header_size=NPY_HEADER_LIMIT)
    except (ValueError, SyntaxError, TypeError, OSError) as exc:
        raise Malformed(f".npy header: {str(exc)[:120]}") from None
    dims = [int(d) for d in shape]
    count = _elements(dims)
    if count is None:
        raise Malformed(f".npy: a {len(dims)}-dim shape holds more than {MAX_ELEMENTS} elements")
    return dims, dtype, count * dtype.itemsize


def read_npy(path: Path, name: str) -> FileFacts:
    handle, size = _open_regular(path)
    with handle:
        shape, dtype, nbytes = _npy_header(handle)
        header = handle.tell()
    objects = bool(dtype.hasobject)
    if not objects and header + nbytes > size:
        raise Malformed(f".npy: {shape} {dtype} needs {header + nbytes} bytes; file has {size}")
    return FileFacts(
        path=name, format="npy", shape=shape, dtypes=[dtype.str], canRunCode=objects,
        parameterCount=prod(shape) if not objects else None,
    )  # fmt: skip


def read_npz(path: Path, name: str) -> FileFacts:
    handle, _ = _open_regular(path)
    arrays: dict[str, list[int]] = {}
    dtypes: set[str] = set()
    objects = False
    params = 0
    with handle, _zip(handle) as archive:
        members = [i for i in archive.infolist() if i.filename.endswith(".npy")]
        for info in members[:MAX_LISTED]:
            with archive.open(info) as member:
                shape, dtype, nbytes = _npy_header(member)
                header = member.tell()
            if not dtype.hasobject and header + nbytes != info.file_size:
                raise Malformed(f".npz member {info.filename}: size does not match its header")
            objects = objects or bool(dtype.hasobject)
            arrays[info.filename[: -len(".npy")]] = shape
            dtypes.add(dtype.str)
            params += 0 if dtype.hasobject else prod(shape)
    return FileFacts(
        path=name, format="npz", arrays=arrays, dtypes=sorted(dtypes), canRunCode=objects,
        parameterCount=params, tensorCount=len(members),
        truncated=True if len(members) > MAX_LISTED else None,
    )  # fmt: skip


def _zip(handle: IO[bytes]) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(handle)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Malformed(f"zip archive: {exc}") from None


# -- pickle -------------------------------------------------------------------------------

_STRING_OPS = {
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
    "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES",
}  # fmt: skip
_PUSH_OPS_WITHOUT_STRING = {"MARK", "POP", "POP_MARK"}  # change the stack; reset tracking


class _Capped:
    """A stream that ends after `limit` bytes, remembering it did. Reads are clamped to
    what is left, so an opcode claiming a 2**60-byte argument allocates nothing big."""

    #: The longest line a text (protocol 0) opcode may have.
    LINE = 1 << 20

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner, self.left, self.hit, self.pos = inner, limit, False, 0
        self.pending = b""

    def _take(self, data: bytes) -> bytes:
        self.left -= len(data)
        self.pos += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self.left:
            self.hit = self.hit or n > self.left
            n = self.left
        head, self.pending = self.pending[:n], self.pending[n:]
        parts = [head]
        wanted = n - len(head)
        while wanted > 0:  # in chunks: a claimed length is not allocated before it is read
            chunk = self.inner.read(min(wanted, self.LINE))
            if not chunk:
                break
            parts.append(chunk)
            wanted -= len(chunk)
        return self._take(b"".join(parts))

    def readline(self) -> bytes:
        head, self.pending = self.pending, b""
        if head.endswith(b"\n"):
            return self._take(head)
        size = min(self.left - len(head), self.LINE)
        if size <= 0:
            self.hit = self.hit or self.left <= len(head)
            return self._take(head)
        return self._take(head + self.inner.readline(size))

    def tell(self) -> int:  # pickletools.genops asks for positions
        return self.pos

    def more(self) -> bool:
        """Whether another byte follows (kept for the next read)."""
        if not self.pending and self.left > 0:
            self.pending = self.inner.read(1)
        return bool(self.pending)


class OpBudget:
    """Pickle opcodes a scan may still decode, shared by the pickles it covers."""

    def __init__(self, ops: int) -> None:
        self.ops = ops


def pickle_imports(
    stream: IO[bytes], limit: int = PICKLE_SCAN_LIMIT, *, budget: OpBudget | None = None
) -> tuple[list[str], bool]:
    """The `module.name` globals the pickle(s) in `stream` import, and whether a limit (its
    bytes, or the opcodes left in `budget`) cut the scan short. Opcodes are decoded by
    pickletools, never executed. A stream may hold several pickles (legacy torch files
    do); decoding stops at data that is not one."""
    with warnings.catch_warnings():  # pickletools warns on bad escapes in hostile STRINGs
        warnings.simplefilter("ignore", DeprecationWarning)
        return _pickle_imports(stream, limit, budget or OpBudget(PICKLE_FILE_OPS))


def _remember(memo: dict[int, str], index: object, value: str | None) -> None:
    """Memo entry `index` holds `value`; only strings are kept, and only so many."""
    if not isinstance(index, int):
        return
    if value is None:
        memo.pop(index, None)
    elif index in memo or len(memo) < PICKLE_MEMO_LIMIT:
        memo[index] = value


def _pickle_imports(stream: IO[bytes], limit: int, budget: OpBudget) -> tuple[list[str], bool]:
    capped = _Capped(stream, limit)
    found: dict[str, None] = {}
    pickles = 0
    while capped.more():
        recent: list[str | None] = []
        memo: dict[int, str] = {}
        memoized = 0  # MEMOIZE's next index: the memo's size, counted apart from what is kept
        try:
            for opcode, arg, _pos in pickletools.genops(capped):  # type: ignore[arg-type]
                budget.ops -= 1
                if budget.ops < 0:
                    return sorted(found)[:MAX_LISTED], True
                name = opcode.name
                if name in ("GLOBAL", "INST") and isinstance(arg, str):
                    module, _, attr = arg.partition(" ")
                    found[f"{module}.{attr}"] = None
                elif name == "STACK_GLOBAL":
                    if len(recent) >= 2 and recent[-2] is not None and recent[-1] is not None:
                        found[f"{recent[-2]}.{recent[-1]}"] = None
                    else:
                        found["(unresolved STACK_GLOBAL)"] = None
                    recent.clear()
                elif name in _STRING_OPS:
                    recent.append(arg if isinstance(arg, str) else None)
                elif name == "MEMOIZE":
                    _remember(memo, memoized, recent[-1] if recent else None)
                    memoized += 1
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    _remember(memo, arg, recent[-1] if recent else None)
                    memoized += 1
                elif name in ("GET", "BINGET", "LONG_BINGET") and isinstance(arg, int):
                    recent.append(memo.get(arg))
                elif name not in _PUSH_OPS_WITHOUT_STRING and name != "FRAME":
                    recent.append(None)
                del recent[:-2]
                if len(found) > MAX_LISTED:
                    return sorted(found)[:MAX_LISTED], True
        except Exception as exc:  # pickletools on hostile bytes: ValueError, Overflow, ...
            if capped.hit:
                return sorted(found), True
            if pickles == 0:
                raise Malformed(f"not a pickle stream ({str(exc)[:80]})") from None
            break  # after the pickles of a legacy torch file come raw tensor bytes
        pickles += 1
    return sorted(found), capped.hit


def read_pickle(path: Path, name: str, head: bytes, budget: OpBudget | None = None) -> FileFacts:
    """A pickle, or a joblib file compressed with gzip, bz2 or lzma (decompressed as read)."""
    import bz2
    import gzip
    import lzma

    opener: Any = None
    if head.startswith(b"\x1f\x8b"):
        opener = gzip.open
    elif head.startswith(b"BZh"):
        opener = bz2.open
    elif head.startswith((b"\xfd7zXZ", b"\x5d\x00\x00")):
        opener = lzma.open
    handle, _ = _open_regular(path)
    with contextlib.ExitStack() as stack:
        stack.enter_context(handle)
        stream: IO[bytes] = stack.enter_context(opener(handle)) if opener else handle
        try:
            imports, truncated = pickle_imports(stream, budget=budget)
        except (OSError, EOFError, lzma.LZMAError) as exc:  # a broken compressed stream
            raise Malformed(f"compressed pickle: {str(exc)[:80]}") from None
    return FileFacts(
        path=name, format="pickle", canRunCode=True, imports=imports, truncated=truncated or None
    )


def read_torch_zip(path: Path, name: str, budget: OpBudget | None = None) -> FileFacts:
    """A PyTorch zip archive: every `*.pkl` member (data.pkl, constants.pkl) is a pickle;
    they share one budget of opcodes."""
    budget = budget or OpBudget(PICKLE_FILE_OPS)
    handle, _ = _open_regular(path)
    imports: set[str] = set()
    truncated = False
    with handle, _zip(handle) as archive:
        pickles = [i for i in archive.infolist() if i.filename.endswith(".pkl")]
        for info in pickles[:16]:
            with archive.open(info) as member:
                found, cut = pickle_imports(member, budget=budget)
            imports.update(found)
            truncated = truncated or cut
    return FileFacts(
        path=name, format="pytorch-zip", canRunCode=True, imports=sorted(imports)[:MAX_LISTED],
        truncated=truncated or None,
    )  # fmt: skip


# -- a tree -------------------------------------------------------------------------------


def _is_torch_zip(path: Path) -> bool:
    try:
        handle, _ = _open_regular(path)
        with handle, zipfile.ZipFile(handle) as archive:
            return any(n == "data.pkl" or n.endswith("/data.pkl") for n in archive.namelist())
    except Exception:  # not a zip zipfile can read: then not a PyTorch archive either
        return False


def _sniff(path: str) -> tuple[bytes, int] | None:
    """The first 8 bytes and the size of a regular file (None for anything else)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        return (os.read(fd, 8), st.st_size) if stat.S_ISREG(st.st_mode) else None
    except OSError:
        return None
    finally:
        os.close(fd)


def read_file_facts(
    path: str | Path, name: str, *, budget: OpBudget | None = None
) -> FileFacts | None:
    """The facts of one file whose suffix or first bytes name a model format, else None;
    a pickle's scan decodes at most `budget` opcodes (default: PICKLE_FILE_OPS)."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in TEXT_SUFFIXES:
        return None
    sniffed = _sniff(str(path))
    if sniffed is None:
        return None
    head, size = sniffed
    path = Path(path)
    readers: list[tuple[Format, Any]] = []
    if suffix == ".safetensors":
        readers.append(("safetensors", read_safetensors))
    elif suffix == ".gguf" or head.startswith(b"GGUF"):
        readers.append(("gguf", read_gguf))
    elif suffix == ".onnx":
        readers.append(("onnx", read_onnx))
    elif suffix == ".npy" or head.startswith(b"\x93NUMPY"):
        readers.append(("npy", read_npy))
    elif suffix == ".npz":
        readers.append(("npz", read_npz))
    elif head.startswith(b"PK\x03\x04"):
        if _is_torch_zip(path):
            readers.append(("pytorch-zip", lambda p, n: read_torch_zip(p, n, budget)))
        elif suffix in PICKLE_SUFFIXES - {".bin"}:
            readers.append(("pickle", lambda p, n: read_pickle(p, n, head, budget)))
    elif (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5) or (
        suffix in PICKLE_SUFFIXES and size > 0
    ):
        readers.append(("pickle", lambda p, n: read_pickle(p, n, head, budget)))
    if not readers:
        return None
    fmt, reader = readers[0]
    try:
        facts: FileFacts = reader(path, name)
        return facts
    except Exception as exc:  # hostile bytes reach zipfile, numpy, gguf: none may escape
        if fmt == "pickle" and suffix == ".bin":
            return None  # a .bin that is no pickle: raw bytes of some other format
        if isinstance(exc, Malformed):
            why = str(exc)
        elif isinstance(exc, OSError) and exc.strerror and not isinstance(exc, zipfile.BadZipFile):
            why = f"cannot read: {exc.strerror}"
        else:
            why = f"{type(exc).__name__}: {str(exc)[:120]}"
        if len(why) > REASON_LIMIT:
            why = why[: REASON_LIMIT - 1] + "…"
        return FileFacts(
            path=name, format=fmt, malformed=why, canRunCode=fmt in ("pickle", "pytorch-zip")
        )


def scan_model(root: Path, manifest: TreeManifest) -> ModelFacts:
    """The facts of every recognised file of a model tree (or the one file) just digested."""
    top = str(root)
    names = dict.fromkeys(e.path.rsplit(":", 2)[0] if manifest.method == "shards" else e.path
                          for e in manifest.files)  # fmt: skip
    files: list[FileFacts] = []
    left = PICKLE_TREE_OPS  # once spent, pickles are still listed, their scans cut short
    for index, name in enumerate(names):
        if index >= MAX_SCANNED_FILES:
            break
        budget = OpBudget(min(PICKLE_FILE_OPS, left))
        if name == ".":
            facts = read_file_facts(top, Path(root).name, budget=budget)
        else:
            facts = read_file_facts(os.path.join(top, *name.split("/")), name, budget=budget)
        left -= min(PICKLE_FILE_OPS, left) - max(budget.ops, 0)
        if facts is not None:
            files.append(facts)
    per_format: dict[str, int] = {}
    for facts in files:
        if facts.parameterCount is not None and not facts.malformed:
            per_format[facts.format] = per_format.get(facts.format, 0) + facts.parameterCount
    return ModelFacts(
        formats=sorted({f.format for f in files}),
        parameterCount=max(per_format.values()) if per_format else None,
        parameterCounts=dict(sorted(per_format.items())),
        canRunCode=any(f.canRunCode for f in files),
        pickleFiles=[f.path for f in files if f.canRunCode],
        malformedFiles=[f.path for f in files if f.malformed],
        unscannedFiles=max(0, len(names) - MAX_SCANNED_FILES),
        files=files,
    )
