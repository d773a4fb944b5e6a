"""Bulk jobs (MOVE or RELEASE over a search), durable: the job row, and one row per message it found, unique per
(job, message) so a message is acted on at most once per job. A job is claimed by one runner at a time; a runner
that dies leaves a claim that expires, and the next one resumes where the rows say."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update

from mailsec.store.records import from_us
from mailsec.store.schema import bulk_job_messages, bulk_jobs

PENDING, DISCOVERING, PROCESSING = "PENDING", "DISCOVERING", "PROCESSING"
COMPLETED, FAILED, CANCELLED = "COMPLETED", "FAILED", "CANCELLED"
ACTIVE = (PENDING, DISCOVERING, PROCESSING)
# per message
M_PENDING, M_SUCCESSFUL, M_FAILED, M_SKIPPED, M_CANCELLED = "PENDING", "COMPLETED", "FAILED", "SKIPPED", "CANCELLED"


def now_us() -> int:
    return int(time.time() * 1_000_000)


@dataclass(frozen=True)
class BulkJob:
    id: str
    account_id: str
    action: str
    params: dict[str, Any]
    comment: str | None
    requested_by: str | None
    status: str
    status_message: str | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class JobMessage:
    row_id: int
    message_pk: int
    status: str
    outcome: dict[str, Any]
    updated_at: datetime


def _opt(us: int | None) -> datetime | None:
    return from_us(us) if us else None


class BulkJobRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self, account_id: str, action: str, params: dict[str, Any], comment: str | None, requested_by: str | None
    ) -> str:
        job_id, now = str(uuid.uuid4()), now_us()
        with self.engine.begin() as conn:
            conn.execute(
                insert(bulk_jobs).values(
                    id=job_id, account_id=account_id, action=action, params_json=json.dumps(params, sort_keys=True),
                    comment=comment, requested_by=requested_by, status=PENDING, cancel_requested=False,
                    created_us=now, updated_us=now,
                )
            )  # fmt: skip
        return job_id

    def _job(self, conn: Any, row: Any) -> BulkJob:
        m = row._mapping
        counts = dict(
            conn.execute(
                select(bulk_job_messages.c.status, func.count())
                .where(bulk_job_messages.c.job_id == m["id"])
                .group_by(bulk_job_messages.c.status)
            ).all()
        )
        return BulkJob(
            m["id"], m["account_id"], m["action"], json.loads(m["params_json"]), m["comment"], m["requested_by"],
            m["status"], m["status_message"], bool(m["cancel_requested"]), from_us(m["created_us"]),
            _opt(m["started_us"]), _opt(m["completed_us"]), {str(k): int(v) for k, v in counts.items()},
        )  # fmt: skip

    def get(self, account_id: str, job_id: str) -> BulkJob | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(bulk_jobs).where(bulk_jobs.c.account_id == account_id, bulk_jobs.c.id == job_id)
            ).first()
            return self._job(conn, row) if row is not None else None

    def list_jobs(
        self, account_id: str, status: str | None = None, action: str | None = None, offset: int = 0, limit: int = 20
    ) -> list[BulkJob]:
        q = select(bulk_jobs).where(bulk_jobs.c.account_id == account_id)
        if status:
            q = q.where(bulk_jobs.c.status == status)
        if action:
            q = q.where(bulk_jobs.c.action == action)
        q = q.order_by(bulk_jobs.c.created_us.desc(), bulk_jobs.c.id).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            return [self._job(conn, r) for r in conn.execute(q).all()]

    def delete(self, account_id: str, job_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(delete(bulk_jobs).where(bulk_jobs.c.account_id == account_id, bulk_jobs.c.id == job_id))
        return bool(done.rowcount)

    def cancel(self, account_id: str, job_id: str) -> bool:
        """Ask a running job to stop after its current message (a pending one stops at once). False: unknown."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.account_id == account_id, bulk_jobs.c.id == job_id)
                .values(cancel_requested=True, updated_us=now_us())
            )
        return bool(done.rowcount)

    def claim(self, identity: str, timeout_us: int, job_id: str | None = None) -> str | None:
        """An active job nobody holds (or whose holder stopped answering), now held by `identity`."""
        now = now_us()
        free = or_(bulk_jobs.c.claimed_by.is_(None), bulk_jobs.c.claimed_us < now - timeout_us)
        q = select(bulk_jobs.c.id).where(bulk_jobs.c.status.in_(ACTIVE), free).order_by(bulk_jobs.c.created_us)
        if job_id is not None:
            q = q.where(bulk_jobs.c.id == job_id)
        with self.engine.begin() as conn:
            for (candidate,) in conn.execute(q.limit(5)).all():
                won = conn.execute(
                    update(bulk_jobs)
                    .where(bulk_jobs.c.id == candidate, free)
                    .values(claimed_by=identity, claimed_us=now)
                )
                if won.rowcount:
                    return str(candidate)
        return None

    def release_claim(self, job_id: str, identity: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id, bulk_jobs.c.claimed_by == identity)
                .values(claimed_by=None, claimed_us=None)
            )

    def set_status(self, job_id: str, identity: str, status: str, message: str | None = None) -> None:
        """Move the job on (and renew the claim); a finished job lets its claim go."""
        now = now_us()
        values: dict[str, Any] = {"status": status, "updated_us": now, "claimed_us": now}
        if message is not None:
            values["status_message"] = message
        if status in (DISCOVERING, PROCESSING):
            values["started_us"] = func.coalesce(bulk_jobs.c.started_us, now)
        if status not in ACTIVE:
            values.update(completed_us=now, claimed_by=None, claimed_us=None)
        with self.engine.begin() as conn:
            conn.execute(
                update(bulk_jobs).where(bulk_jobs.c.id == job_id, bulk_jobs.c.claimed_by == identity).values(values)
            )

    def state(self, job_id: str) -> tuple[str, bool, dict[str, Any], str, str | None] | None:
        """(status, cancel_requested, params, action, requested_by): what a runner reads between batches."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    bulk_jobs.c.status, bulk_jobs.c.cancel_requested, bulk_jobs.c.params_json, bulk_jobs.c.action,
                    bulk_jobs.c.requested_by, bulk_jobs.c.account_id,
                ).where(bulk_jobs.c.id == job_id)
            ).first()  # fmt: skip
        if row is None:
            return None
        return row[0], bool(row[1]), {**json.loads(row[2]), "account_id": row[5]}, row[3], row[4]

    def add_messages(self, job_id: str, pks: Iterable[int]) -> int:
        """Rows for messages not yet in the job (a discovery that resumes adds only the new ones)."""
        pks = list(dict.fromkeys(pks))
        if not pks:
            return 0
        with self.engine.begin() as conn:
            known = set(
                conn.execute(
                    select(bulk_job_messages.c.message_pk).where(
                        bulk_job_messages.c.job_id == job_id, bulk_job_messages.c.message_pk.in_(pks)
                    )
                ).scalars()
            )
            new = [pk for pk in pks if pk not in known]
            if new:
                now = now_us()
                conn.execute(
                    insert(bulk_job_messages),
                    [{"job_id": job_id, "message_pk": pk, "status": M_PENDING, "updated_us": now} for pk in new],
                )
        return len(new)

    def pending(self, job_id: str, limit: int) -> list[tuple[int, int]]:
        """(row id, message pk) of messages not acted on yet, in discovery order."""
        q = (
            select(bulk_job_messages.c.id, bulk_job_messages.c.message_pk)
            .where(bulk_job_messages.c.job_id == job_id, bulk_job_messages.c.status == M_PENDING)
            .order_by(bulk_job_messages.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [(int(a), int(b)) for a, b in conn.execute(q).all()]

    def record(self, job_id: str, identity: str, outcomes: list[tuple[int, str, dict[str, Any]]]) -> None:
        """Messages' outcomes (row id, status, outcome), only while PENDING (never twice), renewing the claim."""
        now = now_us()
        with self.engine.begin() as conn:
            for row_id, status, outcome in outcomes:
                conn.execute(
                    update(bulk_job_messages)
                    .where(and_(bulk_job_messages.c.id == row_id, bulk_job_messages.c.status == M_PENDING))
                    .values(status=status, outcome_json=json.dumps(outcome), updated_us=now)
                )
            conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id, bulk_jobs.c.claimed_by == identity)
                .values(updated_us=now, claimed_us=now)
            )

    def cancel_pending(self, job_id: str) -> int:
        with self.engine.begin() as conn:
            done = conn.execute(
                update(bulk_job_messages)
                .where(bulk_job_messages.c.job_id == job_id, bulk_job_messages.c.status == M_PENDING)
                .values(status=M_CANCELLED, updated_us=now_us())
            )
        return int(done.rowcount or 0)

    def messages(self, job_id: str, offset: int = 0, limit: int = 20, status: str | None = None) -> list[JobMessage]:
        q = select(bulk_job_messages).where(bulk_job_messages.c.job_id == job_id)
        if status:
            q = q.where(bulk_job_messages.c.status == status)
        q = q.order_by(bulk_job_messages.c.id).offset(offset).limit(limit)
        with self.engine.connect() as conn:
            return [
                JobMessage(
                    int(r.id), int(r.message_pk), r.status, json.loads(r.outcome_json or "{}"), from_us(r.updated_us)
                )
                for r in conn.execute(q).all()
            ]


def release_dead_claims(engine: Engine) -> int:
    """Jobs held by processes of this host that no longer run are freed at once (a restart after a crash)."""
    from mailsec.store.queue import _pid_alive

    host = socket.gethostname() + ":"
    freed = 0
    with engine.begin() as conn:
        rows = conn.execute(select(bulk_jobs.c.id, bulk_jobs.c.claimed_by).where(bulk_jobs.c.claimed_by.is_not(None)))
        for job_id, owner in rows.all():
            if not str(owner).startswith(host):
                continue
            pid = str(owner)[len(host) :].split(":", 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                conn.execute(update(bulk_jobs).where(bulk_jobs.c.id == job_id).values(claimed_by=None, claimed_us=None))
                freed += 1
    return freed
