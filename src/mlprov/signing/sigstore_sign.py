"""Keyless signing through Sigstore (Fulcio certificate + Rekor entry): a thin shell.

Everything up to the network is here and tested: where the OIDC identity token comes
from (an explicit token or token file, `SIGSTORE_ID_TOKEN`, ambient CI credentials,
or the browser flow only when interactive) and that it is well-formed. The signing
itself is sigstore's `SigningContext`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlprov.errors import InputError, MlprovError
from mlprov.fsio import read_input_text

if TYPE_CHECKING:
    from sigstore.oidc import IdentityToken

TOKEN_ENV = "SIGSTORE_ID_TOKEN"
#: Largest identity token file read (an OIDC JWT is a few kB).
MAX_TOKEN_BYTES = 1 << 20


@dataclass(frozen=True)
class TokenSource:
    """Where the identity token came from (for messages) and its raw text."""

    origin: str
    raw: str | None


def find_identity_token(
    explicit: str | None, *, environ: dict[str, str] | None = None
) -> TokenSource:
    """The raw token: `explicit` (text, or `@FILE`), then $SIGSTORE_ID_TOKEN; else none."""
    env = os.environ if environ is None else environ
    if explicit:
        if explicit.startswith("@"):
            path = Path(explicit[1:])
            text = read_input_text(path, limit=MAX_TOKEN_BYTES, what="identity token file")
            return TokenSource(f"file {path}", text.strip())
        return TokenSource("--identity-token", explicit.strip())
    if env.get(TOKEN_ENV):
        return TokenSource(TOKEN_ENV, env[TOKEN_ENV].strip())
    return TokenSource("none", None)


def parse_identity_token(source: TokenSource) -> IdentityToken:
    """A sigstore IdentityToken; a malformed or expired token is an InputError."""
    from sigstore.oidc import IdentityToken

    if not source.raw:
        raise InputError(f"empty identity token from {source.origin}")
    try:
        return IdentityToken(source.raw)
    except Exception as exc:
        raise InputError(f"identity token from {source.origin} is unusable: {exc}") from None


def resolve_identity_token(
    explicit: str | None,
    *,
    staging: bool = False,
    interactive: bool | None = None,
    environ: dict[str, str] | None = None,
) -> IdentityToken:
    """An identity token from the flag, the environment, ambient CI, or (on a TTY) a browser."""
    source = find_identity_token(explicit, environ=environ)
    if source.raw is not None:
        return parse_identity_token(source)
    from sigstore.oidc import detect_credential

    try:
        ambient = detect_credential()
    except Exception as exc:
        raise InputError(f"ambient CI credentials found but unusable: {exc}") from None
    if ambient:
        return parse_identity_token(TokenSource("ambient CI credentials", ambient))
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if not interactive:
        raise InputError(
            "no OIDC identity token: pass --identity-token TOKEN (or @FILE), set"
            f" {TOKEN_ENV}, run in CI with OIDC, or run interactively for the browser flow"
        )
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import Issuer

    try:  # pragma: no cover - needs a browser and the network
        config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
        issuer = Issuer(config.signing_config.get_oidc_url())
        token: IdentityToken = issuer.identity_token()
        return token
    except Exception as exc:  # pragma: no cover
        raise InputError(f"OIDC browser flow failed: {exc}") from None


def sign_statement_sigstore(
    payload: bytes, *, token: IdentityToken, staging: bool = False
) -> bytes:  # pragma: no cover - needs Fulcio and Rekor
    """A Sigstore bundle (JSON bytes) over the exact Statement bytes `payload`."""
    from sigstore import dsse
    from sigstore.models import ClientTrustConfig
    from sigstore.sign import SigningContext

    try:
        config = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
        context = SigningContext.from_trust_config(config)
        with context.signer(token) as signer:
            bundle = signer.sign_dsse(dsse.Statement(payload))
    except Exception as exc:
        raise MlprovError(f"Sigstore signing failed: {exc}") from None
    return bundle.to_json().encode()
