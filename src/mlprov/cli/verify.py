"""`mlprov verify`: signatures, payloadType, Statement and subjects on disk; one line per check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mlprov.cli._common import (
    LOCATION,
    display_name,
    echo_json,
    follow_symlinks_option,
    json_option,
    one_line,
    staging_option,
    storage_option,
    trust_cache_option,
)
from mlprov.digest import DigestCache
from mlprov.errors import InputError, VerificationError

if TYPE_CHECKING:  # imported where used: `store` and `model` share this module's options
    from securesystemslib.signer import Key

    from mlprov.signing.sigstore_bundle import SigstoreIdentity
    from mlprov.signing.verify import Check

F = TypeVar("F", bound=Callable[..., Any])

EPILOG = """\b
Examples:
  mlprov verify train.intoto.json --key release.pub
  mlprov verify train.intoto.json --key a.pub --key b.pub --threshold 2 --subject-path model/
  mlprov verify model.intoto.jsonl --key release.pub --json
  mlprov verify a.sigstore.json --identity you@example.com --issuer https://github.com/login/oauth
  mlprov verify a.sigstore.json --identity-regexp 'https://github.com/org/.*' \\
      --issuer https://token.actions.githubusercontent.com --trusted-root trusted_root.json
"""


def identities_from(
    identity: tuple[str, ...], identity_regexp: tuple[str, ...], issuer: str | None
) -> list[SigstoreIdentity]:
    """Sigstore identities from the CLI flags; an identity always needs its issuer."""
    from mlprov.signing.sigstore_bundle import SigstoreIdentity

    if (identity or identity_regexp) and not issuer:
        raise InputError("--identity needs --issuer (the OIDC issuer URL)")
    if issuer and not (identity or identity_regexp):
        raise InputError("--issuer needs --identity or --identity-regexp")
    found = [SigstoreIdentity(issuer=issuer or "", subject=s) for s in identity]
    found += [SigstoreIdentity(issuer=issuer or "", subject_regex=r) for r in identity_regexp]
    return found


def sigstore_options(func: F) -> F:
    """The --identity/--issuer/--trusted-root/--staging options shared by verify commands."""
    for option in reversed(
        [
            click.option(
                "--identity",
                "--certificate-identity",
                "identity",
                multiple=True,
                help="Expected signer (certificate SAN; cosign's --certificate-identity).",
            ),
            click.option(
                "--identity-regexp",
                "--certificate-identity-regexp",
                "identity_regexp",
                multiple=True,
                help="Expected signer, as a full-match regex.",
            ),
            click.option(
                "--issuer",
                "--certificate-oidc-issuer",
                "--identity_provider",
                "issuer",
                help="Expected OIDC issuer of the signer's certificate (cosign's"
                " --certificate-oidc-issuer, model_signing's --identity_provider).",
            ),
            click.option(
                "--trusted-root",
                type=click.Path(path_type=Path, dir_okay=False),
                help="Sigstore trusted root JSON (default: the one pinned in sigstore).",
            ),
            staging_option,
        ]
    ):
        func = option(func)
    return func


def trusted_key_options(func: F) -> F:
    """--key (trusted public keys, repeatable) and --threshold (distinct keys needed)."""
    for option in reversed(
        [
            click.option(
                "--key",
                "key_paths",
                multiple=True,
                type=click.Path(path_type=Path, dir_okay=False),
                help="Trusted public key (PEM, certificate or securesystemslib JSON). Repeatable.",
            ),
            click.option(
                "--threshold",
                type=click.IntRange(min=1),
                default=1,
                show_default=True,
                help="Distinct trusted keys that must have signed.",
            ),
        ]
    ):
        func = option(func)
    return func


@click.command(epilog=EPILOG)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@follow_symlinks_option
@trusted_key_options
@sigstore_options
@click.option(
    "--subject-path",
    "subject_paths",
    multiple=True,
    type=LOCATION,
    help="File or tree (or object-store URL) that must match a subject digest. Repeatable.",
)
@trust_cache_option
@storage_option
@json_option
@click.pass_context
def verify(
    ctx: click.Context,
    file: Path,
    key_paths: tuple[Path, ...],
    threshold: int,
    identity: tuple[str, ...],
    identity_regexp: tuple[str, ...],
    issuer: str | None,
    trusted_root: Path | None,
    staging: bool,
    subject_paths: tuple[Path | str, ...],
    trust_cache: bool,
    as_json: bool,
    follow_symlinks: bool,
) -> None:
    """Verify every signed attestation in FILE (DSSE, .intoto.jsonl or Sigstore bundle).

    Subject paths are digested afresh: the digest cache is writable by whoever can write
    the user's cache directory, so it decides nothing unless --trust-cache is given.
    """
    from mlprov.signing.files import read_attestations
    from mlprov.signing.keys import load_public_key
    from mlprov.signing.subjects import check_subject_path
    from mlprov.signing.verify import Check, verify_attestation

    keys: list[Key] = [load_public_key(p) for p in key_paths]
    identities = identities_from(identity, identity_regexp, issuer)
    if not keys and not identities:
        raise InputError("give --key PUB, or --identity and --issuer for Sigstore bundles")
    for path in subject_paths:
        if isinstance(path, Path) and not path.exists():
            raise InputError(f"--subject-path {path}: no such file or directory")
    reports = []
    all_ok = True
    cache = DigestCache() if trust_cache and subject_paths else None
    for attestation in read_attestations(file):
        checks: list[Check] = []
        signers: list[str] = []
        predicate_type = None
        try:
            verified = verify_attestation(
                attestation,
                keys=keys,
                identities=identities,
                trusted_root=trusted_root,
                staging=staging,
                threshold=threshold,
            )
        except VerificationError as exc:
            checks.append(
                Check("signature", False, _strip(str(exc), attestation.source), attestation.source)
            )
        else:
            checks.extend(verified.checks)
            signers = verified.signers
            predicate_type = verified.statement.predicateType
            for path in subject_paths:
                checks.append(
                    check_subject_path(
                        verified.statement, path, cache=cache, follow_symlinks=follow_symlinks
                    )
                )
        ok = all(c.passed for c in checks)
        all_ok = all_ok and ok
        reports.append(
            {
                "source": attestation.source,
                "ok": ok,
                "signers": signers,
                "predicateType": predicate_type,
                "checks": [c.to_dict() for c in checks],
            }
        )
        if not as_json:
            for check in checks:
                click.echo(one_line(check.line()), err=not check.passed)
    if cache is not None:
        cache.close()
    if as_json:
        echo_json({"ok": all_ok, "file": str(file), "attestations": reports})
    elif all_ok:
        click.echo(f"OK: {len(reports)} attestation(s) in {display_name(file)} verified")
    else:
        failed = sum(1 for r in reports if not r["ok"])
        total = len(reports)
        click.echo(f"FAILED: {failed} of {total} attestation(s) in {display_name(file)}", err=True)
    if not all_ok:
        ctx.exit(1)


def _strip(message: str, source: str) -> str:
    """The reason without the repeated `source: ` prefix."""
    prefix = f"{source}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
