"""`mlprov attest`: every field of each Statement checked against the facts it came from."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli, without_facts
from mlprov.digest.manifest import MANIFEST_MEDIA_TYPE, TreeManifest
from mlprov.predicates import SLSA_PROVENANCE_V1, TEST_RESULT_V01, step_of
from mlprov.schemagen import validate_statement
from mlprov.statement import Statement, check_in_toto_structure


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A tiny pipeline on disk: a dataset tree, a model tree, config files, metrics."""
    (tmp_path / "dataset" / "sub").mkdir(parents=True)
    (tmp_path / "dataset" / "features.csv").write_text("1,2\n3,4\n")
    (tmp_path / "dataset" / "sub" / "labels.csv").write_text("0\n1\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.npy").write_bytes(b"\x93NUMPY weights")
    (tmp_path / "model" / "config.json").write_text('{"features": 2}')
    (tmp_path / "train.yaml").write_text("lr: 0.05\nepochs: 20\nlayers: [4, 2]\nname: lr\n")
    (tmp_path / "metrics.json").write_text('{"accuracy": 0.93, "loss": 0.21, "steps": 100}')
    return tmp_path


def mlprov_digest(path: Path) -> str:
    result = run_cli("digest", path, "--json")
    assert result.code == 0, result
    digest: str = json.loads(result.out)[0]["digest"]
    return digest


def load(path: Path) -> tuple[Statement, dict[str, Any]]:
    data = path.read_bytes()
    check_in_toto_structure(data)
    raw = json.loads(data)
    validate_statement(raw, source=str(path))
    statement = Statement.from_bytes(data)
    assert statement.to_bytes() == data, "written bytes are the canonical Statement bytes"
    return statement, raw


def by_role(items: list[dict[str, Any]], role: str) -> list[dict[str, Any]]:
    return [i for i in items if i.get("annotations", {}).get("role") == role]


def test_attest_train_records_every_fact(work: Path) -> None:
    out = work / "train.statement.json"
    result = run_cli(
        "attest", "train",
        "--model", work / "model",
        "--dataset", f"train={work / 'dataset'}",
        "--license", "train=CC-BY-4.0",
        "--config", work / "train.yaml",
        "--param", "epochs=30", "--param", "lr=1e-3", "--param", "optimizer=adam",
        "--seed", "numpy=7",
        "--metrics", work / "metrics.json",
        "--entry-point", "train.py",
        "--builder-id", "https://ci.example/runner",
        "--invocation-id", "run-42",
        "--started-on", "2024-05-01T12:00:00+02:00",
        "--finished-on", "2024-05-01T10:30:00Z",
        "--source-dir", work,
        "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    statement, raw = load(out)
    assert raw["_type"] == "https://in-toto.io/Statement/v1"
    assert raw["predicateType"] == SLSA_PROVENANCE_V1
    assert without_facts(raw["subject"]) == [
        {
            "name": "model",
            "digest": {"sha256": mlprov_digest(work / "model")},
            "annotations": {"digestOf": "tree"},
        }
    ]
    assert step_of(statement) == "train"

    build = raw["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://mlprov.dev/buildtypes/training/v1"
    ext = build["externalParameters"]
    assert ext == {
        "step": "train",
        "config": {"lr": 0.05, "epochs": 20, "layers": [4, 2], "name": "lr"},
        "configFile": "train.yaml",
        "parameters": {"epochs": 30, "lr": 0.001, "optimizer": "adam"},
        "entryPoint": "train.py",
        "source": {"absent": "not inside a git working tree"},
    }
    assert type(ext["config"]["epochs"]) is int and type(ext["parameters"]["epochs"]) is int

    internal = build["internalParameters"]
    assert internal["python"]["version"] == platform.python_version()
    assert internal["platform"]["machine"] == platform.machine()
    assert internal["frameworks"]["numpy"] == importlib.metadata.version("numpy")
    assert internal["seeds"] == {"numpy": 7}
    assert internal["hardware"]["cpu"]["count"] >= 1
    assert "hostname" not in internal

    deps = build["resolvedDependencies"]
    manifest = TreeManifest.from_json((work / "train.train.manifest.json").read_bytes())
    assert by_role(deps, "dataset") == [
        {
            "name": "train",
            "digest": {"sha256": mlprov_digest(work / "dataset")},
            "annotations": {
                "role": "dataset",
                "digestOf": "tree",
                "split": "train",
                "license": "CC-BY-4.0",
                "fileCount": 2,
                "byteSize": 12,
            },
        }
    ]
    assert manifest.digest == mlprov_digest(work / "dataset")
    config_bytes = (work / "train.yaml").read_bytes()
    assert by_role(deps, "config") == [
        {
            "name": "train.yaml",
            "digest": {"sha256": hashlib.sha256(config_bytes).hexdigest()},
            "mediaType": "application/yaml",
            "annotations": {"role": "config"},
        }
    ]
    packages = {d["uri"] for d in by_role(deps, "package")}
    assert f"pkg:pypi/pydantic@{importlib.metadata.version('pydantic')}" in packages
    assert len(deps) == 2 + len(packages)

    run = raw["predicate"]["runDetails"]
    assert run["builder"] == {"id": "https://ci.example/runner", "version": {"mlprov": "0.1.0"}}
    assert run["metadata"] == {
        "invocationId": "run-42",
        "startedOn": "2024-05-01T10:00:00Z",
        "finishedOn": "2024-05-01T10:30:00Z",
    }
    metrics_bytes = (work / "metrics.json").read_bytes()
    manifest_bytes = (work / "train.train.manifest.json").read_bytes()
    assert run["byproducts"] == [
        {
            "name": "metrics.json",
            "digest": {"sha256": hashlib.sha256(metrics_bytes).hexdigest()},
            "mediaType": "application/json",
            "annotations": {
                "role": "metrics",
                "metrics": {"accuracy": 0.93, "loss": 0.21, "steps": 100},
            },
        },
        {
            "name": "train.train.manifest.json",
            "digest": {"sha256": hashlib.sha256(manifest_bytes).hexdigest()},
            "mediaType": MANIFEST_MEDIA_TYPE,
            "annotations": {
                "role": "manifest",
                "describes": "train",
                "treeDigest": {"sha256": manifest.digest},
            },
        },
    ]


def test_attest_records_git_source(work: Path) -> None:
    repo = work
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.org")
    git(repo, "config", "user.name", "t")
    git(repo, "remote", "add", "origin", "https://user:s3cret@example.org/team/proj.git")
    (repo / "train.py").write_text("print('train')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "train.py").write_text("print('changed')\n")
    diff = subprocess.run(
        ["git", "-C", str(repo), "diff", "HEAD", "--binary"], capture_output=True, check=True
    ).stdout
    untracked = sum(1 for line in git(repo, "status", "--porcelain").splitlines() if "??" in line)
    assert untracked == 4  # dataset/, metrics.json, model/, train.yaml
    out = work / "t.json"
    result = run_cli(
        "attest", "train", "--model", work / "model", "--source-dir", repo, "--no-packages",
        "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    _, raw = load(out)
    build = raw["predicate"]["buildDefinition"]
    assert build["externalParameters"]["source"] == {
        "repository": "https://example.org/team/proj.git",
        "ref": "refs/heads/main",
    }
    assert "s3cret" not in out.read_text()
    source = by_role(build["resolvedDependencies"], "source")
    assert source == [
        {
            "name": "source",
            "uri": "git+https://example.org/team/proj.git@refs/heads/main",
            "digest": {"gitCommit": git(repo, "rev-parse", "HEAD")},
            "annotations": {
                "role": "source",
                "dirty": True,
                "diffSha256": hashlib.sha256(diff).hexdigest(),
                "untrackedFiles": untracked - 1,  # model/ is the step's own output
            },
        }
    ]


def test_clean_git_tree_is_not_dirty(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q", "-b", "dev")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "w").write_text("w")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.email=a@b", "-c", "user.name=a", "commit", "-q", "-m", "x")
    out = tmp_path.parent / f"{tmp_path.name}.json"
    result = run_cli(
        "attest", "train", "--model", tmp_path / "model", "--source-dir", tmp_path,
        "--no-packages", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    _, raw = load(out)
    build = raw["predicate"]["buildDefinition"]
    assert build["externalParameters"]["source"] == {"ref": "refs/heads/dev"}
    assert by_role(build["resolvedDependencies"], "source") == [
        {
            "name": "source",
            "digest": {"gitCommit": git(tmp_path, "rev-parse", "HEAD")},
            "annotations": {"role": "source", "dirty": False},
        }
    ]


def test_step_override_and_no_invented_times(work: Path) -> None:
    out = work / "t.json"
    result = run_cli(
        "attest", "finetune", "--model", work / "model", "--base-model", work / "dataset",
        "--step", "ft-stage-2", "--no-packages", "--no-git", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    statement, raw = load(out)
    assert step_of(statement) == "ft-stage-2"
    build = raw["predicate"]["buildDefinition"]
    assert build["buildType"] == "https://mlprov.dev/buildtypes/fine-tuning/v1"
    assert build["externalParameters"]["source"] == {
        "absent": "not recorded (no source directory given)"
    }
    assert without_facts(by_role(build["resolvedDependencies"], "base-model")) == [
        {
            "name": "dataset",
            "digest": {"sha256": mlprov_digest(work / "dataset")},
            "annotations": {
                "role": "base-model",
                "digestOf": "tree",
                "fileCount": 2,
                "byteSize": 12,
            },
        }
    ]
    metadata = raw["predicate"]["runDetails"]["metadata"]
    assert set(metadata) == {"invocationId"}, "a finished run gets no made-up times or outcome"
    assert metadata["invocationId"].startswith("urn:uuid:")


def test_attest_convert_and_file_subjects(work: Path) -> None:
    out = work / "c.json"
    result = run_cli(
        "attest", "convert", "--model", work / "model", "--base-model", work / "dataset",
        "--param", "dtype=int8", "--file-subjects", "--no-packages", "--no-git", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    _, raw = load(out)
    assert raw["predicate"]["buildDefinition"]["buildType"].endswith("/conversion/v1")
    files = {
        e["path"]: e["digest"]
        for e in json.loads(run_cli("digest", work / "model", "--json").out)[0]["files"]
    }
    assert without_facts(raw["subject"]) == [
        {
            "name": "model",
            "digest": {"sha256": mlprov_digest(work / "model")},
            "annotations": {"digestOf": "tree"},
        },
        *(
            {"name": f"model/{p}", "digest": {"sha256": d}, "annotations": {"digestOf": "file"}}
            for p, d in sorted(files.items())
        ),
    ]


def test_attest_dataset_preparation(work: Path) -> None:
    raw_csv = work / "raw.csv"
    raw_csv.write_text("a,b\n")
    out = work / "prep.statement.json"
    result = run_cli(
        "attest", "dataset", "--dataset", f"curated={work / 'dataset'}",
        "--split", "curated=validation", "--license", "curated=MIT",
        "--input", f"raw={raw_csv}",
        "--input", "web=https://example.org/dump.tar#sha256=" + "ab" * 32,
        "--no-packages", "--no-git", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    statement, raw = load(out)
    assert step_of(statement) == "dataset"
    assert without_facts(raw["subject"]) == [
        {
            "name": "curated",
            "digest": {"sha256": mlprov_digest(work / "dataset")},
            "annotations": {
                "split": "validation",
                "license": "MIT",
                "digestOf": "tree",
                "fileCount": 2,
                "byteSize": 12,
            },
        }
    ]
    deps = raw["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert deps == [
        {
            "name": "raw",
            "digest": {"sha256": hashlib.sha256(b"a,b\n").hexdigest()},
            "annotations": {"role": "dataset", "digestOf": "file", "fileCount": 1, "byteSize": 4},
        },
        {
            "name": "web",
            "uri": "https://example.org/dump.tar",
            "digest": {"sha256": "ab" * 32},
            "annotations": {"role": "dataset"},
        },
    ]
    assert (work / "prep.curated.manifest.json").exists()


def test_attest_eval_test_result(work: Path) -> None:
    out = work / "eval.statement.json"
    result = run_cli(
        "attest", "eval", "--model", work / "model", "--dataset", f"test={work / 'dataset'}",
        "--metrics", work / "metrics.json", "--threshold", "accuracy>=0.9",
        "--threshold", "loss<0.5", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    statement, raw = load(out)
    assert raw["predicateType"] == TEST_RESULT_V01
    assert step_of(statement) == "eval"
    assert without_facts(raw["subject"]) == [
        {
            "name": "model",
            "digest": {"sha256": mlprov_digest(work / "model")},
            "annotations": {"digestOf": "tree"},
        }
    ]
    assert raw["predicate"] == {
        "result": "PASSED",
        "mlprov_step": "eval",
        "configuration": [
            {
                "name": "test",
                "digest": {"sha256": mlprov_digest(work / "dataset")},
                "annotations": {
                    "role": "dataset",
                    "split": "test",
                    "digestOf": "tree",
                    "fileCount": 2,
                    "byteSize": 12,
                },
            }
        ],
        "passedTests": ["accuracy>=0.9", "loss<0.5"],
        "failedTests": [],
        "mlprov_metrics": {"accuracy": 0.93, "loss": 0.21, "steps": 100},
        "mlprov_thresholds": [
            {
                "name": "accuracy>=0.9",
                "metric": "accuracy",
                "operator": ">=",
                "value": 0.9,
                "actual": 0.93,
                "passed": True,
            },
            {
                "name": "loss<0.5",
                "metric": "loss",
                "operator": "<",
                "value": 0.5,
                "actual": 0.21,
                "passed": True,
            },
        ],
    }


def test_attest_eval_failed_threshold_is_recorded_and_exits_1(work: Path) -> None:
    out = work / "eval.json"
    result = run_cli(
        "attest", "eval", "--model", work / "model", "--metrics", work / "metrics.json",
        "--threshold", "accuracy>=0.95", "--threshold", "f1>=0.5", "--out", out,
    )  # fmt: skip
    assert result.code == 1
    assert "FAILED: accuracy>=0.95 on model (actual: 0.93)" in result.err
    assert "FAILED: f1>=0.5 on model (actual: missing)" in result.err
    _, raw = load(out)
    assert raw["predicate"]["result"] == "FAILED"
    assert raw["predicate"]["failedTests"] == ["accuracy>=0.95", "f1>=0.5"]
    assert raw["predicate"]["passedTests"] == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "a: [1, 2\n", "bad.yaml: invalid YAML at line 2"),
        ("bad.json", '{"a": 1,}', "bad.json: invalid JSON at line 1"),
        ("bad.toml", "a = = 1", "bad.toml: invalid TOML"),
        ("list.yaml", "- 1\n- 2\n", "the top level must be a mapping, not list"),
        ("nan.toml", "lr = nan", "nan cannot be recorded in JSON"),
        ("keys.yaml", "1: one\n", "key 1 is not a string"),
        ("conf.ini", "[a]", "unknown config format"),
    ],
)
def test_malformed_config_exits_2_with_one_line(
    work: Path, name: str, text: str, message: str
) -> None:
    (work / name).write_text(text)
    out = work / "t.json"
    result = run_cli(
        "attest", "train", "--model", work / "model", "--config", work / name, "--out", out
    )
    assert result.code == 2
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "missing-model"], "missing-model: no such file or directory"),
        (["--dataset", "train=missing-data"], "missing-data: no such file or directory"),
        (["--dataset", "nodata"], "is not of the form NAME=VALUE"),
        (["--dataset", "../x=dataset"], "must be a relative path without '..'"),
        # https:// is now hashed where it is (tests/test_remote_s3.py); a scheme mlprov
        # cannot read still needs its digest.
        (["--dataset", "w=ftp://example.org/w.tar"], "give its digest as URI#sha256=HEX"),
        (["--dataset", "w=https://example.org/w#sha256=abc"], "a sha256 digest has 64 hex"),
        (["--split", "other=test"], "--split names 'other', which is not a --dataset"),
        (["--config", "missing.yaml"], "missing.yaml: no such file"),
        (["--param", "novalue"], "is not of the form KEY=VALUE"),
        (["--started-on", "yesterday"], "is not an RFC 3339 timestamp"),
        (["--started-on", "2024-01-01T00:00:00"], "has no timezone"),
        (["--seed", "np=x"], "not an integer"),
        (["--metrics", "missing.json"], "missing.json: no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    work: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(work)
    if "--model" not in args:
        args = ["--model", "model", *args]
    result = run_cli("attest", "train", *args, "--no-packages", "--out", "t.json")
    assert result.code == 2, result
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err
    assert not (work / "t.json").exists()


def test_never_overwrites_without_force(work: Path) -> None:
    out = work / "t.json"
    out.write_text("keep")
    args = ["attest", "train", "--model", work / "model", "--no-packages", "--out", out]
    result = run_cli(*args)
    assert result.code == 2 and "already exists" in result.err
    assert out.read_text() == "keep"
    assert run_cli(*args, "--force").code == 0
    load(out)


def test_json_output(work: Path) -> None:
    out = work / "t.json"
    result = run_cli(
        "attest", "train", "--model", work / "model", "--no-packages", "--out", out, "--json"
    )
    assert result.code == 0
    printed = json.loads(result.out)
    assert printed["out"] == str(out)
    assert printed["statement"] == json.loads(out.read_bytes())
