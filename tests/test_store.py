"""The store's Python API on SQLite and PostgreSQL: add, index, ls, lineage, consistency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mlprov.errors import InputError
from mlprov.signing.dsse import Envelope
from mlprov.signing.files import parse_attestation
from mlprov.store import SignerEvidence, Store, open_store, parse_digest
from mlprov.store.record import attestation_digest
from store_support import (
    d,
    descriptor,
    fine_tune_chain,
    new_signer,
    provenance,
    sign,
)

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


def _edges(graph: object) -> set[tuple[str, str, str | None]]:
    return {(e.material, e.product, e.step) for e in graph.edges}  # type: ignore[attr-defined]


def test_add_is_content_addressed_and_idempotent(store: Store) -> None:
    signer = new_signer()
    attestation = sign(fine_tune_chain()[0], signer)
    first = store.add(attestation)
    again = store.add(attestation)
    assert first.status == "added" and again.status == "present"
    assert first.digest == again.digest == attestation_digest(attestation.raw)
    assert store.count() == 1
    got = store.get(first.digest)
    assert got is not None
    assert got.raw == attestation.raw  # the exact bytes, not a re-serialisation
    assert got.step == "prepare"
    assert got.build_type == "https://mlprov.dev/buildtypes/dataset-preparation/v1"
    assert not got.verified
    assert got.signers == [(f"keyid:{signer.public_key.keyid}", False)]  # claimed only
    assert [r.digest for r in got.subjects] == [d("dataset")]
    assert [r.digest for r in got.materials] == [d("raw"), d("prep-code")]
    assert got.statement().to_bytes() == fine_tune_chain()[0].to_bytes()
    assert store.get("sha256:" + "0" * 64) is None


def test_verified_evidence_upgrades_an_unverified_entry(store: Store) -> None:
    attestation = sign(fine_tune_chain()[1], new_signer())
    store.add(attestation)
    result = store.add(attestation, evidence=SignerEvidence(("keyid:abc",)))
    assert result.status == "verified"
    got = store.get(result.digest)
    assert got is not None and got.verified
    assert ("keyid:abc", True) in got.signers
    assert store.count() == 1


def test_ls_filters(store: Store) -> None:
    alice, bob = new_signer(), new_signer()
    chain = fine_tune_chain()
    store.add_many([(sign(chain[0], alice), SignerEvidence(("alice",)))])
    store.add_many((sign(s, bob), SignerEvidence()) for s in chain[1:])
    assert len(store.ls()) == 5
    assert [a.step for a in store.ls(step="finetune")] == ["finetune"]
    assert {a.step for a in store.ls(predicate_type=chain[4].predicateType)} == {"evaluation"}
    assert [a.step for a in store.ls(signer="alice")] == ["prepare"]
    assert len(store.ls(signer=f"keyid:{bob.public_key.keyid}")) == 4
    assert [a.step for a in store.ls(verified=True)] == ["prepare"]
    assert len(store.ls(build_type="https://mlprov.dev/buildtypes/training/v1")) == 1
    assert {a.step for a in store.ls(subject=d("tuned"))} == {"finetune", "evaluation"}
    now = datetime.now(UTC)
    assert len(store.ls(since=now - timedelta(minutes=5))) == 5
    assert store.ls(since=now + timedelta(minutes=5)) == []
    assert store.ls(until=now - timedelta(minutes=5)) == []
    assert len(store.ls(limit=2)) == 2


def test_fine_tune_chain_up_and_down(store: Store) -> None:
    signer = new_signer()
    store.add_many((sign(s, signer), SignerEvidence(("ci",))) for s in fine_tune_chain())
    store.optimize()  # planner statistics refreshed; answers unchanged
    up = store.lineage_up(d("int8"))
    assert up.found
    assert _edges(up) == {
        (d("tuned"), d("int8"), "quantize"),
        (d("base"), d("tuned"), "finetune"),
        (d("instr"), d("tuned"), "finetune"),
        (d("evalset"), d("tuned"), "evaluation"),
        (d("dataset"), d("base"), "train"),
        (d("train-config"), d("base"), "train"),
        (d("raw"), d("dataset"), "prepare"),
        (d("prep-code"), d("dataset"), "prepare"),
    }
    assert up.nodes[d("base")].names == ["base-model"]
    assert up.nodes[d("raw")].depth == 4
    assert sorted(up.unattested) == sorted(
        [d("instr"), d("evalset"), d("train-config"), d("raw"), d("prep-code")]
    )
    assert sorted(up.end_artifacts()) == sorted(up.unattested)
    assert all(e.signers == ("ci",) and e.verified for e in up.edges)
    assert up.cycles == [] and up.missing == [] and up.truncated == []

    down = store.lineage_down(d("dataset"))
    assert _edges(down) == {
        (d("dataset"), d("base"), "train"),
        (d("base"), d("tuned"), "finetune"),
        (d("tuned"), d("int8"), "quantize"),
    }
    assert down.end_artifacts() == [d("int8")]
    assert set(down.attestations()) == {e.attestation for e in down.edges}


def test_diamonds(store: Store) -> None:
    signer = new_signer()
    statements = [
        provenance("train-a", "training", [descriptor("m1", "m1")], [descriptor("data", "D")]),
        provenance("train-b", "training", [descriptor("m2", "m2")], [descriptor("data", "D")]),
        provenance(
            "train-c",
            "training",
            [descriptor("m3", "m3")],
            [descriptor("data", "D"), descriptor("data2", "D2")],
        ),
        provenance(
            "merge",
            "fine-tuning",
            [descriptor("m4", "m4")],
            [descriptor("m1", "m1"), descriptor("m2", "m2")],
        ),
    ]
    store.add_many((sign(s, signer), SignerEvidence()) for s in statements)
    down = store.lineage_down(d("D"))
    assert set(down.nodes) == {d("D"), d("m1"), d("m2"), d("m3"), d("m4")}
    assert sorted(down.end_artifacts()) == sorted([d("m3"), d("m4")])
    assert down.cycles == []  # two paths to m4 are a diamond, not a cycle
    assert len(down.edges) == 5
    up = store.lineage_up(d("m3"))
    assert _edges(up) == {(d("D"), d("m3"), "train-c"), (d("D2"), d("m3"), "train-c")}
    up4 = store.lineage_up(d("m4"))
    assert set(up4.nodes) == {d("m4"), d("m1"), d("m2"), d("D")}
    assert up4.nodes[d("D")].depth == 2


def test_cycles_are_reported_not_followed(store: Store) -> None:
    signer = new_signer()
    statements = [
        provenance("ab", "conversion", [descriptor("a", "A")], [descriptor("b", "B")]),
        provenance("bc", "conversion", [descriptor("b", "B")], [descriptor("c", "C")]),
        provenance("ca", "conversion", [descriptor("c", "C")], [descriptor("a", "A")]),
        provenance("self", "conversion", [descriptor("s", "S")], [descriptor("s", "S")]),
    ]
    store.add_many((sign(s, signer), SignerEvidence()) for s in statements)
    for graph in (store.lineage_up(d("A")), store.lineage_down(d("A"))):
        assert set(graph.nodes) == {d("A"), d("B"), d("C")}
        assert len(graph.edges) == 3
        assert graph.cycles == [sorted([d("A"), d("B"), d("C")])]
    assert store.lineage_up(d("S")).cycles == [[d("S")]]


def test_max_depth_missing_links_and_unknown_roots(store: Store) -> None:
    signer = new_signer()
    chain = fine_tune_chain()
    chain.append(
        provenance(
            "train",
            "training",
            [descriptor("other", "other")],
            [
                {"name": "web-crawl", "uri": "https://example.com/crawl"},
                {"name": "numpy", "uri": "pkg:pypi/numpy@2.0.0"},  # pinned: not a gap
                descriptor("x", "X"),
            ],
        )
    )
    store.add_many((sign(s, signer), SignerEvidence()) for s in chain)
    shallow = store.lineage_up(d("int8"), max_depth=1)
    assert set(shallow.nodes) == {d("int8"), d("tuned")}
    assert shallow.truncated == [d("tuned")]
    assert store.lineage_up(d("int8"), max_depth=0).truncated == [d("int8")]
    other = store.lineage_up(d("other"))
    assert [(m.artifact, m.reason) for m in other.missing] == [
        ("web-crawl", "material has no digest")
    ]
    assert set(other.nodes) == {d("other"), d("X")}
    unknown = store.lineage_up(d("nothing"))
    assert not unknown.found and unknown.edges == []
    with pytest.raises(InputError):
        store.lineage_down(d("dataset"), max_depth=-1)


def test_not_an_in_toto_payload_is_refused_and_batch_not_written(store: Store) -> None:
    signer = new_signer()
    good = sign(fine_tune_chain()[0], signer)
    foreign = Envelope(payload=b"{}", payload_type="text/plain")
    bad = parse_attestation(foreign.to_json(), source="foreign.json")
    with pytest.raises(InputError, match=r"foreign\.json"):
        store.add_many([(good, SignerEvidence()), (bad, SignerEvidence())])
    assert store.count() == 0


def test_schema_is_versioned_and_newer_schema_refused(store_url: str) -> None:
    from mlprov.store.schema import LATEST_VERSION

    with open_store(store_url) as first:
        with first.db.reading() as cur:
            cur.execute("SELECT version FROM schema_migrations")
            assert [row[0] for row in cur.fetchall()] == [LATEST_VERSION]
        with first.db.transaction() as cur:
            cur.execute(
                "INSERT INTO schema_migrations (version, description, applied_at)"
                " VALUES (999, 'future', 'now')"
            )
    with pytest.raises(InputError, match="newer than this mlprov"):
        open_store(store_url)


def test_parse_digest() -> None:
    hexpart = "ab" * 32
    assert parse_digest(hexpart) == f"sha256:{hexpart}"
    assert parse_digest(f"SHA256:{hexpart.upper()}") == f"sha256:{hexpart}"
    assert parse_digest("gitcommit:" + "a" * 40) == "gitCommit:" + "a" * 40
    for bad in ("sha256:xyz", "sha256:abcd", "hello", "", "ab" * 10):
        with pytest.raises(InputError):
            parse_digest(bad)


def test_store_location_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlprov.store.store import default_store_path, resolve_location

    monkeypatch.setenv("MLPROV_STORE", str(tmp_path / "env.sqlite3"))
    assert resolve_location(None) == str(tmp_path / "env.sqlite3")
    assert resolve_location("given.sqlite3") == "given.sqlite3"
    monkeypatch.delenv("MLPROV_STORE")
    assert resolve_location(None) == str(default_store_path())
    assert default_store_path().name == "store.sqlite3"
    with pytest.raises(InputError, match="directory"):
        open_store(str(tmp_path))


_WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[4])
    from store_support import descriptor, new_signer, provenance, sign
    from mlprov.store import SignerEvidence, open_store

    url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batch = int(sys.argv[5])
    signer = new_signer()
    items = [
        (
            sign(
                provenance("train", "training", [descriptor(f"{prefix}-{i}")],
                           [descriptor("shared-data"), descriptor(f"{prefix}-cfg-{i}")]),
                signer,
            ),
            SignerEvidence(),
        )
        for i in range(count)
    ]
    with open_store(url) as store:
        print("ready", flush=True)
        for start in range(0, count, batch):
            store.add_many(items[start:start + batch])
    """
)


def _writer(url: str, prefix: str, count: int, batch: int) -> subprocess.Popen[str]:
    tests = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{tests}"}
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, prefix, str(count), tests, str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_adding_1000_each_lose_nothing(store_url: str) -> None:
    open_store(store_url).close()  # created before the race, as a team store would be
    writers = [_writer(store_url, prefix, 1000, 1) for prefix in ("left", "right")]
    for writer in writers:
        assert writer.wait(timeout=300) == 0
    with open_store(store_url) as store:
        assert store.count() == 2000
        down = store.lineage_down(d("shared-data"))
        assert len(down.end_artifacts()) == 2000


def test_a_killed_writer_leaves_whole_batches(store_url: str) -> None:
    batch = 50
    writer = _writer(store_url, "crash", 5000, batch)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    with open_store(store_url) as store:
        deadline = time.monotonic() + 120
        while store.count() < batch and time.monotonic() < deadline:
            time.sleep(0.02)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    with open_store(store_url) as store:
        stored = store.count()
        assert stored % batch == 0 and stored > 0
        with store.db.reading() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM artifacts WHERE role = 'subject'"
                " UNION ALL SELECT COUNT(*) FROM artifacts WHERE role = 'material'"
            )
            subjects, materials = (row[0] for row in cur.fetchall())
        assert (subjects, materials) == (stored, 2 * stored)


def test_oms_bundle_resources_are_indexed(store: Store) -> None:
    from conftest import shared_testdata
    from mlprov.signing.files import read_attestations

    bundle_path = shared_testdata("oms", "v1.0.0-sigstore", "model.sig")
    (attestation,) = read_attestations(bundle_path)
    result = store.add(attestation)
    got = store.get(result.digest)
    assert got is not None and got.kind == "bundle"
    assert got.predicate_type == "https://model_signing/signature/v1.0"
    assert len(got.materials) >= 2  # one per signed file
    assert ("stefanb@us.ibm.com", False) in got.signers  # claimed from the certificate
    # The signed files are the model's own parts, not inputs it was built from: a
    # signature adds no lineage edge, and no file is reported as an unattested input.
    model = got.subjects[0].digest or ""
    up = store.lineage_up(model)
    assert up.found and up.edges == [] and up.unattested == [model]
    for ref in got.materials:
        down = store.lineage_down(ref.digest or "")
        assert down.edges == [], "a model file does not lead to the model as a material"
