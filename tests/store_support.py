"""Fixtures and builders for the store tests: both backends, signed pipeline attestations.

Loaded as a plugin from conftest.py. `store_url` runs a test once on SQLite and once on
a real PostgreSQL server: $MLPROV_TEST_POSTGRES (set by .ci/run), else one started by
.ci/postgres.sh for the session, else the PostgreSQL run is skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner

from mlprov.predicates import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from mlprov.signing.dsse import sign_envelope
from mlprov.signing.files import SignedAttestation, parse_attestation
from mlprov.signing.keys import public_pem
from mlprov.statement import Statement

ROOT = Path(__file__).resolve().parents[1]
BUILD_TYPE = "https://mlprov.dev/buildtypes/{}/v1"


def _start_postgres() -> tuple[str, str | None] | str:
    """(dsn, dir to stop) of a server, or the reason there is none."""
    dsn = os.environ.get("MLPROV_TEST_POSTGRES")
    if dsn:
        return dsn, None
    try:
        done = subprocess.run(
            [str(ROOT / ".ci" / "postgres.sh"), "--export"],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run .ci/postgres.sh: {exc}"
    if done.returncode != 0:
        return f".ci/postgres.sh found no PostgreSQL server or package: {done.stderr.strip()}"
    env = dict(
        item.split("=", 1) for item in shlex.split(done.stdout.strip().removeprefix("export "))
    )
    return env["MLPROV_TEST_POSTGRES"], env["MLPROV_TEST_POSTGRES_DIR"]


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A PostgreSQL server's DSN, or skip saying why there is none."""
    started = _start_postgres()
    if isinstance(started, str):
        pytest.skip(f"no PostgreSQL server for the store tests: {started}")
    dsn, directory = started
    yield dsn
    if directory:
        subprocess.run(
            [str(ROOT / ".ci" / "postgres.sh"), "--stop", directory], check=False, timeout=60
        )


def fresh_postgres_schema(dsn: str) -> str:
    """A DSN whose tables live in a new, empty schema (one per test: tests stay isolated)."""
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on an empty SQLite store and an empty PostgreSQL store."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite3")
    dsn = request.getfixturevalue("postgres_dsn")
    return fresh_postgres_schema(dsn)


# -- pipeline builders ----------------------------------------------------------------


def hexdigest(label: str) -> str:
    """A stand-in artifact digest, stable per label."""
    return hashlib.sha256(label.encode()).hexdigest()


def d(label: str) -> str:
    """The store's name (`sha256:<hex>`) of a stand-in artifact."""
    return "sha256:" + hexdigest(label)


def descriptor(name: str, label: str | None = None) -> dict[str, Any]:
    return {"name": name, "digest": {"sha256": hexdigest(label or name)}}


def provenance(
    step: str,
    build: str,
    subjects: list[dict[str, Any]],
    deps: list[dict[str, Any]],
) -> Statement:
    """An mlprov-style SLSA provenance v1 Statement for one pipeline step."""
    return Statement.model_validate(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": subjects,
            "predicateType": SLSA_PROVENANCE_V1,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE.format(build),
                    "externalParameters": {"step": step},
                    "resolvedDependencies": deps,
                },
                "runDetails": {"builder": {"id": "https://mlprov.dev/builders/test"}},
            },
        }
    )


def evaluation(model: dict[str, Any], config: list[dict[str, Any]]) -> Statement:
    """A test-result v0.1 Statement about a model."""
    return Statement.model_validate(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [model],
            "predicateType": TEST_RESULT_V01,
            "predicate": {"result": "PASSED", "configuration": config, "step": "evaluation"},
        }
    )


def new_signer() -> CryptoSigner:
    return CryptoSigner.generate_ed25519()


def sign(statement: Statement, signer: CryptoSigner, *, source: str = "test") -> SignedAttestation:
    """A DSSE envelope over the Statement's bytes, parsed back as `store add` would."""
    envelope = sign_envelope(statement.to_bytes(), [signer])
    return parse_attestation(envelope.to_json(), source=source)


def write_envelope(path: Path, statement: Statement, signer: CryptoSigner) -> Path:
    path.write_bytes(sign_envelope(statement.to_bytes(), [signer]).to_json() + b"\n")
    return path


def write_public_key(signer: CryptoSigner, path: Path) -> Path:
    """Write the signer's public key as PEM (for `--key`)."""
    path.write_bytes(public_pem(signer.public_key))
    return path


def fine_tune_chain() -> list[Statement]:
    """raw → dataset → base model → fine-tuned → quantized, plus an evaluation."""
    return [
        provenance(
            "prepare",
            "dataset-preparation",
            [descriptor("dataset", "dataset")],
            [descriptor("raw.csv", "raw"), descriptor("prep.py", "prep-code")],
        ),
        provenance(
            "train",
            "training",
            [descriptor("base-model", "base")],
            [descriptor("dataset", "dataset"), descriptor("train.yaml", "train-config")],
        ),
        provenance(
            "finetune",
            "fine-tuning",
            [descriptor("tuned-model", "tuned")],
            [descriptor("base-model", "base"), descriptor("instructions", "instr")],
        ),
        provenance(
            "quantize",
            "conversion",
            [descriptor("model-int8", "int8")],
            [descriptor("tuned-model", "tuned")],
        ),
        evaluation(descriptor("tuned-model", "tuned"), [descriptor("evalset", "evalset")]),
    ]
