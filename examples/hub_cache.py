"""A tiny Hugging Face hub cache, offline: the model acme/tiny-lm and the dataset acme/reviews.

The layout is the one huggingface_hub writes (`models--acme--tiny-lm/{blobs,refs,snapshots}`,
every snapshot file a relative symlink into the repository's own `blobs/`, large files
named by their sha256 and the others by their git blob id), so `hf://acme/tiny-lm@main`
and `hf://datasets/acme/reviews@v1.0` resolve through huggingface_hub as for a real
download. The documentation's Hub examples run on it:

    python examples/hub_cache.py            # into $HF_HUB_CACHE, or $HF_HOME/hub, or ~/.cache
    python examples/hub_cache.py --cache DIR

Prints the model's snapshot folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct
from pathlib import Path

#: The revision both repositories are at (a git commit id, as on the Hub).
COMMIT = "0123456789abcdef0123456789abcdef01234567"
_LFS_SUFFIXES = (".safetensors", ".gguf", ".bin", ".onnx", ".pt")


def _safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid safetensors file of zero-filled tensors (F32/F16 only)."""
    width = {"F32": 4, "F16": 2}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = width[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def _default_cache() -> Path:
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache)
    xdg = os.environ.get("XDG_CACHE_HOME", "~/.cache")
    home = os.environ.get("HF_HOME", os.path.join(xdg, "huggingface"))
    return Path(home).expanduser() / "hub"


def _repository(
    cache: Path, kind: str, repo_id: str, files: dict[str, bytes], refs: list[str]
) -> Path:
    repo = cache / f"{kind}s--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for name, data in files.items():
        if name.endswith(_LFS_SUFFIXES):
            blob_id = hashlib.sha256(data).hexdigest()
        else:
            blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        blob = repo / "blobs" / blob_id
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (repo / "refs" / ref).write_text(COMMIT)  # huggingface_hub writes no newline
    return snapshot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="the hub cache folder")
    cache = parser.parse_args().cache or _default_cache()
    model = _repository(
        cache,
        "model",
        "acme/tiny-lm",
        {
            "config.json": b'{"model_type": "gpt2", "n_layer": 2}\n',
            "model.safetensors": _safetensors({"wte": ("F32", [8, 4]), "h.0.w": ("F16", [4, 4])}),
            "tokenizer/vocab.txt": b"a\nb\nc\n",
            ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        },
        ["main"],
    )
    _repository(
        cache,
        "dataset",
        "acme/reviews",
        {"train.csv": b"text,label\ngreat,1\nawful,0\n", "README.md": b"# reviews\n"},
        ["main", "v1.0"],
    )
    print(model)


if __name__ == "__main__":
    main()
