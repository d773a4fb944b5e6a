"""The search compiler: `SearchParams` to one SQL statement, newest first with a stable `(scanned_at, pk)` order.

`query` terms are substrings (FTS5 trigram on SQLite, pg_trgm on PostgreSQL); sender/recipient/domain use the
`message_terms` index; paging is keyset (`cursor`) or offset (`page`)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Integer, and_, exists, func, literal_column, or_, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import ColumnElement

from mailsec.model import MESSAGE_ACTION_OPERATIONS, DeliveryMode, Disposition, MessageAction
from mailsec.store.records import to_us
from mailsec.store.schema import action_log, attachments, message_terms, messages, submissions

MAX_PER_PAGE = 1000
DEFAULT_PER_PAGE = 20
DEFAULT_WINDOW = timedelta(days=30)
# Bounds on what one search may ask for and hold: a query or subject of at most MAX_TERMS words of at most
# MAX_TERM_CHARS each; only the first FTS_PHRASE_CHARS of a word go to the text index (a word's trigram lists are
# all read at once), the rest is checked on the rows it narrowed to; a statement (a deep `page` offset included) runs
# SEARCH_STATEMENT_SECONDS at most, in the background too.
MAX_TERMS = 16
MAX_TERM_CHARS = 128
MAX_QUERY_CHARS = 1024
FTS_PHRASE_CHARS = 24
MAX_FIELD_CHARS = {
    "sender": 320,
    "recipient": 320,
    "domain": 255,
    "alert_id": 128,
    "message_id": 998,
    "exact_subject": 998,
    "smtp_helo_ip": 64,
    "final_disposition": 32,
    "message_action": 32,
    "delivery_status": 32,
    "cursor": 200,
}
SEARCH_STATEMENT_SECONDS = 120.0
_INT64 = (-(2**63), 2**63 - 1)
SUBMISSION_MODES = tuple(m.value for m in DeliveryMode if m.value.endswith("SUBMISSION"))


class SearchError(ValueError):
    """A search parameter that cannot be honoured: the API answers 400 with this text."""


@dataclass
class SearchParams:
    start: datetime | None = None
    end: datetime | None = None
    query: str | None = None
    sender: str | None = None
    recipient: str | None = None
    domain: str | None = None
    subject: str | None = None
    exact_subject: str | None = None
    alert_id: str | None = None
    message_id: str | None = None
    final_disposition: str | None = None
    message_action: str | None = None
    delivery_status: str | None = None
    detections_only: bool = True
    smtp_helo_ip: str | None = None
    submissions: bool = False
    has_attachment: bool = False
    cursor: str | None = None
    page: int | None = None
    per_page: int = DEFAULT_PER_PAGE
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("start", "end"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return json.dumps(data)

    @classmethod
    def from_json(cls, raw: str) -> SearchParams:
        data = json.loads(raw)
        for key in ("start", "end"):
            if data.get(key):
                data[key] = datetime.fromisoformat(data[key])
        return cls(**data)


@dataclass
class SearchPage:
    pks: list[int]
    next: str | None
    previous: str | None
    per_page: int


def encode_cursor(scanned_us: int, pk: int, direction: str) -> str:
    raw = json.dumps([scanned_us, pk, direction], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        scanned_us, pk, direction = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if direction not in ("next", "prev") or not all(isinstance(v, int) for v in (scanned_us, pk)):
            raise ValueError(direction)
        if not all(_INT64[0] <= v <= _INT64[1] for v in (scanned_us, pk)):
            raise ValueError("out of range")
        return int(scanned_us), int(pk), direction
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
        raise SearchError("cursor is not a cursor this server issued") from exc


def resolve_window(params: SearchParams, now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    end = params.end or now
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    earliest = datetime.min.replace(tzinfo=UTC)
    start = params.start or (end - DEFAULT_WINDOW if end - earliest > DEFAULT_WINDOW else earliest)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if start > now + timedelta(minutes=5):
        raise SearchError("start is in the future")
    if start > end:
        raise SearchError("start is after end")
    return start, end


def _check_text(name: str, value: str | None, limit: int) -> None:
    if value is None:
        return
    if len(value) > limit:
        raise SearchError(f"{name} is longer than {limit} characters")
    if any(ord(c) < 0x20 and c not in "\t" for c in value):
        raise SearchError(f"{name} contains a NUL or control character")


def _check_words(name: str, value: str | None) -> None:
    """Bounds on `query` and `subject`: how many words, how long each, how long in all."""
    if not value:
        return
    _check_text(name, value, MAX_QUERY_CHARS)
    words = value.split()
    if len(words) > MAX_TERMS:
        raise SearchError(f"{name} has {len(words)} terms; at most {MAX_TERMS}")
    longest = max((len(w) for w in words), default=0)
    if longest > MAX_TERM_CHARS:
        raise SearchError(f"{name} has a term of {longest} characters; at most {MAX_TERM_CHARS}")


def validate(params: SearchParams) -> None:
    if not 1 <= params.per_page <= MAX_PER_PAGE:
        raise SearchError(f"per_page must be between 1 and {MAX_PER_PAGE}")
    if params.page is not None and params.page < 1:
        raise SearchError("page starts at 1")
    _check_words("query", params.query)
    _check_words("subject", params.subject)
    for name, limit in MAX_FIELD_CHARS.items():
        _check_text(name, getattr(params, name), limit)
    if params.final_disposition and params.final_disposition.upper() not in {d.value for d in Disposition}:
        raise SearchError(f"final_disposition {params.final_disposition!r} is not a disposition")
    if params.message_action and params.message_action.upper() not in {a.value for a in MessageAction}:
        raise SearchError(
            f"message_action {params.message_action!r} is not one of " + ", ".join(a.value for a in MessageAction)
        )
    if params.cursor:
        decode_cursor(params.cursor)


def _term_filter(account_id: str, kind: str, value: str, window: tuple[int, int]) -> ColumnElement[bool]:
    """`pk IN (terms of this value inside the window)`: the planner can drive from `ix_terms_lookup` (a range on
    account, kind, value, time) instead of probing every message of the window for its terms."""
    return messages.c.pk.in_(
        select(message_terms.c.message_pk).where(
            message_terms.c.account_id == account_id,
            message_terms.c.kind == kind,
            message_terms.c.value == value,
            message_terms.c.scanned_us >= window[0],
            message_terms.c.scanned_us <= window[1],
        )
    )


def _address_filter(
    account_id: str, value: str, addr_kind: str, dom_kind: str, window: tuple[int, int]
) -> ColumnElement[bool]:
    value = value.strip().lower()
    if "@" in value:
        if value.startswith("@"):
            return _term_filter(account_id, dom_kind, value[1:], window)
        return _term_filter(account_id, addr_kind, value, window)
    return _term_filter(account_id, dom_kind, value.strip("."), window)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _query_filters(engine: Engine, query: str, account_id: str, window: tuple[int, int]) -> list[ColumnElement[bool]]:
    terms = [t.lower() for t in query.split() if t]
    conds: list[ColumnElement[bool]] = []
    fts_terms = []
    for term in terms:
        if engine.dialect.name == "sqlite" and len(term) >= 3:
            phrase = term[:FTS_PHRASE_CHARS]
            fts_terms.append('"' + phrase.replace('"', '""') + '"')
            if phrase == term:
                continue
        conds.append(messages.c.search_text.like(f"%{_like_escape(term)}%", escape="\\"))
    if fts_terms:
        # The FTS5 match list is bounded to the pk range of the window's messages (min/max over the time index):
        # without it a common term materialises every match of every year before the time filter applies.
        in_window = and_(
            messages.c.account_id == account_id,
            messages.c.scanned_us >= window[0],
            messages.c.scanned_us <= window[1],
        )
        rowid = literal_column("rowid", Integer)
        match = " AND ".join(fts_terms)
        conds.append(
            messages.c.pk.in_(
                select(rowid)
                .select_from(text("messages_fts"))
                .where(
                    text("messages_fts MATCH :fts_match").bindparams(fts_match=match),
                    rowid >= select(func.min(messages.c.pk)).where(in_window).scalar_subquery(),
                    rowid <= select(func.max(messages.c.pk)).where(in_window).scalar_subquery(),
                )
            )
        )
    return conds


def build_conditions(
    engine: Engine, account_id: str, params: SearchParams, now: datetime | None = None
) -> list[ColumnElement[bool]]:
    validate(params)
    start, end = resolve_window(params, now)
    window = (to_us(start), to_us(end))
    conds: list[ColumnElement[bool]] = [
        messages.c.account_id == account_id,
        messages.c.scanned_us >= window[0],
        messages.c.scanned_us <= window[1],
    ]
    if params.final_disposition:
        disposition = params.final_disposition.upper()
        if disposition == Disposition.MALICIOUS.value:
            conds.append(messages.c.final_disposition.in_([disposition, Disposition.MALICIOUS_BEC.value]))
        else:
            conds.append(messages.c.final_disposition == disposition)
    elif params.detections_only and not params.submissions:  # submitted mail is shown whatever its verdict
        conds.append(messages.c.is_detection.is_(True))
    if params.submissions:
        submitted = exists().where(submissions.c.message_pk == messages.c.pk, submissions.c.account_id == account_id)
        conds.append(
            or_(messages.c.is_phish_submission.is_(True), messages.c.delivery_mode.in_(SUBMISSION_MODES), submitted)
        )
    if params.sender:
        conds.append(_address_filter(account_id, params.sender, "sa", "sd", window))
    if params.recipient:
        conds.append(_address_filter(account_id, params.recipient, "ra", "rd", window))
    if params.domain:
        conds.append(_term_filter(account_id, "d", params.domain.strip().lower().lstrip("@").strip("."), window))
    if params.subject:
        words = params.subject.lower().split()
        for word in words:
            conds.append(messages.c.subject_lower.like(f"%{_like_escape(word)}%", escape="\\"))
        # The subject is part of search_text: its text index narrows the rows (a superset; the LIKE above decides).
        indexed = [w for w in words if len(w) >= 3]
        if indexed:
            conds.extend(_query_filters(engine, " ".join(indexed), account_id, window))
    if params.exact_subject is not None and params.exact_subject != "":
        conds.append(messages.c.subject_lower == params.exact_subject.lower())
    if params.alert_id:
        conds.append(messages.c.alert_id == params.alert_id.strip())
    if params.message_id:
        mid = params.message_id.strip().strip("<>")
        conds.append(messages.c.message_id.in_([mid, f"<{mid}>"]))
    if params.delivery_status:
        conds.append(messages.c.delivery_status == params.delivery_status.strip().lower())
    if params.smtp_helo_ip:
        conds.append(messages.c.smtp_helo_server_ip == params.smtp_helo_ip.strip())
    if params.has_attachment:
        conds.append(exists().where(attachments.c.message_pk == messages.c.pk))
    if params.message_action:
        ops = [o.value for o in MESSAGE_ACTION_OPERATIONS[MessageAction(params.message_action.upper())]]
        conds.append(exists().where(action_log.c.message_pk == messages.c.pk, action_log.c.operation.in_(ops)))
    if params.query:
        conds.extend(_query_filters(engine, params.query, account_id, window))
    return conds


class SearchTooLong(SearchError):
    """The statement ran past SEARCH_STATEMENT_SECONDS and was stopped."""


@contextmanager
def statement_deadline(conn: Connection, seconds: float) -> Iterator[None]:
    """Stop the statements run in the block after `seconds`: `statement_timeout` on PostgreSQL, a progress
    handler on SQLite. Either way the caller gets SearchTooLong, and the connection is left as it was."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")  # ends with the transaction
        try:
            yield
        except OperationalError as exc:
            if "statement timeout" in str(exc.orig):
                raise SearchTooLong(f"the search ran past {seconds:g} s; narrow it (time window, terms)") from None
            raise
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    deadline = time.monotonic() + seconds

    def past_deadline() -> int:
        return 1 if time.monotonic() > deadline else 0

    raw.set_progress_handler(past_deadline, 20_000)
    try:
        yield
    except OperationalError as exc:
        if "interrupted" in str(exc.orig):
            raise SearchTooLong(f"the search ran past {seconds:g} s; narrow it (time window, terms)") from None
        raise
    finally:
        raw.set_progress_handler(None, 0)


def run_search(engine: Engine, account_id: str, params: SearchParams, now: datetime | None = None) -> SearchPage:
    conds = build_conditions(engine, account_id, params, now)
    per_page = params.per_page
    newest_first = (messages.c.scanned_us.desc(), messages.c.pk.desc())
    stmt = select(messages.c.pk, messages.c.scanned_us)
    reverse = False
    if params.cursor:
        t, pk, direction = decode_cursor(params.cursor)
        if direction == "next":
            conds.append(or_(messages.c.scanned_us < t, and_(messages.c.scanned_us == t, messages.c.pk < pk)))
            stmt = stmt.where(*conds).order_by(*newest_first)
        else:
            conds.append(or_(messages.c.scanned_us > t, and_(messages.c.scanned_us == t, messages.c.pk > pk)))
            stmt = stmt.where(*conds).order_by(messages.c.scanned_us.asc(), messages.c.pk.asc())
            reverse = True
    else:
        stmt = stmt.where(*conds).order_by(*newest_first)
        if params.page and params.page > 1:
            stmt = stmt.offset((params.page - 1) * per_page)
    stmt = stmt.limit(per_page + 1)
    with engine.connect() as conn, statement_deadline(conn, SEARCH_STATEMENT_SECONDS):
        rows = [(int(r.pk), int(r.scanned_us)) for r in conn.execute(stmt)]
    more = len(rows) > per_page
    rows = rows[:per_page]
    if reverse:
        rows.reverse()
    has_newer = bool(params.cursor) and (not reverse or more)
    has_older = more if not reverse else True
    if params.cursor is None and params.page and params.page > 1:
        has_newer = True
    next_cursor = encode_cursor(rows[-1][1], rows[-1][0], "next") if rows and has_older else None
    prev_cursor = encode_cursor(rows[0][1], rows[0][0], "prev") if rows and has_newer else None
    return SearchPage(pks=[pk for pk, _ in rows], next=next_cursor, previous=prev_cursor, per_page=per_page)
