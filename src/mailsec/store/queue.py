"""The durable mail queue: one row per accepted message and account. A row is written (and fsync'd) before SMTP
answers 250, claimed by one worker at a time, and finished only when the message is stored and dispatched, so a
crash anywhere in between leaves a row that the next worker resumes."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, or_, select, text, update

from mailsec.store.db import is_sqlite
from mailsec.store.schema import policies, queue

# States: `queued` (to scan, store and dispatch), `deferred` (delivery to retry), `done`, `failed` (gave up).
OPEN_STATES = ("queued", "deferred")


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


@dataclass(frozen=True)
class NewItem:
    postfix_id: str
    account_id: str
    raw_sha256: str
    envelope: dict[str, Any]


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


class QueueRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

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
                if pid.isdigit() and not _pid_alive(int(pid)):
                    conn.execute(update(queue).where(queue.c.id == r.id).values(claimed_by=None, claimed_us=None))
                    freed += 1
        return freed

    def claim(self, worker: str, limit: int, claim_timeout_us: int) -> list[QueueItem]:
        """Up to `limit` due rows, each claimed by exactly one worker (a conditional UPDATE decides races)."""
        now = now_us()
        stale = now - claim_timeout_us
        free = or_(queue.c.claimed_by.is_(None), queue.c.claimed_us < stale)
        due = and_(queue.c.state.in_(OPEN_STATES), queue.c.next_attempt_us <= now, free)
        claimed: list[QueueItem] = []
        with self.engine.begin() as conn:
            query = select(queue.c.id).where(due).order_by(queue.c.next_attempt_us, queue.c.id).limit(limit)
            if not is_sqlite(self.engine):
                query = query.with_for_update(skip_locked=True)
            ids = [int(r.id) for r in conn.execute(query).all()]
            for row_id in ids:
                result = conn.execute(
                    update(queue).where(queue.c.id == row_id, due).values(claimed_by=worker, claimed_us=now)
                )
                if result.rowcount == 1:
                    r = conn.execute(select(queue).where(queue.c.id == row_id)).first()
                    claimed.append(_item(r))
        return claimed

    def finish(
        self,
        row_id: int,
        state: str,
        *,
        attempts: int | None = None,
        next_attempt_us: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state, "claimed_by": None, "claimed_us": None, "updated_us": now_us()}
        if attempts is not None:
            values["attempts"] = attempts
        if next_attempt_us is not None:
            values["next_attempt_us"] = next_attempt_us
        if data is not None:
            values["data_json"] = json.dumps(data)
        with self.engine.begin() as conn:
            conn.execute(update(queue).where(queue.c.id == row_id).values(**values))

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

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT state, COUNT(*) AS n FROM queue GROUP BY state")).all()
        return {str(r.state): int(r.n) for r in rows}

    def quarantine_dispositions(self, account_id: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """The account's quarantine policy (policies row of kind `quarantine`: {"dispositions": [...]}) or default."""
        with self.engine.connect() as conn:
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
        with self.engine.begin() as conn:
            self._replace_policy(conn, account_id, {"dispositions": [d.upper() for d in dispositions]}, now)

    @staticmethod
    def _replace_policy(conn: Connection, account_id: str, data: dict[str, Any], now: int) -> None:
        conn.execute(policies.delete().where(policies.c.account_id == account_id, policies.c.kind == "quarantine"))
        conn.execute(
            insert(policies).values(
                account_id=account_id, kind="quarantine", data_json=json.dumps(data), created_us=now, updated_us=now
            )
        )
