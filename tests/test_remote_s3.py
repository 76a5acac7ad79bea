"""Remote trees against a real S3 API (moto's server on 127.0.0.1): the same files give the
same manifest and digest as on disk; changed objects, bad credentials, missing buckets,
empty prefixes and unreachable stores are one line and exit 2; nothing secret leaks."""

from __future__ import annotations

import hashlib
import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import run_cli, without_facts
from mlprov.digest import DigestCache, TreeManifest, digest_tree
from mlprov.digest.remote import digest_remote
from mlprov.errors import FileChangedError, InputError
from s3_support import FAKE_ENV, S3, free_port

#: Keys that sort differently as strings and as paths, a unicode name, a deep one, and the
#: top-level files model_signing ignores by default.
FILES = {
    "a/b": b"in a directory\n",
    "a-b": b"dash\n",
    "a.b": b"dot\n",
    "données/é.txt": "unicode ✓\n".encode(),
    "x/y/z/deep.bin": bytes(range(256)) * 40,
    "empty": b"",
    ".git/config": b"[core]\n",
    ".gitignore": b"*.tmp\n",
    "big.bin": bytes(i % 251 for i in range(3 << 20)),
}


@pytest.fixture
def data(s3: S3, tmp_path: Path) -> tuple[str, Path]:
    bucket = s3.bucket()
    local = s3.tree(bucket, "sets/data/", FILES, tmp_path / "data")
    return f"s3://{bucket}/sets/data/", local


def as_json(manifest: TreeManifest) -> object:
    return json.loads(manifest.to_json())


def test_prefix_gives_the_manifest_and_digest_of_the_same_tree_on_disk(
    data: tuple[str, Path],
) -> None:
    url, local = data
    remote = digest_tree(url)
    assert as_json(remote) == as_json(digest_tree(local))
    assert [e.path for e in remote.files][:3] == ["a/b", "a-b", "a.b"]  # OMS order
    assert ".gitignore" not in remote.as_dict() and ".git/config" not in remote.as_dict()
    sharded = digest_tree(url, shard_size=1 << 20)
    assert as_json(sharded) == as_json(digest_tree(local, shard_size=1 << 20))
    assert as_json(digest_tree(url, ignore=["*.bin"], default_ignores=False)) == as_json(
        digest_tree(local, ignore=["*.bin"], default_ignores=False)
    )


def test_cli_prints_the_local_digest_and_writes_the_same_manifest(
    data: tuple[str, Path], tmp_path: Path
) -> None:
    url, local = data
    here = run_cli("digest", local, "--files")
    there = run_cli("digest", url, "--files", "--manifest-out", tmp_path / "m.json", "--jobs", "4")
    assert there.code == 0, there
    assert there.out.replace(url, str(local)) == here.out
    assert (tmp_path / "m.json").read_bytes() == digest_tree(local).to_json()
    bare = run_cli("digest", url.rstrip("/"))  # without the slash: still the prefix
    assert bare.out.split()[0] == here.out.split()[0]


def test_a_lone_object_is_digested_as_a_file(s3: S3, data: tuple[str, Path]) -> None:
    url, local = data
    result = run_cli("digest", url + "big.bin", "--json")
    [manifest] = json.loads(result.out)
    assert manifest["files"] == [
        {"path": ".", "digest": hashlib.sha256(FILES["big.bin"]).hexdigest(), "size": 3 << 20}
    ]
    assert manifest["name"] == "big.bin" and manifest["ignore"] == []
    assert as_json(digest_tree(url + "big.bin")) == as_json(digest_tree(local / "big.bin"))


def test_object_overwritten_while_hashed_is_an_error(s3: S3, data: tuple[str, Path]) -> None:
    url, _ = data
    bucket = url.split("/")[2]
    done: list[int] = []

    def overwrite(name: str, read: int) -> None:
        if name == "big.bin" and not done:  # after the first chunk of a 3 MiB object
            done.append(read)
            s3.put(bucket, "sets/data/big.bin", b"replaced")

    with pytest.raises(FileChangedError, match=r"big\.bin: object changed while"):
        digest_remote(url, algorithm="sha256", patterns=[], on_chunk=overwrite)
    assert done and done[0] < len(FILES["big.bin"])


def test_object_overwritten_after_listing_is_an_error(s3: S3, tmp_path: Path) -> None:
    bucket = s3.bucket()
    s3.tree(bucket, "p/", {"first": b"1", "second": b"2"}, tmp_path / "p")

    def overwrite(name: str, read: int) -> None:
        if name == "first":  # "second" was listed at its old ETag and is not read yet
            s3.put(bucket, "p/second", b"22")

    with pytest.raises(FileChangedError, match="second: object changed"):
        digest_remote(
            f"s3://{bucket}/p/", algorithm="sha256", patterns=[], workers=1, on_chunk=overwrite
        )


def test_missing_credentials_are_one_line_exit_2(
    s3: S3, data: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = data
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    result = run_cli("digest", url)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "no credentials found" in result.err
    assert "Traceback" not in result.err


def test_missing_bucket_and_empty_prefix_are_one_line_exit_2(
    s3: S3, data: tuple[str, Path]
) -> None:
    url, _ = data
    missing = run_cli("digest", "s3://mlprov-no-such-bucket/data/")
    assert missing.code == 2 and missing.err == (
        "mlprov: error: s3://mlprov-no-such-bucket/data/: no such bucket\n"
    )
    empty = run_cli("digest", url + "nothing-here/")
    assert empty.code == 2 and empty.err.strip().endswith("no objects under this prefix")


def test_unreachable_store_is_one_line_exit_2_after_bounded_retries(
    s3: S3, data: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = data
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    result = run_cli("digest", url)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "cannot reach the store" in result.err


def test_credentials_never_reach_messages_or_manifests(
    s3: S3, data: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = data
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    secret = "sEcReT-0123456789-abcdef"
    options = ["--storage-option", f"endpoint_url={s3.endpoint}"]
    good = run_cli(
        "digest", url, *options, "--storage-option", f"secret={secret}",
        "--storage-option", "key=AKIAOTHERKEY", "--manifest-out", tmp_path / "m.json", "--json",
    )  # fmt: skip
    assert good.code == 0, good  # moto accepts any key: the options reached s3fs
    assert secret not in good.out + good.err + (tmp_path / "m.json").read_text()
    bad = run_cli("digest", "s3://mlprov-no-bucket-x/", *options, "--storage-option",
                  f"secret={secret}")  # fmt: skip
    assert bad.code == 2 and secret not in bad.err
    attest = run_cli(
        "attest", "train", "--model", url + "big.bin", "--dataset", f"train={url}",
        "--out", tmp_path / "t.json", "--no-git", "--no-packages", *options,
    )  # fmt: skip
    assert attest.code == 0, attest
    written = "".join(p.read_text() for p in tmp_path.glob("t*.json"))
    for value in (secret, FAKE_ENV["AWS_SECRET_ACCESS_KEY"], FAKE_ENV["AWS_ACCESS_KEY_ID"]):
        assert value not in written


def test_a_bad_storage_option_does_not_echo_its_value(s3: S3, data: tuple[str, Path]) -> None:
    result = run_cli("digest", data[0], "--storage-option", "no-equals-sign-secret")
    assert result.code == 2 and "expected KEY=VALUE" in result.err
    assert "no-equals-sign-secret" not in result.err


def test_record_versions_pins_each_object_version(s3: S3, tmp_path: Path) -> None:
    bucket = s3.bucket(versioned=True)
    s3.tree(bucket, "v/", {"a": b"old"}, tmp_path / "old")
    version = s3.put(bucket, "v/a", b"new")["VersionId"]
    s3.put(bucket, "v/b", b"bee")
    result = run_cli(
        "digest", f"s3://{bucket}/v/", "--record-versions", "--manifest-out", tmp_path / "m.json"
    )
    assert result.code == 0, result
    manifest = TreeManifest.from_json((tmp_path / "m.json").read_bytes())
    assert manifest.versions is not None and manifest.versions["a"] == version
    assert manifest.as_dict()["a"] == hashlib.sha256(b"new").hexdigest()
    plain = s3.bucket()
    s3.put(plain, "v/a", b"x")
    refused = run_cli("digest", f"s3://{plain}/v/", "--record-versions")
    assert refused.code == 2 and "no version id" in refused.err


def test_cache_is_keyed_by_key_size_etag_and_used_only_when_given(
    s3: S3, data: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = data
    bucket = url.split("/")[2]
    cache = DigestCache(tmp_path / "c")
    first = digest_tree(url, cache=cache)
    with sqlite3.connect(tmp_path / "c" / "digests.v2.sqlite3") as db:
        rows = db.execute("SELECT key, etag FROM objects").fetchall()
        assert (f"{bucket}/sets/data/a-b", s3.client.head_object(
            Bucket=bucket, Key="sets/data/a-b")["ETag"]) in rows  # fmt: skip
        assert all(FAKE_ENV["AWS_SECRET_ACCESS_KEY"] not in str(r) for r in rows)
        db.execute("UPDATE objects SET digest = ? WHERE key LIKE '%/a-b'", [b"\1" * 32])
    assert digest_tree(url, cache=cache).as_dict()["a-b"] == "01" * 32  # read from the cache
    assert digest_tree(url).as_dict() == first.as_dict()  # no cache: computed
    s3.put(bucket, "sets/data/a-b", b"rewritten\n")  # a new ETag: the entry no longer holds
    fresh = hashlib.sha256(b"rewritten\n").hexdigest()
    assert digest_tree(url, cache=cache).as_dict()["a-b"] == fresh
    cache.close()


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"a//b": b"1"}, "empty, '.' or '..' path component"),
        ({"x": b"1", "x/y": b"2"}, "is both an object and a prefix"),
    ],
)
def test_keys_no_tree_on_disk_could_hold_are_refused(
    s3: S3, keys: dict[str, bytes], message: str
) -> None:
    bucket = s3.bucket()
    for key, value in keys.items():
        s3.put(bucket, f"t/{key}", value)
    result = run_cli("digest", f"s3://{bucket}/t/")
    assert result.code == 2 and message in result.err


def test_check_against_a_manifest_names_the_changed_object(
    s3: S3, data: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = data
    assert run_cli("digest", url, "--manifest-out", tmp_path / "m.json").code == 0
    assert run_cli("digest", url, "--check", tmp_path / "m.json").code == 0
    s3.put(url.split("/")[2], "sets/data/a.b", b"poisoned\n")
    result = run_cli("digest", url, "--check", tmp_path / "m.json")
    assert result.code == 1 and "changed: a.b" in result.out


def test_attest_run_verify_and_lineage_take_urls(
    s3: S3, data: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, local = data
    monkeypatch.chdir(tmp_path)
    tree = digest_tree(local).digest
    big = hashlib.sha256(FILES["big.bin"]).hexdigest()
    assert run_cli("keygen", "--out", "k", "--no-password").code == 0
    result = run_cli(
        "attest", "train", "--model", url, "--dataset", f"train={url}",
        "--dataset", "web=https://example.org/d.tar#sha256=" + "ab" * 32,  # still recorded as is
        "--out", "t.json", "--no-git", "--no-packages", "--sign", "k.key",
    )  # fmt: skip
    assert result.code == 0, result
    envelope = json.loads(Path("t.json").read_text())
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert without_facts(statement["subject"])[0] == {
        "name": "data",
        "uri": url,
        "digest": {"sha256": tree},
        "annotations": {"digestOf": "tree"},
    }
    deps = {d["name"]: d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["train"]["uri"] == url and deps["train"]["digest"] == {"sha256": tree}
    assert deps["web"]["digest"] == {"sha256": "ab" * 32}
    ok = run_cli("verify", "t.json", "--key", "k.pub", "--subject-path", url)
    assert ok.code == 0, ok
    bad = run_cli("verify", "t.json", "--key", "k.pub", "--subject-path", url + "a-b")
    assert bad.code == 1 and "matches no subject" in bad.err
    ran = run_cli(
        "run", "--step", "copy", "--out", "r.json", "--no-git", "--no-packages",
        "--materials", url + "big.bin", "--products", url, "--", "true",
    )  # fmt: skip
    assert ran.code == 0, ran
    recorded = json.loads(Path("r.json").read_text())
    assert recorded["subject"][0]["digest"] == {"sha256": tree}
    materials = recorded["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"uri": url + "big.bin", "digest": {"sha256": big}}.items() <= next(
        m for m in materials if m.get("uri") == url + "big.bin"
    ).items()
    from mlprov.cli.lineage import resolve_target

    assert resolve_target(url) == f"sha256:{tree}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Quiet(*a, directory=str(root), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def test_an_http_url_names_one_file(http_root: tuple[str, Path], tmp_path: Path) -> None:
    base, root = http_root
    data = bytes(range(256)) * 5000
    (root / "weights.bin").write_bytes(data)
    result = run_cli("digest", f"{base}/weights.bin", "--json")
    assert result.code == 0, result
    [manifest] = json.loads(result.out)
    assert manifest["files"][0]["digest"] == hashlib.sha256(data).hexdigest()
    assert manifest["name"] == "weights.bin"
    missing = run_cli("digest", f"{base}/nope.bin")
    assert missing.code == 2 and missing.err.count("\n") == 1
    with_secret = base.replace("://", "://reader:hunter2-secret@") + "/weights.bin?sig=s3cr3t"
    shown = run_cli("digest", with_secret)
    assert shown.code == 0, shown
    # a file prints its own sha256 (as sha256sum), not the OMS digest over it
    assert shown.out.split() == [f"sha256:{manifest['files'][0]['digest']}", f"{base}/weights.bin"]
    gone = run_cli("digest", with_secret.replace("weights", "nope"))
    assert gone.code == 2
    assert "hunter2" not in gone.err + shown.out and "s3cr3t" not in gone.err + shown.out


def test_bad_urls_are_refused_before_any_request() -> None:
    for url, message in [
        ("s3://", "names no bucket"),
        ("s3://bucket/../etc/", "no '..' or empty components"),
    ]:
        with pytest.raises(InputError, match=message):
            digest_tree(url)


def test_training_run_api_records_remote_datasets_models_and_base_models(
    s3: S3, data: tuple[str, Path], tmp_path: Path
) -> None:
    from mlprov.api import TrainingRun

    url, local = data
    run = TrainingRun(out=tmp_path / "t.json", source_dir=None, record_packages=False)
    run.dataset("train", url)
    run.base_model(url + "big.bin")
    run.model(url)
    statement = run.finish()
    deps = statement.to_dict()["predicate"]["buildDefinition"]["resolvedDependencies"]
    by_uri = {d.get("uri"): d for d in deps}
    assert by_uri[url]["digest"] == {"sha256": digest_tree(local).digest}
    assert by_uri[url + "big.bin"]["digest"] == {
        "sha256": hashlib.sha256(FILES["big.bin"]).hexdigest()
    }
    assert by_uri[url + "big.bin"]["annotations"]["role"] == "base-model"
    assert statement.subject[0].uri == url
    written = TreeManifest.from_json((tmp_path / "t.train.manifest.json").read_bytes())
    assert written.to_json() == digest_tree(local).to_json()


def test_a_store_without_streaming_reads_is_read_by_ranges(
    http_root: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from fsspec.implementations.http import HTTPFileSystem

    async def no_streaming(*args: object, **kwargs: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(HTTPFileSystem, "open_async", no_streaming)
    base, root = http_root
    (root / "small.bin").write_bytes(b"ranged read\n" * 1000)
    manifest = digest_tree(f"{base}/small.bin")
    assert manifest.identity == hashlib.sha256(b"ranged read\n" * 1000).hexdigest()


def test_cluster_refuses_local_paths(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    result = run_cli("digest", tmp_path, "--cluster", "local:1")
    assert result.code == 2 and "hashes remote URLs" in result.err
