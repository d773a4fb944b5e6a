"""Blast radius: the account's stored messages of the last days that look like a reclassified one (the same text
fingerprint, or a shared MinHash band confirmed by the sketches' similarity) and whose verdict differs from the one
the analyst asked for; `apply` re-scans them, so that the campaign memory gives them that verdict too, and moves
them in the mailboxes (a bulk MOVE job) when the account has mailbox integrations."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import select

from mailsec.learn.campaigns import SketchRepo
from mailsec.model import Destination, Disposition
from mailsec.scan.campaign import CampaignKeys, same_campaign
from mailsec.services import Services
from mailsec.store import bulk_jobs
from mailsec.store.bulk_jobs import BulkJobRepo
from mailsec.store.integrations import IntegrationRepo
from mailsec.store.messages import StoredMessage
from mailsec.store.schema import learn_campaigns, learn_sketches, messages

DAY_US = 86_400_000_000
MAX_SIMILAR = 5000


@dataclass(frozen=True)
class Similar:
    id: str
    pk: int
    disposition: str
    how: str


@dataclass
class BlastRadius:
    message_id: str
    requested: Disposition
    days: int
    similar: list[Similar] = field(default_factory=list)

    @property
    def would_change(self) -> list[Similar]:
        return [s for s in self.similar if s.disposition != self.requested.value]


class NotFound(LookupError):
    pass


def _requested(services: Services, account_id: str, m: StoredMessage) -> Disposition:
    """What the analyst asked for this message (its newest campaign lesson), else its current verdict."""
    with services.engine.connect() as conn:
        value = conn.execute(
            select(learn_campaigns.c.requested)
            .where(learn_campaigns.c.account_id == account_id, learn_campaigns.c.message_pk == m.pk)
            .order_by(learn_campaigns.c.created_us.desc())
            .limit(1)
        ).scalar()
    try:
        return Disposition(value) if value else m.final_disposition
    except ValueError:
        return m.final_disposition


def blast_radius(
    services: Services, account_id: str, message_pk: int, days: int = 30, requested: Disposition | None = None
) -> BlastRadius:
    m = services.messages.get_by_pk(message_pk)
    if m is None or m.account_id != account_id:
        raise NotFound(f"no message {message_pk} in this account")
    sketches = SketchRepo(services.engine)
    signature = sketches.signatures([m.pk]).get(m.pk, b"")
    keys = CampaignKeys(m.verdict.edf_hash or "", m.verdict.htmltext_structure_hash or "", signature)
    since = time.time_ns() // 1000 - days * DAY_US
    candidates: dict[int, bytes] = sketches.sharing_bands(account_id, keys.bands, since, MAX_SIMILAR)
    if keys.edf_indexable:
        with services.engine.connect() as conn:
            same_edf = conn.execute(
                select(messages.c.pk, learn_sketches.c.signature)
                .select_from(messages.outerjoin(learn_sketches, learn_sketches.c.message_pk == messages.c.pk))
                .where(
                    messages.c.account_id == account_id,
                    messages.c.edf_hash == keys.edf_hash,
                    messages.c.scanned_us >= since,
                )
                .limit(MAX_SIMILAR)
            ).all()
        for r in same_edf:
            candidates.setdefault(int(r.pk), bytes(r.signature or b""))
    candidates.pop(m.pk, None)
    out = BlastRadius(m.id, requested or _requested(services, account_id, m), days)
    pks = sorted(candidates)
    for i in range(0, len(pks), 500):
        for other in services.messages.get_many(pks[i : i + 500]):
            theirs = CampaignKeys(
                other.verdict.edf_hash or "", other.verdict.htmltext_structure_hash or "", candidates[other.pk]
            )
            how = same_campaign(keys, theirs)
            if how is not None:
                out.similar.append(Similar(other.id, other.pk, other.final_disposition.value, how))
    return out


@dataclass
class Applied:
    changes: list[tuple[str, str, str]]
    """(id, old, new) of each message the re-scan changed."""
    bulk_job_id: str | None = None
    """The MOVE job that puts them in their place in the mailboxes, when the account has mailbox integrations."""


def destination_for(requested: Disposition) -> Destination:
    """Where a message of this verdict belongs in a mailbox: clean mail in the inbox, the rest in junk (reversible
    and visible; the analyst can move further from there)."""
    return Destination.INBOX if requested is Disposition.NONE else Destination.JUNK


def apply(services: Services, radius: BlastRadius, account_id: str, requested_by: str | None = None) -> Applied:
    """Re-scan the messages that would change, so that they carry the analyst's verdict; when the account has
    mailbox integrations, also a bulk MOVE job (actions/bulk.py, run by `serve`'s job runner) for those the re-scan
    changed."""
    from mailsec.rescan import rescan  # rescan imports the pipeline, which imports learning

    targets = radius.would_change
    summary = rescan(services, account_id, [s.pk for s in targets])
    changed_ids = {c.id for c in summary.changed}
    out = Applied([(c.id, c.old, c.new) for c in summary.changed])
    pks = [s.pk for s in targets if s.id in changed_ids]
    if pks and IntegrationRepo(services.engine).list_for(account_id):
        out.bulk_job_id = _move_job(services, account_id, radius, pks, requested_by)
    return out


def _move_job(
    services: Services, account_id: str, radius: BlastRadius, pks: list[int], requested_by: str | None
) -> str:
    """A MOVE job over exactly these messages: created, filled and set to PROCESSING under a claim of its own, then
    left for the job runner. Its search matches nothing, so a runner that claims it first (before it is filled)
    finds nothing and completes it empty; another job is then made."""
    repo = BulkJobRepo(services.engine)
    destination = destination_for(radius.requested).value
    for _ in range(3):
        params = {
            "search_params": {"query": f"blast-radius-{uuid.uuid4().hex}"},
            "destination": destination,
            "blast_radius_of": radius.message_id,
        }
        comment = f"blast radius of {radius.message_id} ({radius.requested.value})"
        job_id = repo.create(account_id, "MOVE", params, comment, requested_by)
        identity = f"learn:{job_id}"
        if repo.claim(identity, 0, job_id) != job_id:
            continue
        try:
            added = repo.add_messages(job_id, pks)
            repo.set_status(job_id, identity, bulk_jobs.PROCESSING, f"{added} message(s) of the blast radius")
        finally:
            repo.release_claim(job_id, identity)
        return job_id
    raise RuntimeError("no bulk job could be filled: job runners claimed each one first")
