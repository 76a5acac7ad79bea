"""Hash algorithms mlprov computes file digests with: sha256 (default), sha512, blake2b, blake3.

blake2b is hashlib's default BLAKE2b (64-byte digest), as model_signing and OMS name it.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from mlprov.errors import InputError

ALGORITHMS = ("sha256", "sha512", "blake2b", "blake3")
DEFAULT_ALGORITHM = "sha256"


class Hasher(Protocol):
    """The part of hashlib's interface the digest engine uses (blake3 has it too)."""

    def update(self, data: bytes | memoryview, /) -> object: ...

    def digest(self) -> bytes: ...


def new_hasher(algorithm: str, *, max_threads: int = 1) -> Hasher:
    """A fresh hasher for `algorithm`; blake3 may use several threads on one input."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "sha512":
        return hashlib.sha512()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "blake3":
        try:
            import blake3
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise InputError("blake3 is not installed (pip install 'mlprov[blake3]')") from exc
        hasher: Hasher = blake3.blake3(max_threads=max_threads)
        return hasher
    raise InputError(f"unknown hash algorithm {algorithm!r} (choose from {', '.join(ALGORITHMS)})")


def check_algorithm(algorithm: str) -> str:
    """Return `algorithm` if mlprov can compute it, else raise InputError."""
    new_hasher(algorithm)
    return algorithm
