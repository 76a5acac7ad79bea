"""The `mlprov` command: the group, error handling and exit codes.

Exit codes: 0 ok; 1 verification or policy failure; 2 bad usage or bad input.
"""

from __future__ import annotations

import sys

import click

from mlprov import __version__
from mlprov.cli import attest as attest_cmd
from mlprov.cli import bom as bom_cmd
from mlprov.cli import digest as digest_cmd
from mlprov.cli import keygen as keygen_cmd
from mlprov.cli import lineage as lineage_cmd
from mlprov.cli import model as model_cmd
from mlprov.cli import policy as policy_cmd
from mlprov.cli import report as report_cmd
from mlprov.cli import run as run_cmd
from mlprov.cli import schema as schema_cmd
from mlprov.cli import sign as sign_cmd
from mlprov.cli import store as store_cmd
from mlprov.cli import verify as verify_cmd
from mlprov.display import one_line
from mlprov.errors import MlprovError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="mlprov")
def cli() -> None:
    """Record, sign, store and enforce the provenance of ML models.

    \b
    Example:
      mlprov digest ./model --files
    """


cli.add_command(digest_cmd.digest)
cli.add_command(store_cmd.store)
cli.add_command(lineage_cmd.lineage)
cli.add_command(keygen_cmd.keygen)
cli.add_command(sign_cmd.sign)
cli.add_command(verify_cmd.verify)
cli.add_command(model_cmd.model)
cli.add_command(attest_cmd.attest)
cli.add_command(run_cmd.run)
cli.add_command(schema_cmd.schema)
cli.add_command(policy_cmd.policy)
cli.add_command(bom_cmd.bom)
cli.add_command(report_cmd.report)


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
    sys.exit(main())
