"""The `mlprov` command: the group, error handling and exit codes.

Exit codes: 0 ok; 1 verification or policy failure; 2 bad usage or bad input.

Start-up is paid by every call (a CI job runs dozens), so this module imports click and
nothing heavy: each subcommand's module is imported only when that command runs (or
its own `--help` is asked for), and `mlprov --help` lists every command from the table
below without importing any of them.
"""

from __future__ import annotations

import gc
import importlib
import sys
from typing import Any, NamedTuple

import click

from mlprov import __version__
from mlprov.display import one_line
from mlprov.errors import MlprovError


class LazyCommand(NamedTuple):
    """Where a subcommand lives ("module:attribute") and its one-line help for `mlprov --help`."""

    target: str
    short_help: str


#: Every `mlprov` subcommand, imported on first use. To add a command, add one entry here
#: (nothing else in this file), in alphabetical order:
#:     "bom": LazyCommand("mlprov.cli.bom:bom", "<first sentence of its docstring>"),
#: tests/test_startup.py checks that each entry names a click command of that name whose
#: short help is this text, and that its module's top imports nothing heavy.
COMMANDS: dict[str, LazyCommand] = {
    "attest": LazyCommand(
        "mlprov.cli.attest:attest",
        "Write an in-toto Statement (SLSA Provenance v1 or test-result) for a finished ML step.",
    ),
    "bom": LazyCommand(
        "mlprov.cli.bom:bom",
        "Write the AI-BOM of MODEL (a model PATH or its DIGEST) from the attestation store.",
    ),
    "digest": LazyCommand(
        "mlprov.cli.digest:digest",
        "Print the digest of each file or directory tree PATH, and optionally its manifest.",
    ),
    "keygen": LazyCommand(
        "mlprov.cli.keygen:keygen", "Generate a key pair for `mlprov sign` and print its keyid."
    ),
    "lineage": LazyCommand(
        "mlprov.cli.lineage:lineage",
        "Show the lineage of an artifact (a model or dataset PATH, or its DIGEST).",
    ),
    "model": LazyCommand(
        "mlprov.cli.model:model",
        "Sign and verify models as OpenSSF Model Signing (model_signing) does.",
    ),
    "policy": LazyCommand(
        "mlprov.cli.policy:policy", "Evaluate attestations against in-toto attestation layouts."
    ),
    "report": LazyCommand(
        "mlprov.cli.report:report",
        "Write an HTML audit report of MODEL (a model PATH or its DIGEST) from the store.",
    ),
    "run": LazyCommand(
        "mlprov.cli.run:run",
        "Run COMMAND (after `--`), recording materials, products, exit code, timing, environment.",
    ),
    "schema": LazyCommand(
        "mlprov.cli.schema:schema",
        "Print the JSON Schema NAME (or list the names); --validate checks a document with it.",
    ),
    "sign": LazyCommand(
        "mlprov.cli.sign:sign",
        "Sign the in-toto Statement in STATEMENT (exact bytes) with every --key, or --sigstore.",
    ),
    "store": LazyCommand(
        "mlprov.cli.store:store",
        "Keep signed attestations, indexed by every subject and material digest.",
    ),
    "verify": LazyCommand(
        "mlprov.cli.verify:verify",
        "Verify every signed attestation in FILE (DSSE, .intoto.jsonl or Sigstore bundle).",
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported by name when first used.

    Commands added eagerly (`add_command`) still work and take precedence.
    """

    #: Set by the console script, a new process that runs one command: a command's
    #: imports (tens of thousands of objects that live as long as the process) are made
    #: without cyclic garbage collection, then frozen out of every later collection —
    #: including the full one at exit, which otherwise costs a digest about 10 ms.
    freeze_imports = False

    def __init__(
        self, *args: Any, lazy_commands: dict[str, LazyCommand] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            self.commands[cmd_name] = self._load(cmd_name)
        return self.commands.get(cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            no_such = getattr(click.exceptions, "NoSuchCommand", None)  # click >= 8.4
            if no_such is None or not isinstance(exc, no_such) or exc.possibilities:
                raise
            # click suggests ("Did you mean ...?") from the commands imported so far.
            possible = self.list_commands(ctx)
            raise no_such(exc.command_name, possibilities=possible, ctx=ctx) from None

    def _load(self, name: str) -> click.Command:
        module_name, _, attribute = self.lazy_commands[name].target.partition(":")
        if self.freeze_imports and gc.isenabled():
            gc.disable()
            try:
                module = importlib.import_module(module_name)
            finally:
                gc.freeze()  # also keeps forked digest workers' pages shared
                gc.enable()
        else:
            module = importlib.import_module(module_name)
        command = getattr(module, attribute)
        if not isinstance(command, click.Command):  # a wrong table line: a bug, not bad input
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list as click prints it, with the table's help for commands not
        yet imported (so `--help` does not import every command module)."""
        commands: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            command = self.commands.get(name)
            if command is None:  # shortened by click's own rules, as for a loaded command
                command = click.Command(name, help=self.lazy_commands[name].short_help)
            if not command.hidden:
                commands.append((name, command))
        if commands:
            limit = formatter.width - 6 - max(len(name) for name, _ in commands)
            with formatter.section("Commands"):
                formatter.write_dl([(n, c.get_short_help_str(limit)) for n, c in commands])


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="mlprov")
def cli() -> None:
    """Record, sign, store and enforce the provenance of ML models.

    \b
    Example:
      mlprov digest ./model --files
    """


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, turning mlprov errors into one line and an exit code."""
    try:
        result = cli.main(args=argv, prog_name="mlprov", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        # One line, like every other bad input: the message and where to read more.
        command = exc.ctx.command_path if exc.ctx is not None else "mlprov"
        message = one_line(exc.format_message())
        click.echo(f"mlprov: error: {message} (see {command} --help)", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"mlprov: error: {one_line(exc.format_message())}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("mlprov: aborted", err=True)
        return 130
    except MlprovError as exc:
        click.echo(f"mlprov: error: {one_line(str(exc))}", err=True)
        return exc.exit_code
    except RecursionError:
        # A backstop: parsers refuse absurdly nested input themselves, with the file named.
        click.echo("mlprov: error: input nested too deeply to process", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("mlprov: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return 0
    return result if isinstance(result, int) else 0


def run() -> None:
    """Console-script wrapper."""
    cli.freeze_imports = True
    sys.exit(main())
