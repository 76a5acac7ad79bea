"""`mlprov store` and `mlprov lineage` from the command line, on a pipeline of real files."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, shared_testdata, time_limit
from mlprov.digest import digest_tree
from mlprov.predicates import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from mlprov.statement import Statement
from store_support import (
    BUILD_TYPE,
    d,
    fine_tune_chain,
    new_signer,
    write_envelope,
    write_public_key,
)


def _statement(
    subject: dict[str, Any], predicate_type: str, predicate: dict[str, Any]
) -> Statement:
    return Statement.model_validate(
        {
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [subject],
            "predicateType": predicate_type,
            "predicate": predicate,
        }
    )


def _slsa(step: str, build: str, subject: dict[str, Any], deps: list[Any]) -> Statement:
    return _statement(
        subject,
        SLSA_PROVENANCE_V1,
        {
            "buildDefinition": {
                "buildType": BUILD_TYPE.format(build),
                "externalParameters": {"step": step},
                "resolvedDependencies": deps,
            },
            "runDetails": {"builder": {"id": "https://mlprov.dev/builders/cli"}},
        },
    )


class Pipeline:
    """The examples/ story on disk: a dataset and config train a model, which is quantized
    and evaluated; each step's attestation signed by the team key."""

    def __init__(self, root: Path) -> None:
        out = root / "out"
        for name, files in {
            "dataset": {"features.csv": "1,2\n3,4\n", "labels.csv": "0\n1\n"},
            "model": {"weights.bin": "w" * 64, "config.json": '{"kind": "logreg"}\n'},
            "model-int8": {"weights.int8": "q" * 16},
        }.items():
            (out / name).mkdir(parents=True)
            for file, text in files.items():
                (out / name / file).write_text(text)
        (out / "train.yaml").write_text("epochs: 3\nlr: 0.1\n")
        self.out = out
        self.dataset = "sha256:" + digest_tree(out / "dataset").digest
        self.model = "sha256:" + digest_tree(out / "model").digest
        self.quantized = "sha256:" + digest_tree(out / "model-int8").digest
        self.config = "sha256:" + hashlib.sha256((out / "train.yaml").read_bytes()).hexdigest()
        self.commit = "gitCommit:" + "c0ffee" * 6 + "abcd"

        def rd(name: str, digest: str) -> dict[str, Any]:
            alg, value = digest.split(":")
            return {"name": name, "digest": {alg: value}}

        self.signer = new_signer()
        self.key = write_public_key(self.signer, root / "team.pub.pem")
        self.statements = {
            "train": _slsa(
                "training",
                "training",
                rd("model", self.model),
                [
                    rd("dataset", self.dataset),
                    rd("train.yaml", self.config),
                    {**rd("code", self.commit), "uri": "git+https://example.com/train.git"},
                ],
            ),
            "quantize": _slsa(
                "quantization",
                "conversion",
                rd("model-int8", self.quantized),
                [rd("model", self.model)],
            ),
            "evaluate": _statement(
                rd("model-int8", self.quantized),
                TEST_RESULT_V01,
                {"result": "PASSED", "configuration": [], "step": "evaluation"},
            ),
        }
        self.files = {
            name: write_envelope(out / f"{name}.intoto.json", statement, self.signer)
            for name, statement in self.statements.items()
        }


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    return Pipeline(tmp_path)


def _add(pipeline: Pipeline, *extra: str | Path) -> Any:
    result = run_cli(
        "store", "add", *pipeline.files.values(), "--key", pipeline.key, "--json", *extra
    )
    assert result.code == 0, result
    return json.loads(result.out)


def test_examples_pipeline_lineage_equals_the_facts(pipeline: Pipeline) -> None:
    added = _add(pipeline)
    assert [r["status"] for r in added["results"]] == ["added"] * 3
    assert all(r["verified"] for r in added["results"])
    keyid = f"keyid:{pipeline.signer.public_key.keyid}"

    up = run_cli("lineage", pipeline.out / "model-int8", "--up", "--format", "json")
    assert up.code == 0, up
    graph = json.loads(up.out)
    assert graph["root"] == pipeline.quantized
    assert {(e["material"], e["product"], e["step"]) for e in graph["edges"]} == {
        (pipeline.model, pipeline.quantized, "quantization"),
        (pipeline.dataset, pipeline.model, "training"),
        (pipeline.config, pipeline.model, "training"),
        (pipeline.commit, pipeline.model, "training"),
    }
    assert {n["digest"]: n["names"] for n in graph["nodes"]} == {
        pipeline.quantized: ["model-int8"],
        pipeline.model: ["model"],
        pipeline.dataset: ["dataset"],
        pipeline.config: ["train.yaml"],
        pipeline.commit: ["code"],
    }
    assert all(e["signers"] == [keyid] and e["verified"] for e in graph["edges"])
    assert {e["buildType"] for e in graph["edges"]} == {
        BUILD_TYPE.format("training"),
        BUILD_TYPE.format("conversion"),
    }
    assert sorted(graph["unattested"]) == sorted(
        [pipeline.dataset, pipeline.config, pipeline.commit]
    )

    down = run_cli("lineage", pipeline.dataset, "--down", "--format", "json")
    assert down.code == 0, down
    graph = json.loads(down.out)
    assert [(e["material"], e["product"]) for e in graph["edges"]] == [
        (pipeline.dataset, pipeline.model),
        (pipeline.model, pipeline.quantized),
    ]
    assert graph["ends"] == [pipeline.quantized]
    only = run_cli("lineage", pipeline.dataset.removeprefix("sha256:"), "--down", "--only-models")
    # Every model reached, not only the leaf, each with how (the reproduction).
    assert only.code == 0 and only.out == (
        f"{pipeline.model}  model  trained on dataset\n"
        f"{pipeline.quantized}  model-int8  converted from model, trained on dataset\n"
    )
    by_path = run_cli(
        "lineage", pipeline.out / "dataset", "--down", "--only-models", "--format", "json"
    )
    document = json.loads(by_path.out)
    assert document["ends"] == [{"digest": pipeline.quantized, "names": ["model-int8"]}]
    assert [(m["digest"], m["how"]) for m in document["models"]] == [
        (pipeline.model, ["trained on"]),
        (pipeline.quantized, ["converted from"]),
    ]


def test_lineage_formats(pipeline: Pipeline) -> None:
    _add(pipeline)
    tree = run_cli("lineage", pipeline.out / "model-int8", "--up")
    assert tree.code == 0
    for text in ("model-int8", "quantization", "training", "signed by keyid:", pipeline.dataset):
        assert text in tree.out
    assert "unattested input" in tree.out
    dot = run_cli("lineage", pipeline.out / "model-int8", "--up", "--format", "dot")
    assert dot.out.startswith("digraph lineage {") and dot.out.count(" -> ") == 4
    assert f'"{pipeline.dataset}" -> "{pipeline.model}"' in dot.out
    mermaid = run_cli("lineage", pipeline.dataset, "--down", "--format", "mermaid")
    lines = mermaid.out.splitlines()
    assert lines[0] == "flowchart LR"
    assert sum("-->" in line for line in lines) == 2
    assert any('"training (trained on)"' in line for line in lines)


def test_lineage_cycle_and_depth_in_cli(tmp_path: Path) -> None:
    signer = new_signer()

    def rd(label: str) -> dict[str, Any]:
        return {"name": label, "digest": {"sha256": d(label).removeprefix("sha256:")}}

    files = [
        write_envelope(tmp_path / "ab.json", _slsa("ab", "conversion", rd("a"), [rd("b")]), signer),
        write_envelope(tmp_path / "ba.json", _slsa("ba", "conversion", rd("b"), [rd("a")]), signer),
    ]
    assert run_cli("store", "add", *files).code == 0
    tree = run_cli("lineage", d("a"), "--up")
    assert tree.code == 0
    assert "(cycle)" in tree.out and "! cycle:" in tree.out
    as_json = json.loads(run_cli("lineage", d("a"), "--down", "--format", "json").out)
    assert as_json["cycles"] == [sorted([d("a"), d("b")])]
    shallow = json.loads(
        run_cli("lineage", d("a"), "--up", "--max-depth", "0", "--format", "json").out
    )
    assert shallow["truncated"] == [d("a")] and shallow["edges"] == []


def _tamper(path: Path) -> None:
    envelope = json.loads(path.read_bytes())
    payload = base64.b64decode(envelope["payload"]).replace(b"training", b"trainingX")
    envelope["payload"] = base64.b64encode(payload).decode()
    path.write_text(json.dumps(envelope))


def test_tampered_envelope_is_refused_and_nothing_added(pipeline: Pipeline) -> None:
    _tamper(pipeline.files["train"])
    result = run_cli("store", "add", *pipeline.files.values(), "--key", pipeline.key)
    assert result.code == 1
    assert f"REFUSED: {pipeline.files['train']}" in result.err
    assert "nothing was added" in result.err
    assert run_cli("store", "ls", "--json").out.strip() == "[]"
    # Without keys it is stored, but marked unverified.
    assert run_cli("store", "add", pipeline.files["train"]).code == 0
    listed = json.loads(run_cli("store", "ls", "--json").out)
    assert [(a["step"], a["verified"]) for a in listed] == [("trainingX", False)]


def test_wrong_key_is_refused(pipeline: Pipeline, tmp_path: Path) -> None:
    other = write_public_key(new_signer(), tmp_path / "other.pub.pem")
    result = run_cli("store", "add", pipeline.files["train"], "--key", other)
    assert result.code == 1 and "0 of the given keys signed it" in result.err


def test_add_is_idempotent_ls_show_export(pipeline: Pipeline, tmp_path: Path) -> None:
    first = _add(pipeline)["results"]
    again = run_cli("store", "add", pipeline.files["train"])
    assert again.code == 0 and again.out.startswith("present")
    train_digest = first[0]["digest"]
    assert (
        train_digest
        == "sha256:" + hashlib.sha256(pipeline.files["train"].read_bytes().strip()).hexdigest()
    )

    listed = json.loads(run_cli("store", "ls", "--step", "training", "--json").out)
    assert [a["digest"] for a in listed] == [train_digest]
    assert (
        len(json.loads(run_cli("store", "ls", "--predicate-type", "test-result", "--json").out))
        == 1
    )
    signer = f"keyid:{pipeline.signer.public_key.keyid}"
    assert len(json.loads(run_cli("store", "ls", "--signer", signer, "--json").out)) == 3
    assert json.loads(run_cli("store", "ls", "--unverified", "--json").out) == []
    assert (
        len(
            json.loads(
                run_cli("store", "ls", "--subject", pipeline.out / "model-int8", "--json").out
            )
        )
        == 2
    )
    assert run_cli("store", "ls", "--since", "yesterday").code == 2

    shown = run_cli("store", "show", train_digest, "--json")
    (item,) = json.loads(shown.out)
    assert (
        item["statement"]["predicate"]["buildDefinition"]["externalParameters"]["step"]
        == "training"
    )
    assert [m["digest"] for m in item["materials"]] == [
        pipeline.dataset,
        pipeline.config,
        pipeline.commit,
    ]
    raw = run_cli("store", "show", train_digest, "--raw")
    assert raw.out.encode().strip() == pipeline.files["train"].read_bytes().strip()
    about_model = json.loads(run_cli("store", "show", pipeline.model, "--json").out)
    assert len(about_model) == 2  # produced by training, consumed by quantization
    text = run_cli("store", "show", train_digest)
    assert "material: dataset" in text.out and "signer: keyid:" in text.out
    missing = run_cli("store", "show", "sha256:" + "1" * 64)
    assert missing.code == 1 and "NOT FOUND" in missing.err

    everything = tmp_path / "all.intoto.jsonl"
    assert run_cli("store", "export", "--all", "--out", everything).code == 0
    lines = everything.read_bytes().splitlines()
    assert sorted(lines) == sorted(p.read_bytes().strip() for p in pipeline.files.values())
    assert run_cli("store", "export", "--all", "--out", everything).code == 2  # no --force
    evidence = tmp_path / "model.intoto.jsonl"
    assert run_cli("store", "export", pipeline.quantized, "--up", "--out", evidence).code == 0
    assert len(evidence.read_bytes().splitlines()) == 3  # quantize + evaluation + train
    impact = tmp_path / "impact.intoto.jsonl"
    assert run_cli("store", "export", pipeline.dataset, "--down", "--out", impact).code == 0
    assert len(impact.read_bytes().splitlines()) == 2
    one = tmp_path / "one.intoto.jsonl"
    assert run_cli("store", "export", train_digest, "--out", one).code == 0
    assert one.read_bytes().strip() == pipeline.files["train"].read_bytes().strip()
    # An export is itself addable: into a fresh store, byte for byte.
    fresh = tmp_path / "fresh.sqlite3"
    assert run_cli("store", "add", everything, "--key", pipeline.key, "--store", fresh).code == 0
    assert len(json.loads(run_cli("store", "ls", "--json", "--store", fresh).out)) == 3


def test_cli_on_both_backends(pipeline: Pipeline, store_url: str) -> None:
    _add(pipeline, "--store", store_url)
    result = run_cli("lineage", pipeline.dataset, "--down", "--only-models", "--store", store_url)
    assert result.code == 0 and result.out.splitlines()[-1].split()[:2] == [
        pipeline.quantized,
        "model-int8",
    ]
    again = run_cli("store", "add", *pipeline.files.values(), "--store", store_url, "--json")
    assert [r["status"] for r in json.loads(again.out)["results"]] == ["present"] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("lineage", "sha256:xyz", "--up"), "neither an existing path nor a digest"),
        (("lineage", "sha256:" + "0" * 64), "give --up"),
        (("store", "show", "not-a-digest"), "not a digest"),
        (("store", "add", "missing.intoto.json"), "no such file"),
        (("store", "export", "--out", "x.jsonl"), "DIGEST... or --all"),
        (("store", "add", "x", "--identity", "me@example.com"), "--issuer"),
        (("store", "ls", "--store", "postgresql://nobody@127.0.0.1:1/none"), "cannot connect"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run_cli(*args)
    assert result.code == 2, result
    assert message in result.err and "Traceback" not in result.err


def test_unknown_artifact_is_exit_1() -> None:
    result = run_cli("lineage", "sha256:" + "0" * 64, "--up")
    assert result.code == 1 and "NOT FOUND" in result.err


def test_sigstore_identity_verification_on_add() -> None:
    bundle = shared_testdata("oms", "v1.0.0-sigstore", "model.sig")
    root = shared_testdata("sigstore", "production_trusted_root.json")
    issuer = "https://sigstore.verify.ibm.com/oauth2"
    wrong = run_cli(
        "store",
        "add",
        bundle,
        "--identity",
        "mallory@example.com",
        "--issuer",
        issuer,
        "--trusted-root",
        root,
    )
    assert wrong.code == 1 and "REFUSED" in wrong.err
    good = run_cli(
        "store",
        "add",
        bundle,
        "--identity",
        "stefanb@us.ibm.com",
        "--issuer",
        issuer,
        "--trusted-root",
        root,
        "--json",
    )
    assert good.code == 0, good
    (result,) = json.loads(good.out)["results"]
    assert result["verified"] and result["predicateType"] == "https://model_signing/signature/v1.0"
    listed = json.loads(
        run_cli("store", "ls", "--signer", "stefanb@us.ibm.com", "--verified", "--json").out
    )
    assert [a["digest"] for a in listed] == [result["digest"]]


def test_fine_tune_chain_through_cli(tmp_path: Path) -> None:
    signer = new_signer()
    files = [
        write_envelope(tmp_path / f"s{i}.intoto.json", s, signer)
        for i, s in enumerate(fine_tune_chain())
    ]
    assert run_cli("store", "add", *files).code == 0
    ends = run_cli("lineage", d("raw"), "--down", "--only-models")
    assert [line.split("  ")[:2] for line in ends.out.splitlines()] == [
        [d("base"), "base-model"],
        [d("tuned"), "tuned-model"],
        [d("int8"), "model-int8"],
    ]
    up = json.loads(run_cli("lineage", d("int8"), "--up", "--only-models", "--format", "json").out)
    assert {e["digest"] for e in up["ends"]} == {
        d(x) for x in ("raw", "prep-code", "train-config", "instr", "evalset")
    }


@pytest.mark.parametrize("layout", ["as mlprov sign writes it", "pretty-printed"])
def test_export_of_stored_envelopes_adds_to_another_store_as_is(
    pipeline: Pipeline, tmp_path: Path, layout: str
) -> None:
    """The store keeps an envelope's exact bytes and an export writes them. `mlprov sign`
    writes one line per envelope, so its export is JSON Lines; an envelope stored
    pretty-printed (by an earlier mlprov, or another tool) keeps its lines. Either way the
    export adds to another store, every attestation under the same digest, and verifies
    (store.md: "An export can be added to another store as is")."""
    key = tmp_path / "team"
    assert run_cli("keygen", "--out", key, "--no-password").code == 0
    signed = []
    for name, statement in pipeline.statements.items():
        unsigned = tmp_path / f"{name}.statement.json"
        unsigned.write_bytes(statement.to_bytes())
        envelope = tmp_path / f"{name}.intoto.json"
        assert run_cli("sign", unsigned, "--key", f"{key}.key", "--out", envelope).code == 0
        assert len(envelope.read_bytes().splitlines()) == 1  # one line, as .intoto.jsonl needs
        if layout == "pretty-printed":
            envelope.write_text(json.dumps(json.loads(envelope.read_bytes()), indent=2) + "\n")
        signed.append(envelope)
    added = run_cli("store", "add", *signed, "--key", f"{key}.pub", "--json")
    assert added.code == 0, added
    digests = sorted(r["digest"] for r in json.loads(added.out)["results"])

    backup = tmp_path / "backup.intoto.jsonl"
    assert run_cli("store", "export", "--all", "--out", backup).code == 0
    copy = tmp_path / "copy.sqlite3"
    restored = run_cli("store", "add", backup, "--store", copy, "--key", f"{key}.pub", "--json")
    assert restored.code == 0, restored
    results = json.loads(restored.out)["results"]
    assert sorted(r["digest"] for r in results) == digests
    assert {r["status"] for r in results} == {"added"} and all(r["verified"] for r in results)
    assert run_cli("verify", backup, "--key", f"{key}.pub").code == 0
    again = tmp_path / "again.intoto.jsonl"
    assert run_cli("store", "export", "--all", "--store", copy, "--out", again).code == 0
    assert again.read_bytes() == backup.read_bytes()  # byte for byte, both ways
    if layout != "pretty-printed":  # strict JSON Lines: what peers' readers take
        assert all(json.loads(line) for line in backup.read_bytes().splitlines())


def test_jsonl_pretty_printed_documents_are_read_exactly(tmp_path: Path) -> None:
    """A pretty-printed document in a .jsonl ends where its braces close, whatever braces,
    quotes and backslashes its strings hold; one never closed is its first line alone, and
    the lines after it are still read."""
    from mlprov.signing.dsse import sign_envelope
    from mlprov.signing.files import read_attestations

    signer = new_signer()
    statement = Pipeline(tmp_path / "p").statements["train"]
    envelope = json.loads(sign_envelope(statement.to_bytes(), [signer]).to_json())
    envelope["signatures"][0]["keyid"] = 'odd } ] { [ \\" \\\\ " keyid'
    pretty = json.dumps(envelope, indent=2).encode()
    compact = json.dumps(envelope, separators=(",", ":")).encode()
    path = tmp_path / "mixed.intoto.jsonl"
    path.write_bytes(compact + b"\n\n" + pretty + b"\n" + compact + b"\n")
    assert [a.raw for a in read_attestations(path)] == [compact, pretty, compact]

    truncated = tmp_path / "truncated.intoto.jsonl"
    lines = pretty.splitlines(keepends=True)
    truncated.write_bytes(b"".join(lines[:-1]) + compact + b"\n")
    bad: list[tuple[str, str]] = []
    assert [a.raw for a in read_attestations(truncated, bad_lines=bad)] == [compact]
    assert bad and bad[0][0] == f"{truncated}:1" and "not valid JSON" in bad[0][1]
    result = run_cli("verify", truncated, "--key", write_public_key(signer, tmp_path / "k.pub"))
    assert result.code == 2 and f"{truncated}:1: not valid JSON" in result.err


def test_jsonl_of_unclosed_braces_is_read_in_linear_time(tmp_path: Path) -> None:
    """50,000 lines of `{` (a 100 KB file) and indented junk after each: every `{` is one
    malformed line, the attestation after them still counts, and the gate answers at
    once. Matching each `{` to the brace that closes it scanned to the end of the file
    for every line: this file kept `policy check` busy for many minutes."""
    from mlprov.signing.dsse import sign_envelope

    signer = new_signer()
    statement = Pipeline(tmp_path / "p").statements["train"]
    compact = json.dumps(json.loads(sign_envelope(statement.to_bytes(), [signer]).to_json()))
    hostile = tmp_path / "hostile.intoto.jsonl"
    hostile.write_text("{\n" * 50_000 + "{\n  junk\n" * 20_000 + compact + "\n")
    layout = tmp_path / "layout.yaml"
    key = write_public_key(signer, tmp_path / "k.pub")
    assert run_cli("policy", "init", "--out", layout, "--key", key).code == 0
    with time_limit(60):
        result = run_cli("policy", "check", layout, "--attestations", hostile, "--json")
    assert result.code == 1, result.err
    report = json.loads(result.out)
    assert len(report["attestations"]) == 1
    assert len(report["skipped"]) == 50_000 + 2 * 20_000
