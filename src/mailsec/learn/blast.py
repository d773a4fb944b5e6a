"""Blast radius: the account's stored messages of the last days that look like a reclassified one (the same text
fingerprint, or a shared MinHash band confirmed by the sketches' similarity) and whose verdict differs from the one
the analyst asked for; `apply` re-scans them, so that the campaign memory gives them that verdict too."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select

from mailsec.learn.campaigns import SketchRepo
from mailsec.model import Disposition
from mailsec.scan.campaign import CampaignKeys, same_campaign
from mailsec.services import Services
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
                other.verdict.edf_hash or "",
                other.verdict.htmltext_structure_hash or "",
                candidates[other.pk],
            )
            how = same_campaign(keys, theirs)
            if how is not None:
                out.similar.append(Similar(other.id, other.pk, other.final_disposition.value, how))
    return out


def apply(services: Services, radius: BlastRadius, account_id: str) -> list[tuple[str, str, str]]:
    """Re-scan the messages that would change: (id, old, new) for each one re-scanned."""
    from mailsec.rescan import rescan  # rescan imports the pipeline, which imports learning

    summary = rescan(services, account_id, [s.pk for s in radius.would_change])
    return [(c.id, c.old, c.new) for c in summary.changed]
