"""The attestation store: exact bytes kept by digest, indexed by every subject and material.

`Store` does not decide trust: callers verify (see `mlprov.store.ingest`) and hand over
`SignerEvidence` saying who verifiably signed, or nothing, in which case the attestation
is stored as unverified with the signers it claims.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from mlprov.errors import InputError
from mlprov.signing.files import SignedAttestation, parse_attestation
from mlprov.statement import Statement
from mlprov.store.backend import Cursor, Database, StoreError, connect
from mlprov.store.lineage import LineageGraph, LineageWalker, chunks
from mlprov.store.record import (
    ArtifactRef,
    AttestationRecord,
    Role,
    attestation_digest,
    claimed_signers,
)
from mlprov.store.schema import migrate

STORE_ENV = "MLPROV_STORE"
#: Attestations written per transaction by `Store.add_many`.
BATCH_SIZE = 500


def default_store_path() -> Path:
    """The per-user store: `<user data dir>/mlprov/store.sqlite3` (platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("mlprov")) / "store.sqlite3"


def resolve_location(url_or_path: str | None) -> str:
    """Where the store is: the argument, else `MLPROV_STORE`, else the per-user default."""
    return url_or_path or os.environ.get(STORE_ENV) or str(default_store_path())


def open_store(url_or_path: str | None = None) -> Store:
    """Open (creating and migrating if needed) the store at a SQLite path or PostgreSQL URL."""
    db = connect(resolve_location(url_or_path))
    try:
        migrate(db)
    except BaseException:
        db.close()
        raise
    return Store(db)


@dataclass(frozen=True)
class SignerEvidence:
    """Who verifiably signed an attestation (key ids, Sigstore identities). Empty: unverified."""

    signers: tuple[str, ...] = ()

    @property
    def verified(self) -> bool:
        return bool(self.signers)


UNVERIFIED = SignerEvidence()


@dataclass(frozen=True)
class AddResult:
    """What adding one attestation did: `added` (new), `present` (no-op), or `verified`
    (was stored unverified; now has verified signers)."""

    digest: str
    status: Literal["added", "present", "verified"]
    verified: bool
    source: str | None
    predicate_type: str
    step: str | None
    subjects: tuple[str, ...]


@dataclass
class StoredAttestation:
    """One attestation as the store holds it: index facts, signers, and (for `get`) bytes."""

    digest: str
    kind: str
    predicate_type: str
    build_type: str | None
    step: str | None
    verified: bool
    added_at: str
    source: str | None
    signers: list[tuple[str, bool]] = field(default_factory=list)
    subjects: list[ArtifactRef] = field(default_factory=list)
    materials: list[ArtifactRef] = field(default_factory=list)
    raw: bytes = b""

    def signed(self) -> SignedAttestation:
        """The attestation parsed again from its exact stored bytes."""
        return parse_attestation(self.raw, source=self.digest)

    def statement(self) -> Statement:
        """The in-toto Statement in its payload."""
        return self.signed().envelope.statement(source=self.digest)

    def to_dict(self) -> dict[str, Any]:
        def refs(items: list[ArtifactRef]) -> list[dict[str, Any]]:
            return [
                {"name": r.name, "uri": r.uri, "digest": r.digest, "digests": list(r.digests)}
                for r in items
            ]

        return {
            "digest": self.digest,
            "kind": self.kind,
            "predicateType": self.predicate_type,
            "buildType": self.build_type,
            "step": self.step,
            "verified": self.verified,
            "addedAt": self.added_at,
            "source": self.source,
            "signers": [{"signer": s, "verified": v} for s, v in self.signers],
            "subjects": refs(self.subjects),
            "materials": refs(self.materials),
        }


def _now() -> str:
    """Timestamps as fixed-width UTC ISO 8601, so text order is time order in both backends."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def time_bound(value: datetime) -> str:
    """A datetime as the store's timestamp text (naive means UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_COLUMNS = "id, digest, kind, predicate_type, build_type, step, verified, added_at, source"


class Store:
    """An open attestation store (SQLite or PostgreSQL); use as a context manager or `close()`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def location(self) -> str:
        """Where the store is (a PostgreSQL URL without its password, or a file path)."""
        return self.db.location

    @property
    def backend(self) -> str:
        return self.db.name

    def close(self) -> None:
        self.db.close()

    def optimize(self) -> bool:
        """Refresh the database's query statistics; worth it after adding thousands.

        Best-effort: False (and nothing changed) when other writers kept the store locked.
        """
        return self.db.optimize()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------

    def add(
        self, attestation: SignedAttestation, *, evidence: SignerEvidence = UNVERIFIED
    ) -> AddResult:
        """Store one attestation (a no-op if its exact bytes are already stored)."""
        return self.add_many([(attestation, evidence)])[0]

    def add_many(
        self,
        items: Iterable[tuple[SignedAttestation, SignerEvidence]],
        *,
        batch_size: int = BATCH_SIZE,
    ) -> list[AddResult]:
        """Store many attestations, `batch_size` per transaction; each batch all or nothing.

        Every attestation is indexed before anything is written, so one that is not an
        in-toto Statement raises InputError and its batch is not written.
        """
        results: list[AddResult] = []
        batch: list[tuple[AttestationRecord, SignerEvidence, tuple[str, ...]]] = []
        for attestation, evidence in items:
            record = AttestationRecord.from_signed(attestation)
            batch.append((record, evidence, claimed_signers(attestation)))
            if len(batch) >= batch_size:
                results.extend(self._write(batch))
                batch = []
        if batch:
            results.extend(self._write(batch))
        return results

    #: `add_many` calls adding at least this many refresh the planner's statistics.
    OPTIMIZE_AFTER = 1000

    def _write(
        self, batch: Sequence[tuple[AttestationRecord, SignerEvidence, tuple[str, ...]]]
    ) -> list[AddResult]:
        sql = self.db.sql
        insert = sql(
            "INSERT INTO attestations (digest, raw, kind, payload_type, predicate_type,"
            " build_type, step, verified, added_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (digest) DO NOTHING RETURNING id"
        )
        existing = sql("SELECT id FROM attestations WHERE digest = ?")
        upgrade = sql("UPDATE attestations SET verified = 1 WHERE id = ? AND verified = 0")
        results = []
        artifact_rows: list[tuple[Any, ...]] = []
        signer_rows: list[tuple[int, str, int]] = []
        added: dict[int, str] = {}  # id -> digest of the attestations new in this batch
        with self.db.transaction() as cur:
            for record, evidence, claims in batch:
                cur.execute(
                    insert,
                    (
                        record.digest,
                        record.raw,
                        record.kind,
                        record.payload_type,
                        record.predicate_type,
                        record.build_type,
                        record.step,
                        int(evidence.verified),
                        _now(),
                        record.source,
                    ),
                )
                status: Literal["added", "present", "verified"] = "added"
                row = cur.fetchone()
                if row is not None:
                    key = int(row[0])
                    added[key] = record.digest
                    artifact_rows.extend(_artifact_rows(key, record))
                    signer_rows.extend((key, c, 0) for c in claims)
                else:
                    status = "present"
                    cur.execute(existing, (record.digest,))
                    key = int(cur.fetchone()[0])
                    if evidence.verified:
                        cur.execute(upgrade, (key,))
                        if cur.rowcount == 1:
                            status = "verified"
                signer_rows.extend((key, s, 1) for s in evidence.signers)
                results.append(
                    AddResult(
                        record.digest,
                        status,
                        evidence.verified,
                        record.source,
                        record.predicate_type,
                        record.step,
                        tuple(s.digest for s in record.subjects if s.digest),
                    )
                )
            if artifact_rows:
                cur.executemany(
                    sql(
                        "INSERT INTO artifacts (attestation, role, position, digest, main_digest,"
                        " name, uri) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    ),
                    artifact_rows,
                )
            if signer_rows:
                cur.executemany(
                    sql(
                        "INSERT INTO signers (attestation, signer, verified) VALUES (?, ?, ?)"
                        " ON CONFLICT DO NOTHING"
                    ),
                    list(dict.fromkeys(signer_rows)),
                )
            self._read_back(cur, added, artifact_rows)
        return results

    def _read_back(
        self, cur: Cursor, added: dict[int, str], artifact_rows: list[tuple[Any, ...]]
    ) -> None:
        """Before committing, read what was written back through the indexes lineage and
        `get` use: in a damaged store a write can seem to succeed and not be found."""
        expected: dict[int, int] = {}
        for row in artifact_rows:
            expected[row[0]] = expected.get(row[0], 0) + 1
        for part in chunks(list(added)):
            marks = ", ".join("?" * len(part))
            cur.execute(
                self.db.sql(f"SELECT id, digest, raw FROM attestations WHERE id IN ({marks})"),
                tuple(part),
            )
            found = {int(key): (digest, bytes(raw)) for key, digest, raw in cur.fetchall()}
            cur.execute(
                self.db.sql(
                    f"SELECT attestation, COUNT(*) FROM artifacts WHERE attestation IN ({marks})"
                    " GROUP BY attestation"
                ),
                tuple(part),
            )
            indexed = {int(key): int(count) for key, count in cur.fetchall()}
            for key in part:
                digest, raw = found.get(key, ("", b""))
                if digest != added[key] or attestation_digest(raw) != digest:
                    raise StoreError(
                        f"store {self.location} is damaged: attestation {added[key]} did not"
                        f" read back as written; nothing was added; run `mlprov store check"
                        f" --store {self.location}`"
                    )
                if indexed.get(key, 0) != expected.get(key, 0):
                    raise StoreError(
                        f"store {self.location} is damaged: the index rows of {added[key]}"
                        f" did not read back as written; nothing was added; run `mlprov store"
                        f" check --store {self.location}`"
                    )

    # -- reading -------------------------------------------------------------------------

    def count(self) -> int:
        """How many attestations the store holds."""
        with self.db.reading() as cur:
            cur.execute("SELECT COUNT(*) FROM attestations")
            return int(cur.fetchone()[0])

    def get(self, digest: str) -> StoredAttestation | None:
        """The attestation whose exact bytes have this digest (`sha256:<hex>`), or None."""
        with self.db.reading() as cur:
            cur.execute(
                self.db.sql(f"SELECT {_COLUMNS}, raw FROM attestations WHERE digest = ?"),
                (digest,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            key, found = _stored(row[:9])
            found.raw = bytes(row[9])
            self._fill(cur, {key: found}, with_materials=True)
        return found

    def naming(self, digest: str, *, role: str | None = None) -> list[str]:
        """Digests of the attestations naming an artifact digest as subject or material."""
        query = (
            "SELECT DISTINCT a.digest FROM artifacts t JOIN attestations a ON a.id = t.attestation"
            " WHERE t.digest = ?"
        )
        params: list[Any] = [digest]
        if role:
            query += " AND t.role = ?"
            params.append(role)
        with self.db.reading() as cur:
            cur.execute(self.db.sql(query + " ORDER BY a.digest"), tuple(params))
            return [row[0] for row in cur.fetchall()]

    def ls(
        self,
        *,
        predicate_type: str | None = None,
        step: str | None = None,
        build_type: str | None = None,
        signer: str | None = None,
        verified: bool | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> list[StoredAttestation]:
        """Attestations matching every filter given, oldest first (no bytes loaded).

        `signer` matches a verified or claimed signer exactly (with `verified=True`, only
        a signer whose signature verified); `since`/`until` bound the time each was added
        to the store; `subject` is an artifact digest.
        """
        where: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("predicate_type", predicate_type),
            ("step", step),
            ("build_type", build_type),
        ):
            if value is not None:
                where.append(f"a.{column} = ?")
                params.append(value)
        if verified is not None:
            where.append("a.verified = ?")
            params.append(int(verified))
        if since is not None:
            where.append("a.added_at >= ?")
            params.append(time_bound(since))
        if until is not None:
            where.append("a.added_at <= ?")
            params.append(time_bound(until))
        if signer is not None:
            # Asked for verified ones, a signer matches only where it verified: the signers
            # an attestation claims (keyid hints) are anyone's to write.
            mine = " AND s.verified = 1" if verified else ""
            where.append(
                "EXISTS (SELECT 1 FROM signers s WHERE s.attestation = a.id AND s.signer = ?"
                f"{mine})"
            )
            params.append(signer)
        if subject is not None:
            where.append(
                "EXISTS (SELECT 1 FROM artifacts t WHERE t.attestation = a.id"
                " AND t.role = 'subject' AND t.digest = ?)"
            )
            params.append(subject)
        query = f"SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))} FROM attestations a"
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY a.added_at, a.digest"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.db.reading() as cur:
            cur.execute(self.db.sql(query), tuple(params))
            found = dict(_stored(row) for row in cur.fetchall())
            self._fill(cur, found, with_materials=True)
        return list(found.values())

    def _fill(
        self, cur: Cursor, by_key: dict[int, StoredAttestation], *, with_materials: bool
    ) -> None:
        """Attach signers and subjects (and materials) to attestations read without them."""
        for part in chunks(list(by_key)):
            marks = ", ".join("?" * len(part))
            cur.execute(
                self.db.sql(
                    f"SELECT attestation, signer, verified FROM signers WHERE attestation IN"
                    f" ({marks}) ORDER BY verified DESC, signer"
                ),
                tuple(part),
            )
            for att, signer, ok in cur.fetchall():
                by_key[att].signers.append((signer, bool(ok)))
            roles = "" if with_materials else " AND role = 'subject'"
            cur.execute(
                self.db.sql(
                    "SELECT attestation, role, position, digest, main_digest, name, uri"
                    f" FROM artifacts WHERE attestation IN ({marks}){roles}"
                    " ORDER BY attestation, role, position, main_digest DESC"
                ),
                tuple(part),
            )
            grouped: dict[tuple[int, str, int], list[Any]] = {}
            for att, role, position, digest, _main, name, uri in cur.fetchall():
                entry = grouped.setdefault((att, role, position), [[], name, uri])
                if digest:
                    entry[0].append(digest)
            for (att, role, position), (digests, name, uri) in grouped.items():
                kind: Role = "subject" if role == "subject" else "material"
                ref = ArtifactRef(kind, position, tuple(digests), name, uri)
                target = by_key[att].subjects if role == "subject" else by_key[att].materials
                target.append(ref)

    def iter_raw(self, digests: Iterable[str] | None = None) -> Iterator[tuple[str, bytes]]:
        """(digest, exact bytes) of the given attestations, or of all, in digest order;
        rows are fetched in batches, so memory stays bounded for a store of any size."""
        if digests is not None:
            wanted = sorted(set(digests))
            for part in chunks(wanted):
                with self.db.reading() as cur:
                    marks = ", ".join("?" * len(part))
                    cur.execute(
                        self.db.sql(
                            f"SELECT digest, raw FROM attestations WHERE digest IN ({marks})"
                            " ORDER BY digest"
                        ),
                        tuple(part),
                    )
                    for digest, raw in cur.fetchall():
                        yield digest, bytes(raw)
            return
        with self.db.streaming_cursor() as cur:
            cur.execute("SELECT digest, raw FROM attestations ORDER BY digest")
            while True:
                rows = cur.fetchmany(500)
                if not rows:
                    break
                for digest, raw in rows:
                    yield digest, bytes(raw)

    # -- lineage -------------------------------------------------------------------------

    def lineage_up(
        self, digest: str, *, max_depth: int | None = None, max_nodes: int | None = None
    ) -> LineageGraph:
        """Everything an artifact was built from, transitively: the attestations whose
        subject it is, their materials, and so on up to raw sources.

        `max_depth` stops after that many steps; `max_nodes` reports at most that many
        artifacts (the root included, nearest first); the graph records what each cut.
        """
        return LineageWalker(self.db).walk(
            digest, "up", max_depth=_depth(max_depth), max_nodes=_nodes(max_nodes)
        )

    def lineage_down(
        self, digest: str, *, max_depth: int | None = None, max_nodes: int | None = None
    ) -> LineageGraph:
        """Everything built from an artifact, transitively: the impact of a bad input."""
        return LineageWalker(self.db).walk(
            digest, "down", max_depth=_depth(max_depth), max_nodes=_nodes(max_nodes)
        )


def _depth(max_depth: int | None) -> int | None:
    if max_depth is not None and max_depth < 0:
        raise InputError("max depth must be 0 or more")
    return max_depth


def _nodes(max_nodes: int | None) -> int | None:
    if max_nodes is not None and max_nodes < 1:
        raise InputError("max nodes must be 1 or more")
    return max_nodes


def _stored(row: Sequence[Any]) -> tuple[int, StoredAttestation]:
    key, digest, kind, ptype, btype, step, verified, added_at, source = row
    return int(key), StoredAttestation(
        digest, kind, ptype, btype, step, bool(verified), str(added_at), source
    )


def _artifact_rows(key: int, record: AttestationRecord) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = []
    for ref in (*record.subjects, *record.materials):
        if not ref.digests:
            rows.append((key, ref.role, ref.position, None, 1, ref.name, ref.uri))
            continue
        for i, digest in enumerate(ref.digests):
            rows.append((key, ref.role, ref.position, digest, int(i == 0), ref.name, ref.uri))
    return rows
