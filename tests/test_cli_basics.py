"""The CLI shell: help with examples everywhere, one-line errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from conftest import run_cli
from mlprov.cli.main import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    # Through list_commands/get_command: mlprov's group imports its commands lazily.
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        path = (*prefix, name)
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
        else:
            found.append(path)
    return found


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = run_cli(*path, "--help")
    assert result.code == 0
    assert "Example" in result.out, f"mlprov {' '.join(path)} --help shows no example"


def test_unknown_command_is_usage_error() -> None:
    result = run_cli("no-such-command")
    assert result.code == 2
    assert "Traceback" not in result.err


def test_version() -> None:
    result = run_cli("--version")
    assert result.code == 0
    assert "mlprov" in result.out


@pytest.mark.parametrize("path", _commands(cli), ids=" ".join)
def test_every_command_offers_json(path: tuple[str, ...]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, name
        command = found
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert "--json" in options, f"mlprov {' '.join(path)} has no --json"


@pytest.mark.parametrize(
    "args",
    [["no-such-command"], ["digest", "--bogus"], ["keygen", "--type", "dsa", "--out", "k"]],
)
def test_usage_errors_are_one_line(args: list[str]) -> None:
    result = run_cli(*args)
    assert result.code == 2
    assert result.err.count("\n") == 1 and result.err.startswith("mlprov: error: ")


@pytest.mark.parametrize(
    "command",
    [
        ["policy", "check", "{f}", "--attestations", "{d}"],
        ["policy", "lint", "{f}"],
        ["schema", "statement", "--validate", "{f}"],
        ["digest", "--check", "{f}"],
        ["store", "add", "{f}"],
        ["verify", "{f}", "--identity", "a@b", "--issuer", "https://x"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
@pytest.mark.parametrize("content", ["[" * 100_000, "\x00\x01garbage", "- a\n" * 3 + ": ["])
def test_hostile_documents_are_one_line_exit_2(
    tmp_path: Path, command: list[str], content: str
) -> None:
    hostile = tmp_path / "hostile.json"
    hostile.write_text(content)
    args = [a.format(f=hostile, d=tmp_path) for a in command]
    result = run_cli(*args)
    assert result.code == 2, result
    assert "Traceback" not in result.err and result.err.count("\n") == 1
