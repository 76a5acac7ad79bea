"""Writing Sigstore bundles (v0.3) for key-signed DSSE envelopes, as OMS and cosign do.

The key is named by `verificationMaterial.publicKey.hint` (hex sha256 of its PEM
SubjectPublicKeyInfo) and the DSSE keyid is empty: both are hints, never trusted.
"""

from __future__ import annotations

import json
from typing import Any

from securesystemslib.signer import Key

from mlprov.errors import InputError
from mlprov.signing.dsse import Envelope
from mlprov.signing.keys import pem_hint

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"


def key_bundle(envelope: Envelope, key: Key) -> dict[str, Any]:
    """A Sigstore bundle v0.3 holding `envelope`, signed once by `key`."""
    if len(envelope.signatures) != 1:
        raise InputError(
            f"a Sigstore bundle holds exactly one signature, not {len(envelope.signatures)}:"
            " sign with one --key, or use --format envelope"
        )
    dsse = envelope.to_dict()
    for signature in dsse["signatures"]:
        signature["keyid"] = ""
    return {
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": pem_hint(key)}, "tlogEntries": []},
        "dsseEnvelope": dsse,
    }


def bundle_bytes(bundle: dict[str, Any]) -> bytes:
    """The bundle as written to disk (indented JSON, as model_signing writes it)."""
    return (json.dumps(bundle, indent=2) + "\n").encode()
