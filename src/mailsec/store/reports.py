"""PhishGuard reports: one per campaign or incident of an account in a time window. Messages that share a
fingerprint (`edf_hash`, else the HTML/text structure hash) are one campaign; a detection without either is an
incident of its own. Each report carries the campaign's worst current disposition, its counts, first and last
seen, and what analysts concluded in TEAM submissions on its messages."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, exists, or_, select

from mailsec.model import Disposition
from mailsec.store.records import from_us, to_us
from mailsec.store.schema import messages, submissions
from mailsec.store.submissions import SUBMISSION_MODES, SubmissionKind

MAX_MESSAGES = 50_000  # a window holding more detections is summarised from its newest ones


@dataclass(frozen=True)
class Conclusion:
    submission_id: str
    disposition: str | None
    by: str | None
    at: datetime
    postfix_id: str | None


@dataclass
class CampaignReport:
    id: int  # the pk of the campaign's first message: stable while that message is stored
    key: str
    disposition: Disposition
    subject: str
    sender: str | None
    recipients: list[str]
    first_postfix_id: str
    first_seen: datetime
    last_seen: datetime
    message_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # final disposition -> messages
    conclusions: list[Conclusion] = field(default_factory=list)


def _worse(a: Disposition, b: Disposition) -> Disposition:
    return a if a.severity >= b.severity else b


def _disposition(value: str | None) -> Disposition:
    try:
        return Disposition(str(value))
    except ValueError:
        return Disposition.UNKNOWN


def campaign_reports(engine: Engine, account_id: str, start: datetime, end: datetime) -> list[CampaignReport]:
    """The window's campaigns, the most recently seen first. A campaign counts when one of its messages was
    detected or submitted; its clean look-alikes in the window are counted with it."""
    window = (
        messages.c.account_id == account_id,
        messages.c.scanned_us >= to_us(start),
        messages.c.scanned_us <= to_us(end),
        messages.c.delivery_mode.not_in(SUBMISSION_MODES),  # a user's report is not a campaign; what it reports is
    )
    submitted = exists().where(submissions.c.message_pk == messages.c.pk, submissions.c.account_id == account_id)
    columns = (
        messages.c.pk,
        messages.c.postfix_id,
        messages.c.scanned_us,
        messages.c.final_disposition,
        messages.c.is_detection,
        messages.c.subject,
        messages.c.from_addr,
        messages.c.edf_hash,
        messages.c.htmltext_structure_hash,
        messages.c.data_json,
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(*columns)
            .where(*window, or_(messages.c.is_detection.is_(True), submitted))
            .order_by(messages.c.scanned_us.desc(), messages.c.pk.desc())
            .limit(MAX_MESSAGES)
        ).all()
        keys = {r.edf_hash for r in rows if r.edf_hash}
        # clean members of a detected campaign count with it (an analyst's NONE leaves the rest of it detected)
        extra = (
            conn.execute(
                select(*columns)
                .where(*window, messages.c.is_detection.is_(False), messages.c.edf_hash.in_(sorted(keys)[:1000]))
                .limit(MAX_MESSAGES)
            ).all()
            if keys
            else []
        )
        seen = {r.pk for r in rows}
        rows = [*rows, *(r for r in extra if r.pk not in seen)]
    team = _conclusions(engine, account_id, [r.pk for r in rows])
    reports: dict[str, CampaignReport] = {}
    for r in sorted(rows, key=lambda r: (r.scanned_us, r.pk)):
        key = r.edf_hash or r.htmltext_structure_hash or f"message:{r.pk}"
        disposition = _disposition(r.final_disposition)
        seen_at = from_us(r.scanned_us)
        report = reports.get(key)
        if report is None:
            report = reports[key] = CampaignReport(
                id=int(r.pk),
                key=key,
                disposition=disposition,
                subject=r.subject or "",
                sender=r.from_addr,
                recipients=[],
                first_postfix_id=r.postfix_id,
                first_seen=seen_at,
                last_seen=seen_at,
            )
        report.disposition = _worse(report.disposition, disposition)
        report.last_seen = seen_at
        report.message_count += 1
        report.counts[disposition.value] = report.counts.get(disposition.value, 0) + 1
        for address in json.loads(r.data_json or "{}").get("envelope_to", []):
            if address not in report.recipients and len(report.recipients) < 100:
                report.recipients.append(address)
        report.conclusions.extend(team.get(r.pk, []))
    return sorted(reports.values(), key=lambda rep: (rep.last_seen, rep.id), reverse=True)


def _conclusions(engine: Engine, account_id: str, pks: Iterable[int]) -> dict[int, list[Conclusion]]:
    pks = list(pks)
    out: dict[int, list[Conclusion]] = {}
    with engine.connect() as conn:
        for i in range(0, len(pks), 1000):
            rows = conn.execute(
                select(
                    submissions.c.id,
                    submissions.c.message_pk,
                    submissions.c.outcome_disposition,
                    submissions.c.requested_by,
                    submissions.c.requested_us,
                    submissions.c.original_postfix_id,
                )
                .where(
                    submissions.c.account_id == account_id,
                    submissions.c.kind == SubmissionKind.TEAM.value,
                    submissions.c.message_pk.in_(pks[i : i + 1000]),
                )
                .order_by(submissions.c.requested_us)
            ).all()
            for s in rows:
                out.setdefault(s.message_pk, []).append(
                    Conclusion(
                        s.id, s.outcome_disposition, s.requested_by, from_us(s.requested_us), s.original_postfix_id
                    )
                )
    return out
