"""`mlprov model sign|verify`: OpenSSF Model Signing (OMS v1.0) signatures, both ways."""

from __future__ import annotations

import hashlib
from contextlib import closing
from pathlib import Path

import click

from mlprov.cli._common import (
    display_name,
    echo_json,
    follow_symlinks_option,
    force_option,
    json_option,
    one_line,
    progress_bar,
    trust_cache_option,
)
from mlprov.cli.sign import keyless_signing_options, load_signers, single_signer_key_options
from mlprov.cli.verify import identities_from, sigstore_options
from mlprov.errors import InputError
from mlprov.fsio import check_writable, write_bytes_atomic

SIGN_EPILOG = """\b
Examples:
  mlprov model sign ./model --key release.key --out model.sig
  mlprov model sign ./model --key release.key --shard-size 1073741824 --out model.sig
  mlprov model sign ./model --key release.key --hash blake2b --ignore-paths ./model/cache
  mlprov model sign ./model --sigstore --identity-token @token.txt --out model.sig
  model_signing verify key ./model --signature model.sig --public_key release.pub
"""

VERIFY_EPILOG = """\b
Examples:
  mlprov model verify ./model --signature model.sig --key release.pub
  mlprov model verify ./model --signature model.sig \\
      --certificate-chain ca.pem --certificate-chain int.pem
  mlprov model verify ./model --signature model.sig \\
      --identity you@example.com --issuer https://github.com/login/oauth
"""


def _ignore_paths(model_path: Path, given: tuple[str, ...]) -> tuple[str, ...]:
    """--ignore-path in either form, as model-relative paths; warn about those that match
    nothing (model_signing's form given relative to the wrong directory, a typo)."""
    from mlprov.signing.oms import resolve_ignore_paths

    resolved = resolve_ignore_paths(model_path, given)
    for text in resolved.unmatched:
        click.echo(
            f"mlprov: warning: ignore path {text!r} matches nothing in {model_path}", err=True
        )
    return tuple(resolved.relative)


@click.group(epilog=SIGN_EPILOG)
def model() -> None:
    """Sign and verify models as OpenSSF Model Signing (model_signing) does."""


@model.command("sign", epilog=SIGN_EPILOG)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@single_signer_key_options
@click.option(
    "--signature",
    "--out",
    "out",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("model.sig"),
    show_default=True,
    help="Signature bundle to write (as model_signing's --signature; --out is an alias).",
)
@click.option(
    "--ignore",
    "--ignore-path",
    "--ignore-paths",
    "ignore_paths",
    multiple=True,
    help="Path not to sign: relative to MODEL, or as on model_signing's command line"
    " (./model/cache). Repeatable (model_signing's --ignore-paths).",
)
@click.option(
    "--algorithm",
    "--hash",
    "algorithm",
    type=click.Choice(["sha256", "blake2b", "blake2", "blake3"]),
    default="sha256",
    show_default=True,
    help="File digest algorithm (blake2 is model_signing's API name for blake2b).",
)
@click.option(
    "--shard-size",
    type=click.IntRange(min=1),
    help="Use the `shards` method (sha256 or blake2b; model_signing shards no blake3).",
)
@follow_symlinks_option
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
    follow_symlinks: bool,
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
    from mlprov.signing.oms import check_serialization, model_statement, sign_model
    from mlprov.signing.sigstore_sign import resolve_identity_token, sign_statement_sigstore

    if sigstore == bool(keys):
        raise InputError("give exactly one of --key or --sigstore")
    algorithm = "blake2b" if algorithm == "blake2" else algorithm
    check_serialization(algorithm, shard_size)
    check_writable(out, force=force)
    if not model_path.exists() and not model_path.is_symlink():
        raise InputError(f"{model_path}: no such file or directory")
    ignore_paths = _ignore_paths(model_path, ignore_paths)
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
                follow_symlinks=follow_symlinks,
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
                follow_symlinks=follow_symlinks,
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
            if shard_size:
                click.echo(
                    "note: shard resources are named `<hash>-sharded-<size>` as model_signing"
                    " writes and verifies them; the OMS v1.0 JSON Schema lists bare hash"
                    " names only",
                    err=True,
                )
    write_bytes_atomic(out, data, force=force)
    if as_json:
        echo_json({"out": str(out), "sha256": hashlib.sha256(data).hexdigest()})
    else:
        click.echo(f"wrote {out}", err=True)


@model.command("verify", epilog=VERIFY_EPILOG)
@click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path))
@follow_symlinks_option
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
    "--certificate_chain",
    "certificate_chain",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Trusted CA certificates (PEM) for certificate-signed bundles: one file per"
    " flag, repeatable (--certificate-chain ca.pem --certificate-chain int.pem), or all"
    " in one PEM file.",
)
@sigstore_options
@click.option(
    "--ignore",
    "--ignore-path",
    "--ignore-paths",
    "ignore_paths",
    multiple=True,
    help="Path not to check: relative to MODEL, or as on model_signing's command line. Repeatable.",
)
@trust_cache_option
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
    trust_cache: bool,
    as_json: bool,
    follow_symlinks: bool,
) -> None:
    """Verify MODEL against an OMS signature; exit 1 naming any changed, missing or added file.

    Every file is hashed afresh (the digest cache only with --trust-cache).
    """
    from mlprov.digest import DigestCache
    from mlprov.signing.keys import load_public_key
    from mlprov.signing.oms import read_model_signature, verify_model

    identities = identities_from(identity, identity_regexp, issuer)
    if len(identities) > 1:
        raise InputError("give one --identity for a model signature")
    attestation = read_model_signature(signature)
    if not model_path.exists() and not model_path.is_symlink():
        raise InputError(f"{model_path}: no such file or directory")
    ignore_paths = _ignore_paths(model_path, ignore_paths)
    keys = [load_public_key(p) for p in key_paths]
    cache = DigestCache() if trust_cache else None
    with progress_bar(f"hashing {model_path}") as bar:
        result = verify_model(
            model_path,
            attestation,
            keys=keys,
            certificate_chain=certificate_chain,
            identity=identities[0] if identities else None,
            trusted_root=trusted_root,
            staging=staging,
            ignore_paths=ignore_paths,
            signature_path=signature,
            cache=cache,
            progress=bar,
            follow_symlinks=follow_symlinks,
        )
    if cache is not None:
        cache.close()
    serialization = result.predicate.serialization
    if as_json:
        echo_json(
            {
                "ok": result.ok,
                "signers": result.signers,
                "method": serialization.method,
                "hash_type": serialization.hash_type,
                "digest": result.actual_digest,
                "omsIdentity": f"sha256:{result.actual_digest}",
                **result.diff.model_dump(),
            }
        )
    else:
        signed_by = one_line(", ".join(result.signers))
        click.echo(f"ok    signature  {display_name(signature)}: signed by {signed_by}")
        for label, names in (
            ("changed", result.diff.changed),
            ("missing", result.diff.missing),
            ("added", result.diff.added),
        ):
            for name in names:
                click.echo(f"FAIL  {label:<10} {display_name(name)}", err=True)
        if result.ok:
            click.echo(
                f"OK: {display_name(model_path)} matches {display_name(signature)}"
                f" ({len(result.predicate.resources)} {serialization.method},"
                f" {serialization.hash_type}; OMS identity sha256:{result.actual_digest})"
            )
    if not result.ok:
        d = result.diff
        click.echo(
            f"FAILED: {display_name(model_path)} differs from {display_name(signature)}:"
            f" {len(d.changed)} changed,"
            f" {len(d.missing)} missing, {len(d.added)} added",
            err=True,
        )
        ctx.exit(1)
