"""Hashing a remote tree on a Dask distributed cluster.

The object list (or OMS shard list) is cut into batches; each batch is one Dask task in
which a worker reads and hashes its objects straight from the store, and only
(name, size, digest, version id) rows come back. A worker that dies has its batches
rerun by the scheduler (up to `distributed.scheduler.allowed-failures` times); any batch
that fails for good fails the whole digest: nothing is assembled from partial results.
dask is imported only here, only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlprov.digest.hashing import ProgressCallback
from mlprov.digest.remote import (
    HashedObject,
    RemoteTask,
    RemoteTree,
    check_complete,
    hash_tasks,
    scrub,
)
from mlprov.errors import InputError, MlprovError

#: A batch ends at this many objects or this many bytes, whichever comes first: enough
#: work to repay a task's scheduling (~1 ms), small enough to spread over many workers.
BATCH_OBJECTS = 1000
BATCH_BYTES = 256 << 20
#: Environment variable naming the scheduler when --cluster is not given.
SCHEDULER_ENV = "MLPROV_DASK_SCHEDULER"
#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 30

_LOCAL = re.compile(r"^local:(\d+)\Z")


def cluster_from_env(spec: str | None) -> str | None:
    """`--cluster`, else MLPROV_DASK_SCHEDULER, else None (hash in this process)."""
    return spec or os.environ.get(SCHEDULER_ENV) or None


def batches(
    tasks: Sequence[RemoteTask],
    *,
    max_objects: int | None = None,
    max_bytes: int | None = None,
) -> list[list[RemoteTask]]:
    """Consecutive batches of tasks, each of at most `max_objects` tasks and (unless one
    task alone is larger) `max_bytes` bytes (by default BATCH_OBJECTS and BATCH_BYTES)."""
    max_objects = max_objects or BATCH_OBJECTS
    max_bytes = max_bytes or BATCH_BYTES
    out: list[list[RemoteTask]] = []
    current: list[RemoteTask] = []
    size = 0
    for task in tasks:
        if current and (len(current) >= max_objects or size + task.size > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(task)
        size += task.size
    if current:
        out.append(current)
    return out


@contextlib.contextmanager
def open_client(cluster: Any) -> Iterator[Any]:
    """A `distributed.Client` for `cluster`: a Client as given, `local:N` (a LocalCluster
    of N worker processes, closed afterwards) or a scheduler address (`tcp://host:8786`)."""
    if not isinstance(cluster, str):
        yield cluster  # a Client the caller owns
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--cluster needs dask: pip install 'mlprov[dask]'") from None
    local = _LOCAL.match(cluster)
    if local:
        workers = int(local.group(1))
        if not 1 <= workers <= 1024:
            raise InputError(f"--cluster {cluster}: give 1 to 1024 local workers")
        with (
            LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",  # its HTTP server: loopback only
            ) as local_cluster,
            Client(local_cluster) as client,
        ):
            yield client
        return
    if "://" not in cluster:
        raise InputError(f"--cluster {cluster!r}: give a scheduler address (tcp://host:8786)")
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise InputError(
            f"cannot reach the Dask scheduler at {scrub(cluster)}: {scrub(str(exc))}"
        ) from None
    try:
        yield client
    finally:
        client.close()


def hash_batch(
    protocol: str, options: Mapping[str, Any], tasks: list[RemoteTask], algorithm: str, where: str
) -> list[HashedObject]:
    """Run on a worker: hash one batch from the store; only the rows travel back."""
    return hash_tasks(protocol, options, tasks, algorithm, where=where)


def hash_on_cluster(
    cluster: Any,
    tree: RemoteTree,
    tasks: Sequence[RemoteTask],
    algorithm: str,
    *,
    progress: ProgressCallback | None = None,
) -> list[HashedObject]:
    """Hash `tasks` on Dask workers; one row per task, in the order of `tasks`."""
    if not tasks:
        return []
    parts = batches(tasks)
    with open_client(cluster) as client:
        from distributed import as_completed

        futures = client.map(
            hash_batch,
            [tree.protocol] * len(parts),
            [tree.options] * len(parts),
            parts,
            [algorithm] * len(parts),
            [tree.url] * len(parts),
            pure=False,
            key=[f"mlprov-hash-{i}-{os.urandom(4).hex()}" for i in range(len(parts))],
        )
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[list[HashedObject] | None] = [None] * len(parts)
        try:
            for future in as_completed(futures):
                i = index[future.key]
                try:
                    rows = future.result()
                except MlprovError:
                    raise
                except Exception as exc:
                    name = type(exc).__name__
                    if name == "KilledWorker":
                        raise InputError(
                            f"{tree.url}: Dask workers died hashing batch {i + 1} of "
                            f"{len(parts)}; no digest assembled"
                        ) from None
                    raise InputError(
                        f"{tree.url}: batch {i + 1} of {len(parts)} failed on the cluster "
                        f"({name}: {scrub(str(exc), tree.options)[:200]}); no digest assembled"
                    ) from None
                check_complete(parts[i], rows, tree.url)
                results[i] = rows
                if progress:
                    progress(sum(r.size for r in rows))
        finally:
            client.cancel([f for f in futures if not f.done()])
    return [row for rows in results if rows is not None for row in rows]
