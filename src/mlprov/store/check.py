"""`store check`: is the store intact? Its pages, schema, bytes and index, one finding each.

Read-only: a check never creates, migrates or repairs a store (it does remove the temp
files killed exports left, see `mlprov.store.exports`). Each finding says what was
checked and what is wrong; the store is damaged when any finding is not ok.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlprov.errors import InputError
from mlprov.store.backend import Cursor, Database, StoreError, connect, is_postgres_url
from mlprov.store.exports import sweep
from mlprov.store.record import attestation_digest
from mlprov.store.schema import LATEST_VERSION, MIGRATIONS

#: Lines of a failed integrity check reported (SQLite can list thousands).
MAX_PROBLEMS = 20
#: Attestations whose bytes are re-hashed per fetch.
_BATCH = 500


@dataclass(frozen=True)
class Finding:
    """One thing checked: what, whether it holds, and the detail (what is wrong)."""

    check: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "detail": self.detail}


@dataclass
class CheckReport:
    """What `check_store` found."""

    location: str
    backend: str
    findings: list[Finding] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    schema_version: int | None = None
    attestations: int | None = None

    @property
    def damaged(self) -> bool:
        return any(not f.ok for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.location,
            "backend": self.backend,
            "damaged": self.damaged,
            "schemaVersion": self.schema_version,
            "attestations": self.attestations,
            "findings": [f.to_dict() for f in self.findings],
            "removedTempFiles": self.removed,
        }


def expected_schema() -> tuple[dict[str, set[str]], dict[str, str]]:
    """(table -> columns, index -> table) the migrations create."""
    tables: dict[str, set[str]] = {"schema_migrations": {"version", "description", "applied_at"}}
    indexes: dict[str, str] = {}
    for migration in MIGRATIONS:
        for statement in migration.statements:
            created = re.match(r"\s*CREATE TABLE (\w+) \((.*)\)\s*\Z", statement, re.S)
            if created:
                lines = [line.strip() for line in created.group(2).splitlines() if line.strip()]
                tables[created.group(1)] = {
                    line.split()[0] for line in lines if not line.startswith("PRIMARY KEY")
                }
            index = re.match(r"\s*CREATE INDEX (\w+) ON (\w+)", statement)
            if index:
                indexes[index.group(1)] = index.group(2)
    return tables, indexes


def check_store(location: str, *, quick: bool = False) -> CheckReport:
    """Check the store at `location` (a SQLite path or PostgreSQL URL) without changing it."""
    if not is_postgres_url(location):
        path = Path(location.removeprefix("sqlite://")).expanduser()
        if not path.exists():
            raise InputError(f"no store at {path}")
        if not path.is_file():
            raise InputError(f"store {path} is not a file")
    report = CheckReport(location, "postgresql" if is_postgres_url(location) else "sqlite")
    report.removed = [str(p) for p in sweep(location=location)]
    try:
        db = connect(location)
    except StoreError as exc:
        report.findings.append(Finding("open", False, exc.detail))
        return report
    report.location = db.location
    try:
        _run_checks(db, report, quick=quick)
    finally:
        db.close()
    return report


def _run_checks(db: Database, report: CheckReport, *, quick: bool) -> None:
    def step(name: str, check: Callable[[Cursor], list[Finding]]) -> None:
        try:
            with db.reading() as cur:
                report.findings.extend(check(cur))
        except StoreError as exc:
            report.findings.append(Finding(name, False, exc.detail))

    step("pages", lambda cur: _pages(db, cur, quick=quick))
    tables: set[str] = set()

    def schema(cur: Cursor) -> list[Finding]:
        found = _schema(db, cur, report)
        tables.update(db.table_names(cur))
        return found

    step("schema", schema)
    if {"attestations", "artifacts", "signers"} <= tables:
        step("bytes", lambda cur: _bytes(db, cur, report))
        step("index", lambda cur: _index(db, cur))


def _pages(db: Database, cur: Cursor, *, quick: bool) -> list[Finding]:
    if db.name != "sqlite":
        cur.execute("SHOW data_checksums")
        checksums = str(cur.fetchone()[0])
        return [
            Finding(
                "pages",
                True,
                f"left to the PostgreSQL server (data_checksums = {checksums})",
            )
        ]
    pragma = "quick_check" if quick else "integrity_check"
    cur.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})")
    rows = [str(row[0]) for row in cur.fetchall()]
    if rows == ["ok"]:
        return [Finding("pages", True, f"PRAGMA {pragma} found no problem")]
    return [Finding("pages", False, f"PRAGMA {pragma}: {line}") for line in rows]


def _schema(db: Database, cur: Cursor, report: CheckReport) -> list[Finding]:
    expected_tables, expected_indexes = expected_schema()
    present = db.table_names(cur)
    found: list[Finding] = []
    missing = sorted(set(expected_tables) - present)
    if missing:
        found.append(Finding("tables", False, "missing table(s): " + ", ".join(missing)))
    for table in sorted(set(expected_tables) & present):
        cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
        columns = {str(d[0]) for d in cur.description}
        lacking = sorted(expected_tables[table] - columns)
        if lacking:
            found.append(
                Finding("tables", False, f"table {table} lacks column(s): {', '.join(lacking)}")
            )
    if not found:
        found.append(Finding("tables", True, ", ".join(sorted(expected_tables))))
    indexes = db.index_names(cur)
    lost = sorted(set(expected_indexes) - indexes)
    if lost:
        found.append(Finding("indexes", False, "missing index(es): " + ", ".join(lost)))
    else:
        found.append(Finding("indexes", True, f"{len(expected_indexes)} present"))
    if "schema_migrations" in present:
        cur.execute("SELECT version FROM schema_migrations")
        versions = {int(row[0]) for row in cur.fetchall()}
        report.schema_version = max(versions, default=None)
        wanted = {m.version for m in MIGRATIONS}
        if versions - wanted:
            found.append(
                Finding(
                    "schema version",
                    False,
                    f"version {max(versions)} is newer than this mlprov knows ({LATEST_VERSION});"
                    " check it with a newer mlprov",
                )
            )
        elif wanted - versions:
            lacking_versions = ", ".join(str(v) for v in sorted(wanted - versions))
            found.append(
                Finding("schema version", False, f"migration(s) {lacking_versions} not recorded")
            )
        else:
            found.append(Finding("schema version", True, str(LATEST_VERSION)))
    return found


def _bytes(db: Database, cur: Cursor, report: CheckReport) -> list[Finding]:
    """Every attestation's bytes still hash to the digest it is stored under."""
    wrong: list[str] = []
    count = 0
    last = -1
    query = db.sql(
        f"SELECT id, digest, raw FROM attestations WHERE id > ? ORDER BY id LIMIT {_BATCH}"
    )
    while True:
        cur.execute(query, (last,))
        rows = cur.fetchall()
        if not rows:
            break
        for key, digest, raw in rows:
            count += 1
            last = int(key)
            if attestation_digest(bytes(raw)) != digest:
                wrong.append(str(digest))
    report.attestations = count
    if wrong:
        shown = ", ".join(wrong[:5]) + (f" and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        return [
            Finding(
                "bytes", False, f"{len(wrong)} attestation(s) do not hash to their digest: {shown}"
            )
        ]
    return [Finding("bytes", True, f"{count} attestation(s) hash to their digests")]


def _index(db: Database, cur: Cursor) -> list[Finding]:
    """Index rows belong to a stored attestation, and every attestation has a subject."""
    found: list[Finding] = []
    for table in ("artifacts", "signers"):
        cur.execute(
            f"SELECT COUNT(*) FROM {table} t WHERE NOT EXISTS"
            " (SELECT 1 FROM attestations a WHERE a.id = t.attestation)"
        )
        orphans = int(cur.fetchone()[0])
        if orphans:
            found.append(
                Finding("index", False, f"{orphans} {table} row(s) name no stored attestation")
            )
    cur.execute(
        "SELECT COUNT(*) FROM attestations a WHERE NOT EXISTS (SELECT 1 FROM artifacts t"
        " WHERE t.attestation = a.id AND t.role = 'subject')"
    )
    bare = int(cur.fetchone()[0])
    if bare:
        found.append(Finding("index", False, f"{bare} attestation(s) have no indexed subject"))
    if not found:
        found.append(Finding("index", True, "every index row names a stored attestation"))
    return found
