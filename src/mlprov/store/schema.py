"""The store's schema, as numbered migrations applied once each and recorded in the database.

A new store runs every migration; an existing one runs only those it has not recorded.
A store written by a newer mlprov (a version this code does not know) is refused rather
than misread. `{blob}`, `{id_type}` and `{ref_type}` are the dialect's bytes, auto-numbered key and
key-reference types.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mlprov.errors import InputError
from mlprov.store.backend import Cursor, Database


@dataclass(frozen=True)
class Migration:
    """One schema change: its version, what it does, and its statements."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "attestations, their subjects and materials, and their signers",
        (
            # One row per stored attestation; `digest` is sha256 of `raw`, the exact bytes read.
            # `id` is a compact key the index tables refer to (the digest is 71 characters).
            """CREATE TABLE attestations (
                id {id_type},
                digest TEXT NOT NULL UNIQUE,
                raw {blob} NOT NULL,
                kind TEXT NOT NULL,
                payload_type TEXT NOT NULL,
                predicate_type TEXT NOT NULL,
                build_type TEXT,
                step TEXT,
                verified INTEGER NOT NULL DEFAULT 0,
                added_at TEXT NOT NULL,
                source TEXT
            )""",
            "CREATE INDEX attestations_predicate_type ON attestations (predicate_type)",
            "CREATE INDEX attestations_step ON attestations (step)",
            "CREATE INDEX attestations_added_at ON attestations (added_at)",
            # One row per (descriptor, digest algorithm) of every subject and material. The
            # row with `main_digest` = 1 carries the descriptor's preferred digest; a material
            # without any digest has one row with digest NULL (reported as a missing link).
            """CREATE TABLE artifacts (
                attestation {ref_type} NOT NULL REFERENCES attestations (id),
                role TEXT NOT NULL,
                position INTEGER NOT NULL,
                digest TEXT,
                main_digest INTEGER NOT NULL,
                name TEXT,
                uri TEXT
            )""",
            "CREATE INDEX artifacts_digest ON artifacts (digest, role)",
            "CREATE INDEX artifacts_attestation ON artifacts (attestation, role)",
            # Who signed: verified identities (key ids, Sigstore identities) or, for
            # attestations stored unverified, the signers they claim (verified = 0).
            """CREATE TABLE signers (
                attestation {ref_type} NOT NULL REFERENCES attestations (id),
                signer TEXT NOT NULL,
                verified INTEGER NOT NULL,
                PRIMARY KEY (attestation, signer, verified)
            )""",
            "CREATE INDEX signers_signer ON signers (signer)",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version


def _applied_versions(cur: Cursor) -> set[int]:
    cur.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )"""
    )
    cur.execute("SELECT version FROM schema_migrations")
    return {int(row[0]) for row in cur.fetchall()}


def applied_versions(db: Database) -> set[int] | None:
    """The migrations the store records (None: it has no schema yet), read without
    taking the write lock."""
    with db.reading() as cur:
        if "schema_migrations" not in db.table_names(cur):
            return None
        cur.execute("SELECT version FROM schema_migrations")
        return {int(row[0]) for row in cur.fetchall()}


def _refuse_newer(db: Database, applied: set[int]) -> None:
    unknown = {v for v in applied if v > LATEST_VERSION}
    if unknown:
        raise InputError(
            f"store {db.location} has schema version {max(unknown)}, newer than this"
            f" mlprov understands ({LATEST_VERSION}); upgrade mlprov"
        )


def migrate(db: Database) -> int:
    """Bring the schema of `db` up to date; returns the schema version.

    A store already up to date is only read, so opening one never waits for a writer.
    """
    known = applied_versions(db)
    if known is not None:
        _refuse_newer(db, known)
        if all(m.version in known for m in MIGRATIONS):
            return LATEST_VERSION
    with db.transaction() as cur:
        db.lock_for_migration(cur)
        applied = _applied_versions(cur)
        _refuse_newer(db, applied)
        for migration in MIGRATIONS:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                cur.execute(
                    statement.format(blob=db.blob_type, id_type=db.id_type, ref_type=db.ref_type)
                )
            cur.execute(
                db.sql(
                    "INSERT INTO schema_migrations (version, description, applied_at)"
                    " VALUES (?, ?, ?)"
                ),
                (migration.version, migration.description, datetime.now(UTC).isoformat()),
            )
    return LATEST_VERSION
