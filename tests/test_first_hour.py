"""A new user's first hour (#14): unsigned Statements are not named as envelopes,
`attest`/`run` sign with --key, `digest FILE` prints what lineage finds, peers' option
names work, a passphrase is asked for on a terminal."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from conftest import run_cli


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"w" * 100)
    (tmp_path / "raw.csv").write_text("a,b\n1,2\n")
    assert run_cli("keygen", "--out", "release", "--no-password").code == 0
    return tmp_path


@pytest.mark.parametrize("name", ["train.intoto.json", "train.intoto.jsonl"])
def test_attest_refuses_an_unsigned_statement_under_an_envelopes_name(
    work: Path, name: str
) -> None:
    result = run_cli("attest", "train", "--model", "model", "--no-git", "--out", name)
    assert result.code == 2
    assert result.err.count("\n") == 1 and "name it train.statement.json" in result.err
    assert "--key" in result.err and not (work / name).exists()


def test_attest_signs_with_key_and_the_envelope_verifies(work: Path) -> None:
    made = run_cli(
        "attest", "train", "--model", "model", "--no-git", "--no-packages",
        "--key", "release.key", "--out", "train.intoto.json",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert "payloadType" in json.loads((work / "train.intoto.json").read_text())
    checked = run_cli("verify", "train.intoto.json", "--key", "release.pub")
    assert checked.code == 0, checked.out + checked.err
    # --sign is the old spelling and still works
    again = run_cli(
        "attest", "train", "--model", "model", "--no-git", "--no-packages",
        "--sign", "release.key", "--out", "again.intoto.json",
    )  # fmt: skip
    assert again.code == 0, again.err


def test_attest_writes_an_unsigned_statement_as_statement_json(work: Path) -> None:
    made = run_cli(
        "attest", "eval", "--model", "model", "--metrics", _metrics(work),
        "--out", "eval.statement.json",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert json.loads((work / "eval.statement.json").read_text())["_type"]


def _metrics(work: Path) -> Path:
    path = work / "metrics.json"
    path.write_text('{"accuracy": 0.9}')
    return path


def test_run_refuses_an_unsigned_envelope_name_before_running(work: Path) -> None:
    result = run_cli(
        "run", "--step", "prep", "--no-git", "--out", "prep.intoto.json",
        "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert result.code == 2 and "prep.statement.json" in result.err
    assert not (work / "ran").exists()


def test_run_signs_with_key_and_prints_json_on_stdout(work: Path) -> None:
    result = run_cli(
        "run", "--step", "prep", "--materials", "raw.csv", "--products", "model",
        "--no-git", "--no-packages", "--key", "release.key", "--out", "prep.intoto.json",
        "--json",
        "--", sys.executable, "-c", "pass",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert json.loads(result.out)["out"] == "prep.intoto.json"
    assert run_cli("verify", "prep.intoto.json", "--key", "release.pub").code == 0


def test_digest_of_a_file_is_its_sha256_and_lineage_finds_it(work: Path, tmp_path: Path) -> None:
    expected = hashlib.sha256((work / "raw.csv").read_bytes()).hexdigest()
    printed = run_cli("digest", "raw.csv").out
    assert printed == f"sha256:{expected}  raw.csv\n"  # sha256sum's value
    described = json.loads(run_cli("digest", "raw.csv", "--json").out)[0]
    assert described["identity"] == f"sha256:{expected}"
    oms = hashlib.sha256(bytes.fromhex(expected)).hexdigest()  # OMS: over the file's digest
    assert described["omsIdentity"] == f"sha256:{oms}"
    # ... and it is what attestations record: lineage finds the file by it
    made = run_cli(
        "run", "--step", "prep", "--materials", "raw.csv", "--products", "model",
        "--no-git", "--no-packages", "--key", "release.key", "--out", "prep.intoto.json",
        "--", sys.executable, "-c", "pass",
    )  # fmt: skip
    assert made.code == 0, made.err
    store = tmp_path / "store.db"
    assert run_cli("store", "add", "prep.intoto.json", "--key", "release.pub",
                   "--store", store).code == 0  # fmt: skip
    found = run_cli("lineage", printed.split()[0], "--down", "--store", store)
    assert found.code == 0 and "model" in found.out, found.out + found.err


def test_a_tree_prints_its_oms_digest_labelled_in_json(work: Path) -> None:
    described = json.loads(run_cli("digest", "model", "--json").out)[0]
    assert described["identity"] == described["omsIdentity"] == f"sha256:{described['digest']}"


def test_peers_option_names_are_aliases(work: Path) -> None:
    (work / "model" / "cache.tmp").write_text("x")
    signed = run_cli(
        "model", "sign", "model", "--key", "release.key", "--signature", "m.sig",
        "--ignore", "cache.tmp", "--algorithm", "sha256",
    )  # fmt: skip
    assert signed.code == 0, signed.err
    checked = run_cli(
        "model", "verify", "model", "--signature", "m.sig", "--key", "release.pub",
        "--ignore-paths", "cache.tmp",
    )  # fmt: skip
    assert checked.code == 0 and "OMS identity sha256:" in checked.out, checked.err
    old = run_cli("model", "sign", "model", "--key", "release.key", "--out", "o.sig",
                  "--ignore-path", "cache.tmp", "--hash", "sha256")  # fmt: skip
    assert old.code == 0, old.err
    assert run_cli("digest", "model", "--hash", "sha256", "--ignore-path", "cache.tmp").code == 0
    for name in ("--certificate-identity", "--certificate-oidc-issuer", "--use_staging"):
        assert name in run_cli("verify", "--help").out


def test_policy_init_min_score_writes_min_score(work: Path) -> None:
    assert run_cli("policy", "init", "--out", "a.yaml", "--min-score", "0.75").code == 0
    assert "min_score: 0.75" in (work / "a.yaml").read_text()
    assert run_cli("policy", "init", "--out", "b.yaml", "--min-accuracy", "0.6").code == 0
    assert "min_score: 0.6" in (work / "b.yaml").read_text()


def test_a_kms_key_without_its_package_names_the_extra(work: Path) -> None:
    pytest.importorskip("securesystemslib")
    try:
        import google.cloud.kms  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("google-cloud-kms is installed")
    uri = "gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
    result = run_cli("sign", "x.statement.json", "--key", uri, "--out", "x.intoto.json")
    assert result.code == 2
    assert "mlprov[gcp]" in result.err or "x.statement.json" in result.err


@pytest.mark.filterwarnings("ignore::getpass.GetPassWarning")
def test_an_encrypted_key_is_asked_for_on_a_terminal(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASS", "s3cret")
    assert run_cli("keygen", "--out", "enc", "--password-env", "PASS").code == 0
    made = run_cli(
        "attest", "eval", "--model", "model", "--metrics", _metrics(work),
        "--out", "eval.statement.json",
    )  # fmt: skip
    assert made.code == 0
    # not a terminal: refused with the way to give it, never a hanging prompt
    refused = run_cli("sign", "eval.statement.json", "--key", "enc.key", "--out", "e.intoto.json")
    assert refused.code == 2 and "--password-env" in refused.err
    import io

    import mlprov.cli._common as common

    monkeypatch.setattr(common, "stdin_is_terminal", lambda: True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("wrong\n"))
    wrong = run_cli("sign", "eval.statement.json", "--key", "enc.key", "--out", "e.intoto.json")
    assert wrong.code == 2 and "wrong passphrase" in wrong.err
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\n"))
    signed = run_cli("sign", "eval.statement.json", "--key", "enc.key", "--out", "e.intoto.json")
    assert signed.code == 0, signed.err
    assert "s3cret" not in signed.out + signed.err
    assert run_cli("verify", "e.intoto.json", "--key", "enc.pub").code == 0


def test_attest_shows_progress_while_it_hashes_the_model_and_datasets(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib
    from collections.abc import Callable, Iterator

    import mlprov.cli.attest as attest_cli
    from mlprov.collect.artifacts import DIGEST_PROGRESS

    seen: dict[str, list[int]] = {}

    @contextlib.contextmanager
    def recording(
        description: str,
    ) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
        seen[description] = []
        yield (lambda total: None), seen[description].append

    monkeypatch.setattr(attest_cli, "byte_progress", recording)
    made = run_cli(
        "attest", "train", "--model", "model", "--dataset", "raw=raw.csv", "--no-git",
        "--no-packages", "--no-manifests", "--out", "t.statement.json",
    )  # fmt: skip
    assert made.code == 0, made.err
    assert sum(seen["hashing model"]) == 100 and sum(seen["hashing raw.csv"]) == 8
    assert DIGEST_PROGRESS.get() is None  # reset when the command ends


def _leaf_commands() -> list[tuple[str, set[str]]]:
    """Every command of the CLI (lazy ones resolved) with the option names it accepts."""
    import click

    from mlprov.cli.main import cli

    found: list[tuple[str, set[str]]] = []

    def walk(group: click.Group, ctx: click.Context, path: list[str]) -> None:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            if isinstance(command, click.Group):
                walk(command, click.Context(command, parent=ctx), [*path, name])
            else:
                opts = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
                found.append((" ".join([*path, name]), opts))

    walk(cli, click.Context(cli), [])
    return found


def test_every_command_spells_one_concept_one_way_with_the_peers_aliases() -> None:
    """A concept has the same name everywhere, and where it is a peer's concept, the
    peer's spelling works too (cosign's certificate flags, model_signing's staging)."""
    aliases = {
        "--staging": {"--use-staging", "--use_staging"},
        "--identity": {"--certificate-identity"},
        "--issuer": {"--certificate-oidc-issuer"},
        "--identity-regexp": {"--certificate-identity-regexp"},
        "--ignore": {"--ignore-path"},
        "--algorithm": {"--hash"},
        "--follow-symlinks": {"--allow-symlinks", "--allow_symlinks"},
    }
    commands = _leaf_commands()
    assert len(commands) > 20
    for name, opts in commands:
        for main, peers in aliases.items():
            if main in opts:
                assert peers <= opts, f"mlprov {name}: {main} without {sorted(peers - opts)}"
            assert not (peers & opts) or main in opts, f"mlprov {name}: {peers & opts} not {main}"
