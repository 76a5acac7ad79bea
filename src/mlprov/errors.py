"""The error hierarchy of mlprov, so callers (and the CLI) catch by meaning.

`InputError` is bad usage or bad input (exit code 2); `VerificationError` is a
signature, digest or policy that does not hold (exit code 1).
"""

from __future__ import annotations


class MlprovError(Exception):
    """Base of every error mlprov raises on purpose; its text is one line for a person."""

    exit_code = 2


class InputError(MlprovError):
    """A path, file, document or argument that cannot be used as given."""

    exit_code = 2


class VerificationError(MlprovError):
    """A signature, digest, subject or policy that does not hold."""

    exit_code = 1


class FileChangedError(InputError):
    """A file changed while it was being hashed: its digest would be meaningless."""
