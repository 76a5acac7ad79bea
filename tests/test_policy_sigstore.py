"""Sigstore identities as functionaries: a real staging bundle, verified offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import run_cli, shared_testdata

IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"


def _layout(path: Path, sigstore: dict[str, str]) -> Path:
    doc = {
        "expires": "2100-01-01T00:00:00Z",
        "functionaries": {"ci": {"sigstore": sigstore}},
        "steps": [
            {
                "name": "build",
                "expectedProducts": ["CREATE a.txt", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "functionaries": ["ci"],
                        "expectedAttributes": [
                            {
                                "rule": "predicate.runDetails.builder.id.startsWith('https://github.com/sigstore-conformance/')"
                            }
                        ],
                    }
                ],
            }
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    bundle = shared_testdata("sigstore", "a.dsse.staging-rekor-v2.txt.sigstore.json")
    root = shared_testdata("sigstore", "staging_trusted_root.json")
    att = tmp_path / "att"
    att.mkdir()
    shutil.copy(bundle, att / "build.sigstore.json")  # the step is named by the file
    return att, root


def test_sigstore_functionary_passes_with_the_right_identity(tmp_path: Path) -> None:
    att, root = _setup(tmp_path)
    layout = _layout(tmp_path / "layout.json", {"issuer": ISSUER, "subject": IDENTITY})
    result = run_cli("policy", "check", layout, "--attestations", att, "--trusted-root", root)
    assert result.code == 0, result
    regex = _layout(
        tmp_path / "regex.json",
        {"issuer": ISSUER, "subjectRegex": "https://github.com/sigstore-conformance/.*"},
    )
    result = run_cli("policy", "check", regex, "--attestations", att, "--trusted-root", root)
    assert result.code == 0, result


def test_sigstore_functionary_fails_with_wrong_identity_issuer_or_root(tmp_path: Path) -> None:
    att, root = _setup(tmp_path)
    for name, identity in {
        "subject": {"issuer": ISSUER, "subject": IDENTITY + "x"},
        "issuer": {"issuer": "https://accounts.google.com", "subject": IDENTITY},
    }.items():
        layout = _layout(tmp_path / f"{name}.json", identity)
        result = run_cli("policy", "check", layout, "--attestations", att, "--trusted-root", root)
        assert result.code == 1, (name, result)
        assert "threshold" in result.out
    production = shared_testdata("sigstore", "production_trusted_root.json")
    layout = _layout(tmp_path / "layout.json", {"issuer": ISSUER, "subject": IDENTITY})
    result = run_cli("policy", "check", layout, "--attestations", att, "--trusted-root", production)
    assert result.code == 1
