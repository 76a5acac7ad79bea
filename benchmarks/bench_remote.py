"""Remote-tree benchmark against a local S3 API (run by hand: `python benchmarks/bench_remote.py`).

Starts moto's S3 server in its own process on 127.0.0.1 (so it does not share a GIL with
what is measured), uploads (a) 5,000 objects of 64 KiB and (b) 4 objects of 128 MiB, and
times, each in a fresh child process (so peak memory is per method):
  - the baseline: a single-threaded boto3 `get_object` + hashlib loop over the listing;
  - the server's own bound: bare presigned GETs, 32 in flight, no hashing (what no client
    can beat against this server: moto answers a GET in a few ms of Python);
  - `mlprov digest` in-process (one process, many requests in flight);
  - `mlprov digest --cluster` on a 2-worker LocalCluster (the cluster is started before the
    clock starts; its workers' peak memory is reported too).
Prints seconds, ratios against the baseline measured in the same run, peak memory, whether
the three digests are identical, and each of the issue's targets as met / NOT MET.
The figures are recorded in docs/performance.md; the machine is shared, so run it once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIABENCHMARK0000000",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
SMALL = ("small", 5000, 64 << 10)
LARGE = ("large", 4, 128 << 20)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _peak_mib() -> float:
    """This process's peak resident memory since exec (VmHWM; ru_maxrss would include the
    pages the parent had when it forked us)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # pragma: no cover


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


def _upload(endpoint: str, bucket: str, count: int, size: int) -> None:
    client = _client(endpoint)
    client.create_bucket(Bucket=bucket)
    block = os.urandom(1 << 20)

    def put(i: int) -> None:
        if size <= len(block):
            offset = (i * 4099) % (len(block) - size + 1)
            body = block[offset : offset + size]
        else:  # distinct large bodies without holding two in memory
            body = b"".join(block[:-8] + j.to_bytes(4, "big") + i.to_bytes(4, "big")
                            for j in range(size >> 20))  # fmt: skip
        client.put_object(Bucket=bucket, Key=f"data/part-{i // 1000:02d}/obj-{i:05d}", Body=body)

    workers = 8 if size <= len(block) else 1
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, range(count)))


def _child_boto3(endpoint: str, bucket: str) -> dict[str, Any]:
    """The baseline: list, then get_object and hashlib each object in one thread."""
    from mlprov.digest.manifest import FileEntry, TreeManifest

    client = _client(endpoint)
    started = time.perf_counter()
    entries = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="data/"):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"]
            hasher = hashlib.sha256()
            for chunk in body.iter_chunks(1 << 20):
                hasher.update(chunk)
            entries.append(FileEntry(item["Key"][5:], hasher.hexdigest(), item["Size"]))
    seconds = time.perf_counter() - started
    digest = TreeManifest.build(name="data", algorithm="sha256", entries=entries).digest
    return {"seconds": seconds, "digest": digest, "peak_mib": _peak_mib()}


def _child_ceiling(endpoint: str, bucket: str) -> dict[str, Any]:
    """The server's own bound: bare presigned GETs, 32 in flight, bodies read and dropped.
    No client that reads every byte over HTTP can beat this against this server."""
    import asyncio

    import aiohttp

    client = _client(endpoint)
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="data/")
        for item in page.get("Contents", [])
    ]
    urls = [
        client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": k})
        for k in keys
    ]

    async def fetch_all() -> None:
        async with aiohttp.ClientSession() as session:
            pending = iter(urls)

            async def worker() -> None:
                for url in pending:
                    async with session.get(url) as response:
                        assert response.status == 200, response.status
                        async for _ in response.content.iter_chunked(1 << 20):
                            pass

            await asyncio.gather(*(worker() for _ in range(32)))

    started = time.perf_counter()
    asyncio.run(fetch_all())
    return {"seconds": time.perf_counter() - started, "digest": None, "peak_mib": _peak_mib()}


def _warm_worker() -> None:
    """Import what hashing needs and parse botocore's S3 model (once per process)."""
    from mlprov.digest.remote import _aws_session

    _aws_session(None)


def _child_mlprov(endpoint: str, bucket: str, cluster: bool) -> dict[str, Any]:
    from mlprov.digest import digest_tree

    client = None
    if cluster:
        from distributed import Client, LocalCluster

        local = LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address="127.0.0.1:0"
        )
        client = Client(local)
        client.run(_warm_worker)  # imports paid before the clock starts, as in-process
    else:
        _warm_worker()
    started = time.perf_counter()
    manifest = digest_tree(f"s3://{bucket}/data/", cluster=client)
    seconds = time.perf_counter() - started
    result = {"seconds": seconds, "digest": manifest.digest, "peak_mib": _peak_mib()}
    if client is not None:
        workers = client.run(_peak_mib)
        result["worker_peak_mib"] = max(workers.values())
        client.close()
        local.close()
    return result


def _run_child(kind: str, endpoint: str, bucket: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--endpoint", endpoint, "--bucket", bucket],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **ENV, "AWS_ENDPOINT_URL": endpoint},
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["boto3", "ceiling", "mlprov", "dask"])
    parser.add_argument("--endpoint")
    parser.add_argument("--bucket")
    parser.add_argument("--only", choices=["small", "large"], help="Run one of the two sets.")
    args = parser.parse_args()
    if args.child:
        if args.child == "boto3":
            result = _child_boto3(args.endpoint, args.bucket)
        elif args.child == "ceiling":
            result = _child_ceiling(args.endpoint, args.bucket)
        else:
            result = _child_mlprov(args.endpoint, args.bucket, cluster=args.child == "dask")
        print(json.dumps(result))
        return 0

    os.environ.update(ENV)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        print(f"moto S3 server at {endpoint} (own process); {os.cpu_count()} CPUs")
        failures = 0
        for name, count, size in (SMALL, LARGE):
            if args.only and args.only != name:
                continue
            bucket = f"bench-{name}"
            started = time.perf_counter()
            _upload(endpoint, bucket, count, size)
            total_mib = count * size / (1 << 20)
            print(f"\n({name}) {count} objects x {size >> 10} KiB = {total_mib:.0f} MiB"
                  f" (uploaded in {time.perf_counter() - started:.1f} s)")  # fmt: skip
            kinds = ("boto3", "ceiling", "mlprov", "dask")
            runs = {kind: _run_child(kind, endpoint, bucket) for kind in kinds}
            base = runs["boto3"]["seconds"]
            for kind, run in runs.items():
                extra = (
                    f", workers' peak {run['worker_peak_mib']:.0f} MiB"
                    if "worker_peak_mib" in run
                    else ""
                )
                rate = total_mib / run["seconds"]
                print(f"  {kind:7s} {run['seconds']:7.2f} s  {rate:7.1f} MiB/s"
                      f"  {base / run['seconds']:5.2f}x the loop  peak {run['peak_mib']:.0f} MiB"
                      f"{extra}")  # fmt: skip
            per_worker = total_mib / runs["dask"]["seconds"] / 2
            print(f"  dask per worker: {per_worker:.1f} MiB/s")
            required = 3.0 if name == "small" else 0.9
            ratio = base / runs["mlprov"]["seconds"]
            # mlprov's own processes: in-process, and each Dask worker (the client process of
            # the Dask run also hosts the LocalCluster's scheduler: printed, not counted).
            peak = max(runs["mlprov"]["peak_mib"], runs["dask"].get("worker_peak_mib", 0))
            same = len({r["digest"] for r in runs.values() if r["digest"]}) == 1
            ceiling = base / runs["ceiling"]["seconds"]
            print(f"  (the server itself, bare GETs 32 in flight, no hashing: {ceiling:.2f}x the"
                  " loop: no client can beat that here)")  # fmt: skip
            checks = [
                (f"in-process >= {required}x the boto3 loop: {ratio:.2f}x", ratio >= required),
                (f"peak memory < 300 MB: {peak * 1.048576:.0f} MB", peak * 1.048576 < 300),
                (f"dask digest identical: sha256:{runs['dask']['digest'][:16]}…", same),
            ]
            for text, ok in checks:
                print(f"  target {text}: {_verdict(ok)}")
                failures += not ok
        return 0 if not failures else 1
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
