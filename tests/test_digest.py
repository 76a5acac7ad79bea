"""The digest engine against hashlib, model_signing and the OMS signatures of real peers."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import run_cli, shared_testdata
from mlprov.digest import DigestCache, TreeManifest, digest_file, digest_tree, tree_digest
from mlprov.digest.hashing import CHUNK_SIZE, LARGE_FILE, SMALL_FILE, shard_bounds
from mlprov.errors import FileChangedError, InputError
from mlprov.signing.files import read_attestations

# Around every size the engine treats differently: one read, chunked reads, the thread pool.
SIZES = sorted({0, 1, SMALL_FILE - 1, SMALL_FILE, SMALL_FILE + 1, CHUNK_SIZE - 1, CHUNK_SIZE + 1,
                2 * CHUNK_SIZE + 7, LARGE_FILE - 1, LARGE_FILE,
                LARGE_FILE + CHUNK_SIZE + 1})  # fmt: skip


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_file_digest_equals_hashlib(tmp_path: Path, size: int, algorithm: str) -> None:
    data = os.urandom(size)
    path = _write(tmp_path / "f.bin", data)
    assert digest_file(path, algorithm) == hashlib.new(algorithm, data).hexdigest()


def test_blake3_file_digest(tmp_path: Path) -> None:
    blake3 = pytest.importorskip("blake3")
    data = os.urandom(CHUNK_SIZE + 3)
    path = _write(tmp_path / "f.bin", data)
    assert digest_file(path, "blake3") == blake3.blake3(data).hexdigest()


def test_tree_manifest_orders_by_path_components(tmp_path: Path) -> None:
    names = ["a.b", "a-b", "a/b", "a/c/d", "ü nicode/file name.txt", "b", "A"]
    files = {n: _write(tmp_path / n, n.encode() * 3).read_bytes() for n in names}
    manifest = digest_tree(tmp_path, cache=None)
    order = [e.path for e in manifest.files]
    assert order == ["A", "a/b", "a/c/d", "a-b", "a.b", "b", "ü nicode/file name.txt"]
    for entry in manifest.files:
        assert entry.digest == hashlib.sha256(files[entry.path]).hexdigest()
        assert entry.size == len(files[entry.path])
    expected = hashlib.sha256(b"".join(bytes.fromhex(e.digest) for e in manifest.files))
    assert manifest.digest == expected.hexdigest()


def test_single_file_is_named_dot(tmp_path: Path) -> None:
    path = _write(tmp_path / "model.bin", b"weights")
    manifest = digest_tree(path)
    assert [e.path for e in manifest.files] == ["."]
    assert manifest.name == "model.bin"
    assert manifest.digest == tree_digest([hashlib.sha256(b"weights").hexdigest()])


@pytest.mark.parametrize(
    "model", ["v1.0.0-sigstore", "v0.3.1-sigstore", "v1.0.0-certificate", "v1.0.0-elliptic-key"]
)
def test_tree_digest_equals_oms_signature(model: str) -> None:
    directory = shared_testdata("oms", model)
    statement = read_attestations(directory / "model.sig")[0].envelope.statement()
    predicate = statement.predicate or {}
    resources = {r["name"]: r["digest"] for r in predicate["resources"]}
    target = directory / "signme-1" if resources.keys() == {"."} else directory
    manifest = digest_tree(target, ignore=["root:model.sig"])
    assert manifest.digest == statement.subject[0].digest["sha256"]  # type: ignore[index]
    assert manifest.as_dict() == resources


def test_tree_digest_equals_model_signing(tmp_path: Path) -> None:
    hashing = pytest.importorskip("model_signing.hashing")
    for name in ["x/y.bin", "x-y.bin", "x.y", "deep/er/file", "space name", "ñ"]:
        _write(tmp_path / "m" / name, os.urandom(100))
    _write(tmp_path / "m" / ".git" / "HEAD", b"ref")
    _write(tmp_path / "m" / ".gitignore", b"*")
    theirs = hashing.hash(tmp_path / "m")
    descriptors = list(theirs.resource_descriptors())
    ours = digest_tree(tmp_path / "m")
    assert [e.path for e in ours.files] == [d.identifier for d in descriptors]
    assert ours.digest == tree_digest(d.digest.digest_hex for d in descriptors)


def test_shards_equal_model_signing(tmp_path: Path) -> None:
    hashing = pytest.importorskip("model_signing.hashing")
    _write(tmp_path / "m" / "big.bin", os.urandom(10_000))
    _write(tmp_path / "m" / "empty", b"")
    _write(tmp_path / "m" / "small", b"abc")
    theirs = hashing.Config().use_shard_serialization(shard_size=4096).hash(tmp_path / "m")
    descriptors = list(theirs.resource_descriptors())
    ours = digest_tree(tmp_path / "m", shard_size=4096, workers=2)
    assert [(e.path, e.digest) for e in ours.files] == [
        (d.identifier, d.digest.digest_hex) for d in descriptors
    ]
    assert ours.method == "shards" and ours.file_count == 2


def test_shard_bounds() -> None:
    assert shard_bounds(0, 4) == []  # as model_signing: no shard for an empty file
    assert shard_bounds(8, 4) == [(0, 4), (4, 8)]
    assert shard_bounds(9, 4) == [(0, 4), (4, 8), (8, 9)]


def test_parallel_equals_serial(tmp_path: Path) -> None:
    for i in range(300):
        _write(tmp_path / f"d{i % 7}" / f"f{i}", os.urandom(i * 13))
    _write(tmp_path / "large", os.urandom(9 << 20))
    assert digest_tree(tmp_path, workers=1) == digest_tree(tmp_path, workers=2)


def test_ignore_globs(tmp_path: Path) -> None:
    for name in ["keep.txt", "skip.log", "sub/skip.log", "logs/a", ".git/HEAD", "sub/.git/x"]:
        _write(tmp_path / name, b"x")
    manifest = digest_tree(tmp_path, ignore=["*.log", "logs"])
    assert [e.path for e in manifest.files] == ["keep.txt", "sub/.git/x"]
    manifest = digest_tree(tmp_path, ignore=["sub/*"], default_ignores=False)
    assert [e.path for e in manifest.files] == [".git/HEAD", "keep.txt", "logs/a", "skip.log"]


def test_symlink_refused_unless_followed(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "real", b"data")
    (tmp_path / "m" / "link").symlink_to("real")
    with pytest.raises(InputError, match="link is a symlink"):
        digest_tree(tmp_path / "m")
    manifest = digest_tree(tmp_path / "m", follow_symlinks=True)
    assert manifest.as_dict()["link"] == manifest.as_dict()["real"]


@pytest.mark.parametrize("target", ["../outside", "/etc/hostname", "../m2"])
def test_symlink_escapes_the_tree_only_when_asked(tmp_path: Path, target: str) -> None:
    _write(tmp_path / "outside", b"secret")
    _write(tmp_path / "m2" / "f", b"x")
    _write(tmp_path / "m" / "f", b"x")
    (tmp_path / "m" / "escape").symlink_to(target)
    with pytest.raises(InputError, match="escape is a symlink"):
        digest_tree(tmp_path / "m")
    with pytest.raises(InputError, match="outside the tree"):
        digest_tree(tmp_path / "m", follow_symlinks=True, symlink_boundary=tmp_path / "m")
    # Asked for (model_signing's allow_symlinks): followed, hashed under the link's name.
    manifest = digest_tree(tmp_path / "m", follow_symlinks=True)
    resolved = (tmp_path / "m" / "escape").resolve()
    if resolved.is_file():
        assert manifest.as_dict()["escape"] == digest_file(resolved)
    else:
        assert manifest.as_dict()["escape/f"] == manifest.as_dict()["f"]


def test_symlinked_directory_cycle_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "d" / "f", b"x")
    (tmp_path / "m" / "d" / "loop").symlink_to("..")
    with pytest.raises(InputError, match="cycle"):
        digest_tree(tmp_path / "m", follow_symlinks=True)


def test_special_files_are_refused(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "f", b"x")
    os.mkfifo(tmp_path / "m" / "pipe")
    with pytest.raises(InputError, match="FIFO"):
        digest_tree(tmp_path / "m")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "m" / "secret", b"x")
    path.chmod(0)
    with pytest.raises(InputError, match="secret: permission denied"):
        digest_tree(tmp_path / "m")


def test_file_growing_while_hashed_is_caught(tmp_path: Path) -> None:
    # Large enough for the chunked loop, whose progress calls are the hook.
    path = _write(tmp_path / "m" / "growing.bin", os.urandom(LARGE_FILE + 2 * CHUNK_SIZE))

    def grow(_: int) -> None:
        with path.open("ab") as handle:
            handle.write(b"more")

    with pytest.raises(FileChangedError, match=r"growing\.bin: file changed"):
        digest_tree(tmp_path / "m", progress=grow, workers=1)


def test_file_rewritten_same_size_while_hashed_is_caught(tmp_path: Path) -> None:
    # Large enough for the chunked loop, whose progress calls are the hook.
    path = _write(tmp_path / "m" / "f.bin", os.urandom(LARGE_FILE + 2 * CHUNK_SIZE))

    def rewrite(_: int) -> None:
        st = path.stat()
        with path.open("r+b") as handle:
            handle.write(b"\0" * 16)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))

    with pytest.raises(FileChangedError):
        digest_tree(tmp_path / "m", progress=rewrite, workers=1)


def test_cache_reuses_digests_and_invalidates_on_change(tmp_path: Path) -> None:
    path = _write(tmp_path / "m" / "w.bin", b"A" * 5000)
    _write(tmp_path / "m" / "other", b"B")
    cache = DigestCache(tmp_path / "cache", racy_seconds=0)
    first = digest_tree(tmp_path / "m", cache=cache)
    hashed: list[int] = []
    again = digest_tree(tmp_path / "m", cache=cache, on_total=hashed.append)
    assert again == first and hashed == [0]  # nothing re-hashed
    # Same size, mtime restored: only ctime tells, and it must.
    st = path.stat()
    path.write_bytes(b"C" * 5000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    changed = digest_tree(tmp_path / "m", cache=cache)
    assert changed.as_dict()["w.bin"] == hashlib.sha256(b"C" * 5000).hexdigest()
    assert changed.digest != first.digest


def test_racy_files_are_not_cached(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "fresh", b"x")
    cache = DigestCache(tmp_path / "cache")  # default racy window: a just-written file
    digest_tree(tmp_path / "m", cache=cache)
    hashed: list[int] = []
    digest_tree(tmp_path / "m", cache=cache, on_total=hashed.append)
    assert hashed == [1]


def test_broken_cache_only_disables_itself(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("not a directory")
    cache = DigestCache(tmp_path / "cache")
    assert not cache.enabled
    _write(tmp_path / "m" / "f", b"x")
    assert (
        digest_tree(tmp_path / "m", cache=cache).files[0].digest == hashlib.sha256(b"x").hexdigest()
    )


def _record(cache: DigestCache, directory: Path, algorithm: str = "sha256") -> dict[str, Any]:
    st = directory.stat()
    return dict(cache.load(algorithm, [(st.st_dev, st.st_ino)]).get((st.st_dev, st.st_ino), {}))


def test_cache_records_prune_files_gone_from_the_directory(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "keep", b"k")
    gone = _write(tmp_path / "m" / "gone", b"g")
    cache = DigestCache(tmp_path / "c", racy_seconds=0)
    digest_tree(tmp_path / "m", cache=cache)
    assert set(_record(cache, tmp_path / "m")) == {"keep", "gone"}
    gone.unlink()
    _write(tmp_path / "m" / "new", b"n")
    digest_tree(tmp_path / "m", cache=cache)
    assert set(_record(cache, tmp_path / "m")) == {"keep", "new"}


def test_cache_record_that_does_not_decode_is_a_miss(tmp_path: Path) -> None:
    import sqlite3

    _write(tmp_path / "m" / "a", b"a" * 10)
    _write(tmp_path / "m" / "b", b"b" * 10)
    cache = DigestCache(tmp_path / "c", racy_seconds=0)
    first = digest_tree(tmp_path / "m", cache=cache)
    cache.close()
    db = sqlite3.connect(tmp_path / "c" / "digests.v2.sqlite3")
    with db:
        (names, packed) = db.execute("SELECT names, entries FROM dirs").fetchone()
        for bad_names, bad_packed in [
            (names, packed[:-1]),  # truncated
            (names + b"\0extra", packed),  # one name too many
            (names, packed + packed[: len(packed) // 2]),  # one entry too many
            (b"\xff\xfe", b"not an entry"),
        ]:
            db.execute("UPDATE dirs SET names = ?, entries = ?", (bad_names, bad_packed))
            db.commit()
            hashed: list[int] = []
            again = digest_tree(
                tmp_path / "m", cache=DigestCache(tmp_path / "c"), on_total=hashed.append
            )
            assert again == first and hashed == [20]
    db.close()


def test_cache_a_forged_record_cannot_vouch_for_other_content(tmp_path: Path) -> None:
    """A record names a file and its stamp; another file (even of the same size, in the
    same place after a rename) does not match it."""
    a = _write(tmp_path / "m" / "a", b"1" * 8)
    cache = DigestCache(tmp_path / "c", racy_seconds=0)
    digest_tree(tmp_path / "m", cache=cache)
    a.rename(tmp_path / "m" / "old")
    _write(tmp_path / "m" / "a", b"2" * 8)
    os.utime(
        tmp_path / "m" / "a", ns=(a.stat().st_atime_ns, (tmp_path / "m" / "old").stat().st_mtime_ns)
    )
    again = digest_tree(tmp_path / "m", cache=cache)
    assert again.as_dict()["a"] == hashlib.sha256(b"2" * 8).hexdigest()


def test_cache_handles_names_that_are_not_utf8_and_shards(tmp_path: Path) -> None:
    odd = os.fsdecode(b"caf\xe9 \xff.bin")
    _write(tmp_path / "m" / odd, b"x" * 100)
    _write(tmp_path / "m" / "big.bin", os.urandom(3000))
    cache = DigestCache(tmp_path / "c", racy_seconds=0)
    totals: list[int] = []
    for shard_size in (None, 1024, None, 1024):  # whole files and shards share the record
        manifest = digest_tree(
            tmp_path / "m", cache=cache, shard_size=shard_size, on_total=totals.append
        )
        assert manifest == digest_tree(tmp_path / "m", shard_size=shard_size)
    assert totals == [3100, 3100, 0, 0]
    assert {odd, "big.bin", "big.bin/0:1024", "big.bin/2048:3000"} <= set(
        _record(cache, tmp_path / "m")
    )


def test_a_file_swapped_after_the_walk_is_caught(tmp_path: Path) -> None:
    from mlprov.digest.hashing import hash_small_file

    path = _write(tmp_path / "f", b"before")
    seen = os.lstat(path)
    path.unlink()
    _write(tmp_path / "f", b"after!")  # same size, another inode
    with pytest.raises(FileChangedError):
        hash_small_file(str(path), "sha256", expected=seen)
    path.unlink()
    os.mkfifo(path)  # a FIFO must not hang the open, and is refused
    with pytest.raises(FileChangedError):
        hash_small_file(str(path), "sha256", expected=seen)


def test_manifest_round_trip_and_tamper(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "f", b"x")
    manifest = digest_tree(tmp_path / "m")
    assert TreeManifest.from_json(manifest.to_json()) == manifest
    raw = json.loads(manifest.to_json())
    raw["files"][0]["digest"] = "00" * 32
    with pytest.raises(InputError, match="tree digest does not match"):
        TreeManifest.from_json(json.dumps(raw))
    with pytest.raises(InputError, match="not valid JSON"):
        TreeManifest.from_json(b"{nope")


# --- the CLI ----------------------------------------------------------------------------


def test_cli_digest_text_and_json(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "a", b"1")
    _write(tmp_path / "m" / "b", b"2")
    expected = digest_tree(tmp_path / "m")
    result = run_cli("digest", tmp_path / "m", "--files")
    assert result.code == 0
    lines = result.out.splitlines()
    assert lines[0] == f"sha256:{expected.digest}  {tmp_path / 'm'}"
    assert lines[1].split() == [f"sha256:{hashlib.sha256(b'1').hexdigest()}", "a"]
    result = run_cli("digest", tmp_path / "m", "--json")
    assert json.loads(result.out)[0]["digest"] == expected.digest


def test_cli_check_reports_changed_missing_added(tmp_path: Path) -> None:
    for name in ["a", "b", "c"]:
        _write(tmp_path / "m" / name, name.encode())
    manifest_path = tmp_path / "m.manifest.json"
    assert run_cli("digest", tmp_path / "m", "--manifest-out", manifest_path).code == 0
    ok = run_cli("digest", "--check", manifest_path)  # finds the tree beside the manifest
    assert ok.code == 0 and ok.out.startswith("OK: 3 files")
    (tmp_path / "m" / "a").write_bytes(b"changed")
    (tmp_path / "m" / "b").unlink()
    _write(tmp_path / "m" / "d", b"new")
    result = run_cli("digest", "--check", manifest_path, tmp_path / "m")
    assert result.code == 1
    assert result.out.splitlines() == ["changed: a", "missing: b", "added: d"]
    assert "1 changed, 1 missing, 1 added" in result.err


def test_cli_manifest_out_never_overwrites_without_force(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "a", b"1")
    out = _write(tmp_path / "existing.json", b"keep me")
    result = run_cli("digest", tmp_path / "m", "--manifest-out", out)
    assert result.code == 2 and "already exists" in result.err
    assert out.read_bytes() == b"keep me"
    assert run_cli("digest", tmp_path / "m", "--manifest-out", out, "--force").code == 0
    assert TreeManifest.from_json(out.read_bytes()).name == "m"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/path"], "/no/such/path: no such file or directory"),
        ([], "give at least one PATH"),
        (["--check", "/no/such/manifest.json"], "manifest /no/such/manifest.json: no such file"),
        (["--algorithm", "md5", "."], "Invalid value"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    result = run_cli("digest", *args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_cli_symlink_error_is_one_line(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "a", b"1")
    (tmp_path / "m" / "l").symlink_to("/etc/passwd")
    result = run_cli("digest", tmp_path / "m")
    assert result.code == 2
    assert result.err.strip().count("\n") == 0 and "is a symlink" in result.err
    for flag in ("--follow-symlinks", "--allow-symlinks", "--allow_symlinks"):
        result = run_cli("digest", tmp_path / "m", flag, "--files")
        assert result.code == 0, result
        assert f"sha256:{digest_file('/etc/passwd')}  l" in result.out


def test_forked_workers_equal_serial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlprov.digest import procs

    for i in range(60):
        _write(tmp_path / "m" / f"d{i % 4}" / f"f{i}", os.urandom(i * 31))
    serial = digest_tree(tmp_path / "m", workers=1)
    monkeypatch.setattr(procs, "MIN_FILES", 10)
    monkeypatch.setattr(procs, "BATCH_FILES", 7)
    assert procs.fork_is_safe(2, 60)
    forked = digest_tree(
        tmp_path / "m", workers=2, cache=DigestCache(tmp_path / "c", racy_seconds=0)
    )
    assert forked == serial
    # The digests the workers computed were cached like any others.
    hashed: list[int] = []
    digest_tree(
        tmp_path / "m", workers=2, cache=DigestCache(tmp_path / "c"), on_total=hashed.append
    )
    assert hashed == [0]


def _spy_forked_walk(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the calls digest_tree makes to the forked walk, so a test knows it ran."""
    from mlprov.digest import tree

    calls: list[int] = []
    real = tree.forked_walk

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tree, "forked_walk", spy)
    return calls


def test_forked_worker_errors_reach_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlprov.digest import procs

    for i in range(40):
        _write(tmp_path / "m" / f"d{i % 8}" / f"f{i}", b"x")
    monkeypatch.setattr(procs, "MIN_FILES", 10)
    real_walk = procs.walk_subtree

    def vanishing(*args: Any, **kwargs: Any) -> Any:
        found = real_walk(*args, **kwargs)
        for info in found:
            if info.name == "d7/f7":  # gone between listing and hashing, in a worker
                os.unlink(info.path)
        return found

    monkeypatch.setattr(procs, "walk_subtree", vanishing)
    calls = _spy_forked_walk(monkeypatch)
    with pytest.raises(FileChangedError, match=r"f7: vanished"):
        digest_tree(tmp_path / "m", workers=2)
    assert calls == [1]


@pytest.mark.parametrize("hazard", ["fifo", "symlink-out", "symlink"])
def test_forked_walk_refuses_what_the_serial_walk_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hazard: str
) -> None:
    from mlprov.digest import procs

    for i in range(40):
        _write(tmp_path / "m" / f"d{i % 8}" / "sub" / f"f{i}", b"x")
    _write(tmp_path / "outside", b"secret")
    deep = tmp_path / "m" / "d5" / "sub"
    if hazard == "fifo":
        os.mkfifo(deep / "pipe")
    elif hazard == "symlink-out":
        (deep / "link").symlink_to(tmp_path / "outside")
    else:
        (deep / "link").symlink_to("f5")
    monkeypatch.setattr(procs, "MIN_FILES", 1)
    out = hazard == "symlink-out"
    rule: dict[str, Any] = {"follow_symlinks": out, "symlink_boundary": tmp_path / "m"}
    with pytest.raises(InputError) as expected:
        digest_tree(tmp_path / "m", workers=1, **rule)
    calls = _spy_forked_walk(monkeypatch)
    with pytest.raises(InputError) as forked:
        digest_tree(tmp_path / "m", workers=2, **rule)
    assert calls == [1]
    assert str(forked.value) == str(expected.value)


def test_forked_walk_matches_serial_with_large_files_and_ignores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlprov.digest import procs

    for i in range(60):
        _write(tmp_path / "m" / f"d{i % 5}" / f"e{i % 3}" / f"f{i}.bin", os.urandom(i))
    _write(tmp_path / "m" / "d1" / "big.bin", os.urandom(9 << 20))
    _write(tmp_path / "m" / "d1" / "small.bin", b"beside a large file")
    _write(tmp_path / "m" / "d2" / "skip.log", b"ignored")
    _write(tmp_path / "m" / "top.txt", b"top")
    serial = digest_tree(tmp_path / "m", workers=1, ignore=["*.log"])
    monkeypatch.setattr(procs, "MIN_FILES", 10)
    calls = _spy_forked_walk(monkeypatch)
    cache = DigestCache(tmp_path / "c", racy_seconds=0)
    forked = digest_tree(tmp_path / "m", workers=2, ignore=["*.log"], cache=cache)
    assert calls == [1]
    assert forked == serial
    assert "d2/skip.log" not in forked.as_dict()
    hashed: list[int] = []
    again = digest_tree(
        tmp_path / "m", workers=2, ignore=["*.log"], cache=cache, on_total=hashed.append
    )
    assert again == serial and hashed == [0]  # everything came from the cache


def test_progress_is_told_the_total_and_every_byte(tmp_path: Path) -> None:
    from mlprov.signing.oms import model_manifest

    _write(tmp_path / "m" / "big.bin", os.urandom(2 * CHUNK_SIZE + 5))
    _write(tmp_path / "m" / "small.bin", b"12345")

    class Recorder:
        def __init__(self) -> None:
            self.total, self.done = -1, 0

        def set_total(self, total: int) -> None:
            self.total = total

        def advance(self, n: int) -> None:
            self.done += n

    recorder = Recorder()
    model_manifest(tmp_path / "m", progress=recorder)
    assert recorder.total == recorder.done == 2 * CHUNK_SIZE + 10


def test_manifest_with_non_hex_digests_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "m" / "a", b"1")
    _write(tmp_path / "m" / "b", b"2")
    raw = json.loads(digest_tree(tmp_path / "m").to_json())
    for bad in (["abc", "d"], ["zz", "00"]):  # odd halves must not join into valid hex
        raw["files"][0]["digest"], raw["files"][1]["digest"] = bad
        with pytest.raises(InputError, match="not hex"):
            TreeManifest.from_json(json.dumps(raw))


@given(
    st.lists(
        st.lists(st.text(alphabet="ab-._ é~0", min_size=1, max_size=4), min_size=1, max_size=4)
        .map("/".join)
        .filter(
            lambda n: n not in (".", "..") and "/./" not in f"/{n}/" and "/../" not in f"/{n}/"
        ),
        min_size=2,
        max_size=20,
    )
)
def test_path_order_key_is_pathlib_component_order(names: list[str]) -> None:
    from pathlib import PurePosixPath

    from mlprov.digest import path_order_key

    by_parts = sorted(names, key=lambda n: PurePosixPath(n).parts)
    assert sorted(names, key=path_order_key) == by_parts
