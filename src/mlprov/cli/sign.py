"""`mlprov sign`: sign a Statement with keys (DSSE, .intoto.jsonl, bundle) or with Sigstore."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlprov.cli._common import echo_json, force_option, json_option, load_cli_signer, staging_option
from mlprov.errors import InputError
from mlprov.fsio import (
    append_line_atomic,
    check_writable,
    parse_json,
    read_input,
    write_bytes_atomic,
)

if TYPE_CHECKING:  # imported where used: `model` shares this module's options
    from securesystemslib.signer import Key, Signer

    from mlprov.signing.dsse import Envelope

EPILOG = """\b
Examples:
  mlprov sign train.statement.json --key release.key --out train.intoto.json
  mlprov sign train.statement.json --key a.key --key b.key --out train.intoto.json
  mlprov sign eval.statement.json --key release.key --format jsonl --out model.intoto.jsonl
  mlprov sign t.json --key awskms:alias/release --public-key release.pub --out t.intoto.json
  mlprov sign train.statement.json --key release.key --format bundle --out train.sigstore.json
  mlprov sign train.statement.json --sigstore --identity-token @token.txt --out train.sigstore.json
"""


def read_statement_input(path: Path) -> Envelope:
    """The Statement to sign as an envelope: an unsigned Statement, or an envelope to co-sign."""
    from mlprov.signing.dsse import MAX_ENVELOPE_BYTES, Envelope
    from mlprov.statement import PAYLOAD_TYPE, Statement

    data = read_input(path, limit=MAX_ENVELOPE_BYTES, what="Statement file")
    raw = parse_json(data, source=str(path))
    if isinstance(raw, dict) and "payloadType" in raw:
        envelope = Envelope.from_dict(raw, source=str(path))
        envelope.statement(source=str(path))  # refuse to co-sign something that is not one
        return envelope
    if isinstance(raw, dict) and "mediaType" in raw:
        raise InputError(f"{path} is already a Sigstore bundle; sign the Statement instead")
    Statement.from_dict(raw, source=str(path))
    return Envelope(payload=data, payload_type=PAYLOAD_TYPE)


F = TypeVar("F", bound=Callable[..., Any])


_KEY_HELP = (
    "PEM private key path or securesystemslib signer URI (file2:, gcpkms:,"
    " awskms:, azurekms:, hsm:, hv:)."
)


def signing_key_options(func: F) -> F:
    """--key URI (repeatable), --public-key for remote keys, --password-env: who signs."""
    return _key_options(func, f"{_KEY_HELP} Repeatable: every key signs.")


def single_signer_key_options(func: F) -> F:
    """As `signing_key_options`, for formats with one signer (an OMS model signature)."""
    return _key_options(func, f"{_KEY_HELP} One signer: give --key once.")


def _key_options(func: F, key_help: str) -> F:
    for option in reversed(
        [
            click.option("--key", "keys", multiple=True, metavar="URI", help=key_help),
            click.option(
                "--public-key",
                "public_keys",
                multiple=True,
                type=click.Path(path_type=Path, dir_okay=False),
                help="Public key of a remote (KMS/HSM/Vault) --key, in the same order.",
            ),
            click.option(
                "--password-env",
                metavar="VAR",
                help="Passphrase of encrypted PEM keys is in $VAR (else asked on a terminal).",
            ),
        ]
    ):
        func = option(func)
    return func


def keyless_signing_options(func: F) -> F:
    """--sigstore, --identity-token, --staging: sign keylessly instead of with --key."""
    for option in reversed(
        [
            click.option(
                "--sigstore", is_flag=True, help="Sign keylessly through Sigstore (Fulcio + Rekor)."
            ),
            click.option(
                "--identity-token",
                metavar="TOKEN",
                help="OIDC token for --sigstore (or @FILE; default: $SIGSTORE_ID_TOKEN, CI,"
                " browser).",
            ),
            staging_option,
        ]
    ):
        func = option(func)
    return func


def load_signers(
    uris: tuple[str, ...], public_keys: tuple[Path, ...], password_env: str | None
) -> list[Signer]:
    """Signers for every --key; --public-key files pair with remote (KMS/HSM) keys in order."""
    from mlprov.signing.keys import load_public_key

    publics: list[Key] = [load_public_key(p) for p in public_keys]
    signers = []
    for uri in uris:
        remote = uri.split(":", 1)[0] in ("gcpkms", "awskms", "azurekms", "hsm", "hv")
        public = publics.pop(0) if remote and publics else None
        signers.append(load_cli_signer(uri, password_env=password_env, public_key=public))
    if publics:
        raise InputError("more --public-key files than remote --key URIs")
    return signers


@click.command(epilog=EPILOG)
@click.argument("statement", type=click.Path(path_type=Path, dir_okay=False))
@signing_key_options
@click.option(
    "--out", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Output file."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["envelope", "jsonl", "bundle"]),
    default="envelope",
    show_default=True,
    help="DSSE JSON, a line appended to a .intoto.jsonl file, or a Sigstore bundle v0.3.",
)
@keyless_signing_options
@force_option
@json_option
def sign(
    statement: Path,
    keys: tuple[str, ...],
    public_keys: tuple[Path, ...],
    password_env: str | None,
    out: Path,
    fmt: str,
    sigstore: bool,
    identity_token: str | None,
    staging: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Sign the in-toto Statement in STATEMENT (exact bytes) with every --key, or --sigstore."""
    from mlprov.signing.bundle import bundle_bytes, key_bundle
    from mlprov.signing.sigstore_sign import resolve_identity_token, sign_statement_sigstore

    if sigstore:
        if keys or public_keys:
            raise InputError("--sigstore signs keylessly: do not also give --key")
        if fmt != "envelope" and fmt != "bundle":
            raise InputError("--sigstore writes a Sigstore bundle (--format bundle)")
        envelope = read_statement_input(statement)
        if envelope.signatures:
            raise InputError(f"{statement} is already signed; --sigstore signs a bare Statement")
        check_writable(out, force=force)
        token = resolve_identity_token(identity_token, staging=staging)
        data = sign_statement_sigstore(envelope.payload, token=token, staging=staging)
        write_bytes_atomic(out, data, force=force)
        _report(out, "bundle", [], as_json)
        return
    if staging or identity_token:
        raise InputError("--staging and --identity-token go with --sigstore")
    if not keys:
        raise InputError("give at least one --key (or --sigstore)")
    if fmt != "jsonl":
        check_writable(out, force=force)
    envelope = read_statement_input(statement)
    signers = load_signers(keys, public_keys, password_env)
    envelope.add_signatures(signers)
    if fmt == "bundle":
        write_bytes_atomic(
            out, bundle_bytes(key_bundle(envelope, signers[0].public_key)), force=force
        )
    elif fmt == "jsonl":
        append_line_atomic(out, envelope.to_json())
    else:
        write_bytes_atomic(out, envelope.to_json() + b"\n", force=force)
    _report(out, fmt, [s.public_key.keyid for s in signers], as_json)


def _report(out: Path, fmt: str, keyids: list[str], as_json: bool) -> None:
    if as_json:
        echo_json({"out": str(out), "format": fmt, "keyids": keyids})
        return
    for keyid in keyids:
        click.echo(f"signed by {keyid}", err=True)
    click.echo(f"wrote {out}", err=True)
