"""Submissions: an analyst's reclassification (TEAM) or an end user's report (USER) of one stored message, with
what was asked, what was done and, for a user report an analyst took up, the link between the two. Every read is
scoped to one account; `GET /submissions` filters, orders and pages here."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from mailsec.model import SEARCHABLE_DISPOSITIONS, DeliveryMode, Disposition, Operation
from mailsec.store.records import RECLASSIFIED_PREFIX, from_us, to_us
from mailsec.store.schema import action_log, messages, submissions

DEFAULT_WINDOW = timedelta(days=30)
MAX_PER_PAGE = 1000
MAX_QUERY_TERMS = 16


class SubmissionKind(StrEnum):
    TEAM = "TEAM"
    USER = "USER"


class SubmissionStatus(StrEnum):
    COMPLETED = "completed"  # a TEAM reclassification, applied
    PENDING = "pending"  # a USER report nobody has acted on
    ESCALATED = "escalated"  # a USER report an analyst took up as a TEAM submission


class CustomerStatus(StrEnum):
    UNREVIEWED = "unreviewed"
    REVIEWED = "reviewed"
    ESCALATED = "escalated"


ORDER_COLUMNS = {
    "submission_id": submissions.c.id,
    "subject": submissions.c.subject,
    "original_disposition": submissions.c.original_disposition,
    "requested_disposition": submissions.c.requested_disposition,
    "outcome_disposition": submissions.c.outcome_disposition,
    "requested_at": submissions.c.requested_us,
}


def wire_disposition(value: Disposition | str | None) -> str | None:
    """The six dispositions a submission may carry (MALICIOUS-BEC counts as MALICIOUS; the others as none)."""
    if value is None:
        return None
    text = str(value)
    if text == Disposition.MALICIOUS_BEC.value:
        return Disposition.MALICIOUS.value
    return text if text in SEARCHABLE_DISPOSITIONS else None


@dataclass(frozen=True)
class NewSubmission:
    account_id: str
    kind: SubmissionKind
    message_pk: int | None
    requested_disposition: str
    requested_by: str
    original_disposition: str | None = None
    outcome_disposition: str | None = None
    outcome: str | None = None
    status: SubmissionStatus = SubmissionStatus.COMPLETED
    customer_status: CustomerStatus | None = None
    subject: str | None = None
    from_addr: str | None = None
    original_postfix_id: str | None = None
    original_edf_hash: str | None = None
    escalated_submission_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: str | None = None  # a fixed id makes recording idempotent (a user report's is derived from its postfix_id)


@dataclass(frozen=True)
class Submission:
    id: str
    account_id: str
    kind: SubmissionKind
    message_pk: int | None
    requested_at: datetime
    requested_disposition: str | None
    requested_by: str | None
    original_disposition: str | None
    outcome_disposition: str | None
    outcome: str | None
    status: str | None
    customer_status: str | None
    subject: str | None
    from_addr: str | None
    original_postfix_id: str | None
    original_edf_hash: str | None
    escalated_submission_id: str | None
    escalated_by: str | None
    escalated_at: datetime | None
    escalated_as: str | None
    detail: dict[str, Any]


@dataclass
class SubmissionFilter:
    start: datetime | None = None
    end: datetime | None = None
    kind: SubmissionKind | None = None
    submission_id: str | None = None
    original_disposition: str | None = None
    requested_disposition: str | None = None
    outcome_disposition: str | None = None
    status: str | None = None
    customer_status: str | None = None
    query: str | None = None
    escalated_from_user: bool | None = None
    order: str = "requested_at"
    direction: str = "desc"
    page: int = 1
    per_page: int = 20


def _now_us() -> int:
    return time.time_ns() // 1000


def _search_text(new: NewSubmission, submission_id: str) -> str:
    parts = (submission_id, new.subject, new.from_addr, new.requested_by, new.original_postfix_id)
    return "\n".join(p for p in parts if p).lower()


def _row(r: Any) -> Submission:
    return Submission(
        id=r.id,
        account_id=r.account_id,
        kind=SubmissionKind(r.kind or SubmissionKind.TEAM.value),
        message_pk=r.message_pk,
        requested_at=from_us(r.requested_us),
        requested_disposition=r.requested_disposition,
        requested_by=r.requested_by,
        original_disposition=r.original_disposition,
        outcome_disposition=r.outcome_disposition,
        outcome=r.outcome,
        status=r.status,
        customer_status=r.customer_status,
        subject=r.subject,
        from_addr=r.from_addr,
        original_postfix_id=r.original_postfix_id,
        original_edf_hash=r.original_edf_hash,
        escalated_submission_id=r.escalated_submission_id,
        escalated_by=r.escalated_by,
        escalated_at=from_us(r.escalated_at_us) if r.escalated_at_us is not None else None,
        escalated_as=r.escalated_as,
        detail=json.loads(r.data_json or "{}"),
    )


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class SubmissionRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, new: NewSubmission, at: datetime | None = None) -> Submission:
        """A submission on its own (no action log, no change to the message)."""
        submission_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(insert(submissions).values(**self._values(new, submission_id, to_us(at) if at else _now_us())))
            row = conn.execute(select(submissions).where(submissions.c.id == submission_id)).one()
        return _row(row)

    @staticmethod
    def _values(new: NewSubmission, submission_id: str, requested_us: int) -> dict[str, Any]:
        return {
            "id": submission_id,
            "account_id": new.account_id,
            "message_pk": new.message_pk,
            "requested_us": requested_us,
            "data_json": json.dumps(new.detail, separators=(",", ":"), default=str),
            "kind": new.kind.value,
            "status": new.status.value,
            "customer_status": new.customer_status.value if new.customer_status else None,
            "original_disposition": wire_disposition(new.original_disposition),
            "requested_disposition": wire_disposition(new.requested_disposition),
            "outcome_disposition": wire_disposition(new.outcome_disposition),
            "outcome": new.outcome,
            "requested_by": new.requested_by,
            "subject": new.subject,
            "from_addr": new.from_addr,
            "original_postfix_id": new.original_postfix_id,
            "original_edf_hash": new.original_edf_hash,
            "escalated_submission_id": new.escalated_submission_id,
            "search_text": _search_text(new, submission_id),
        }

    def record(
        self,
        new: NewSubmission,
        operation: Operation,
        at: datetime,
        new_disposition: Disposition | None = None,
        reason: str = "",
        phish: bool = False,
    ) -> Submission:
        """In one transaction: the submission, its action-log entry on the message, for a TEAM reclassification
        (`new_disposition`) the message's new final disposition, and for an escalation the USER report's link. The
        verdict keeps the disposition the scan gave (`reclassified.original`) and who changed it."""
        submission_id = new.id or str(uuid.uuid4())
        now = to_us(at)
        with self.engine.begin() as conn:
            conn.execute(insert(submissions).values(**self._values(new, submission_id, now)))
            if new.kind is SubmissionKind.TEAM and new.escalated_submission_id:
                self._escalate(conn, new, submission_id, at)
            if new.message_pk is not None:
                conn.execute(
                    insert(action_log).values(
                        message_pk=new.message_pk,
                        operation=operation.value,
                        completed_us=now,
                        status="completed",
                        requested_by=new.requested_by,
                    )
                )
                if new_disposition is not None:
                    self._apply(conn, new.message_pk, new_disposition, submission_id, new.requested_by, reason, at)
                if phish:
                    conn.execute(
                        update(messages).where(messages.c.pk == new.message_pk).values(is_phish_submission=True)
                    )
            row = conn.execute(select(submissions).where(submissions.c.id == submission_id)).one()
        return _row(row)

    @staticmethod
    def _apply(
        conn: Connection, pk: int, disposition: Disposition, submission_id: str, by: str, reason: str, at: datetime
    ) -> None:
        row = conn.execute(
            select(messages.c.final_disposition, messages.c.verdict_json, messages.c.search_text).where(
                messages.c.pk == pk
            )
        ).one()
        verdict = json.loads(row.verdict_json or "{}")
        earlier = verdict.get("reclassified") or {}
        verdict["reclassified"] = {
            "original": earlier.get("original", row.final_disposition),
            "disposition": disposition.value,
            "submission_id": submission_id,
            "by": by,
            "at": at.isoformat(),
        }
        reasons = [r for r in verdict.get("detection_reasons", []) if not r.startswith(RECLASSIFIED_PREFIX)]
        verdict["detection_reasons"] = [reason, *reasons] if reason else reasons
        conn.execute(
            update(messages)
            .where(messages.c.pk == pk)
            .values(
                final_disposition=disposition.value,
                is_detection=disposition is not Disposition.NONE,
                verdict_json=json.dumps(verdict, separators=(",", ":"), default=str),
                search_text=f"{row.search_text}\n{disposition.value.lower()}\n{reason.lower()}".strip(),
            )
        )

    def get(self, account_id: str, submission_id: str) -> Submission | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(submissions).where(submissions.c.account_id == account_id, submissions.c.id == submission_id)
            ).first()
        return _row(row) if row else None

    @staticmethod
    def _escalate(conn: Connection, team: NewSubmission, team_id: str, at: datetime) -> None:
        """The USER report a TEAM submission takes up names it back and takes its outcome."""
        conn.execute(
            update(submissions)
            .where(
                submissions.c.account_id == team.account_id,
                submissions.c.id == team.escalated_submission_id,
                submissions.c.kind == SubmissionKind.USER.value,
            )
            .values(
                escalated_submission_id=team_id,
                escalated_by=team.requested_by,
                escalated_at_us=to_us(at),
                escalated_as=wire_disposition(team.requested_disposition),
                status=SubmissionStatus.ESCALATED.value,
                customer_status=CustomerStatus.ESCALATED.value,
                outcome_disposition=wire_disposition(team.outcome_disposition),
                outcome=f"escalated to team submission {team_id}",
            )
        )

    def for_messages(self, account_id: str, pks: Iterable[int]) -> dict[int, list[Submission]]:
        pks = list(pks)
        out: dict[int, list[Submission]] = {pk: [] for pk in pks}
        if not pks:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(submissions)
                .where(submissions.c.account_id == account_id, submissions.c.message_pk.in_(pks))
                .order_by(submissions.c.requested_us, submissions.c.id)
            ).all()
        for r in rows:
            out[r.message_pk].append(_row(r))
        return out

    def search(self, account_id: str, f: SubmissionFilter, now: datetime | None = None) -> tuple[list[Submission], int]:
        """One page of the account's submissions and the number of all that match."""
        conds = self._conditions(account_id, f, now or datetime.now(UTC))
        column = ORDER_COLUMNS.get(f.order, submissions.c.requested_us)
        ordering = (
            (column.asc(), submissions.c.id.asc()) if f.direction == "asc" else (column.desc(), submissions.c.id.desc())
        )
        per_page = max(1, min(f.per_page, MAX_PER_PAGE))
        stmt = (
            select(submissions)
            .where(*conds)
            .order_by(*ordering)
            .offset((max(f.page, 1) - 1) * per_page)
            .limit(per_page)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            total = int(conn.execute(select(func.count()).select_from(submissions).where(*conds)).scalar_one())
        return [_row(r) for r in rows], total

    @staticmethod
    def _conditions(account_id: str, f: SubmissionFilter, now: datetime) -> list[ColumnElement[bool]]:
        end = f.end or now
        start = f.start or end - DEFAULT_WINDOW
        conds: list[ColumnElement[bool]] = [
            submissions.c.account_id == account_id,
            submissions.c.requested_us >= to_us(start),
            submissions.c.requested_us <= to_us(end),
        ]
        if f.kind is not None:
            conds.append(submissions.c.kind == f.kind.value)
        if f.submission_id:
            conds.append(submissions.c.id == f.submission_id.strip())
        for column, value in (
            (submissions.c.original_disposition, f.original_disposition),
            (submissions.c.requested_disposition, f.requested_disposition),
            (submissions.c.outcome_disposition, f.outcome_disposition),
        ):
            if value:
                conds.append(column == value.upper())
        if f.status:
            conds.append(func.lower(submissions.c.status) == f.status.strip().lower())
        if f.customer_status:
            conds.append(submissions.c.customer_status == f.customer_status.strip().lower())
        if f.escalated_from_user is not None:
            from_user = and_(
                submissions.c.kind == SubmissionKind.TEAM.value, submissions.c.escalated_submission_id.is_not(None)
            )
            conds.append(from_user if f.escalated_from_user else ~from_user)
        if f.query:
            for term in f.query.lower().split()[:MAX_QUERY_TERMS]:
                conds.append(submissions.c.search_text.like(_like(term), escape="\\"))
        return conds


SUBMISSION_MODES = tuple(m.value for m in DeliveryMode if m.value.endswith("SUBMISSION"))


def find_original(
    engine: Engine, account_id: str, message_id: str | None, edf_hash: str | None
) -> tuple[int, str] | None:
    """The stored message a user reported, newest first: by its Message-ID, else by its fingerprint; never a
    report itself. Returns (pk, how it was matched)."""
    base = (messages.c.account_id == account_id, messages.c.delivery_mode.not_in(SUBMISSION_MODES))
    newest = (messages.c.scanned_us.desc(), messages.c.pk.desc())
    with engine.connect() as conn:
        if message_id and message_id.strip("<> "):
            mid = message_id.strip().strip("<>")
            row = conn.execute(
                select(messages.c.pk)
                .where(*base, messages.c.message_id.in_([mid, f"<{mid}>"]))
                .order_by(*newest)
                .limit(1)
            ).first()
            if row is not None:
                return int(row.pk), "message-id"
        if edf_hash:
            row = conn.execute(
                select(messages.c.pk).where(*base, messages.c.edf_hash == edf_hash).order_by(*newest).limit(1)
            ).first()
            if row is not None:
                return int(row.pk), "fingerprint"
    return None
