"""A real S3 API on 127.0.0.1 for the remote-tree tests: moto's server, once per session.

The server runs in its own process (`python -m moto.server`, moto's server mode): a thread
of it in the test process would share its GIL, and would stop the digest engine from
forking workers for local trees in the tests that follow (it forks only without threads).

Buckets and objects are made with boto3, exactly as a user's pipeline would; credentials
are fake ones set in the environment by the `s3` fixture (and the instance-metadata
lookup is turned off, so nothing ever leaves the machine).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAMLPROVTESTKEY000",
    "AWS_SECRET_ACCESS_KEY": "mlprov-test-secret-Zq9XwLrT",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "MLPROV_DASK_SCHEDULER")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on a free port of 127.0.0.1 for the whole session."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


class S3:
    """The test server as a user's boto3 sees it, with helpers to lay out trees."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def bucket(self, *, versioned: bool = False) -> str:
        name = f"mlprov-{uuid.uuid4().hex[:12]}"
        self.client.create_bucket(Bucket=name)
        if versioned:
            self.client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": "Enabled"}
            )
        return name

    def put(self, bucket: str, key: str, data: bytes) -> dict[str, Any]:
        result: dict[str, Any] = self.client.put_object(Bucket=bucket, Key=key, Body=data)
        return result

    def tree(self, bucket: str, prefix: str, files: Mapping[str, bytes], local: Path) -> Path:
        """Upload `files` under `prefix` and write the same files under `local`."""
        for name, data in files.items():
            self.put(bucket, f"{prefix}{name}", data)
            path = local / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return local


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    """Fake credentials and AWS_ENDPOINT_URL pointing at the session's server."""
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    for key in UNSET:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    yield S3(s3_endpoint)
