"""Faults: files rewritten while hashed, products that cannot be digested, concurrent
and damaged stores — each performed through the CLI, as a user meets it."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from mlprov.digest.hashing import CHUNK_SIZE, LARGE_FILE

# -- a file rewritten in place while it is hashed, its mtime restored ----------------------


def _rewrite_in_place(path: Path) -> None:
    """What a writer does that hides its change from mtime: same size, other bytes, the
    old mtime put back. Putting it back sets the ctime; should the clock not have moved
    since the file was made (ctime is coarse), set it again until it has, as it would
    have for a writer of a real model."""
    st = os.stat(path)
    with path.open("r+b") as handle:
        head = handle.read(64)
        handle.seek(0)
        handle.write(bytes(b ^ 0xFF for b in head))
    deadline = time.monotonic() + 5
    while True:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        now = os.stat(path)
        if now.st_ctime_ns != st.st_ctime_ns or time.monotonic() > deadline:
            break
        time.sleep(0.001)
    assert (now.st_size, now.st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert now.st_ctime_ns != st.st_ctime_ns


class _RewritingHasher:
    """A hasher whose first update (the first chunk read) lets the writer in."""

    def __init__(self, inner: Any, path: Path, done: list[bool]) -> None:
        self.inner, self.path, self.done = inner, path, done

    def update(self, data: bytes) -> None:
        self.inner.update(data)
        if not self.done:
            self.done.append(True)
            _rewrite_in_place(self.path)

    def digest(self) -> bytes:
        digest: bytes = self.inner.digest()
        return digest


def _hook_chunk_reads(monkeypatch: pytest.MonkeyPatch, victim: Path) -> list[bool]:
    from mlprov.digest import hashing

    real = hashing.new_hasher
    done: list[bool] = []

    def new_hasher(algorithm: str, **kwargs: Any) -> Any:
        return _RewritingHasher(real(algorithm, **kwargs), victim, done)

    monkeypatch.setattr(hashing, "new_hasher", new_hasher)
    return done


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--jobs", "1"], id="in-process"),
        pytest.param(["--jobs", "2"], id="thread-pool"),
        pytest.param(["--jobs", "2", "--shard-size", str(4 * CHUNK_SIZE)], id="shards"),
    ],
)
def test_digest_of_a_file_rewritten_with_its_mtime_restored_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: list[str]
) -> None:
    # Large files: hashed in chunks, in the thread pool when there are workers.
    victim = tmp_path / "m" / "a.bin"
    victim.parent.mkdir()
    victim.write_bytes(os.urandom(LARGE_FILE + CHUNK_SIZE))
    (tmp_path / "m" / "b.bin").write_bytes(os.urandom(LARGE_FILE + CHUNK_SIZE))
    done = _hook_chunk_reads(monkeypatch, victim)
    result = run_cli("digest", tmp_path / "m", "--no-cache", *options)
    assert done, "the writer never ran"
    assert result.code == 2, result
    assert result.out == ""
    assert result.err.count("\n") == 1
    assert "changed while it was being hashed" in result.err


def test_forked_workers_catch_a_rewrite_with_the_mtime_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlprov.digest import hashing, procs

    for i in range(40):
        path = tmp_path / "m" / f"d{i % 4}" / f"f{i}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + i))
    victim = tmp_path / "m" / "d3" / "f7"
    real = hashing._SMALL_HASHERS["sha256"]

    def rewriting_sha256(data: bytes) -> Any:  # runs in the forked worker, after the read
        if data and not getattr(rewriting_sha256, "done", False):
            rewriting_sha256.done = True  # type: ignore[attr-defined]
            _rewrite_in_place(victim)
        return real(data)

    monkeypatch.setattr(procs, "MIN_FILES", 10)
    monkeypatch.setitem(hashing._SMALL_HASHERS, "sha256", rewriting_sha256)
    assert procs.fork_is_safe(2, 40)
    result = run_cli("digest", tmp_path / "m", "--no-cache", "--jobs", "2")
    assert result.code == 2, result
    assert "changed while it was being hashed" in result.err and result.out == ""


@pytest.mark.parametrize("size", [100, LARGE_FILE + 1])
def test_a_rewrite_between_the_walk_and_the_hashing_is_caught(tmp_path: Path, size: int) -> None:
    from mlprov.digest.hashing import hash_file, hash_small_file
    from mlprov.errors import FileChangedError

    path = tmp_path / "f"
    path.write_bytes(os.urandom(size))
    walked = os.lstat(path)
    _rewrite_in_place(path)
    with pytest.raises(FileChangedError, match="changed while it was being hashed"):
        hash_small_file(str(path), "sha256", expected=walked)
    with pytest.raises(FileChangedError, match="changed while it was being hashed"):
        hash_file(str(path), "sha256", expected=walked)
