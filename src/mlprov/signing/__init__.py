"""Signing and verification: DSSE envelopes, key signers, Sigstore bundles, OMS."""
