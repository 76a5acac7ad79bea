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


@pytest.mark.parametrize(
    ("jobs", "nested"),
    [("1", True), ("2", True), ("2", False)],
    ids=["in-process", "forked-walk", "forked-hashing"],
)
def test_small_files_rewritten_after_the_walk_are_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jobs: str, nested: bool
) -> None:
    from mlprov.digest import procs, tree

    for i in range(40):
        path = tmp_path / "m" / (f"d{i % 4}" if nested else "") / f"f{i}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(100 + i))
    victim = tmp_path / "m" / ("d3" if nested else "") / "f7"
    real = procs.walk_subtree

    def walk_then_rewrite(*args: Any, **kwargs: Any) -> Any:
        # The walk (in this process or a forked one) lists f7; the writer then rewrites it.
        found = real(*args, **kwargs)
        if any(info.path == str(victim) for info in found):
            _rewrite_in_place(victim)
        return found

    monkeypatch.setattr(procs, "MIN_FILES", 10)
    monkeypatch.setattr(procs, "walk_subtree", walk_then_rewrite)
    monkeypatch.setattr(tree, "walk_subtree", walk_then_rewrite)
    assert procs.fork_is_safe(2, 40)
    result = run_cli("digest", tmp_path / "m", "--no-cache", "--jobs", jobs)
    assert result.code == 2, result
    assert "f7: file changed while it was being hashed" in result.err and result.out == ""


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


# -- `mlprov run`: a product that cannot be digested still leaves the record --------------


def _run_outcome(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    import json

    raw = json.loads(path.read_bytes())
    metadata = raw["predicate"]["runDetails"]["metadata"]
    # The extension's key (`mlprov`) is being renamed `mlprov_outcome` on main.
    outcome: dict[str, Any] = metadata.get("mlprov_outcome") or metadata["mlprov"]
    return raw, outcome


@pytest.mark.parametrize("kind", ["symlink-out", "fifo", "socket", "dir-with-symlink"])
def test_run_records_a_product_that_cannot_be_digested(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    import sys

    from mlprov.schemagen import validate_statement

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outside").write_text("not the model")
    make = {
        "symlink-out": f"os.symlink({str(tmp_path / 'outside')!r}, 'product')",
        "fifo": "os.mkfifo('product')",
        "socket": "s = socket.socket(socket.AF_UNIX); s.bind('product')",
        "dir-with-symlink": "os.mkdir('product'); os.symlink('../outside', 'product/w.bin')",
    }[kind]
    script = f"import os, pathlib, socket; {make}; pathlib.Path('ran').write_text('yes')"
    result = run_cli(
        "run", "--step", "train", "--products", "product", "good.bin", "--no-packages",
        "--no-git", "--out", "run.statement.json", "--", sys.executable, "-c",
        script + "; pathlib.Path('good.bin').write_bytes(b'w')",
    )  # fmt: skip
    assert (tmp_path / "ran").exists()
    assert result.code == 2, result
    assert "Traceback" not in result.err
    assert "mlprov: train failed (exit 2); wrote run.statement.json [good.bin]" in result.err
    assert "mlprov: product product could not be digested: " in result.err
    raw, outcome = _run_outcome(tmp_path / "run.statement.json")
    validate_statement(raw, source="run.statement.json")
    assert [s["name"] for s in raw["subject"]] == ["good.bin"]
    assert outcome["outcome"] == "failed" and outcome["exitCode"] == 0
    assert [u["path"] for u in outcome["undigested"]] == ["product"]
    reason = outcome["undigested"][0]["reason"]
    assert reason in outcome["error"] and reason in result.err
    assert {"symlink-out": "symlink", "fifo": "FIFO", "socket": "socket"}.get(kind, "") in reason


def test_run_keeps_a_failed_commands_code_and_lists_every_undigested_product(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    import sys

    monkeypatch.chdir(tmp_path)
    script = "import os, sys; os.mkfifo('a'); os.symlink('/etc/hostname', 'b'); sys.exit(5)"
    result = run_cli(
        "run", "--step", "s", "--products", "a", "b", "--no-packages", "--no-git",
        "--out", "o.json", "--json", "--", sys.executable, "-c", script,
    )  # fmt: skip
    assert result.code == 5
    summary = json.loads(result.out)
    assert summary["exitCode"] == 5 and summary["commandExitCode"] == 5
    assert [u["path"] for u in summary["undigested"]] == ["a", "b"]
    raw, outcome = _run_outcome(tmp_path / "o.json")
    assert outcome["error"] == "command exited with 5"
    assert [u["path"] for u in outcome["undigested"]] == ["a", "b"]
    assert raw["subject"][0]["name"] == "invocation/s"  # nothing could be a subject


# -- concurrent `store add`: no writer fails for another's lock ---------------------------


def test_six_concurrent_store_adds_all_succeed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from mlprov.signing.dsse import sign_envelope
    from mlprov.store import Store, open_store
    from store_support import descriptor, new_signer, provenance

    # Enough per process that each runs the planner statistics after its add, as a bulk
    # load does: where `database is locked` came from.
    per_process = Store.OPTIMIZE_AFTER
    signer = new_signer()
    files = []
    for p in range(6):
        lines = []
        for i in range(per_process):
            statement = provenance(
                "s", "training", [descriptor(f"m{p}-{i}")], [descriptor(f"d{p}-{i}")]
            )
            lines.append(sign_envelope(statement.to_bytes(), [signer]).to_json())
        files.append(tmp_path / f"p{p}.intoto.jsonl")
        files[-1].write_bytes(b"\n".join(lines) + b"\n")
    for round_ in range(3):
        store = tmp_path / f"store{round_}.sqlite3"  # a fresh store: creation races too
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "mlprov", "store", "add", str(f), "--store", str(store)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for f in files
        ]
        outputs = [p.communicate(timeout=120) for p in procs]
        for proc, (out, err) in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, err.decode()
            assert err == b""
            assert out.decode().endswith(f"{per_process} added, 0 already stored, in {store}\n")
        with open_store(str(store)) as opened:
            assert opened.count() == 6 * per_process


# -- a damaged store: one line naming the store and what to do; `store check` ------------


def _store_with_attestations(tmp_path: Path, count: int = 60) -> tuple[Path, Path, str]:
    """A SQLite store holding `count` attestations; (store, one more file, a subject)."""
    from mlprov.signing.dsse import sign_envelope
    from store_support import d, descriptor, new_signer, provenance

    signer = new_signer()
    lines = []
    for i in range(count + 1):
        statement = provenance(
            "train", "training", [descriptor(f"model-{i}")], [descriptor(f"data-{i}")]
        )
        lines.append(sign_envelope(statement.to_bytes(), [signer]).to_json() + b"\n")
    (tmp_path / "all.intoto.jsonl").write_bytes(b"".join(lines[:-1]))
    (tmp_path / "one.intoto.jsonl").write_bytes(lines[-1])
    store = tmp_path / "store.sqlite3"
    added = run_cli("store", "add", tmp_path / "all.intoto.jsonl", "--store", store)
    assert added.code == 0, added
    return store, tmp_path / "one.intoto.jsonl", d("model-3")


def _one_line_about(result: Any, store: Path) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("mlprov: error: ")
    assert f"store {store}" in result.err
    assert f"mlprov store check --store {store}" in result.err


def _damage(store: Path, pages: range) -> None:
    import random

    rng = random.Random(11)
    size = store.stat().st_size
    with store.open("r+b") as handle:
        for page in pages:
            if page * 4096 < size:
                handle.seek(page * 4096)
                handle.write(rng.randbytes(4096))


def test_garbage_over_the_pages_of_a_store_is_one_line_everywhere(tmp_path: Path) -> None:
    store, more, subject = _store_with_attestations(tmp_path)
    _damage(store, range(1, 10_000))  # every page but the first (the header and schema)
    out = tmp_path / "export.intoto.jsonl"
    for args in (
        ("store", "ls"),
        ("lineage", subject, "--up"),
        ("lineage", subject, "--down", "--format", "json"),
        ("store", "show", subject),
        ("store", "export", "--all", "--out", out),
        ("store", "add", more),
    ):
        result = run_cli(*args, "--store", store)
        _one_line_about(result, store)
        assert "damaged" in result.err
        assert "added" not in result.out
    assert not out.exists() and not list(tmp_path.glob(".export.intoto.jsonl.*"))
    check = run_cli("store", "check", "--store", store)
    assert check.code == 1, check
    assert "DAMAGED  pages:" in check.out
    assert check.err.startswith(f"DAMAGED: store {store}:")


def test_garbage_over_some_pages_never_gives_a_traceback(tmp_path: Path) -> None:
    store, more, subject = _store_with_attestations(tmp_path, count=200)
    _damage(store, range(4, 10_000, 3))
    check = run_cli("store", "check", "--store", store)
    assert check.code == 1 and "DAMAGED" in check.out, check
    for args in (
        ("store", "ls"),
        ("lineage", subject, "--up"),
        ("store", "export", "--all", "--out", tmp_path / "x.jsonl"),
        ("store", "add", more),
    ):
        result = run_cli(*args, "--store", store)
        if result.code != 0:
            _one_line_about(result, store)


def test_a_dropped_table_is_one_line_and_store_check_names_it(tmp_path: Path) -> None:
    import sqlite3

    store, more, subject = _store_with_attestations(tmp_path)
    with sqlite3.connect(store) as conn:
        conn.execute("DROP TABLE artifacts")
    for args in (
        ("store", "ls"),
        ("lineage", subject, "--up"),
        ("store", "export", subject, "--out", tmp_path / "x.jsonl"),
        ("store", "add", more),
    ):
        result = run_cli(*args, "--store", store)
        _one_line_about(result, store)
        assert "no such table: artifacts" in result.err
    check = run_cli("store", "check", "--store", store)
    assert check.code == 1
    assert "DAMAGED  tables: missing table(s): artifacts" in check.out


def test_store_check_of_an_intact_store(tmp_path: Path) -> None:
    import json

    store, _, _ = _store_with_attestations(tmp_path, count=5)
    check = run_cli("store", "check", "--store", store)
    assert check.code == 0, check
    assert "DAMAGED" not in check.out
    assert check.err == f"OK: store {store} is intact (schema version 1, 5 attestation(s))\n"
    report = json.loads(run_cli("store", "check", "--store", store, "--quick", "--json").out)
    assert report["damaged"] is False and report["attestations"] == 5
    assert {f["check"] for f in report["findings"]} == {
        "pages", "tables", "indexes", "schema version", "bytes", "index",
    }  # fmt: skip
    missing = run_cli("store", "check", "--store", tmp_path / "absent.sqlite3")
    assert missing.code == 2 and not (tmp_path / "absent.sqlite3").exists()


def test_store_check_finds_bytes_that_no_longer_match_their_digest(tmp_path: Path) -> None:
    import sqlite3

    store, _, _ = _store_with_attestations(tmp_path, count=5)
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE attestations SET raw = CAST('{}' AS BLOB) WHERE id = 2")
        conn.execute("DELETE FROM artifacts WHERE attestation = 3 AND role = 'subject'")
    check = run_cli("store", "check", "--store", store)
    assert check.code == 1
    assert "DAMAGED  bytes: 1 attestation(s) do not hash to their digest" in check.out
    assert "DAMAGED  index: 1 attestation(s) have no indexed subject" in check.out


def test_store_check_on_both_backends(store_url: str) -> None:
    from mlprov.store import open_store

    with open_store(store_url):
        pass  # created and migrated
    check = run_cli("store", "check", "--store", store_url)
    assert check.code == 0, check
    assert "ok       schema version: 1" in check.out


# -- kill -9 during `store export` --------------------------------------------------------

_KILLED_EXPORT = """
import os, signal, sys
from mlprov.store.store import Store
real = Store.iter_raw
def iter_raw(self, digests=None):
    for n, row in enumerate(real(self, digests)):
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9, mid-write
        yield row
Store.iter_raw = iter_raw
from mlprov.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _killed_export(store: Path | str, out: Path) -> Path:
    import signal
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _KILLED_EXPORT, "store", "export", "--all", "--out", str(out),
         "--store", str(store)],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert not out.exists()
    (left,) = out.parent.glob(f".{out.name}.*.tmp")
    return left


def test_the_next_export_removes_what_a_killed_export_left(tmp_path: Path) -> None:
    store, _, _ = _store_with_attestations(tmp_path, count=10)
    out = tmp_path / "backup.intoto.jsonl"
    left = _killed_export(store, out)
    result = run_cli("store", "export", "--all", "--out", out, "--store", store)
    assert result.code == 0, result
    assert f"removed {left}, left by an export that was killed" in result.err
    assert not left.exists() and len(out.read_bytes().splitlines()) == 10


def test_store_check_removes_what_a_killed_export_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _, _ = _store_with_attestations(tmp_path, count=10)
    (tmp_path / "elsewhere").mkdir()
    left = _killed_export(store, tmp_path / "elsewhere" / "backup.intoto.jsonl")
    monkeypatch.chdir(tmp_path / "elsewhere")  # the store named another way
    check = run_cli("store", "check", "--store", Path("..") / store.name)
    assert check.code == 0, check
    assert f"removed  {left} (left by an export that was killed)" in check.out
    assert not left.exists()


def test_a_temp_file_being_written_is_never_removed(tmp_path: Path) -> None:
    from mlprov.fsio import atomic_writer, temp_files_of
    from mlprov.store.exports import export_in_progress, sweep

    out = tmp_path / "x.jsonl"
    store = str(tmp_path / "s.sqlite3")
    with (
        export_in_progress(store, out) as register,
        atomic_writer(out, on_temp=register) as handle,
    ):
        handle.write(b"partial")
        (live,) = temp_files_of(out)
        assert sweep(location=store, target=out) == []
        assert live.exists()
    assert out.read_bytes() == b"partial" and temp_files_of(out) == []


def test_a_dropped_table_is_one_line_on_both_backends(store_url: str, tmp_path: Path) -> None:
    from mlprov.store import open_store
    from store_support import d, descriptor, new_signer, provenance, sign

    statement = provenance("train", "training", [descriptor("m")], [descriptor("data")])
    with open_store(store_url) as opened:
        opened.add(sign(statement, new_signer()))
        with opened.db.transaction() as cur:
            cur.execute("DROP TABLE signers")
        location = opened.location
    for args in (("store", "ls"), ("lineage", d("m"), "--up"), ("store", "show", d("m"))):
        result = run_cli(*args, "--store", store_url)
        assert result.code == 2, result
        assert result.err.count("\n") == 1 and "Traceback" not in result.err
        assert f"store {location} is damaged" in result.err and "signers" in result.err
    check = run_cli("store", "check", "--store", store_url)
    assert check.code == 1
    assert "DAMAGED  tables: missing table(s): signers" in check.out


def test_planner_statistics_give_way_to_another_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from mlprov.store import backend, open_store

    monkeypatch.setattr(backend, "MAINTENANCE_TIMEOUT_SECONDS", 0.2)
    location = tmp_path / "s.sqlite3"
    with open_store(str(location)) as opened:
        other = sqlite3.connect(location, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        started = time.monotonic()
        assert opened.optimize() is False
        assert time.monotonic() - started < 5
        other.execute("COMMIT")
        other.close()
        assert opened.optimize() is True


def test_store_check_removes_a_killed_exports_temp_file_on_both_backends(
    store_url: str, tmp_path: Path
) -> None:
    from mlprov.store import open_store
    from store_support import descriptor, new_signer, provenance, sign

    signer = new_signer()
    with open_store(store_url) as opened:
        for i in range(8):
            statement = provenance("s", "training", [descriptor(f"m{i}")], [descriptor("x")])
            opened.add(sign(statement, signer))
    left = _killed_export(store_url, tmp_path / "backup.intoto.jsonl")
    check = run_cli("store", "check", "--store", store_url)
    assert check.code == 0, check
    assert f"removed  {left} (left by an export that was killed)" in check.out
    assert not left.exists()
