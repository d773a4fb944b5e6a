"""The message repository: save a scanned message with everything searchable about it, read it back, and keep
its trace and action log. Saving is idempotent on `postfix_id`, so a stage that runs twice stores once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailsec import ids
from mailsec.model import ActionEntry, DeliveryMode, Disposition, Operation, TraceDirection, Verdict
from mailsec.store.records import (
    RECLASSIFIED_PREFIX,
    MessageData,
    MessageRecord,
    disposition_is_detection,
    dumps,
    from_us,
    link_domain,
    to_us,
    verdict_from_json,
    verdict_to_json,
)
from mailsec.store.schema import (
    action_log,
    attachments,
    findings,
    links,
    message_terms,
    messages,
    recipients,
    trace_lines,
)


def _member(enum: Any, value: Any, default: Any) -> Any:
    try:
        return enum(str(value))
    except ValueError:
        return default


@dataclass(frozen=True)
class StoredMessage:
    """A stored message as the read side sees it, every column and JSON document decoded to a typed field by
    `stored_message`, next to `message_values`, their encoder."""

    pk: int
    id: str  # the investigate id
    postfix_id: str
    account_id: str
    alert_id: str
    scanned_at: datetime
    sent_at: datetime | None
    raw_sha256: str
    raw_size: int
    delivery_mode: DeliveryMode
    final_disposition: Disposition
    is_quarantined: bool
    is_phish_submission: bool
    delivery_status: str | None
    from_addr: str | None
    from_name: str | None
    envelope_from: str
    replyto: str | None
    subject: str | None
    internet_message_id: str  # the Message-ID header
    smtp_helo_server_ip: str | None
    smtp_previous_hop_ip: str | None
    x_originating_ip: str | None
    postfix_id_outbound: str | None
    data: MessageData
    verdict: Verdict  # its disposition is `final_disposition`, as the latest scan left it
    scanned_disposition: Disposition
    """What the scan concluded before any analyst reclassified the message (else `final_disposition`)."""
    reclassified: bool
    """An analyst set `final_disposition`; a rescan keeps it."""

    @property
    def envelope_to(self) -> tuple[str, ...]:
        return self.data.envelope_to

    @property
    def detection_reasons(self) -> tuple[str, ...]:
        return self.verdict.detection_reasons


@dataclass(frozen=True)
class TraceEntry:
    lineno: int
    direction: str
    message: str
    logged_at: datetime


@dataclass(frozen=True)
class ActionRecord:
    operation: str
    completed_at: datetime
    status: str
    folder: str | None
    requested_by: str | None


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class DeliveryWrites:
    """Writes that belong together after a dispatch step (recipient states, then trace lines, then the message's
    own state): committed in one transaction, so a message costs one commit per step instead of one per row."""

    states: list[tuple[str, str, str | None, str | None]] = field(
        default_factory=list
    )  # address, status, detail, folder
    trace: list[tuple[str, str]] = field(default_factory=list)  # direction, message
    delivery_status: str | None = None
    is_quarantined: bool | None = None

    def add_state(self, address: str, status: str, detail: str | None = None, folder: str | None = None) -> None:
        self.states.append((address, status, detail, folder))

    def add_trace(self, direction: TraceDirection | str, message: str) -> None:
        self.trace.append((str(direction), message))

    def is_empty(self) -> bool:
        return not (self.states or self.trace or self.delivery_status is not None or self.is_quarantined is not None)


# Statements built once: executing the same statement object reuses its cache key and compiled form (building
# `update(...).where(...)` anew for every row cost more CPU than SQLite's own work).
_RCPT_WHERE = (recipients.c.message_pk == bindparam("b_pk"), recipients.c.address == bindparam("b_address"))
_SET_RCPT = (
    update(recipients)
    .where(*_RCPT_WHERE)
    .values(status=bindparam("b_status"), detail=bindparam("b_detail"), updated_us=bindparam("b_now"))
)
_SET_RCPT_FOLDER = _SET_RCPT.values(folder=bindparam("b_folder"))
_INSERT_RCPT = insert(recipients)
_INSERT_TRACE = insert(trace_lines)
_INSERT_ACTION = insert(action_log)
_INSERT_MESSAGE = insert(messages)
_INSERT_TERMS = insert(message_terms)
_INSERT_ATTACHMENTS = insert(attachments)
_INSERT_LINKS = insert(links)
_INSERT_FINDINGS = insert(findings)
_PK_BY_POSTFIX_ID = select(messages.c.pk).where(messages.c.postfix_id == bindparam("b_postfix_id"))
_BY_PK = select(messages).where(messages.c.pk == bindparam("b_pk"))
_RCPTS_OF = select(recipients).where(recipients.c.message_pk == bindparam("b_pk")).order_by(recipients.c.id)
_SET_STATE: dict[tuple[str, ...], Any] = {
    names: update(messages).where(messages.c.pk == bindparam("b_pk")).values({n: bindparam(f"b_{n}") for n in names})
    for names in (("delivery_status",), ("is_quarantined",), ("delivery_status", "is_quarantined"))
}


def _action_values(pk: int, entry: ActionEntry) -> dict[str, Any]:
    return {
        "message_pk": pk,
        "operation": str(entry.operation),
        "completed_us": to_us(entry.completed_at),
        "status": entry.status,
        "folder": entry.folder,
        "requested_by": entry.requested_by,
    }


def _set_state(conn: Connection, pk: int, delivery_status: str | None, is_quarantined: bool | None) -> None:
    values: dict[str, Any] = {}
    if delivery_status is not None:
        values["delivery_status"] = delivery_status
    if is_quarantined is not None:
        values["is_quarantined"] = is_quarantined
    if values:
        conn.execute(_SET_STATE[tuple(values)], {"b_pk": pk, **{f"b_{k}": v for k, v in values.items()}})


def message_values(rec: MessageRecord) -> dict[str, Any]:
    """The `messages` row of a record (without `pk`); bulk loaders (bench/search.py) use it too."""
    p, v = rec.parsed, rec.verdict
    return {
        "account_id": rec.account_id,
        "id": rec.investigate_id,
        "postfix_id": rec.postfix_id,
        "alert_id": rec.alert_id,
        "scanned_us": to_us(rec.scanned_at),
        "sent_us": to_us(p.sent_at) if p.sent_at else None,
        "raw_sha256": rec.raw_sha256,
        "raw_size": rec.raw_size,
        "delivery_mode": str(rec.delivery_mode),
        "final_disposition": str(v.disposition),
        "is_detection": disposition_is_detection(v.disposition),
        "is_quarantined": rec.is_quarantined,
        "is_phish_submission": rec.is_phish_submission,
        "delivery_status": rec.delivery_status,
        "from_addr": p.from_.email if p.from_ else None,
        "from_name": p.from_.name if p.from_ else None,
        "envelope_from": rec.envelope_from,
        "replyto": p.reply_to[0].email if p.reply_to else None,
        "subject": p.subject,
        "subject_lower": p.subject.lower(),
        "message_id": p.message_id,
        "smtp_helo_server_ip": rec.envelope.client_ip or p.smtp_helo_server_ip,
        "smtp_previous_hop_ip": p.smtp_previous_hop_ip,
        "x_originating_ip": p.x_originating_ip,
        "edf_hash": v.edf_hash,
        "htmltext_structure_hash": v.htmltext_structure_hash,
        "data_json": dumps(rec.data().to_json()),
        "verdict_json": dumps(verdict_to_json(v)),
        "search_text": rec.search_text(),
        "operations": "",
    }


def stored_message(row: Mapping[Any, Any]) -> StoredMessage:
    """The inverse of `message_values`: a `messages` row (with `pk`) as its typed read model."""
    disposition = _member(Disposition, row.get("final_disposition"), Disposition.UNKNOWN)
    sent_us = row.get("sent_us")
    verdict_doc = json.loads(row.get("verdict_json") or "{}")
    reclassified = verdict_doc.get("reclassified") or {}
    return StoredMessage(
        pk=int(row["pk"]),
        id=str(row["id"]),
        postfix_id=str(row["postfix_id"]),
        account_id=str(row["account_id"]),
        alert_id=str(row.get("alert_id") or ""),
        scanned_at=from_us(int(row["scanned_us"])),
        sent_at=from_us(int(sent_us)) if sent_us is not None else None,
        raw_sha256=str(row.get("raw_sha256") or ""),
        raw_size=int(row.get("raw_size") or 0),
        delivery_mode=_member(DeliveryMode, row.get("delivery_mode"), DeliveryMode.DIRECT),
        final_disposition=disposition,
        is_quarantined=bool(row.get("is_quarantined")),
        is_phish_submission=bool(row.get("is_phish_submission")),
        delivery_status=row.get("delivery_status"),
        from_addr=row.get("from_addr"),
        from_name=row.get("from_name"),
        envelope_from=str(row.get("envelope_from") or ""),
        replyto=row.get("replyto"),
        subject=row.get("subject"),
        internet_message_id=str(row.get("message_id") or ""),
        smtp_helo_server_ip=row.get("smtp_helo_server_ip"),
        smtp_previous_hop_ip=row.get("smtp_previous_hop_ip"),
        x_originating_ip=row.get("x_originating_ip"),
        postfix_id_outbound=row.get("postfix_id_outbound"),
        data=MessageData.from_json(json.loads(row.get("data_json") or "{}")),
        verdict=verdict_from_json(
            verdict_doc, disposition, row.get("edf_hash"), row.get("htmltext_structure_hash"),
        ),
        scanned_disposition=_member(Disposition, reclassified.get("original"), disposition),
        reclassified=bool(reclassified),
    )  # fmt: skip


def term_values(pk: int, rec: MessageRecord) -> list[dict[str, Any]]:
    """The `message_terms` rows of a stored record."""
    scanned_us = to_us(rec.scanned_at)
    return [
        {"message_pk": pk, "account_id": rec.account_id, "kind": k, "value": val, "scanned_us": scanned_us}
        for k, val in sorted(rec.terms())
    ]


class MessageRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writing -------------------------------------------------------------------------------------------

    def save(self, rec: MessageRecord) -> int:
        """Store the message; when its postfix_id is already stored, return the existing row's pk."""
        return self.save_stored(rec)[0].pk

    def save_stored(self, rec: MessageRecord) -> tuple[StoredMessage, list[dict[str, Any]] | None]:
        """`save`, returning the stored message and, when this call inserted it, its recipient rows as written (the
        queue worker dispatches from them without reading back what it just wrote). None when it was there already."""
        values = message_values(rec)
        try:
            # No lookup first: the unique postfix_id decides (a rerun is rare; every message would pay the lookup)
            with self.engine.begin() as conn:
                pk, rcpts = self._insert(conn, rec, values)
        except IntegrityError:
            existing = self.stored_pk(rec.postfix_id)
            found = self.get_by_pk(existing) if existing is not None else None
            if found is None:  # another constraint failed
                raise
            return found, None
        return stored_message({**values, "pk": pk}), rcpts

    def _insert(
        self, conn: Connection, rec: MessageRecord, values: dict[str, Any] | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        v = rec.verdict
        # parameters, not .values(): the compiled INSERT is then cached instead of rebuilt for every message
        values = values if values is not None else message_values(rec)
        pk = int(conn.execute(_INSERT_MESSAGE, values).inserted_primary_key[0])  # type: ignore[index]
        terms = term_values(pk, rec)
        if terms:
            conn.execute(_INSERT_TERMS, terms)
        p = rec.parsed
        now = _now_us()
        first = (rec.delivery_status or "queued", None)
        rcpts = []
        for a in dict.fromkeys(rec.envelope_to):
            status, detail = rec.recipient_states.get(a, first)
            rcpts.append({"message_pk": pk, "address": a, "status": status, "detail": detail, "updated_us": now})
        if rcpts:
            conn.execute(_INSERT_RCPT, rcpts)
        atts = [
            {
                "message_pk": pk,
                "name": a.name,
                "content_type": a.content_type,
                "size": a.size,
                "md5": a.md5,
                "sha1": a.sha1,
                "sha256": a.sha256,
                "detection": v.attachment_detections.get(a.sha256),
                "encrypted": a.sha256 in v.encrypted_attachments,
            }
            for a in p.attachments
        ]
        if atts:
            conn.execute(_INSERT_ATTACHMENTS, atts)
        lnks = [
            {"message_pk": pk, "href": lk.href[:4000], "text": lk.text[:1000], "domain": link_domain(lk.href)}
            for lk in p.links
        ]
        if lnks:
            conn.execute(_INSERT_LINKS, lnks)
        self._insert_findings(conn, pk, v)
        trace = [{"message_pk": pk, "direction": d, "logged_us": to_us(ts), "message": m} for d, m, ts in rec.trace]
        if trace:
            conn.execute(_INSERT_TRACE, trace)
        return pk, [{**r, "folder": None} for r in rcpts]

    @staticmethod
    def _insert_findings(conn: Connection, pk: int, v: Verdict) -> None:
        rows = [
            {
                "message_pk": pk,
                "name": f.name,
                "detection": str(f.detection),
                "score": f.score,
                "reason": f.reason,
                "data_json": dumps(
                    {
                        "field": f.field,
                        "portion": f.portion,
                        "value": f.value,
                        "attachment": f.attachment,
                        "detail": f.detail,
                        "category": f.category,
                    }
                ),
            }
            for f in v.findings
        ]
        if rows:
            conn.execute(_INSERT_FINDINGS, rows)

    def update_verdict(self, pk: int, verdict: Verdict, search_text: str | None = None) -> None:
        """Record a new verdict for a stored message (re-scan), keeping everything else. An analyst's
        reclassification outranks the scanner: its disposition, record and reason survive a rescan."""
        with self.engine.begin() as conn:
            earlier = json.loads(
                conn.execute(select(messages.c.verdict_json).where(messages.c.pk == pk)).scalar_one_or_none() or "{}"
            )
            doc = verdict_to_json(verdict)
            disposition = str(verdict.disposition)
            analyst = earlier.get("reclassified")
            if isinstance(analyst, dict) and analyst.get("disposition"):
                disposition = str(analyst["disposition"])
                doc["reclassified"] = analyst
                kept = [r for r in earlier.get("detection_reasons") or [] if str(r).startswith(RECLASSIFIED_PREFIX)]
                doc["detection_reasons"] = [*kept[:1], *doc.get("detection_reasons", [])]
            values: dict[str, Any] = {
                "final_disposition": disposition,
                "is_detection": disposition_is_detection(disposition),
                "verdict_json": dumps(doc),
                "edf_hash": verdict.edf_hash,
                "htmltext_structure_hash": verdict.htmltext_structure_hash,
            }
            if search_text is not None:
                values["search_text"] = search_text
            conn.execute(update(messages).where(messages.c.pk == pk).values(**values))
            conn.execute(delete(findings).where(findings.c.message_pk == pk))
            self._insert_findings(conn, pk, verdict)
            for sha, det in verdict.attachment_detections.items():
                conn.execute(
                    update(attachments)
                    .where(attachments.c.message_pk == pk, attachments.c.sha256 == sha)
                    .values(detection=det, encrypted=sha in verdict.encrypted_attachments)
                )

    def set_state(self, pk: int, *, delivery_status: str | None = None, is_quarantined: bool | None = None) -> None:
        if delivery_status is not None or is_quarantined is not None:
            with self.engine.begin() as conn:
                _set_state(conn, pk, delivery_status, is_quarantined)

    def set_recipient_state(
        self, pk: int, address: str, status: str, detail: str | None = None, folder: str | None = None
    ) -> None:
        with self.engine.begin() as conn:
            self._set_recipient_state(conn, pk, address, status, detail, folder, _now_us())

    @staticmethod
    def _set_recipient_state(
        conn: Connection, pk: int, address: str, status: str, detail: str | None, folder: str | None, now: int
    ) -> None:
        params = {"b_pk": pk, "b_address": address, "b_status": status, "b_detail": detail, "b_now": now}
        if folder is not None:
            params["b_folder"] = folder
        result = conn.execute(_SET_RCPT if folder is None else _SET_RCPT_FOLDER, params)
        if result.rowcount == 0:
            values: dict[str, Any] = {"message_pk": pk, "address": address, "status": status, "detail": detail}
            values.update(updated_us=now, folder=folder)
            conn.execute(_INSERT_RCPT, values)

    def write_delivery(self, pk: int, writes: DeliveryWrites) -> None:
        """Recipient states, then trace lines, then the message's state, in one transaction (see DeliveryWrites)."""
        self.write_deliveries([(pk, writes, None)])

    def write_deliveries(self, batch: Sequence[tuple[int, DeliveryWrites, ActionEntry | None]]) -> None:
        """`write_delivery` for many messages, each with its action log entry if any: one transaction, and one
        statement per kind of row where the rows allow (a bulk move of 1,000 messages commits once)."""
        batch = [(pk, w, a) for pk, w, a in batch if a is not None or not w.is_empty()]
        if not batch:
            return
        now = _now_us()
        trace = [
            {"message_pk": pk, "direction": d, "logged_us": now, "message": m} for pk, w, _ in batch for d, m in w.trace
        ]
        states: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for pk, w, _ in batch:
            values = {"delivery_status": w.delivery_status, "is_quarantined": w.is_quarantined}
            set_now = {k: v for k, v in values.items() if v is not None}
            if set_now:
                states.setdefault(tuple(set_now), []).append({"b_pk": pk, **{f"b_{k}": v for k, v in set_now.items()}})
        actions = [_action_values(pk, a) for pk, _, a in batch if a is not None]
        with self.engine.begin() as conn:
            for pk, writes, _ in batch:  # one by one: a missing row is inserted, which only its rowcount tells
                for address, status, detail, folder in writes.states:
                    self._set_recipient_state(conn, pk, address, status, detail, folder, now)
            if trace:
                conn.execute(_INSERT_TRACE, trace)
            for names, params in states.items():
                conn.execute(_SET_STATE[names], params)
            if actions:
                conn.execute(_INSERT_ACTION, actions)

    def recipient_states(self, pk: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(_RCPTS_OF, {"b_pk": pk}).all()
        return [dict(r._mapping) for r in rows]

    def recipient_states_of(self, pks: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """`recipient_states` of many messages in one query per 500."""
        out: dict[int, list[dict[str, Any]]] = {pk: [] for pk in pks}
        with self.engine.connect() as conn:
            for start in range(0, len(pks), 500):
                chunk = list(pks[start : start + 500])
                q = select(recipients).where(recipients.c.message_pk.in_(chunk)).order_by(recipients.c.id)
                for row in conn.execute(q):
                    out[row.message_pk].append(dict(row._mapping))
        return out

    def add_trace(self, pk: int, direction: TraceDirection | str, message: str, at: datetime | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                _INSERT_TRACE,
                {
                    "message_pk": pk,
                    "direction": str(direction),
                    "logged_us": to_us(at) if at else _now_us(),
                    "message": message,
                },
            )

    def add_action(
        self,
        pk: int,
        operation: Operation | str,
        status: str = "completed",
        folder: str | None = None,
        requested_by: str | None = None,
        at: datetime | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(action_log).values(
                    message_pk=pk,
                    operation=str(operation),
                    completed_us=to_us(at) if at else _now_us(),
                    status=status,
                    folder=folder,
                    requested_by=requested_by,
                )
            )

    # -- reading -------------------------------------------------------------------------------------------

    def get(self, account_id: str, ref: str) -> StoredMessage | None:
        """A message of this account by investigate id or postfix_id (raw or percent-encoded)."""
        ref = ids.normalize_message_ref(ref)
        postfix_id = ids.postfix_id_of(ref)
        if postfix_id is None:
            return None
        cond = messages.c.postfix_id == postfix_id if postfix_id == ref else messages.c.id == ref
        with self.engine.connect() as conn:
            row = conn.execute(select(messages).where(messages.c.account_id == account_id, cond)).first()
        return stored_message(row._mapping) if row else None

    def get_refs(self, account_id: str, refs: Iterable[str]) -> dict[str, StoredMessage]:
        """`get` for many references at once (a bulk request's ids), one query per 500: the found ones by the
        reference as given."""
        by_postfix_id: dict[str, list[str]] = {}
        by_id: dict[str, list[str]] = {}
        for ref in refs:
            norm = ids.normalize_message_ref(ref)
            postfix_id = ids.postfix_id_of(norm)
            if postfix_id is not None:
                (by_postfix_id if postfix_id == norm else by_id).setdefault(norm, []).append(ref)
        out: dict[str, StoredMessage] = {}
        keys = [(k, True) for k in by_postfix_id] + [(k, False) for k in by_id]
        with self.engine.connect() as conn:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                postfix_ids = [k for k, is_postfix in chunk if is_postfix]
                investigate_ids = [k for k, is_postfix in chunk if not is_postfix]
                q = select(messages).where(
                    messages.c.account_id == account_id,
                    or_(messages.c.postfix_id.in_(postfix_ids), messages.c.id.in_(investigate_ids)),
                )
                for row in conn.execute(q):
                    message = stored_message(row._mapping)
                    for ref in by_postfix_id.get(message.postfix_id, []) + by_id.get(message.id, []):
                        out[ref] = message
        return out

    def stored_pk(self, postfix_id: str) -> int | None:
        """The pk of the message stored under this postfix_id, if any (one indexed lookup)."""
        with self.engine.connect() as conn:
            row = conn.execute(_PK_BY_POSTFIX_ID, {"b_postfix_id": postfix_id}).first()
        return int(row.pk) if row else None

    def get_by_pk(self, pk: int) -> StoredMessage | None:
        with self.engine.connect() as conn:
            row = conn.execute(_BY_PK, {"b_pk": pk}).first()
        return stored_message(row._mapping) if row else None

    def get_many(self, pks: Iterable[int]) -> list[StoredMessage]:
        pks = list(pks)
        if not pks:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(select(messages).where(messages.c.pk.in_(pks))).all()
        by_pk = {r.pk: stored_message(r._mapping) for r in rows}
        return [by_pk[pk] for pk in pks if pk in by_pk]

    def find_by_raw(self, account_id: str, raw_sha256: str) -> StoredMessage | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(messages)
                .where(messages.c.account_id == account_id, messages.c.raw_sha256 == raw_sha256)
                .limit(1)
            ).first()
        return stored_message(row._mapping) if row else None

    def iter_pks(self, account_id: str, batch: int = 1000) -> Iterable[int]:
        last = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(
                    select(messages.c.pk)
                    .where(messages.c.account_id == account_id, messages.c.pk > last)
                    .order_by(messages.c.pk)
                    .limit(batch)
                ).all()
            if not rows:
                return
            for r in rows:
                yield int(r.pk)
            last = int(rows[-1].pk)

    def attachments(self, pk: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attachments).where(attachments.c.message_pk == pk).order_by(attachments.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def links(self, pk: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(links).where(links.c.message_pk == pk).order_by(links.c.id)).all()
        return [dict(r._mapping) for r in rows]

    def trace(self, pk: int) -> dict[str, list[TraceEntry]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(trace_lines).where(trace_lines.c.message_pk == pk).order_by(trace_lines.c.id)
            ).all()
        out: dict[str, list[TraceEntry]] = {"inbound": [], "outbound": []}
        for r in rows:
            lines = out.setdefault(r.direction, [])
            lines.append(TraceEntry(len(lines) + 1, r.direction, r.message, from_us(r.logged_us)))
        return out

    def actions(self, pks: Iterable[int]) -> dict[int, list[ActionRecord]]:
        pks = list(pks)
        out: dict[int, list[ActionRecord]] = {pk: [] for pk in pks}
        if not pks:
            return out
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(action_log).where(action_log.c.message_pk.in_(pks)).order_by(action_log.c.id)
            ).all()
        for r in rows:
            out[r.message_pk].append(
                ActionRecord(r.operation, from_us(r.completed_us), r.status, r.folder, r.requested_by)
            )
        return out

    def count(self, account_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).select_from(messages).where(messages.c.account_id == account_id)
                ).scalar_one()
            )
