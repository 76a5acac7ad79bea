"""`mlprov keygen`: a signing key pair (NAME.key, PKCS#8 PEM, mode 0600; NAME.pub)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlprov.cli._common import echo_json, force_option, json_option
from mlprov.errors import InputError
from mlprov.fsio import check_writable, write_bytes_atomic
from mlprov.signing.keys import KEY_TYPES, RSA_SCHEMES, generate_keypair, spki_keyid

EPILOG = """\b
Examples:
  mlprov keygen --out release                      # release.key (0600) + release.pub
  MLPROV_KEY_PASS=s3cret mlprov keygen --type ecdsa-p384 --out ci --password-env MLPROV_KEY_PASS
  mlprov keygen --type rsa-3072 --scheme rsa-pkcs1v15-sha256 --out gate   # slsa-verifier's RSA
"""


def _passphrase(password_env: str | None, no_password: bool) -> bytes | None:
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            raise InputError(f"environment variable {password_env} (the passphrase) is not set")
        return value.encode()
    if no_password or not sys.stdin.isatty():
        return None
    value = click.prompt(
        "Passphrase for the private key (empty: unencrypted)",
        hide_input=True,
        confirmation_prompt=True,
        default="",
        show_default=False,
        err=True,
    )
    return value.encode() if value else None


@click.command(epilog=EPILOG)
@click.option(
    "--type",
    "key_type",
    type=click.Choice(KEY_TYPES),
    default="ecdsa-p256",
    show_default=True,
    help="Key algorithm (OMS / model_signing verifies EC keys only).",
)
@click.option(
    "--scheme",
    type=click.Choice(RSA_SCHEMES),
    help="RSA signature scheme the printed keyid is for (default rsassa-pss-sha256;"
    " rsa-pkcs1v15-sha256 is what slsa-verifier checks). PEM files record no scheme:"
    " mlprov verifies an RSA key's signatures in either.",
)
@click.option("--out", "name", required=True, help="Base name: writes NAME.key and NAME.pub.")
@click.option("--password-env", metavar="VAR", help="Encrypt the key with the passphrase in $VAR.")
@click.option("--no-password", is_flag=True, help="Do not prompt; write an unencrypted key.")
@force_option
@json_option
def keygen(
    key_type: str,
    scheme: str | None,
    name: str,
    password_env: str | None,
    no_password: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Generate a key pair for `mlprov sign` and print its keyid."""
    private_path, public_path = Path(f"{name}.key"), Path(f"{name}.pub")
    check_writable(private_path, force=force)
    check_writable(public_path, force=force)
    if scheme and not key_type.startswith("rsa"):
        raise InputError(f"--scheme is for RSA keys (--type rsa-3072), not {key_type}")
    pair = generate_keypair(
        key_type, password=_passphrase(password_env, no_password), scheme=scheme
    )
    write_bytes_atomic(private_path, pair.private_pem, force=force, mode=0o600)
    write_bytes_atomic(public_path, pair.public_pem, force=force)
    if as_json:
        echo_json(
            {
                "keyid": pair.keyid,
                "spki_keyid": spki_keyid(pair.key),
                "type": key_type,
                "scheme": pair.key.scheme,
                "private_key": str(private_path),
                "public_key": str(public_path),
            }
        )
    else:
        click.echo(pair.keyid)
        click.echo(f"wrote {private_path} and {public_path}", err=True)
