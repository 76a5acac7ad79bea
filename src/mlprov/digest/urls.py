"""Which locations are object-store URLs, and how one may be shown: no network code here,
so every command can ask without importing the remote digest engine (asyncio, fsspec)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

#: URL schemes hashed remotely, and the fsspec protocol that reads each.
SCHEMES: dict[str, str] = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "abfs",
    "abfs": "abfs",
    "abfss": "abfs",
    "http": "http",
    "https": "http",
}


def is_remote(location: object) -> bool:
    """True for a URL mlprov hashes where it is (`s3://`, `gs://`, `az://`, `https://`, ...)."""
    if not isinstance(location, str):
        return False
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def public_url(url: str) -> str:
    """The URL as it may be recorded: without `user:secret@` or a query (SAS tokens,
    presigned signatures) or a fragment."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
