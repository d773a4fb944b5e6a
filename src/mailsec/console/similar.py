"""The blast radius on the message page: once a message was reclassified, the stored messages like it (what
`GET /investigate/{id}/similar` returns, through the same `radius_of`) and which would change to the analyst's
verdict. Applying it is `remediate.apply_to_similar`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailsec.api.routers.learning import radius_of
from mailsec.learn.blast import Applied, BlastRadius, destination_for
from mailsec.services import Services
from mailsec.store.integrations import IntegrationRepo
from mailsec.store.messages import ActionRecord, StoredMessage

DAYS = 30
SHOWN = 100
"""Rows in the table; the counts above it are the whole radius's."""


@dataclass(frozen=True)
class SimilarRow:
    id: str
    subject: str
    sender: str
    scanned: datetime | None
    disposition: str
    would_change: bool
    how: str


@dataclass(frozen=True)
class SimilarView:
    requested: str
    days: int
    total: int
    would_change: int
    rows: list[SimilarRow]
    moves_to: str | None
    """The mailbox folder a bulk job moves the changed ones to, when the account has mailbox integrations."""


def was_reclassified(actions: list[ActionRecord]) -> bool:
    """Only then is there a verdict of the analyst's to compare with (the radius of any other message is moot)."""
    return any(a.operation == "RECLASSIFY" for a in actions)


def similar_view(services: Services, account_id: str, message: StoredMessage, days: int = DAYS) -> SimilarView:
    radius = radius_of(services, account_id, message.id, days)
    changing = {s.pk for s in radius.would_change}
    shown = sorted(radius.similar, key=lambda s: (s.pk not in changing, -s.pk))[:SHOWN]
    stored = {m.pk: m for m in services.messages.get_many([s.pk for s in shown])}
    rows = [
        SimilarRow(
            id=s.id,
            subject=m.subject or "",
            sender=m.from_addr or m.envelope_from or "",
            scanned=m.scanned_at,
            disposition=s.disposition,
            would_change=s.pk in changing,
            how=s.how,
        )
        for s in shown
        if (m := stored.get(s.pk)) is not None
    ]
    mailboxes = bool(IntegrationRepo(services.engine).list_for(account_id))
    return SimilarView(
        requested=radius.requested.value,
        days=radius.days,
        total=len(radius.similar),
        would_change=len(changing),
        rows=rows,
        moves_to=destination_for(radius.requested).value if mailboxes else None,
    )


@dataclass(frozen=True)
class AppliedView:
    """What applying the verdict to the similar messages did, for the page's outcome panel."""

    requested: str
    rescanned: int
    changes: list[tuple[str, str, str, str]]  # id, subject, old disposition, new disposition
    bulk_job_id: str | None


def applied_view(services: Services, radius: BlastRadius, done: Applied) -> AppliedView:
    pks = {s.id: s.pk for s in radius.similar}
    shown = done.changes[:SHOWN]
    subjects = {m.id: m.subject or "" for m in services.messages.get_many(pks[i] for i, _, _ in shown if i in pks)}
    return AppliedView(
        requested=radius.requested.value,
        rescanned=len(radius.would_change),
        changes=[(i, subjects.get(i, ""), old, new) for i, old, new in shown],
        bulk_job_id=done.bulk_job_id,
    )


def form_days(value: object) -> int:
    """The window of the form: whole days 1..366, as the API's `days` (ValueError otherwise)."""
    text = value if isinstance(value, str) else ""
    if not (text.isascii() and text.isdigit() and len(text) <= 3) or not 1 <= int(text) <= 366:
        raise ValueError(f"days must be a whole number from 1 to 366, not {text[:20]!r}")
    return int(text)
