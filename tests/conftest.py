"""Shared fixtures: the peers' test data, a private digest cache, a CLI runner."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["store_support", "s3_support"]  # store backends; the S3 test server

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def shared_testdata(*parts: str) -> Path:
    """A path inside ../shared/testdata, skipping the test when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"peer test data {path} is absent (expected beside the checkout)")
    return path


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Fail with TimeoutError after `seconds`: a read that blocks fails its test, not the suite."""

    def _timeout(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s (blocked or hung)")

    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep every test's digest cache and store away from the user's."""
    old = {k: os.environ.get(k) for k in ("MLPROV_CACHE_DIR", "MLPROV_STORE")}
    cache = tmp_path_factory.mktemp("cache")
    os.environ["MLPROV_CACHE_DIR"] = str(cache)
    os.environ["MLPROV_STORE"] = str(cache / "store.sqlite3")
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


class CliResult:
    """What one CLI call returned, printed and wrote to stderr."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, out={self.out!r}, err={self.err!r})"


def run_cli(*args: str | Path) -> CliResult:
    """Run `mlprov ARGS` in-process, capturing stdout, stderr and the exit code."""
    from mlprov.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return CliResult(code, out.getvalue(), err.getvalue())


def without_facts(descriptors: list[dict[str, object]]) -> list[dict[str, object]]:
    """ResourceDescriptors without their `modelFacts` annotation (tests of other facts)."""
    out = []
    for item in descriptors:
        item = dict(item)
        notes = dict(item.get("annotations") or {})  # type: ignore[call-overload]
        notes.pop("modelFacts", None)
        if notes:
            item["annotations"] = notes
        else:
            item.pop("annotations", None)
        out.append(item)
    return out
