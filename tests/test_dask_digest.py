"""Hashing a remote tree on a real Dask LocalCluster (2 worker processes, one per module):
the same manifest and digest as on one machine; a dead worker's batch is rerun; a changed
object or an incomplete batch fails the whole digest."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import mlprov.digest.cluster as cluster_module
from conftest import run_cli
from mlprov.digest import digest_tree
from mlprov.digest.cluster import hash_on_cluster
from mlprov.digest.remote import HashedObject, list_tree, tasks_of
from mlprov.digest.walk import IgnoreRules
from mlprov.errors import FileChangedError, InputError
from s3_support import FAKE_ENV, S3

FILES = {
    **{f"part-{i:03d}/rows.jsonl": f'{{"row": {i}}}\n'.encode() * (i + 1) for i in range(24)},
    "a/b": b"1",
    "a-b": b"2",
    "a.b": b"3",
    "weights/model.bin": bytes(i % 253 for i in range(5 << 20)),
}


@pytest.fixture(scope="module")
def client(s3_endpoint: str) -> Iterator[Any]:
    """Two worker processes, started with the fake credentials in their environment."""
    from distributed import Client, LocalCluster

    with pytest.MonkeyPatch.context() as env:
        for key, value in FAKE_ENV.items():
            env.setenv(key, value)
        env.setenv("AWS_ENDPOINT_URL", s3_endpoint)
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            ) as local,
            Client(local) as dask_client,
        ):
            yield dask_client
    # distributed keeps one idle "offload" thread for the life of the process; the digest
    # engine forks workers for local trees only in a process without threads, so the
    # tests after these would lose that path: swap in a fresh (threadless) executor.
    import distributed.utils

    idle = distributed.utils._offload_executor
    distributed.utils._offload_executor = ThreadPoolExecutor(1, thread_name_prefix="Dask-Offload")
    idle.shutdown(wait=True)


@pytest.fixture
def data(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    monkeypatch.setattr(cluster_module, "BATCH_OBJECTS", 4)  # many batches over 2 workers
    bucket = s3.bucket()
    local = s3.tree(bucket, "ds/", FILES, tmp_path / "ds")
    return f"s3://{bucket}/ds/", local


def test_cluster_gives_the_manifest_of_one_machine(client: Any, data: tuple[str, Path]) -> None:
    url, local = data
    here = digest_tree(local)
    assert json.loads(digest_tree(url, cluster=client).to_json()) == json.loads(here.to_json())
    sharded = digest_tree(url, cluster=client, shard_size=1 << 20)  # one object, 5 tasks
    assert sharded.to_json() == digest_tree(local, shard_size=1 << 20).to_json()
    assert sum(e.path.startswith("weights/model.bin:") for e in sharded.files) == 5


def test_cli_uses_the_scheduler_from_the_environment(
    client: Any, data: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, local = data
    monkeypatch.setenv("MLPROV_DASK_SCHEDULER", client.scheduler.address)
    result = run_cli("digest", url, "--no-cache")
    assert result.code == 0, result
    assert result.out.split()[0] == f"sha256:{digest_tree(local).digest}"
    bad = run_cli("digest", url, "--cluster", "nonsense")
    assert bad.code == 2 and "scheduler address" in bad.err


def test_cli_local_cluster(data: tuple[str, Path]) -> None:
    url, local = data
    result = run_cli("digest", url, "--cluster", "local:1", "--no-cache")
    assert result.code == 0, result
    assert result.out.split()[0] == f"sha256:{digest_tree(local).digest}"


def _marker(url: str) -> Path:
    """Where _die_once leaves word that it killed a worker (named after the bucket: the
    worker imports this module afresh, so it learns nothing else from the test)."""
    return Path(tempfile.gettempdir()) / f"mlprov-test-died-{url.split('/')[2]}"


def _die_once(*args: Any) -> list[HashedObject]:
    """A batch that takes its worker process down the first time any batch runs."""
    marker = _marker(args[4])
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return cluster_module.hash_tasks(*args[:4], where=args[4])


def _drop_a_row(*args: Any) -> list[HashedObject]:
    return cluster_module.hash_tasks(*args[:4], where=args[4])[:-1]


def test_a_dead_worker_is_retried_and_the_digest_is_unchanged(
    client: Any, data: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, local = data
    marker = _marker(url)
    monkeypatch.setattr(cluster_module, "hash_batch", _die_once)
    tree = list_tree(url, ignore=IgnoreRules(["root:.git"]))
    try:
        rows = hash_on_cluster(client, tree, tasks_of(tree.objects, None), "sha256")
        assert marker.exists()  # a worker did die mid-digest
    finally:
        marker.unlink(missing_ok=True)
    digests = {r.name: r.digest for r in rows}
    assert digests == digest_tree(local, default_ignores=False).as_dict()
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_incomplete_results_never_make_a_digest(
    client: Any, data: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = data
    monkeypatch.setattr(cluster_module, "hash_batch", _drop_a_row)
    with pytest.raises(InputError, match="no digest assembled"):
        digest_tree(url, cluster=client)


def test_an_object_changed_after_listing_fails_on_the_cluster(
    client: Any, s3: S3, data: tuple[str, Path]
) -> None:
    url, _ = data
    tree = list_tree(url, ignore=IgnoreRules([]))
    s3.put(url.split("/")[2], "ds/a-b", b"changed")
    with pytest.raises(FileChangedError, match="a-b: object changed"):
        hash_on_cluster(client, tree, tasks_of(tree.objects, None), "sha256")
    assert hashlib.sha256(b"changed").hexdigest() in digest_tree(url).as_dict().values()
