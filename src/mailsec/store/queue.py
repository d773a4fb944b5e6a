"""The durable mail queue: one row per accepted message and account. A row is written (and fsync'd) before SMTP
answers 250, claimed by one worker at a time, and finished only when the message is stored and dispatched, so a
crash anywhere in between leaves a row that the next worker resumes.

With SQLite the queue lives in a database file of its own (`<name>-queue.db` beside the main one, WAL): SQLite has
one writer per file, and the receive commit must not wait behind the message store's long write transactions (its
busy handler sleeps in steps of up to 100 ms). PostgreSQL has row locks; there the queue stays in the main database."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Index,
    MetaData,
    Table,
    and_,
    bindparam,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import OperationalError

from mailsec.store.db import create_db_engine, is_sqlite
from mailsec.store.schema import policies, queue
from mailsec.store.settings_ids import next_settings_id

# States: `queued` (to scan, store and dispatch), `deferred` (delivery to retry), `done`, `failed` (gave up).
OPEN_STATES = ("queued", "deferred")
STORED_STATES = ("done", "deferred")


@dataclass
class QueueItem:
    id: int
    postfix_id: str
    account_id: str
    raw_sha256: str
    envelope: dict[str, Any]
    state: str
    attempts: int
    next_attempt_us: int
    created_us: int
    data: dict[str, Any] = field(default_factory=dict)
    raw: bytes | None = field(default=None, repr=False)  # the accepted bytes, until the blob is written


@dataclass(frozen=True)
class NewItem:
    postfix_id: str
    account_id: str
    raw_sha256: str
    envelope: dict[str, Any]
    raw: bytes | None = None  # committed with the row: durable in the same fsync


@dataclass(frozen=True)
class Finish:
    """What `finish` writes for one row: its new state; claim released."""

    row_id: int
    state: str
    attempts: int | None = None
    next_attempt_us: int | None = None
    data: dict[str, Any] | None = None

    def values(self, now: int) -> dict[str, Any]:
        values: dict[str, Any] = {"state": self.state, "claimed_by": None, "claimed_us": None, "updated_us": now}
        if self.attempts is not None:
            values["attempts"] = self.attempts
        if self.next_attempt_us is not None:
            values["next_attempt_us"] = self.next_attempt_us
        if self.data is not None:
            values["data_json"] = json.dumps(self.data)
        return values


_FINISH: dict[tuple[str, ...], Any] = {}
# Claim statements, built once (parameters: b_now, b_stale, b_limit, b_worker; b_ids on PostgreSQL).
_DUE = and_(
    queue.c.state.in_(OPEN_STATES),
    queue.c.next_attempt_us <= bindparam("b_now"),
    or_(queue.c.claimed_by.is_(None), queue.c.claimed_us < bindparam("b_stale")),
)
_CANDIDATES = select(queue.c.id).where(_DUE).order_by(queue.c.next_attempt_us, queue.c.id).limit(bindparam("b_limit"))
_ANY_DUE = select(queue.c.id).where(_DUE).limit(1)
_CANDIDATES_LOCKED = _CANDIDATES.with_for_update(skip_locked=True)
_CLAIM_SQLITE = (
    update(queue)
    .where(queue.c.id.in_(_CANDIDATES.scalar_subquery()), _DUE)
    .values(claimed_by=bindparam("b_worker"), claimed_us=bindparam("b_now"))
    .returning(*queue.columns)
)
_CLAIM_IDS = (
    update(queue)
    .where(queue.c.id.in_(bindparam("b_ids", expanding=True)), _DUE)
    .values(claimed_by=bindparam("b_worker"), claimed_us=bindparam("b_now"))
    .returning(*queue.columns)
)  # finish statements by the columns they set, built once


def now_us() -> int:
    return time.time_ns() // 1000


def _item(r: Any) -> QueueItem:
    return QueueItem(
        id=int(r.id),
        postfix_id=r.postfix_id,
        account_id=r.account_id,
        raw_sha256=r.raw_sha256,
        envelope=json.loads(r.envelope_json or "{}"),
        state=r.state,
        attempts=int(r.attempts or 0),
        next_attempt_us=int(r.next_attempt_us),
        created_us=int(r.created_us),
        data=json.loads(r.data_json or "{}"),
        raw=getattr(r, "raw", None),
    )


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_queue_engines: dict[str, Engine] = {}
_queue_engines_lock = threading.Lock()


def _standalone_queue_table() -> Table:
    """The queue table for a file of its own: the same columns, without the foreign key to accounts."""
    md = MetaData()
    cols = [
        Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, unique=c.unique) for c in queue.columns
    ]
    table = Table("queue", md, *cols)
    Index("ix_queue_state_next", table.c.state, table.c.next_attempt_us)
    return table


def queue_engine(engine: Engine) -> Engine:
    """The engine that holds the queue for this database: a separate SQLite file, or the engine itself."""
    path = engine.url.database or ""
    if not is_sqlite(engine) or not path or path == ":memory:":
        return engine
    with _queue_engines_lock:
        found = _queue_engines.get(path)
        if found is not None:
            return found
        stem = path[:-3] if path.endswith(".db") else path
        qengine = create_db_engine(f"sqlite:///{stem}-queue.db")
        table = _standalone_queue_table()
        try:
            table.metadata.create_all(qengine)
        except OperationalError:  # another process created it between the check and the CREATE
            table.metadata.create_all(qengine)
        have = {c["name"] for c in inspect(qengine).get_columns("queue")}
        for column in table.columns:
            if column.name not in have and column.nullable:  # a queue file from before a newer column
                with qengine.begin() as conn, contextlib.suppress(OperationalError):
                    ddl = column.type.compile(dialect=qengine.dialect)
                    conn.exec_driver_sql(f"ALTER TABLE queue ADD COLUMN {column.name} {ddl}")
        _adopt_rows(engine, qengine, table)
        _queue_engines[path] = qengine
        return qengine


def dispose_queue_engine(engine: Engine) -> None:
    """Close the queue file's connections along with the main engine (Services.close)."""
    path = engine.url.database or ""
    with _queue_engines_lock:
        found = _queue_engines.pop(path, None) if is_sqlite(engine) else None
    if found is not None and found is not engine:
        found.dispose()


def _adopt_rows(main: Engine, qengine: Engine, table: Table) -> None:
    """Rows an older version left in the main database's queue table move to the queue file (idempotent: a row is
    copied unless its postfix_id is there already, and deleted from the main table only after that commit)."""
    if not inspect(main).has_table("queue"):
        return
    with main.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(select(queue))]
    if not rows:
        return
    with qengine.begin() as qconn:
        qconn.execute(insert(table).prefix_with("OR IGNORE"), [{k: v for k, v in r.items() if k != "id"} for r in rows])
    with main.begin() as conn:
        conn.execute(queue.delete().where(queue.c.id.in_([r["id"] for r in rows])))


class QueueRepo:
    def __init__(self, engine: Engine) -> None:
        self.main_engine = engine  # policies live here
        self.engine = queue_engine(engine)

    def enqueue(self, items: Iterable[NewItem]) -> None:
        """Insert rows in one transaction that is on disk when this returns (SQLite: synchronous=FULL for it)."""
        now = now_us()
        rows = [
            {
                "postfix_id": it.postfix_id,
                "account_id": it.account_id,
                "raw_sha256": it.raw_sha256,
                "envelope_json": json.dumps(it.envelope),
                "state": "queued",
                "attempts": 0,
                "next_attempt_us": now,
                "created_us": now,
                "updated_us": now,
                "data_json": "{}",
                "raw": it.raw,
            }
            for it in items
        ]
        if not rows:
            return
        with self.engine.connect() as conn:
            sqlite = is_sqlite(self.engine)
            if sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()
            try:
                with conn.begin():
                    conn.execute(insert(queue), rows)
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                    conn.commit()

    def get(self, postfix_id: str) -> QueueItem | None:
        with self.engine.connect() as conn:
            r = conn.execute(select(queue).where(queue.c.postfix_id == postfix_id)).first()
        return _item(r) if r else None

    def release_dead_claims(self) -> int:
        """Claims held by processes of this host that no longer run are freed at once (a restart after a crash)."""
        host = socket.gethostname() + ":"
        freed = 0
        with self.engine.begin() as conn:
            rows = conn.execute(select(queue.c.id, queue.c.claimed_by).where(queue.c.claimed_by.is_not(None))).all()
            for r in rows:
                owner = str(r.claimed_by)
                if not owner.startswith(host):
                    continue
                pid = owner[len(host) :].split(":", 1)[0]
                if pid.isascii() and pid.isdigit() and not _pid_alive(int(pid)):
                    conn.execute(update(queue).where(queue.c.id == r.id).values(claimed_by=None, claimed_us=None))
                    freed += 1
        return freed

    def claim(self, worker: str, limit: int, claim_timeout_us: int) -> list[QueueItem]:
        """Up to `limit` due rows, each claimed by exactly one worker, with one write statement (one commit for the
        whole batch): SQLite takes its write lock for the UPDATE itself, so two workers never claim
        the same row; PostgreSQL locks the candidates with FOR UPDATE SKIP LOCKED first."""
        now = now_us()
        params = {"b_now": now, "b_stale": now - claim_timeout_us, "b_limit": limit, "b_worker": worker}
        with self.engine.begin() as conn:
            if is_sqlite(self.engine):
                # A read first: an idle worker woken for a row another one took must not take the write lock
                # (the receive commit needs it for its 250s); the UPDATE then decides races.
                if conn.execute(_ANY_DUE, params).first() is None:
                    return []
                rows = conn.execute(_CLAIM_SQLITE, params).all()
            else:
                ids = [int(r.id) for r in conn.execute(_CANDIDATES_LOCKED, params).all()]
                rows = conn.execute(_CLAIM_IDS, {**params, "b_ids": ids}).all() if ids else []
        items = [_item(r) for r in rows]
        items.sort(key=lambda it: (it.next_attempt_us, it.id))
        return items

    def finish(
        self,
        row_id: int,
        state: str,
        *,
        attempts: int | None = None,
        next_attempt_us: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        self.finish_many([Finish(row_id, state, attempts, next_attempt_us, data)])

    def finish_many(self, finishes: Iterable[Finish]) -> None:
        """Several `finish`es in one transaction (a worker finishes its claimed batch with one commit)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        now = now_us()
        for f in finishes:
            values = f.values(now)
            groups.setdefault(tuple(values), []).append({"b_id": f.row_id, **{f"b_{k}": v for k, v in values.items()}})
        if not groups:
            return
        with self.engine.begin() as conn:
            for names, params in groups.items():
                stmt = _FINISH.get(names)
                if stmt is None:
                    stmt = (
                        update(queue)
                        .where(queue.c.id == bindparam("b_id"))
                        .values({n: bindparam(f"b_{n}") for n in names})
                    )
                    _FINISH[names] = stmt
                conn.execute(stmt, params)

    def drop_synced_raw(self, synced_before_us: int) -> int:
        """Forget the bytes of rows whose message was stored before the last filesystem sync: its blob is on disk
        now, so the row no longer needs them. Until then a power cut cannot take the only durable copy."""
        stored_before = and_(queue.c.state.in_(STORED_STATES), queue.c.updated_us < synced_before_us)
        with self.engine.begin() as conn:
            result = conn.execute(update(queue).where(queue.c.raw.is_not(None), stored_before).values(raw=None))
        return int(result.rowcount or 0)

    def schedule_retry(
        self,
        postfix_id: str,
        account_id: str,
        raw_sha256: str,
        envelope: dict[str, Any],
        data: dict[str, Any],
        delay_us: int,
    ) -> None:
        """Make (or reopen) the row of a stored message so the worker retries its delivery later (release)."""
        now = now_us()
        with self.engine.begin() as conn:
            existing = conn.execute(
                select(queue.c.id, queue.c.data_json).where(queue.c.postfix_id == postfix_id)
            ).first()
            if existing is None:
                conn.execute(
                    insert(queue).values(
                        postfix_id=postfix_id,
                        account_id=account_id,
                        raw_sha256=raw_sha256,
                        envelope_json=json.dumps(envelope),
                        state="deferred",
                        attempts=0,
                        next_attempt_us=now + delay_us,
                        created_us=now,
                        updated_us=now,
                        data_json=json.dumps(data),
                    )
                )
            else:
                merged = {**json.loads(existing.data_json or "{}"), **data}
                conn.execute(
                    update(queue)
                    .where(queue.c.id == existing.id)
                    .values(
                        state="deferred",
                        attempts=0,
                        next_attempt_us=now + delay_us,
                        created_us=now,
                        updated_us=now,
                        data_json=json.dumps(merged),
                    )
                )

    def delete_account(self, account_id: str) -> int:
        """Remove every queue row of an account (account deletion): the SQLite queue file has no foreign key."""
        with self.engine.begin() as conn:
            result = conn.execute(queue.delete().where(queue.c.account_id == account_id))
        return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT state, COUNT(*) AS n FROM queue GROUP BY state")).all()
        return {str(r.state): int(r.n) for r in rows}

    def depth(self) -> tuple[dict[str, int], float | None]:
        """Rows not done, by state, and the age in seconds of the oldest still to be worked on (not failed; None
        when there is none)."""
        states = (*OPEN_STATES, "failed")  # by the state index: done rows are kept and would be scanned
        query = (
            select(queue.c.state, func.count().label("n"), func.min(queue.c.created_us).label("oldest"))
            .where(queue.c.state.in_(states))
            .group_by(queue.c.state)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        oldest = min((int(r.oldest) for r in rows if r.state != "failed"), default=None)
        return {str(r.state): int(r.n) for r in rows}, None if oldest is None else (now_us() - oldest) / 1e6

    def quarantine_dispositions(self, account_id: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """The account's quarantine policy (policies row of kind `quarantine`: {"dispositions": [...]}) or default."""
        with self.main_engine.connect() as conn:
            r = conn.execute(
                select(policies.c.data_json)
                .where(policies.c.account_id == account_id, policies.c.kind == "quarantine")
                .order_by(policies.c.id.desc())
                .limit(1)
            ).first()
        if r is None:
            return tuple(d.upper() for d in default)
        data = json.loads(r.data_json or "{}")
        return tuple(str(d).upper() for d in data.get("dispositions", default))

    def set_quarantine_dispositions(self, account_id: str, dispositions: Iterable[str]) -> None:
        now = now_us()
        with self.main_engine.begin() as conn:
            self._replace_policy(conn, account_id, {"dispositions": [d.upper() for d in dispositions]}, now)

    @staticmethod
    def _replace_policy(conn: Connection, account_id: str, data: dict[str, Any], now: int) -> None:
        conn.execute(policies.delete().where(policies.c.account_id == account_id, policies.c.kind == "quarantine"))
        conn.execute(
            insert(policies).values(
                id=next_settings_id(conn),
                account_id=account_id,
                kind="quarantine",
                data_json=json.dumps(data),
                created_us=now,
                updated_us=now,
            )
        )
