"""Database connections for the store: SQLite (embedded) and PostgreSQL (team), one SQL dialect.

Queries are written once with `?` placeholders; `Database.sql` translates them for the
driver. Every write runs in a transaction (`Database.transaction`), so a crash mid-add
leaves the store as it was before; SQLite takes the write lock up front (BEGIN
IMMEDIATE) and waits for other writers instead of failing.

Every driver error raised inside `transaction`, `reading` or `streaming_cursor` becomes
one `StoreError` line naming the store and what to do: a damaged file, a missing table,
a lock held too long. Maintenance (`optimize`) is best-effort: it waits a little for
other writers, then gives up silently, so no writer fails for another's lock.
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
#: How long best-effort maintenance (planner statistics) waits for the lock, in seconds.
MAINTENANCE_TIMEOUT_SECONDS = 5.0


class StoreError(InputError):
    """A database error, told as one line: which store, what is wrong, what to do.

    `detail` is the driver's own first line (for `store check`, which says what to do).
    """

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail or message


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def store_error(location: str, exc: BaseException) -> StoreError:
    """The StoreError for a driver error on the store at `location`."""
    text = _first_line(exc)
    error = _classify(location, text, type(exc).__name__)
    error.detail = text
    return error


def _classify(location: str, text: str, kind: str) -> StoreError:
    lowered = text.lower()
    check = f"run `mlprov store check --store {location}`"
    if "locked" in lowered or "busy" in lowered or "lock timeout" in lowered:
        return StoreError(
            f"store {location} is busy: another process held it locked for over"
            f" {BUSY_TIMEOUT_SECONDS:.0f} s ({text}); try again when it has finished"
        )
    if "readonly" in lowered or "read-only" in lowered or "permission denied" in lowered:
        return StoreError(f"store {location} cannot be written ({text}); check its permissions")
    if "disk is full" in lowered or "no space" in lowered:
        return StoreError(f"store {location}: the disk is full ({text}); free space, try again")
    if kind in ("OperationalError", "InterfaceError") and (
        "connection" in lowered or "server" in lowered or "terminat" in lowered
    ):
        return StoreError(f"lost the connection to store {location} ({text}); try again")
    if "no such table" in lowered or "no such column" in lowered or "does not exist" in lowered:
        return StoreError(
            f"store {location} is damaged ({text}); {check} and restore it from a backup"
        )
    return StoreError(
        f"store {location} is damaged or unreadable ({text}); {check} and restore it from a backup"
    )


Params = Sequence[Any]


class Cursor(Protocol):
    """The part of a DB-API cursor the store uses."""

    @property
    def rowcount(self) -> int: ...

    @property
    def description(self) -> Any: ...

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

    #: The driver's base class of errors that are the database's, not the caller's.
    driver_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, location: str) -> None:
        self.location = location

    @contextlib.contextmanager
    def guarded(self) -> Iterator[None]:
        """Driver errors inside the block become one StoreError line."""
        try:
            yield
        except self.driver_errors as exc:
            raise store_error(self.location, exc) from None

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

    def table_names(self, cur: Cursor) -> set[str]:
        """The tables of the store's schema."""
        raise NotImplementedError

    def index_names(self, cur: Cursor) -> set[str]:
        """The indexes of the store's schema."""
        raise NotImplementedError

    def optimize(self) -> bool:
        """Refresh the query planner's statistics (after a bulk load), best-effort: False
        when another writer kept the store locked (the statistics are only a hint)."""
        return True

    def close(self) -> None:
        raise NotImplementedError


class SQLiteDatabase(Database):
    """The embedded store: one SQLite file in WAL mode, safe for several local writers."""

    name = "sqlite"
    blob_type = "BLOB"
    driver_errors = (sqlite3.DatabaseError,)

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
            # FULL: a commit reported is on disk, not only in the WAL's page cache.
            self._conn.execute("PRAGMA synchronous = FULL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            # Check each b-tree page as it is read: damage is an error, not a wrong answer.
            self._conn.execute("PRAGMA cell_size_check = ON")
        except sqlite3.DatabaseError as exc:
            with contextlib.suppress(AttributeError, sqlite3.Error):
                self._conn.close()
            raise store_error(str(path), exc) from None

    def cursor(self) -> Cursor:
        return self._conn.cursor()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.guarded():
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.rollback()
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    @contextlib.contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self.guarded():
            cur = self._conn.cursor()
            cur.execute("BEGIN")
            try:
                yield cur
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.rollback()
                cur.close()

    def table_names(self, cur: Cursor) -> set[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {str(row[0]) for row in cur.fetchall()}

    def index_names(self, cur: Cursor) -> set[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
        return {str(row[0]) for row in cur.fetchall()}

    def optimize(self) -> bool:
        # In a write transaction taken up front: run bare, PRAGMA optimize reads, then
        # needs the write lock, and fails at once ("database is locked") if another
        # writer committed meanwhile, whatever the busy timeout.
        conn = self._conn
        with self.guarded():
            conn.execute(f"PRAGMA busy_timeout = {int(MAINTENANCE_TIMEOUT_SECONDS * 1000)}")
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("PRAGMA optimize")
                conn.execute("COMMIT")
                return True
            except sqlite3.OperationalError as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.rollback()
                if "locked" in str(exc) or "busy" in str(exc):
                    return False  # another writer's: the statistics can wait
                raise
            finally:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")

    def close(self) -> None:
        self._conn.close()


class PostgresDatabase(Database):
    """The team store: the same schema and queries on a PostgreSQL server."""

    name = "postgresql"
    blob_type = "BYTEA"
    id_type = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    ref_type = "BIGINT"

    def __init__(self, dsn: str) -> None:
        super().__init__(redact(dsn))
        try:
            import psycopg
        except ImportError:
            raise InputError(
                "a PostgreSQL store needs psycopg: pip install 'mlprov[postgres]'"
            ) from None
        self.driver_errors = (psycopg.Error,)
        try:
            self._conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            raise InputError(f"cannot connect to {self.location}: {_first_line(exc)}") from None

    def sql(self, query: str) -> str:
        return query.replace("%", "%%").replace("?", "%s")

    def cursor(self) -> Cursor:
        cur: Cursor = self._conn.cursor()
        return cur

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.guarded(), self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def reading(self) -> Iterator[Cursor]:
        with self.guarded(), self._conn.transaction(), self._conn.cursor() as cur:
            yield cur

    @contextlib.contextmanager
    def _server_cursor(self) -> Iterator[Cursor]:
        with (
            self.guarded(),
            self._conn.transaction(),
            self._conn.cursor(name="mlprov_export") as cur,
        ):
            cur.itersize = 500
            yield cur

    def streaming_cursor(self) -> contextlib.AbstractContextManager[Cursor]:
        return self._server_cursor()

    def lock_for_migration(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(7274176)")  # an arbitrary, fixed key

    def table_names(self, cur: Cursor) -> set[str]:
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {str(row[0]) for row in cur.fetchall()}

    def index_names(self, cur: Cursor) -> set[str]:
        cur.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        return {str(row[0]) for row in cur.fetchall()}

    def optimize(self) -> bool:
        # Without statistics (autovacuum analyses only after a delay) the planner picks
        # plans that make a lineage walk 30x slower right after a bulk load.
        try:
            with self.guarded(), self._conn.transaction(), self._conn.cursor() as cur:
                cur.execute(f"SET LOCAL lock_timeout = '{int(MAINTENANCE_TIMEOUT_SECONDS)}s'")
                cur.execute("ANALYZE attestations, artifacts, signers")
            return True
        except StoreError as exc:
            if "lock timeout" in exc.detail:  # another writer's: the statistics can wait
                return False
            raise

    def close(self) -> None:
        self._conn.close()


def is_postgres_url(location: str) -> bool:
    """True for a PostgreSQL connection URL."""
    return location.startswith(("postgresql://", "postgres://"))


def redact(dsn: str) -> str:
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
