"""Classic in-toto v1 layouts with link files: verified through the in-toto library.

The layout and links are made here by in-toto's own API (Layout, Metablock, in_toto_run),
so mlprov is checked against in-toto's formats, not against itself.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner

from conftest import run_cli
from mlprov.signing.keys import public_pem

WRITE = [sys.executable, "-c", "open('model.bin', 'w').write('weights')"]


@pytest.fixture
def chdir(tmp_path: Path) -> Iterator[Path]:
    old = Path.cwd()
    os.chdir(tmp_path)
    yield tmp_path
    os.chdir(old)


def _supply_chain(
    root: Path, *, months: int = 1, product_rules: list[list[str]] | None = None
) -> tuple[Path, Path, Path]:
    """(layout, owner public key, link dir) of a one-step classic supply chain."""
    from in_toto.models.layout import Layout, Step
    from in_toto.models.metadata import Metablock
    from in_toto.runlib import in_toto_run

    owner, worker = CryptoSigner.generate_ed25519(), CryptoSigner.generate_ed25519()
    layout = Layout()
    layout.set_relative_expiration(months=months)
    key = worker.public_key.to_dict()
    key["keyid"] = worker.public_key.keyid
    layout.add_functionary_key(key)
    step = Step(name="train")
    step.pubkeys = [worker.public_key.keyid]
    step.expected_products = product_rules or [["CREATE", "model.bin"], ["DISALLOW", "*"]]
    step.expected_command = WRITE
    layout.steps = [step]
    metablock = Metablock(signed=layout)
    metablock.create_signature(owner)
    links = root / "links"
    links.mkdir()
    in_toto_run("train", [], ["model.bin"], WRITE, signer=worker, metadata_directory=str(links))
    metablock.dump(str(root / "root.layout"))
    (root / "owner.pub").write_bytes(public_pem(owner.public_key))
    return root / "root.layout", root / "owner.pub", links


def test_classic_layout_passes(chdir: Path) -> None:
    layout, owner, links = _supply_chain(chdir)
    result = run_cli("policy", "check", layout, "--attestations", links, "--layout-key", owner)
    assert result.code == 0, result
    assert "PASSED" in result.out and "classic in-toto layout" in result.out
    lint = run_cli("policy", "lint", layout, "--json")
    assert lint.code == 0 and json.loads(lint.out)["steps"] == ["train"]


def test_classic_layout_fails_on_tampered_link(chdir: Path) -> None:
    layout, owner, links = _supply_chain(chdir)
    link = next(links.iterdir())
    link.write_text(link.read_text().replace("model.bin", "model.bim"))
    result = run_cli("policy", "check", layout, "--attestations", links, "--layout-key", owner)
    assert result.code == 1
    assert "FAILED" in result.err and "Traceback" not in result.err


def test_classic_layout_fails_on_missing_link_or_wrong_owner(chdir: Path) -> None:
    layout, owner, links = _supply_chain(chdir)
    other = CryptoSigner.generate_ed25519()
    (chdir / "other.pub").write_bytes(public_pem(other.public_key))
    wrong = run_cli(
        "policy", "check", layout, "--attestations", links, "--layout-key", chdir / "other.pub"
    )
    assert wrong.code == 1 and "FAILED" in wrong.err
    for link in links.iterdir():
        link.unlink()
    missing = run_cli("policy", "check", layout, "--attestations", links, "--layout-key", owner)
    assert missing.code == 1 and "FAILED" in missing.err


def test_classic_layout_fails_on_a_rule_and_when_expired(chdir: Path) -> None:
    strict = chdir / "strict"
    strict.mkdir()
    layout, owner, links = _supply_chain(strict, product_rules=[["DISALLOW", "*"]])
    result = run_cli("policy", "check", layout, "--attestations", links, "--layout-key", owner)
    assert result.code == 1 and "DISALLOW" in result.err
    old = chdir / "old"
    old.mkdir()
    layout, owner, links = _supply_chain(old, months=-1)
    result = run_cli("policy", "check", layout, "--attestations", links, "--layout-key", owner)
    assert result.code == 1 and "expired" in result.err.lower()


def test_classic_layout_bad_usage_is_exit_2(chdir: Path) -> None:
    layout, owner, links = _supply_chain(chdir)
    no_key = run_cli("policy", "check", layout, "--attestations", links)
    assert no_key.code == 2 and "--layout-key" in no_key.err
    with_subject = run_cli(
        "policy", "check", layout, "--attestations", links, "--layout-key", owner,
        "--subject", layout,
    )  # fmt: skip
    assert with_subject.code == 2
