"""Database connections for the store: SQLite (embedded) and PostgreSQL (team), one SQL dialect.

Queries are written once with `?` placeholders; `Database.sql` translates them for the
driver. Every write runs in a transaction (`Database.transaction`), so a crash mid-add
leaves the store as it was before; SQLite takes the write lock up front (BEGIN
IMMEDIATE) and waits for other writers instead of failing.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from mlprov.errors import InputError

#: How long a writer waits for another writer's lock before giving up, in seconds.
BUSY_TIMEOUT_SECONDS = 60.0

Params = Sequence[Any]


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Params = ..., /) -> Any: ...
    def executemany(self, sql: str, seq: Sequence[Params], /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ..., /) -> list[Any]: ...
    def close(self) -> Any: ...


class Database:
    """One open connection plus the few things that differ between SQLite and PostgreSQL."""

    name = "database"
    #: SQL type of a column holding raw bytes.
    blob_type = "BLOB"
    #: SQL of an auto-numbered primary key column, and of a column referring to one.
    id_type = "INTEGER PRIMARY KEY"
    ref_type = "INTEGER"

    def __init__(self, location: str) -> None:
        self.location = location

    def sql(self, query: str) -> str:
        """The query in the driver's placeholder style."""
        return query

    def cursor(self) -> Cursor:
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor inside one write transaction: committed on success, rolled back on error."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A cursor for reads (a consistent snapshot for the duration of the block)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def streaming_cursor(self) -> contextlib.AbstractContextManager[Cursor]:
        """A cursor that fetches rows in batches from the server, for bounded memory."""
        return self.reading()

    def lock_for_migration(self, cur: Cursor) -> None:
        """Serialise schema migrations between processes (inside a transaction)."""

    def optimize(self) -> None:
        """Refresh the query planner's statistics (after a bulk load)."""

    def close(self) -> None:
        raise NotImplementedError


class SQLiteDatabase(Database):
    """The embedded store: one SQLite file in WAL mode, safe for several local writers."""

    name = "sqlite"
    blob_type = "BLOB"

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        if sqlite3.sqlite_version_info < (3, 35):  # INSERT ... RETURNING
            raise InputError(
                f"the store needs SQLite 3.35 or newer; this Python has {sqlite3.sqlite_version}"
            )
        if path.is_dir():
            raise InputError(f"store {path} is a directory, expected a SQLite file")
        if not path.parent.is_dir():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot create store directory {path.parent}: {exc}") from None
        try:
            self._conn = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":  # e.g. a filesystem without shared memory
                self._conn.execute("PRAGMA journal_mode = DELETE")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            raise InputError(f"cannot open store {path}: {exc}") from None

    def cursor(self) -> Cursor:
        return self._conn.cursor()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        cur = self._conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            self._conn.rollback()
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Cursor]:
        cur = self._conn.cursor()
        cur.execute("BEGIN")
        try:
            yield cur
        finally:
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            cur.close()

    def optimize(self) -> None:
        self._conn.execute("PRAGMA optimize")

    def close(self) -> None:
        self._conn.close()


class PostgresDatabase(Database):
    """The team store: the same schema and queries on a PostgreSQL server."""

    name = "postgresql"
    blob_type = "BYTEA"
    id_type = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    ref_type = "BIGINT"

    def __init__(self, dsn: str) -> None:
        super().__init__(_redact(dsn))
        try:
            import psycopg
        except ImportError:
            raise InputError(
                "a PostgreSQL store needs psycopg: pip install 'mlprov[postgres]'"
            ) from None
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot connect to {self.location}: {first}") from None

    def sql(self, query: str) -> str:
        return query.replace("%", "%%").replace("?", "%s")

    def cursor(self) -> Cursor:
        cur: Cursor = self._conn.cursor()
        return cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def _server_cursor(self) -> Iterator[Cursor]:
        with self._conn.transaction(), self._conn.cursor(name="mlprov_export") as cur:
            cur.itersize = 500
            yield cur

    def streaming_cursor(self) -> contextlib.AbstractContextManager[Cursor]:
        return self._server_cursor()

    def lock_for_migration(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7274176)")  # an arbitrary, fixed key

    def optimize(self) -> None:
        # Without statistics (autovacuum analyses only after a delay) the planner picks
        # plans that make a lineage walk 30x slower right after a bulk load.
        with self._conn.cursor() as cur:
            cur.execute("ANALYZE attestations, artifacts, signers")

    def close(self) -> None:
        self._conn.close()


def is_postgres_url(location: str) -> bool:
    """True for a PostgreSQL connection URL."""
    return location.startswith(("postgresql://", "postgres://"))


def _redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    scheme, sep, rest = dsn.partition("://")
    if not sep or "@" not in rest:
        return dsn
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def connect(location: str) -> Database:
    """Open the database at `location`: a PostgreSQL URL, `sqlite:///path`, or a file path."""
    if is_postgres_url(location):
        return PostgresDatabase(location)
    if location.startswith("sqlite://"):
        location = location.removeprefix("sqlite://")
    if not location:
        raise InputError("empty store location")
    return SQLiteDatabase(Path(location).expanduser())
