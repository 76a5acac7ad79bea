"""`mlprov model sign|verify`: OpenSSF Model Signing (OMS v1.0) signatures, both ways."""

from __future__ import annotations

import hashlib
from contextlib import closing
from pathlib import Path

import click

from mlprov.cli._common import echo_json, force_option, json_option, progress_bar
from mlprov.cli.sign import keyless_signing_options, load_signers, signing_key_options
from mlprov.cli.verify import identities_from, sigstore_options
from mlprov.errors import InputError
from mlprov.fsio import check_writable, write_bytes_atomic

SIGN_EPILOG = """\b
Examples:
  mlprov model sign ./model --key release.key --out model.sig
  mlprov model sign ./model --key release.key --shard-size 1073741824 --out model.sig
  mlprov model sign ./model --sigstore --identity-token @token.txt --out model.sig
  model_signing verify key ./model --signature model.sig --public_key release.pub
"""

VERIFY_EPILOG = """\b
Examples:
  mlprov model verify ./model --signature model.sig --key release.pub
  mlprov model verify ./model --signature model.sig --certificate-chain ca.pem int.pem
  mlprov model verify ./model --signature model.sig \\
      --identity you@example.com --issuer https://github.com/login/oauth
"""


@click.group(epilog=SIGN_EPILOG)
def model() -> None:
    """Sign and verify models as OpenSSF Model Signing (model_signing) does."""


@model.command("sign", epilog=SIGN_EPILOG)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@signing_key_options
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("model.sig"),
    show_default=True,
    help="Signature bundle to write.",
)
@click.option("--ignore-path", "ignore_paths", multiple=True, help="Path inside MODEL not to sign.")
@click.option(
    "--hash",
    "algorithm",
    type=click.Choice(["sha256", "blake3"]),
    default="sha256",
    show_default=True,
)
@click.option("--shard-size", type=click.IntRange(min=1), help="Use the `shards` method.")
@keyless_signing_options
@force_option
@json_option
def sign_cmd(
    model_path: Path,
    keys: tuple[str, ...],
    public_keys: tuple[Path, ...],
    password_env: str | None,
    out: Path,
    ignore_paths: tuple[str, ...],
    algorithm: str,
    shard_size: int | None,
    sigstore: bool,
    identity_token: str | None,
    staging: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Write an OMS v1.0 signature bundle of MODEL (a directory or one file)."""
    # Imported here, not at the top: this module is loaded for every `model` command.
    from mlprov.digest import DigestCache
    from mlprov.signing.bundle import bundle_bytes
    from mlprov.signing.oms import model_statement, sign_model
    from mlprov.signing.sigstore_sign import resolve_identity_token, sign_statement_sigstore

    if sigstore == bool(keys):
        raise InputError("give exactly one of --key or --sigstore")
    check_writable(out, force=force)
    if not model_path.exists() and not model_path.is_symlink():
        raise InputError(f"{model_path}: no such file or directory")
    with closing(DigestCache()) as cache, progress_bar(f"hashing {model_path}") as bar:
        if sigstore:
            statement = model_statement(
                model_path,
                signature_path=out,
                ignore_paths=ignore_paths,
                algorithm=algorithm,
                shard_size=shard_size,
                cache=cache,
                progress=bar,
            )
            token = resolve_identity_token(identity_token, staging=staging)
            data = sign_statement_sigstore(statement.to_bytes(), token=token, staging=staging)
        else:
            if len(keys) != 1:
                raise InputError("an OMS signature has one signer: give one --key")
            signer = load_signers(keys, public_keys, password_env)[0]
            bundle = sign_model(
                model_path,
                signer=signer,
                signature_path=out,
                ignore_paths=ignore_paths,
                algorithm=algorithm,
                shard_size=shard_size,
                cache=cache,
                progress=bar,
            )
            data = bundle_bytes(bundle)
            if signer.public_key.keytype != "ecdsa":
                click.echo(
                    f"note: model_signing's `verify key` accepts EC keys only; this"
                    f" {signer.public_key.keytype} signature verifies with mlprov model verify",
                    err=True,
                )
            if algorithm != "sha256" or shard_size:
                click.echo(
                    "note: model_signing's CLI verifies only sha256 `files` signatures;"
                    " use its Python API or mlprov model verify for this one",
                    err=True,
                )
    write_bytes_atomic(out, data, force=force)
    if as_json:
        echo_json({"out": str(out), "sha256": hashlib.sha256(data).hexdigest()})
    else:
        click.echo(f"wrote {out}", err=True)


@model.command("verify", epilog=VERIFY_EPILOG)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@click.option(
    "--signature",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("model.sig"),
    show_default=True,
    help="The signature bundle.",
)
@click.option(
    "--key",
    "key_paths",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted public key (PEM).",
)
@click.option(
    "--certificate-chain",
    "certificate_chain",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted CA certificates (PEM) for certificate-signed bundles. Repeatable.",
)
@sigstore_options
@click.option(
    "--ignore-path", "ignore_paths", multiple=True, help="Path inside MODEL not to check."
)
@json_option
@click.pass_context
def verify_cmd(
    ctx: click.Context,
    model_path: Path,
    signature: Path,
    key_paths: tuple[Path, ...],
    certificate_chain: tuple[Path, ...],
    identity: tuple[str, ...],
    identity_regexp: tuple[str, ...],
    issuer: str | None,
    trusted_root: Path | None,
    staging: bool,
    ignore_paths: tuple[str, ...],
    as_json: bool,
) -> None:
    """Verify MODEL against an OMS signature; exit 1 naming any changed, missing or added file."""
    from mlprov.digest import DigestCache
    from mlprov.signing.files import read_attestations
    from mlprov.signing.keys import load_public_key
    from mlprov.signing.oms import verify_model

    identities = identities_from(identity, identity_regexp, issuer)
    if len(identities) > 1:
        raise InputError("give one --identity for a model signature")
    attestations = read_attestations(signature)
    if len(attestations) != 1:
        raise InputError(f"{signature}: expected one signature bundle")
    if not model_path.exists() and not model_path.is_symlink():
        raise InputError(f"{model_path}: no such file or directory")
    keys = [load_public_key(p) for p in key_paths]
    with closing(DigestCache()) as cache, progress_bar(f"hashing {model_path}") as bar:
        result = verify_model(
            model_path,
            attestations[0],
            keys=keys,
            certificate_chain=certificate_chain,
            identity=identities[0] if identities else None,
            trusted_root=trusted_root,
            staging=staging,
            ignore_paths=ignore_paths,
            signature_path=signature,
            cache=cache,
            progress=bar,
        )
    serialization = result.predicate.serialization
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "signers": result.signers,
                "method": serialization.method,
                "hash_type": serialization.hash_type,
                "digest": result.actual_digest,
                **result.diff.model_dump(),
            }
        )
    else:
        click.echo(f"ok    signature  {signature}: signed by {', '.join(result.signers)}")
        for label, names in (
            ("changed", result.diff.changed),
            ("missing", result.diff.missing),
            ("added", result.diff.added),
        ):
            for name in names:
                click.echo(f"FAIL  {label:<10} {name}", err=True)
        if result.ok:
            click.echo(
                f"OK: {model_path} matches {signature}"
                f" ({len(result.predicate.resources)} {serialization.method},"
                f" {serialization.hash_type}, sha256:{result.actual_digest})"
            )
    if not result.ok:
        d = result.diff
        click.echo(
            f"FAILED: {model_path} differs from {signature}: {len(d.changed)} changed,"
            f" {len(d.missing)} missing, {len(d.added)} added",
            err=True,
        )
        ctx.exit(1)
