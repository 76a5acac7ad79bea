"""Remote trees: objects in S3, GCS, Azure Blob or behind HTTP(S), hashed where they are.

A prefix (`s3://bucket/data/`) is a tree: each object under it is a file named by its key
relative to the prefix, so the manifest and tree digest are exactly those the same files
give on local disk (the OMS order, the same ignores). The bytes of every object are
streamed through the hash with a fixed-size buffer; an ETag or provider checksum is never
taken as a digest, only as a sign that an object changed:

- each object's version (ETag, version id, size) is read by the listing, before hashing;
- every GET of S3 carries `If-Match` on that ETag (and the version id, when listed), and the
  response's ETag and length must equal it; an object read in more than one piece is
  looked at again after hashing. Other stores are looked at before and after.

An object that changed while hashed raises FileChangedError, never a wrong digest.
fsspec and its store packages (s3fs, gcsfs, adlfs) are imported only when a remote URL is
hashed; credentials come from the providers' usual chains and never appear in a manifest,
a descriptor or a message (see `scrub`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import re
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlsplit

from mlprov.digest.algorithms import new_hasher
from mlprov.digest.hashing import CHUNK_SIZE, ProgressCallback, shard_bounds
from mlprov.digest.urls import SCHEMES, public_url
from mlprov.digest.walk import IgnoreRules
from mlprov.errors import FileChangedError, InputError

T = TypeVar("T")

#: The pip extra that brings each protocol's package.
_EXTRAS = {"s3": "mlprov[s3]", "gcs": "mlprov[gcs]", "abfs": "mlprov[azure]", "http": "aiohttp"}
#: Objects fetched at once by one process (a request in flight holds one chunk at most).
DEFAULT_CONCURRENCY = 32
#: Attempts of each request before a network failure is reported.
RETRIES = 3

#: Storage options given on the command line (`--storage-option`), for every remote URL
#: the command reads (a context variable, so a library caller's threads are unaffected).
DEFAULT_STORAGE_OPTIONS: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "mlprov_storage_options", default=None
)

#: Environment variables holding credentials: their values are scrubbed from messages.
_SECRET_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_CLIENT_SECRET",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
)
_URL_USERINFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]*@")
_URL_QUERY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s?#]*)\?[^\s#'\"]*")
_SAFE_OPTION_KEYS = {"endpoint_url", "region_name", "anon", "version_aware", "use_ssl"}


def scrub(text: str, options: Mapping[str, Any] | None = None) -> str:
    """`text` without credentials: URL user info and queries, secret option values and
    the values of credential environment variables."""
    text = _URL_USERINFO.sub(r"\1", text)
    text = _URL_QUERY.sub(r"\1", text)
    secrets = [os.environ.get(name, "") for name in _SECRET_ENV]
    secrets += [v for k, v in _flatten(options or {}) if k not in _SAFE_OPTION_KEYS]
    for secret in sorted({s for s in secrets if isinstance(s, str) and len(s) >= 4}, key=len)[::-1]:
        text = text.replace(secret, "***")
    return text


def _flatten(options: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    for key, value in options.items():
        if isinstance(value, Mapping):
            yield from _flatten(value)
        else:
            yield str(key), value


def parse_storage_options(pairs: Iterable[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs to fsspec storage options; a VALUE that is JSON (`true`, `3`,
    `{"a": 1}`) is parsed, and a dotted KEY (`client_kwargs.region_name`) nests."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep:  # never echo it: the whole text may be a secret
            raise InputError("--storage-option: expected KEY=VALUE (the text given is not shown)")
        if not key or any(not part for part in key.split(".")):
            raise InputError(f"--storage-option {key!r}=...: expected KEY=VALUE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        *parents, leaf = key.split(".")
        target = options
        for parent in parents:
            child = target.setdefault(parent, {})
            if not isinstance(child, dict):
                raise InputError(f"--storage-option {key!r}: {parent} is already a value")
            target = child
        target[leaf] = value
    return options


class RemoteObject(NamedTuple):
    """An object of a remote tree: its path in the store, its name in the tree, its size,
    and the version it was listed at (ETag and version id, where the store has them)."""

    key: str
    name: str
    size: int
    etag: str | None = None
    version: str | None = None


class RemoteTask(NamedTuple):
    """One unit of hashing: a whole object, or bytes [start, end) of one (an OMS shard)."""

    obj: RemoteObject
    start: int = 0
    end: int = -1

    @property
    def size(self) -> int:
        return self.obj.size if self.end < 0 else self.end - self.start

    @property
    def name(self) -> str:
        return self.obj.name if self.end < 0 else f"{self.obj.name}:{self.start}:{self.end}"


class HashedObject(NamedTuple):
    """What hashing a task gives: its name, size, digest and the version id read."""

    name: str
    size: int
    digest: str
    version: str | None


@dataclass
class RemoteTree:
    """A listed remote tree (or lone object): where it is and what is in it."""

    url: str  # public_url of what was asked for
    protocol: str
    root: str  # the store path of the tree (or the object)
    name: str  # the tree's name: the last component of the prefix, or the object's
    is_dir: bool
    options: dict[str, Any]
    objects: list[RemoteObject] = field(default_factory=list)

    @property
    def store_id(self) -> str:
        """Names the store in the digest cache: protocol and endpoint (no credentials)."""
        endpoint = self.options.get("endpoint_url") or (
            self.options.get("client_kwargs") or {}
        ).get("endpoint_url", "")
        return f"{self.protocol}|{public_url(endpoint) if endpoint else ''}"


# -- filesystems ---------------------------------------------------------------------------


def storage_options_for(protocol: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The fsspec options mlprov opens `protocol` with: the user's, over its defaults
    (S3-compatible endpoints from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, bounded
    retries and timeouts, a connection pool as large as the requests in flight)."""
    options: dict[str, Any] = {}
    default = DEFAULT_STORAGE_OPTIONS.get()
    for source in (default, given):
        for key, value in (source or {}).items():
            if isinstance(value, Mapping) and isinstance(options.get(key), dict):
                options[key] = {**options[key], **value}
            else:
                options[key] = dict(value) if isinstance(value, Mapping) else value
    if protocol == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        client = options.get("client_kwargs") or {}
        if endpoint and "endpoint_url" not in options and "endpoint_url" not in client:
            options["endpoint_url"] = endpoint
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", DEFAULT_CONCURRENCY * 2)
        config.setdefault("connect_timeout", 10)
        config.setdefault("read_timeout", 60)
        config.setdefault("retries", {"max_attempts": RETRIES, "mode": "standard"})
        options["config_kwargs"] = config
    return options


def _filesystem_class(protocol: str) -> Any:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with every extra
        raise InputError(f"remote URLs need fsspec: pip install '{_EXTRAS[protocol]}'") from None
    try:
        return fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError):
        raise InputError(
            f"{protocol}:// URLs need their fsspec package: pip install '{_EXTRAS[protocol]}'"
        ) from None


@contextlib.asynccontextmanager
async def open_filesystem(protocol: str, options: Mapping[str, Any]) -> AsyncIterator[Any]:
    """An asynchronous fsspec filesystem on the running loop, its session closed after.

    Not fsspec's shared instance on its background thread: each digest runs its own loop
    and leaves no thread behind (a process with none may still fork to hash local trees).
    """
    cls = _filesystem_class(protocol)
    if protocol == "s3" and "session" not in options:
        options = {**options, "session": _aws_session(options.get("profile"))}
    try:
        fs = cls(asynchronous=True, skip_instance_cache=True, **options)
    except (TypeError, ValueError) as exc:
        detail = scrub(str(exc), options)
        raise InputError(f"bad --storage-option for {protocol}: {detail}") from None
    if protocol == "s3":
        fs.retries = 1  # botocore retries (RETRIES attempts, standard mode): not 5 times that
    setter = getattr(fs, "set_session", None)
    session = await setter() if setter is not None else None
    try:
        yield fs
    finally:
        creator = getattr(fs, "_s3creator", None)  # s3fs: closes aiobotocore's connections
        with contextlib.suppress(Exception):
            if creator is not None:
                await creator.__aexit__(None, None, None)
            elif session is not None and hasattr(session, "close"):
                await session.close()


_AWS_LOADER: list[Any] = []


def _aws_session(profile: str | None) -> Any:
    """A fresh aiobotocore session (credentials are looked up anew each digest) sharing one
    botocore data loader: parsing S3's service model costs ~0.4 s, once per process."""
    from aiobotocore.session import AioSession
    from botocore.loaders import create_loader

    if not _AWS_LOADER:
        _AWS_LOADER.append(create_loader())
    session = AioSession(profile=profile)
    session.register_component("data_loader", _AWS_LOADER[0])
    return session


class StoreSession:
    """One event loop and one open filesystem, for a digest's listing and its hashing
    (opening a botocore client costs ~0.1 s: once per digest, not once per phase)."""

    def __init__(self, protocol: str, options: Mapping[str, Any]) -> None:
        self.protocol = protocol
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        try:
            self.fs = self.loop.run_until_complete(
                self._stack.enter_async_context(open_filesystem(protocol, options))
            )
        except BaseException:
            self.loop.close()
            raise

    def run(self, main: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
        return self.loop.run_until_complete(main(self.fs))

    def close(self) -> None:
        try:
            self.loop.run_until_complete(self._stack.aclose())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()


def _with_fs(
    session: StoreSession | None,
    protocol: str,
    options: Mapping[str, Any],
    main: Callable[[Any], Coroutine[Any, Any, T]],
) -> T:
    """Run main(fs) in `session`, or on a fresh loop with a filesystem of its own."""
    if session is not None:
        return session.run(main)

    async def alone() -> T:
        async with open_filesystem(protocol, options) as fs:
            return await main(fs)

    return run_async(alone)


def run_async(main: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run a coroutine function to completion on a fresh loop (in a fresh thread when this
    one already runs a loop, as in a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main(*args))
    with ThreadPoolExecutor(1, thread_name_prefix="mlprov-remote") as pool:
        return pool.submit(asyncio.run, main(*args)).result()


def _error_code(exc: BaseException) -> str:
    """The S3 error code behind an exception s3fs translated (or '')."""
    for err in (exc, exc.__cause__, exc.__context__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return ""


def store_error(exc: BaseException, where: str, options: Mapping[str, Any]) -> InputError:
    """One line for a person about a store failure at `where` (no credentials in it)."""
    code = _error_code(exc)
    name = type(exc).__name__
    if code in ("PreconditionFailed", "412"):
        return FileChangedError(f"{where}: object changed while it was being hashed")
    if name == "NoCredentialsError" or "Unable to locate credentials" in str(exc):
        return InputError(
            f"{where}: no credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or --storage-option anon=true for a public bucket)"
        )
    if code == "NoSuchBucket":
        return InputError(f"{where}: no such bucket")
    if code in ("NoSuchKey", "404") or isinstance(exc, FileNotFoundError):
        return InputError(f"{where}: no such object")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return InputError(f"{where}: credentials refused ({code})")
    if code in ("AccessDenied", "AllAccessDisabled", "403") or isinstance(exc, PermissionError):
        return InputError(f"{where}: access denied")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError") or isinstance(
        exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)
    ):
        return InputError(f"{where}: cannot reach the store after {RETRIES} attempts ({name})")
    detail = scrub(str(exc).splitlines()[0] if str(exc) else name, options)
    return InputError(f"{where}: {code or name}: {detail}"[:400])


@contextlib.contextmanager
def _store_errors(where: str, options: Mapping[str, Any]) -> Iterator[None]:
    try:
        yield
    except (InputError, FileChangedError):
        raise
    except Exception as exc:
        raise store_error(exc, where, options) from None


# -- listing ---------------------------------------------------------------------------------


def split_url(url: str) -> tuple[str, str]:
    """(fsspec protocol, store path) of a remote URL; raises InputError for a bad one."""
    scheme, _, rest = url.partition("://")
    protocol = SCHEMES[scheme.lower()]
    if protocol == "http":
        return protocol, public_url(url) if "@" in urlsplit(url).netloc else url
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    if not rest.strip("/"):
        raise InputError(f"{public_url(url)}: names no bucket or container")
    if ".." in rest.split("/") or "//" in rest.strip("/"):
        raise InputError(f"{public_url(url)}: a remote path has no '..' or empty components")
    return protocol, rest.lstrip("/")


def _check_names(objects: Sequence[RemoteObject], where: str) -> None:
    """Every name must be one a file could have on disk: relative, no empty, `.` or `..`
    component, and no name that is also a directory of another."""
    names = {o.name for o in objects}
    for obj in objects:
        parts = obj.name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise InputError(
                f"{where}: object key {obj.key!r} cannot be a file of a tree "
                "(empty, '.' or '..' path component)"
            )
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in names:
                raise InputError(
                    f"{where}: {'/'.join(parts[:i])!r} is both an object and a prefix of "
                    f"{obj.name!r}: no directory on disk can hold both"
                )


def _ignored(name: str, rules: IgnoreRules, memo: dict[str, bool]) -> bool:
    """As the local walk: a path is skipped when it, or any directory above it, matches."""
    parts = name.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        hit = memo.get(prefix)
        if hit is None:
            hit = memo[prefix] = rules.match(prefix)
        if hit:
            return True
    return rules.match(name)


def list_tree(
    url: str,
    *,
    ignore: IgnoreRules,
    storage_options: Mapping[str, Any] | None = None,
    record_versions: bool = False,
    session: StoreSession | None = None,
) -> RemoteTree:
    """List the objects of a remote prefix (or one object), as a tree would be walked."""
    protocol, path = split_url(url)
    options = storage_options_for(protocol, storage_options)
    where = public_url(url)

    async def listing(fs: Any) -> RemoteTree:
        if protocol == "s3":
            return await _list_s3(fs, url, path, options, record_versions)
        return await _list_generic(fs, protocol, url, path, options)

    with _store_errors(where, options):
        tree = _with_fs(session, protocol, options, listing)
    if tree.is_dir:
        memo: dict[str, bool] = {}
        tree.objects = [o for o in tree.objects if not _ignored(o.name, ignore, memo)]
        _check_names(tree.objects, where)
    if record_versions:
        for obj in tree.objects:
            if not obj.version:
                raise InputError(
                    f"{where}: {obj.name} has no version id to record "
                    "(is versioning enabled on the bucket?)"
                )
    return tree


def _strip_etag(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


async def _list_s3(
    fs: Any, url: str, path: str, options: dict[str, Any], versions: bool
) -> RemoteTree:
    bucket, _, key = path.partition("/")
    where = public_url(url)

    async def head() -> dict[str, Any] | None:
        if not key or key.endswith("/"):
            return None
        try:
            result: dict[str, Any] = await fs._call_s3("head_object", Bucket=bucket, Key=key)
            return result
        except Exception as exc:
            if _error_code(exc) in ("404", "NoSuchKey") or isinstance(exc, FileNotFoundError):
                return None
            raise

    async def listing(prefix: str) -> list[RemoteObject]:
        found: list[RemoteObject] = []
        method = "list_object_versions" if versions else "list_objects_v2"
        token: dict[str, str] = {}
        while True:
            page = await fs._call_s3(method, Bucket=bucket, Prefix=prefix, **token)
            rows = page.get("Versions", []) if versions else page.get("Contents", [])
            for row in rows:
                if versions and not row.get("IsLatest"):
                    continue
                name = row["Key"][len(prefix) :]
                if row["Key"].endswith("/") and not row.get("Size"):
                    continue  # a "directory marker" some tools write: no file on disk
                version = row.get("VersionId") if versions else None
                found.append(
                    RemoteObject(
                        f"{bucket}/{row['Key']}",
                        name,
                        int(row.get("Size", 0)),
                        _strip_etag(row.get("ETag")),
                        None if version in (None, "null") else str(version),
                    )
                )
            if not page.get("IsTruncated"):
                return found
            if versions:
                token = {
                    "KeyMarker": page["NextKeyMarker"],
                    "VersionIdMarker": page.get("NextVersionIdMarker", ""),
                }
            else:
                token = {"ContinuationToken": page["NextContinuationToken"]}

    lone = await head()
    if lone is not None:
        version = lone.get("VersionId") if versions else None
        obj = RemoteObject(
            path,
            ".",
            int(lone.get("ContentLength", 0)),
            _strip_etag(lone.get("ETag")),
            None if version in (None, "null") else str(version),
        )
        return RemoteTree(where, "s3", path, key.rsplit("/", 1)[-1], False, options, [obj])
    prefix = f"{key.rstrip('/')}/" if key.strip("/") else ""
    objects = await listing(prefix)
    if not objects:
        raise InputError(f"{where}: no objects under this prefix")
    name = key.strip("/").rsplit("/", 1)[-1] or bucket
    return RemoteTree(where, "s3", path.rstrip("/"), name, True, options, objects)


_ETAG_FIELDS = ("ETag", "etag", "md5Hash", "content_md5")
_VERSION_FIELDS = ("VersionId", "version_id", "generation")
_MTIME_FIELDS = ("LastModified", "last_modified", "mtime", "updated")


def _version_of(info: Mapping[str, Any]) -> tuple[Any, ...]:
    """What tells that an object changed, from an fsspec info dict of any store."""
    return (
        info.get("size"),
        *(str(info.get(f)) for f in _ETAG_FIELDS),
        *(str(info.get(f)) for f in _VERSION_FIELDS),
        *(str(info.get(f)) for f in _MTIME_FIELDS),
    )


def _generic_object(key: str, name: str, info: Mapping[str, Any]) -> RemoteObject:
    etag = next((info[f] for f in _ETAG_FIELDS if info.get(f)), None)
    version = next((info[f] for f in _VERSION_FIELDS if info.get(f)), None)
    size = info.get("size")
    if size is None:
        raise InputError(f"{name}: the store does not say how large it is")
    return RemoteObject(
        key, name, int(size), None if etag is None else str(etag), version and str(version)
    )


async def _list_generic(
    fs: Any, protocol: str, url: str, path: str, options: dict[str, Any]
) -> RemoteTree:
    where = public_url(url)
    if protocol == "http" or not path.endswith("/"):
        info = None
        with contextlib.suppress(FileNotFoundError):
            info = await fs._info(path)
        if info is not None and info.get("type", "file") == "file":
            name = urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1] or "download"
            return RemoteTree(
                where, protocol, path, name, False, options, [_generic_object(path, ".", info)]
            )
        if protocol == "http":
            raise InputError(f"{where}: no such file (an HTTP URL names one file, not a tree)")
    root = path.rstrip("/")
    found = await fs._find(root, detail=True)
    objects = []
    for key, info in sorted(found.items()):
        if info.get("type", "file") != "file" or key.endswith("/"):
            continue
        objects.append(_generic_object(key, key[len(root) + 1 :], info))
    if not objects:
        raise InputError(f"{where}: no objects under this prefix")
    name = root.rsplit("/", 1)[-1]
    return RemoteTree(where, protocol, root, name, True, options, objects)


# -- hashing ---------------------------------------------------------------------------------


def tasks_of(objects: Iterable[RemoteObject], shard_size: int | None) -> list[RemoteTask]:
    """The hashing tasks: one per object, or one per OMS shard of each with `shard_size`."""
    if not shard_size:
        return [RemoteTask(o) for o in objects]
    return [RemoteTask(o, s, e) for o in objects for s, e in shard_bounds(o.size, shard_size)]


#: Told (task name, bytes of it read so far) after each chunk: tests change objects here.
ChunkHook = Callable[[str, int], None]


def hash_tasks(
    protocol: str,
    options: Mapping[str, Any],
    tasks: Sequence[RemoteTask],
    algorithm: str,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    chunk_size: int = CHUNK_SIZE,
    progress: ProgressCallback | None = None,
    on_chunk: ChunkHook | None = None,
    where: str = "",
    session: StoreSession | None = None,
) -> list[HashedObject]:
    """Hash `tasks` in this process, `concurrency` at a time; one row per task, in order.

    Every object is streamed on one event loop, many requests in flight.
    """
    if not tasks:
        return []
    options = dict(options)

    async def hashing(fs: Any) -> list[HashedObject]:
        if protocol != "s3":
            return await _hash_each(fs, _hash_generic, tasks, algorithm, concurrency,
                                    chunk_size, progress, on_chunk, where, options)  # fmt: skip
        import aiohttp

        connector = aiohttp.TCPConnector(limit=concurrency, ssl=_tls(options))
        timeout = aiohttp.ClientTimeout(sock_connect=10, sock_read=60)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            trust_env=True,
            auto_decompress=False,
            read_bufsize=1 << 20,  # reads of up to 1 MiB, not aiohttp's 64 KiB
        ) as http:
            reader = _S3Reader(fs, http)
            return await _hash_each(reader, _hash_s3, tasks, algorithm, concurrency,
                                    chunk_size, progress, on_chunk, where, options)  # fmt: skip

    return _with_fs(session, protocol, options, hashing)


def _tls(options: Mapping[str, Any]) -> Any:
    """TLS verification as botocore's `verify` option says: default, off, or a CA bundle."""
    verify = (options.get("client_kwargs") or {}).get("verify", options.get("verify"))
    if verify is None or verify is True:
        return True
    if verify is False:
        return False
    import ssl

    return ssl.create_default_context(cafile=str(verify))


@dataclass
class _S3Reader:
    """s3fs's client, for what botocore does well (endpoints, credentials, signing), and a
    plain aiohttp session for the GETs themselves: each is presigned by botocore (0.1 ms,
    no request) and sent bare, which spares aiobotocore's ~5 ms per request of response
    machinery: for millions of small objects that is most of the cost."""

    fs: Any
    http: Any

    async def get(self, params: dict[str, str], headers: dict[str, str]) -> Any:
        import aiohttp

        client = await self.fs.get_s3(params["Bucket"])
        url = await client.generate_presigned_url("get_object", Params=params, ExpiresIn=900)
        error: BaseException | None = None
        for attempt in range(RETRIES):
            try:
                response = await self.http.get(url, headers=headers)
            except (OSError, TimeoutError, aiohttp.ClientError) as exc:
                error = exc
            else:
                if response.status < 500 and response.status != 429:
                    return response
                response.release()
                error = ConnectionError(f"HTTP {response.status} from the store")
            await asyncio.sleep(0.2 * 2**attempt)
        assert error is not None
        raise error


async def _hash_each(
    fs: Any,
    hash_one: Callable[..., Awaitable[HashedObject]],
    tasks: Sequence[RemoteTask],
    algorithm: str,
    concurrency: int,
    chunk_size: int,
    progress: ProgressCallback | None,
    on_chunk: ChunkHook | None,
    where: str,
    options: dict[str, Any],
) -> list[HashedObject]:
    results: list[HashedObject | None] = [None] * len(tasks)
    queue = iter(range(len(tasks)))

    async def worker() -> None:
        for i in queue:  # each worker pulls the next index: constant memory for any count
            task = tasks[i]
            label = f"{where.rstrip('/')}/{task.obj.name}" if where else task.obj.key
            try:
                results[i] = await hash_one(fs, task, algorithm, chunk_size, progress, on_chunk)
            except (InputError, FileChangedError) as exc:
                raise type(exc)(f"{label}: {exc}") from None
            except Exception as exc:
                raise store_error(exc, label, options) from None

    workers = [asyncio.ensure_future(worker()) for _ in range(max(1, min(concurrency, len(tasks))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return [r for r in results if r is not None]


async def _drain(
    read: Callable[[int], Awaitable[bytes]],
    hasher: Any,
    task: RemoteTask,
    chunk_size: int,
    progress: ProgressCallback | None,
    on_chunk: ChunkHook | None,
) -> None:
    """Hash what `read` gives, a chunk at a time, which must be exactly the task's bytes.

    An object of more than one chunk is hashed in the loop's executor (hashlib releases
    the GIL), so the loop goes on reading the other objects meanwhile.
    """
    loop = asyncio.get_running_loop() if task.size > chunk_size else None
    total = 0
    while total <= task.size:  # one read past the end, to see that the object ends there
        data = await read(min(chunk_size, task.size - total) or 1)
        if not data:
            break
        total += len(data)
        if total > task.size:
            raise FileChangedError("object grew while it was being hashed")
        if loop is not None:
            await loop.run_in_executor(None, hasher.update, data)
        else:
            hasher.update(data)
        if progress:
            progress(len(data))
        if on_chunk:
            on_chunk(task.name, total)
    if total != task.size:
        raise FileChangedError("object shrank while it was being hashed")


async def _hash_s3(
    reader: _S3Reader,
    task: RemoteTask,
    algorithm: str,
    chunk_size: int,
    progress: ProgressCallback | None,
    on_chunk: ChunkHook | None,
) -> HashedObject:
    obj = task.obj
    bucket, _, key = obj.key.partition("/")
    pin: dict[str, str] = {"Bucket": bucket, "Key": key}
    if obj.version:
        pin["VersionId"] = obj.version
    expected = task.size
    headers = {}
    if obj.etag:
        headers["If-Match"] = obj.etag
    if task.end >= 0:
        headers["Range"] = f"bytes={task.start}-{task.end - 1}"
    response = await reader.get(pin, headers)
    try:
        status = response.status
        if status == 412:
            raise FileChangedError("object changed while it was being hashed")
        if status == 404:
            raise FileChangedError("object vanished while it was being hashed")
        if status == 403:
            raise InputError("access denied")
        if status not in (200, 206):
            raise InputError(f"the store answered HTTP {status}")
        etag = _strip_etag(response.headers.get("ETag"))
        length = int(response.headers.get("Content-Length", -1))
        if (obj.etag and etag != obj.etag) or length != expected:
            raise FileChangedError("object changed while it was being hashed")
        hasher = new_hasher(algorithm)
        await _drain(response.content.read, hasher, task, chunk_size, progress, on_chunk)
    finally:
        response.release()
    version = response.headers.get("x-amz-version-id")
    fs = reader.fs
    if expected > chunk_size or task.end >= 0:
        # Read in pieces (or a shard of a larger whole): look at the object again.
        after = await fs._call_s3("head_object", **pin)
        if (
            _strip_etag(after.get("ETag")) != (obj.etag or etag)
            or int(after.get("ContentLength", -1)) != obj.size
            or (obj.version and after.get("VersionId") != obj.version)
        ):
            raise FileChangedError("object changed while it was being hashed")
    recorded = obj.version or (None if version in (None, "null") else str(version))
    return HashedObject(task.name, expected, hasher.digest().hex(), recorded)


async def _hash_generic(
    fs: Any,
    task: RemoteTask,
    algorithm: str,
    chunk_size: int,
    progress: ProgressCallback | None,
    on_chunk: ChunkHook | None,
) -> HashedObject:
    """Any other store: its info before and after must agree, and the size read."""
    obj = task.obj
    before = _version_of(await fs._info(obj.key))
    if before[0] != obj.size:
        raise FileChangedError("object changed while it was being hashed")
    hasher = new_hasher(algorithm)
    try:
        handle = await fs.open_async(obj.key, "rb")
    except NotImplementedError:  # a store without streaming reads: ranged reads instead
        handle = None
    if handle is None:
        offset = task.start

        async def read_range(n: int) -> bytes:
            nonlocal offset
            end = min(offset + n, task.start + task.size)
            if end <= offset:
                return b""
            data: bytes = await fs._cat_file(obj.key, start=offset, end=end)
            offset += len(data)
            return data

        await _drain(read_range, hasher, task, chunk_size, progress, on_chunk)
    else:
        try:
            if task.start:
                await handle.seek(task.start)
            await _drain(handle.read, hasher, task, chunk_size, progress, on_chunk)
        finally:
            await handle.close()
    with contextlib.suppress(AttributeError):
        fs.invalidate_cache(obj.key)
    after = _version_of(await fs._info(obj.key))
    if before != after:
        raise FileChangedError("object changed while it was being hashed")
    return HashedObject(task.name, task.size, hasher.digest().hex(), obj.version)


# -- the tree -------------------------------------------------------------------------------


def digest_remote(
    url: str,
    *,
    algorithm: str,
    patterns: Sequence[str],
    shard_size: int | None = None,
    cache: Any = None,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
    on_total: Callable[[int], None] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    record_versions: bool = False,
    cluster: Any = None,
    on_chunk: ChunkHook | None = None,
) -> Any:
    """digest_tree for a remote URL: the TreeManifest the same files give on disk.

    `cache` (a DigestCache, or None to neither read nor write one) remembers digests by
    store, key, size, ETag and version id; `cluster` (a `distributed.Client`, a scheduler
    address or `local:N`) hashes on Dask workers instead of in this process.
    """

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:  # a loop runs in this thread (a notebook): do the whole digest in another one
        with ThreadPoolExecutor(1, thread_name_prefix="mlprov-remote") as pool:
            return pool.submit(
                digest_remote, url, algorithm=algorithm, patterns=patterns,
                shard_size=shard_size, cache=cache, workers=workers, progress=progress,
                on_total=on_total, storage_options=storage_options,
                record_versions=record_versions, cluster=cluster, on_chunk=on_chunk,
            ).result()  # fmt: skip
    protocol, _ = split_url(url)
    options = storage_options_for(protocol, storage_options)
    with _store_errors(public_url(url), options):
        session = StoreSession(protocol, options)
    try:
        return _digest_listed(
            url, session, algorithm=algorithm, patterns=patterns, shard_size=shard_size,
            cache=cache, workers=workers, progress=progress, on_total=on_total,
            storage_options=storage_options, record_versions=record_versions,
            cluster=cluster, on_chunk=on_chunk,
        )  # fmt: skip
    finally:
        session.close()


def _digest_listed(
    url: str,
    session: StoreSession,
    *,
    algorithm: str,
    patterns: Sequence[str],
    shard_size: int | None,
    cache: Any,
    workers: int | None,
    progress: ProgressCallback | None,
    on_total: Callable[[int], None] | None,
    storage_options: Mapping[str, Any] | None,
    record_versions: bool,
    cluster: Any,
    on_chunk: ChunkHook | None,
) -> Any:
    from mlprov.digest.manifest import FileEntry, TreeManifest

    tree = list_tree(
        url,
        ignore=IgnoreRules(patterns),
        storage_options=storage_options,
        record_versions=record_versions,
        session=session,
    )
    tasks = tasks_of(tree.objects, shard_size)
    known: dict[str, str] = {}
    use_cache = cache is not None and cache.enabled
    if use_cache:
        stored = cache.load_objects(
            algorithm, tree.store_id, [(t.obj.key, t.start, t.end) for t in tasks]
        )
        for task in tasks:
            hit = stored.get((task.obj.key, task.start, task.end))
            listed = (task.obj.size, task.obj.etag, task.obj.version or "")
            if hit is not None and task.obj.etag and hit[0] == listed:
                known[task.name] = hit[1]
    todo = [t for t in tasks if t.name not in known]
    if on_total:
        on_total(sum(t.size for t in todo))
    if cluster is not None:
        from mlprov.digest.cluster import hash_on_cluster

        rows = hash_on_cluster(cluster, tree, todo, algorithm, progress=progress)
    else:
        rows = hash_tasks(
            tree.protocol,
            tree.options,
            todo,
            algorithm,
            concurrency=workers or DEFAULT_CONCURRENCY,
            progress=progress,
            on_chunk=on_chunk,
            where=tree.url,
            session=session,
        )
    check_complete(todo, rows, tree.url)
    if use_cache:
        cache.save_objects(
            algorithm,
            tree.store_id,
            [
                (
                    (t.obj.key, t.start, t.end),
                    (t.obj.size, t.obj.etag, t.obj.version or ""),
                    r.digest,
                )
                for t, r in zip(todo, rows, strict=True)
                if t.obj.etag
            ],
        )
    entries = [FileEntry(r.name, r.digest, r.size) for r in rows]
    entries += [FileEntry(t.name, known[t.name], t.size) for t in tasks if t.name in known]
    manifest = TreeManifest.build(
        name=tree.name,
        algorithm=algorithm,
        entries=entries,
        method="shards" if shard_size else "files",
        shard_size=shard_size,
        ignore=list(patterns) if tree.is_dir else [],
        clean=True,
    )
    if record_versions:
        manifest.versions = {o.name: o.version or "" for o in tree.objects}
    return manifest


def check_complete(tasks: Sequence[RemoteTask], rows: Sequence[HashedObject], where: str) -> None:
    """Every task hashed exactly once, at its size: a digest is never made of part of a tree."""
    if len(rows) != len(tasks) or any(
        r.name != t.name or r.size != t.size for t, r in zip(tasks, rows, strict=False)
    ):
        raise InputError(f"{where}: hashing returned incomplete results; no digest assembled")
