"""Collectors: environment, GPUs, CI builders, hub snapshots, configs, git edge cases."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from mlprov.collect import (
    collect_environment,
    collect_git,
    collect_gpus,
    describe_path,
    detect_builder,
    load_config,
    parse_overrides,
    strip_credentials,
)
from mlprov.collect.builder import LOCAL_BUILDER
from mlprov.digest import digest_tree
from mlprov.errors import InputError


def fake_tool(directory: Path, name: str, script: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_gpus_from_nvidia_smi(tmp_path: Path) -> None:
    smi = fake_tool(
        tmp_path,
        "nvidia-smi",
        'if [ "$#" -gt 0 ]; then\n'
        '  echo "NVIDIA A100-SXM4-80GB, 535.104.05, 81920"\n'
        '  echo "NVIDIA A100-SXM4-80GB, 535.104.05, 81920"\n'
        "else\n"
        '  echo "| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2 |"\n'
        "fi\n",
    )
    assert collect_gpus(nvidia_smi=str(smi)) == {
        "count": 2,
        "models": ["NVIDIA A100-SXM4-80GB", "NVIDIA A100-SXM4-80GB"],
        "driverVersion": "535.104.05",
        "memoryMiB": ["81920", "81920"],
        "cudaVersion": "12.2",
    }


def test_gpu_absent_and_failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert collect_gpus() == {"absent": "nvidia-smi not found"}
    smi = fake_tool(tmp_path, "nvidia-smi", "echo 'NVIDIA-SMI has failed' >&2; exit 9\n")
    assert collect_gpus(nvidia_smi=str(smi)) == {
        "absent": "nvidia-smi failed: NVIDIA-SMI has failed"
    }


def test_environment_hostname_only_when_asked() -> None:
    import socket

    assert collect_environment(record_packages=False).hostname is None
    env = collect_environment(record_host=True, record_packages=False)
    assert env.hostname == socket.gethostname()
    assert env.internal_parameters()["hostname"] == socket.gethostname()
    assert env.packages == {}


def test_builder_from_github_actions() -> None:
    identity = detect_builder(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_REPOSITORY": "acme/models",
            "GITHUB_RUN_ID": "123",
            "GITHUB_RUN_ATTEMPT": "2",
            "RUNNER_ENVIRONMENT": "self-hosted",
        }
    )
    assert identity.builder_id == "https://github.com/actions/runner/self-hosted"
    assert identity.invocation_id == "https://github.com/acme/models/actions/runs/123/attempts/2"
    assert identity.ci == "github-actions"


def test_builder_from_gitlab_and_local_and_given() -> None:
    gitlab = detect_builder(
        {
            "GITLAB_CI": "true",
            "CI_SERVER_URL": "https://gitlab.example",
            "CI_PROJECT_PATH": "ml/train",
            "CI_RUNNER_ID": "77",
            "CI_JOB_URL": "https://gitlab.example/ml/train/-/jobs/9",
        }
    )
    assert gitlab.builder_id == "https://gitlab.example/ml/train/-/runners/77"
    assert gitlab.invocation_id == "https://gitlab.example/ml/train/-/jobs/9"
    local = detect_builder({})
    assert local.builder_id == LOCAL_BUILDER and local.invocation_id.startswith("urn:uuid:")
    given = detect_builder({"GITHUB_ACTIONS": "true"}, builder_id="b", invocation_id="i")
    assert (given.builder_id, given.invocation_id) == ("b", "i")


def test_hub_cache_snapshot_is_read_offline(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "datasets--acme--reviews"
    blobs, snap = repo / "blobs", repo / "snapshots" / ("c0ffee" * 6 + "abcd")
    blobs.mkdir(parents=True)
    (snap / "data").mkdir(parents=True)
    contents = {"README.md": b"# reviews\n", "data/train.parquet": b"PAR1 rows"}
    for name, data in contents.items():
        blob = blobs / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, (snap / name).parent), snap / name)
    described = describe_path(snap)
    copy = tmp_path / "copy"
    (copy / "data").mkdir(parents=True)
    for name, data in contents.items():
        (copy / name).write_bytes(data)
    assert described.descriptor.digest == {
        "sha256": digest_tree(copy).digest,
        "gitCommit": snap.name,
    }
    assert described.descriptor.name == "acme/reviews"
    assert described.descriptor.uri == f"hf://datasets/acme/reviews@{snap.name}"
    assert described.descriptor.annotations == {
        "digestOf": "tree",
        "fileCount": 2,
        "byteSize": sum(len(d) for d in contents.values()),
        "huggingFace": {"repoType": "dataset", "repoId": "acme/reviews", "revision": snap.name},
    }


def test_hub_snapshot_symlink_out_of_the_repo_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    snap = tmp_path / "models--a--b" / "snapshots" / "rev"
    snap.mkdir(parents=True)
    (tmp_path / "models--a--b" / "blobs").mkdir()
    os.symlink(secret, snap / "leak.txt")
    with pytest.raises(InputError, match="outside the tree"):
        describe_path(snap)


def test_config_formats_keep_types(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text(
        'lr = 0.5\nepochs = 3\nwhen = 2024-01-02\n[opt]\nname = "adam"\n'
    )
    (tmp_path / "c.json").write_text('{"epochs": 3, "big": 12345678901234567890, "f": 1.0}')
    toml = load_config(tmp_path / "c.toml")
    assert toml.values == {"lr": 0.5, "epochs": 3, "when": "2024-01-02", "opt": {"name": "adam"}}
    assert toml.descriptor.mediaType == "application/toml"
    js = load_config(tmp_path / "c.json").values
    assert js == {"epochs": 3, "big": 12345678901234567890, "f": 1.0}
    assert type(js["f"]) is float and type(js["epochs"]) is int


def test_overrides_parse_types() -> None:
    assert parse_overrides(["a=1", "b=0.5", "c=true", "d=adam", "e=[1,2]", "f=", "a=2"]) == {
        "a": 2,
        "b": 0.5,
        "c": True,
        "d": "adam",
        "e": [1, 2],
        "f": "",
    }
    assert parse_overrides(["x=NaN"]) == {"x": "NaN"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:tok@github.com/a/b.git", "https://github.com/a/b.git"),
        ("https://tok@github.com/a/b.git", "https://github.com/a/b.git"),
        ("ssh://git@github.com/a/b.git", "ssh://git@github.com/a/b.git"),
        ("ssh://git:pw@github.com/a/b.git", "ssh://github.com/a/b.git"),
        ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ],
)
def test_remote_credentials_are_removed(url: str, expected: str) -> None:
    assert strip_credentials(url) == expected


def test_git_absent_is_recorded_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert collect_git(tmp_path).absent == "not inside a git working tree"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert collect_git(tmp_path).absent == "git executable not found"
    assert collect_git(tmp_path / "nope", git="/bin/true").absent.endswith("is not a directory")  # type: ignore[union-attr]
