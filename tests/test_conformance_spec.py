"""Spec details: source URIs as URIs (SPDX download-location style), SLSA-style extension
names (older names still read), and peer data reached only through `shared_testdata`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from securesystemslib.signer import CryptoSigner

from conftest import run_cli
from mlprov.collect.git import collect_git, remote_uri
from mlprov.policy import collect_claims, evaluate, load_layout
from mlprov.predicates import step_of, with_extension_aliases
from mlprov.predicates.test_result import TestResult
from mlprov.signing.dsse import sign_envelope
from mlprov.signing.keys import public_pem
from mlprov.statement import Statement

# -- source URIs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("remote", "expected"),
    [
        ("https://user:token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://token@github.com/org/repo.git", "https://github.com/org/repo.git"),
        ("https://github.com/org/repo.git?private_token=x", "https://github.com/org/repo.git"),
        ("http://gitlab.example/org/repo", "http://gitlab.example/org/repo"),
        ("ssh://git@github.com/org/repo.git", "ssh://git@github.com/org/repo.git"),
        ("ssh://git:pw@github.com:2222/org/repo.git", "ssh://github.com:2222/org/repo.git"),
        ("git@github.com:org/repo.git", "ssh://git@github.com/org/repo.git"),
        ("github.com:org/repo.git", "ssh://github.com/org/repo.git"),
        ("git@[fe80::1]:org/repo", "ssh://git@[fe80::1]/org/repo"),
        ("host:~alice/repo.git", "ssh://host/~alice/repo.git"),
        ("git://example.org/repo.git", "git://example.org/repo.git"),
        ("/src/project", "file:///src/project"),
        ("/src/with space", "file:///src/with%20space"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
        ("../sibling", "file:///work/sibling"),
    ],
)
def test_remote_uri(remote: str, expected: str) -> None:
    assert remote_uri(remote, base=Path("/work/repo")) == expected


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_source_uris_recorded_from_real_clones(tmp_path: Path) -> None:
    origin = tmp_path / "project"
    origin.mkdir()
    _git(origin, "init", "-q", "-b", "main")
    (origin / "train.py").write_text("print(1)\n")
    _git(origin, "add", ".")
    _git(origin, "commit", "-q", "-m", "init")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(origin), str(clone))
    cases = {
        None: f"git+{origin.as_uri()}@refs/heads/main",  # the local clone's own origin
        "git@github.com:org/repo.git": "git+ssh://git@github.com/org/repo.git@refs/heads/main",
        "https://me:ghp_secret@github.com/org/repo.git": (
            "git+https://github.com/org/repo.git@refs/heads/main"
        ),
    }
    for url, expected in cases.items():
        if url:
            _git(clone, "remote", "set-url", "origin", url)
        source = collect_git(clone)
        descriptor = source.descriptor()
        assert descriptor is not None and descriptor.uri == expected
        assert "secret" not in json.dumps(descriptor.to_dict())
        assert "secret" not in (source.remote or "")
        parts = urlsplit(descriptor.uri.removeprefix("git+").rsplit("@refs/", 1)[0])
        assert parts.scheme in ("file", "ssh", "https") and parts.path.startswith("/")


# -- extension fields ----------------------------------------------------------------


def _old_evaluation() -> dict[str, Any]:
    """A test-result predicate as mlprov wrote it before the extensions were namespaced."""
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "model", "digest": {"sha256": "22" * 32}}],
        "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
        "predicate": {
            "result": "PASSED",
            "step": "eval",
            "metrics": {"accuracy": 0.93},
            "thresholds": [
                {"name": "accuracy>=0.9", "metric": "accuracy", "operator": ">=",
                 "value": 0.9, "actual": 0.93, "passed": True}
            ],
            "passedTests": ["accuracy>=0.9"],
            "failedTests": [],
        },
    }  # fmt: skip


_EXTENSION = re.compile(r"^mlprov_[A-Za-z]+$")


def test_new_evaluations_use_namespaced_extension_names(tmp_path: Path) -> None:
    model = tmp_path / "model.bin"
    model.write_bytes(b"w")
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"accuracy": 0.93}')
    out = tmp_path / "eval.json"
    result = run_cli(
        "attest", "eval", "--model", model, "--metrics", metrics,
        "--threshold", "accuracy>=0.9", "--out", out,
    )  # fmt: skip
    assert result.code == 0, result
    predicate = json.loads(out.read_bytes())["predicate"]
    standard = {"result", "configuration", "url", "passedTests", "warnedTests", "failedTests"}
    extensions = set(predicate) - standard
    assert extensions == {"mlprov_step", "mlprov_metrics", "mlprov_thresholds"}
    assert all(_EXTENSION.match(name) for name in extensions)


def test_run_outcome_is_namespaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run.json"
    script = "open('made.txt', 'w').write('x')"
    result = run_cli(
        "run", "--step", "s", "--products", "made.txt", "--no-packages", "--out", out,
        "--", sys.executable, "-c", script,
    )  # fmt: skip
    assert result.code == 0, result
    metadata = json.loads(out.read_bytes())["predicate"]["runDetails"]["metadata"]
    assert metadata["mlprov_outcome"] == {"outcome": "succeeded", "exitCode": 0}
    assert "mlprov" not in metadata


def test_older_extension_names_are_still_read() -> None:
    old = _old_evaluation()
    statement = Statement.from_dict(old)
    assert step_of(statement) == "eval"
    parsed = TestResult.model_validate(old["predicate"])
    assert parsed.metrics == {"accuracy": 0.93} and parsed.step == "eval"
    assert parsed.thresholds is not None and parsed.thresholds[0].passed
    assert set(parsed.to_dict()) >= {"mlprov_step", "mlprov_metrics", "mlprov_thresholds"}
    aliased = with_extension_aliases(old)["predicate"]
    assert aliased["mlprov_metrics"] == aliased["metrics"] == {"accuracy": 0.93}
    assert "mlprov_metrics" not in old["predicate"], "the signed dict is left alone"


@pytest.mark.parametrize("rule_field", ["mlprov_metrics", "metrics"])
@pytest.mark.parametrize("written", ["old", "new"])
def test_attribute_rules_read_either_name_on_either_age(
    tmp_path: Path, rule_field: str, written: str
) -> None:
    signer = CryptoSigner.generate_ed25519()
    doc = _old_evaluation()
    if written == "new":
        p = doc["predicate"]
        for name in ("step", "metrics", "thresholds"):
            p[f"mlprov_{name}"] = p.pop(name)
    att = tmp_path / "att"
    att.mkdir()
    (att / "eval.json").write_bytes(sign_envelope(json.dumps(doc).encode(), [signer]).to_json())
    layout = tmp_path / "layout.yml"
    layout.write_text(
        yaml.safe_dump(
            {
                "expires": "2099-01-01T00:00:00Z",
                "functionaries": {"ev": {"publicKey": public_pem(signer.public_key).decode()}},
                "steps": [
                    {
                        "name": "eval",
                        "expectedMaterials": ["ALLOW *"],
                        "expectedPredicates": [
                            {
                                "predicateType": "https://in-toto.io/attestation/test-result/v0.1",
                                "functionaries": ["ev"],
                                "expectedAttributes": [
                                    {"rule": f"predicate.{rule_field}.accuracy >= 0.9"}
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = evaluate(load_layout(layout), collect_claims([att]))
    assert result.passed, [f"{s}: {r.rule}: {r.reason}" for s, r in result.failures]


# -- peer data -----------------------------------------------------------------------


def test_peer_data_is_reached_only_through_shared_testdata() -> None:
    # An absolute or hand-built path to the peers' data silently skips on another machine.
    direct = re.compile(r"""["']/work/shared|["']shared["']\s*/\s*["']testdata""")
    offenders = [
        f"{path.name}:{number}"
        for path in sorted(Path(__file__).parent.glob("*.py"))
        if path.name not in ("conftest.py", Path(__file__).name)
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if direct.search(line)
    ]
    assert offenders == []
