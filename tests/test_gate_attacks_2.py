"""More attacks on the gate's trust decisions, through the CLI (see docs/security.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import run_cli, shared_testdata

IDENTITY = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/"
    ".github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)
ISSUER = "https://token.actions.githubusercontent.com"


def _sigstore_layout(path: Path, functionaries: dict[str, Any], threshold: int) -> Path:
    doc = {
        "expires": "2100-01-01T00:00:00Z",
        "functionaries": {name: {"sigstore": spec} for name, spec in functionaries.items()},
        "steps": [
            {
                "name": "build",
                "expectedProducts": ["CREATE a.txt", "DISALLOW *"],
                "expectedPredicates": [
                    {
                        "predicateType": "https://slsa.dev/provenance/v1",
                        "functionaries": sorted(functionaries),
                        "threshold": threshold,
                    }
                ],
            }
        ],
    }
    path.write_text(json.dumps(doc))
    return path


def test_one_sigstore_signer_named_by_two_identities_is_one_functionary(tmp_path: Path) -> None:
    """Two functionaries whose identities both match one certificate (an exact subject and
    a regex) need two signers: one bundle must not meet a threshold of two."""
    bundle = shared_testdata("sigstore", "a.dsse.staging-rekor-v2.txt.sigstore.json")
    root = shared_testdata("sigstore", "staging_trusted_root.json")
    att = tmp_path / "att"
    att.mkdir()
    shutil.copy(bundle, att / "build.sigstore.json")
    functionaries = {
        "ci": {"issuer": ISSUER, "subject": IDENTITY},
        "org": {"issuer": ISSUER, "subjectRegex": "https://github.com/sigstore-conformance/.*"},
    }
    one = _sigstore_layout(tmp_path / "one.json", functionaries, 1)
    result = run_cli("policy", "check", one, "--attestations", att, "--trusted-root", root)
    assert result.code == 0, result
    two = _sigstore_layout(tmp_path / "two.json", functionaries, 2)
    result = run_cli("policy", "check", two, "--attestations", att, "--trusted-root", root)
    assert result.code == 1, result
    assert "only 1 distinct signer" in result.out, result


def test_distinct_signers_gives_each_functionary_a_signer_of_its_own() -> None:
    from mlprov.policy.functionaries import distinct_signers

    assert distinct_signers({"exact": {"s1"}, "regex": {"s1"}}) == 1
    # The regex functionary can be given s2, so both count.
    assert distinct_signers({"exact": {"s1"}, "regex": {"s1", "s2"}}) == 2
    # One regex functionary matching two identities is still one functionary.
    assert distinct_signers({"regex": {"s1", "s2"}}) == 1
    assert distinct_signers({}) == 0


def _keygen(root: Path, name: str) -> str:
    result = run_cli("keygen", "--out", root / name, "--no-password", "--json")
    assert result.code == 0, result
    return str(json.loads(result.out)["keyid"])


def _signed(root: Path, key: Path, name: str, *, keyid: str | None = None) -> Path:
    """A Statement signed with `key`; with `keyid`, its signature's (unsigned) keyid hint
    names another key, as an attacker may write it."""
    statement = root / f"{name}.json"
    statement.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": name, "digest": {"sha256": "ab" * 32}}],
                "predicateType": "https://example.com/p/v1",
                "predicate": {},
            }
        )
    )
    out = root / f"{name}.intoto.json"
    result = run_cli("sign", statement, "--key", key, "--out", out)
    assert result.code == 0, result
    if keyid is not None:
        doc = json.loads(out.read_bytes())
        doc["signatures"][0]["keyid"] = keyid
        out.write_text(json.dumps(doc))
    return out


def test_store_ls_verified_signer_names_only_who_verified(tmp_path: Path) -> None:
    """Team B's attestation, verified with team B's key on `store add`, whose signature's
    keyid hint claims team A's key: `store ls --verified --signer keyid:<A>` must not list
    it as verified and signed by A."""
    victim = _keygen(tmp_path, "team-a")
    _keygen(tmp_path, "team-b")
    store = tmp_path / "store.db"
    forged = _signed(tmp_path, tmp_path / "team-b.key", "b-model", keyid=victim)
    result = run_cli("store", "add", forged, "--key", tmp_path / "team-b.pub", "--store", store)
    assert result.code == 0, result
    honest = _signed(tmp_path, tmp_path / "team-a.key", "a-model")
    result = run_cli("store", "add", honest, "--key", tmp_path / "team-a.pub", "--store", store)
    assert result.code == 0, result
    result = run_cli(
        "store", "ls", "--verified", "--signer", f"keyid:{victim}", "--store", store, "--json"
    )
    assert result.code == 0, result
    listed = json.loads(result.out)
    assert [item["subjects"][0]["name"] for item in listed] == ["a-model"], listed
    # Without --verified, --signer still finds what an attestation claims.
    result = run_cli("store", "ls", "--signer", f"keyid:{victim}", "--store", store, "--json")
    assert {item["subjects"][0]["name"] for item in json.loads(result.out)} == {
        "a-model",
        "b-model",
    }
