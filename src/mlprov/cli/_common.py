"""Shared pieces of the CLI: JSON output, progress display, options used by many commands."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

# Re-exported for every human-output printer of the CLI.
from mlprov.display import display_name as display_name
from mlprov.display import one_line as one_line

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of text."
)
force_option = click.option("--force", is_flag=True, help="Overwrite an existing output file.")
trust_cache_option = click.option(
    "--trust-cache",
    is_flag=True,
    help="Take unchanged files' digests from the digest cache (unsafe if others can write it).",
)


class FiniteFloatRange(click.FloatRange):
    """A click float range that also refuses `nan` (which compares as inside any range)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number:  # NaN
            self.fail(f"{value!r} is not a number", param, ctx)
        return number


class Location(click.ParamType[Any]):
    """A local path (given as a Path), or an object-store URL or Hugging Face reference
    (kept as the string: `s3://bucket/prefix/`, `gs://`, `az://`, `https://host/file`,
    `hf://org/name@REV`; a Path would fold its `//`)."""

    name = "PATH|URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from mlprov.digest.urls import is_remote

        if isinstance(value, str) and (is_remote(value) or value.startswith("hf://")):
            return value
        return Path(value)


LOCATION = Location()


def _set_storage_options(ctx: click.Context, param: click.Parameter, values: Any) -> None:
    if not values:  # click calls back for absent options too: no remote engine then
        return
    from mlprov.digest.remote import DEFAULT_STORAGE_OPTIONS, parse_storage_options

    token = DEFAULT_STORAGE_OPTIONS.set(parse_storage_options(values or ()) or None)
    ctx.call_on_close(lambda: DEFAULT_STORAGE_OPTIONS.reset(token))


storage_option = click.option(
    "--storage-option",
    multiple=True,
    metavar="KEY=VALUE",
    expose_value=False,
    callback=_set_storage_options,
    help="Option for the object store's fsspec filesystem (e.g. endpoint_url=URL, anon=true, "
    "client_kwargs.region_name=eu-west-1); repeatable. Never recorded.",
)
cluster_option = click.option(
    "--cluster",
    metavar="ADDRESS|local:N",
    envvar="MLPROV_DASK_SCHEDULER",
    help="Hash remote URLs on a Dask cluster: a scheduler (tcp://host:8786, default "
    "$MLPROV_DASK_SCHEDULER) or local:N for a LocalCluster of N worker processes.",
)


#: Sigstore's staging instance, under model_signing's name too.
staging_option = click.option(
    "--staging",
    "--use-staging",
    "--use_staging",
    "staging",
    is_flag=True,
    help="Sigstore's staging instance (model_signing's --use_staging).",
)


def echo_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True))


class ByteProgress:
    """A rich progress bar on a TTY that appears only once work has lasted a second.

    Called from worker threads; silent when stderr is not a terminal.
    """

    def __init__(self, description: str, *, delay: float = 1.0) -> None:
        self.description = description
        self.delay = delay
        self.enabled = sys.stderr.isatty()
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._progress: Any = None
        self._task: Any = None

    def set_total(self, total: int) -> None:
        self.total = total

    def advance(self, n: int) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += n
            if self._progress is None:
                if time.monotonic() - self._started < self.delay:
                    return
                self._start()
            self._progress.update(self._task, completed=self.done)

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(self.description, total=self.total or None)

    def close(self) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.stop()
                self._progress = None


@contextmanager
def progress_bar(description: str) -> Iterator[ByteProgress]:
    """A ByteProgress (a DigestProgress) that is closed however the block ends."""
    bar = ByteProgress(description)
    try:
        yield bar
    finally:
        bar.close()


@contextmanager
def byte_progress(
    description: str,
) -> Iterator[tuple[Callable[[int], None], Callable[[int], None]]]:
    """(on_total, advance) callbacks for the digest engine, showing progress on a TTY."""
    with progress_bar(description) as bar:
        yield bar.set_total, bar.advance


def sign_options_named(*names: str) -> Callable[[Any], Any]:
    """`NAMES KEY` (repeatable) and `--password-env VAR`: sign what a command writes."""

    def apply(func: Any) -> Any:
        func = click.option(
            "--password-env",
            metavar="VAR",
            help="Passphrase of encrypted signing keys is in $VAR (else asked on a terminal).",
        )(func)
        return click.option(
            *names,
            "sign_keys",
            multiple=True,
            metavar="KEY",
            help="Sign the Statement on write (DSSE) with this key path or signer URI"
            " (repeatable).",
        )(func)

    return apply


#: `--key KEY` as `mlprov sign --key` (`--sign` is its old name) and `--password-env VAR`.
sign_options = sign_options_named("--key", "--sign")


def signers_from(keys: tuple[str, ...], password_env: str | None) -> list[Any]:
    """Signers for `--key` keys (private PEM paths or securesystemslib signer URIs)."""
    return [load_cli_signer(uri, password_env=password_env) for uri in keys]


def stdin_is_terminal() -> bool:
    """Whether a person can answer a prompt (never in CI, a pipe or a test)."""
    return sys.stdin is not None and sys.stdin.isatty()


def load_cli_signer(uri: str, *, password_env: str | None, public_key: Any = None) -> Any:
    """`load_signer`, asking for an encrypted PEM key's passphrase on a terminal when no
    `--password-env` gives it (as `keygen` asks for one), never echoing it."""
    from mlprov.errors import InputError
    from mlprov.fsio import read_input
    from mlprov.signing.keys import MAX_KEY_BYTES, load_signer, pem_key_path

    password = None
    path = pem_key_path(uri)
    if password_env is None and path is not None and stdin_is_terminal():
        try:
            encrypted = b"ENCRYPTED" in read_input(path, limit=MAX_KEY_BYTES, what="private key")
        except InputError:
            encrypted = False  # load_signer says what is wrong with the path
        if encrypted:
            password = click.prompt(
                f"Passphrase for {path}", hide_input=True, err=True, default="", show_default=False
            ).encode()
    return load_signer(uri, password_env=password_env, password=password, public_key=public_key)


def check_statement_name(out: Path, *, signed: bool) -> None:
    """Refuse to write an unsigned Statement under an envelope's name (`X.intoto.json`)."""
    from mlprov.statement import check_statement_name as check

    check(out, signed=signed)


#: The one symlink option of every command that reads a tree (the rule: docs/digest.md).
follow_symlinks_option = click.option(
    "--follow-symlinks",
    "--allow-symlinks",
    "--allow_symlinks",
    "follow_symlinks",
    is_flag=True,
    help="Hash what symlinks point to, wherever they point (model_signing's --allow_symlinks)."
    " Without it, only a Hugging Face snapshot's links into its own blobs/ are followed.",
)
