"""`mlprov run`: run a command and record it (materials before, products after) as provenance.

A failing command still leaves its record (marked failed), and mlprov exits with the
command's own exit code, so `mlprov run` can stand in for the command in a pipeline.
Once the command has run, its record is always written: a product that is missing or
cannot be digested (a symlink, a FIFO, an unreadable file, one changed while hashed)
makes the record failed and says why, instead of leaving none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import click

from mlprov.api import TrainingRun
from mlprov.cli._common import (
    LOCATION,
    check_statement_name,
    follow_symlinks_option,
    force_option,
    sign_options,
    signers_from,
    storage_option,
)
from mlprov.collect.builder import utc_now
from mlprov.collect.config import parse_overrides
from mlprov.errors import InputError
from mlprov.fsio import check_writable
from mlprov.predicates.slsa_provenance import UndigestedProduct

#: mlprov's exit code when the command succeeded but a product could not be digested
#: (as for any input mlprov cannot use); a failed command's own code wins.
UNDIGESTED_EXIT = 2

EPILOG = """\b
Examples:
  mlprov run --step train --materials data/ train.py --products model/ \\
      --config train.yaml --key release.key --out train.intoto.json \\
      -- python train.py --epochs 20
  mlprov run --step prep --materials raw.csv --products data/ --out prep.statement.json \\
      -- python prep.py raw.csv data/
"""


class GreedyOption(click.Option):
    """An option taking one or more values: `--materials a b c` (until the next `-...`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("multiple", True)
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser: Any, ctx: click.Context) -> None:
        super().add_to_parser(parser, ctx)
        # click has no public hook for nargs="+": this reaches into its parser (click 8.x,
        # pinned in pyproject). Should a future click lack these tables, the option stays
        # an ordinary repeatable one (`--materials a --materials b`) instead of breaking.
        long_opts = getattr(parser, "_long_opt", {})
        short_opts = getattr(parser, "_short_opt", {})
        for name in self.opts:
            option = long_opts.get(name) or short_opts.get(name)
            if option is None:
                continue
            original = option.process

            def process(value: Any, state: Any, original: Any = original) -> None:
                original(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    original(state.rargs.pop(0), state)

            option.process = process


@click.command(
    epilog=EPILOG,
    context_settings={"allow_interspersed_args": False},
)
@click.option("--step", required=True, help="Step name recorded (layouts match steps by it).")
@click.option(
    "--materials",
    cls=GreedyOption,
    type=LOCATION,
    metavar="PATH...",
    help="Inputs, hashed before the command runs.",
)
@click.option(
    "--products",
    cls=GreedyOption,
    type=LOCATION,
    metavar="PATH...",
    help="Outputs, hashed after it (the subjects).",
)
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="Config file used.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="Parameter recorded.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Where to write it: X.statement.json, or X.intoto.json when signed with --key.",
)
@click.option("--builder-id", help="Builder URI (default: from CI variables, else local).")
@click.option("--source-dir", type=click.Path(path_type=Path), default=Path("."), show_default=True)
@click.option("--no-git", is_flag=True, help="Do not record the git source.")
@click.option("--record-host", is_flag=True, help="Record the hostname.")
@click.option("--no-packages", is_flag=True, help="Do not list installed Python distributions.")
@follow_symlinks_option
@force_option
@sign_options
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (stdout).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def run(
    ctx: click.Context,
    step: str,
    materials: tuple[Path | str, ...],
    products: tuple[Path | str, ...],
    config_file: Path | None,
    params: tuple[str, ...],
    out: Path,
    builder_id: str | None,
    source_dir: Path,
    no_git: bool,
    record_host: bool,
    no_packages: bool,
    follow_symlinks: bool,
    force: bool,
    sign_keys: tuple[str, ...],
    password_env: str | None,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND (after `--`), recording materials, products, exit code, timing, environment."""
    check_statement_name(out, signed=bool(sign_keys))
    check_writable(out, force=force)
    recorder = TrainingRun(
        step=step,
        out=out,
        build_type="run",
        builder_id=builder_id,
        force=force,
        record_host=record_host,
        record_packages=not no_packages,
        source_dir=None if no_git else source_dir,
        write_manifests=False,
        signers=signers_from(sign_keys, password_env),
        follow_symlinks=follow_symlinks,
    )
    if config_file is not None:
        recorder.config(config_file)
    recorder.params(parse_overrides(params))
    recorder.command(command)
    for path in materials:
        recorder.material(path)
    recorder.started_on = utc_now()
    code, error = _execute(command)
    command_code = code
    # From here on the command has run: nothing may stop its record being written.
    missing = [p for p in products if isinstance(p, Path) and not os.path.lexists(p)]
    undigested: list[UndigestedProduct] = []
    for path in products:
        if isinstance(path, Path) and not os.path.lexists(path):
            continue
        try:
            recorder.product(path)
        except InputError as exc:
            undigested.append(UndigestedProduct(path=str(path), reason=str(exc)))
    exit_code = code
    if error is None and missing:
        error = f"product {missing[0]} was not created"
        code = exit_code = code or 1
    messages = [error] if error else []
    messages += [f"product {u.path} could not be digested: {u.reason}" for u in undigested]
    if undigested:
        more = f" (and {len(undigested) - 1} more)" if len(undigested) > 1 else ""
        error = error or messages[0] + more
        exit_code = exit_code or UNDIGESTED_EXIT
    statement = recorder.finish(exit_code=code, error=error, undigested=undigested)
    summary = {
        "out": str(out),
        "exitCode": exit_code,
        "commandExitCode": command_code,
        "error": error,
        "step": step,
        "undigested": [u.model_dump() for u in undigested],
    }
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
    else:
        state = "failed" if error or exit_code else "succeeded"
        names = ", ".join(s.name or "?" for s in statement.subject)
        click.echo(f"mlprov: {step} {state} (exit {exit_code}); wrote {out} [{names}]", err=True)
        for message in messages:
            click.echo(f"mlprov: {message}", err=True)
    if exit_code:
        ctx.exit(exit_code)


def _execute(command: tuple[str, ...]) -> tuple[int, str | None]:
    """Run the command with the terminal's stdio; (exit code, reason if it failed)."""
    if not command:
        raise InputError("give the command to run after `--`")
    try:
        process = subprocess.Popen(list(command))
    except FileNotFoundError:
        return 127, f"command not found: {command[0]}"
    except PermissionError:
        return 126, f"command not executable: {command[0]}"
    except OSError as exc:
        return 126, f"cannot run {command[0]}: {exc.strerror}"
    try:
        code = process.wait()
    except KeyboardInterrupt:
        code = process.wait()
    if code < 0:
        name = signal.Signals(-code).name
        return 128 - code, f"command killed by {name}"
    if code:
        return code, f"command exited with {code}"
    return 0, None
