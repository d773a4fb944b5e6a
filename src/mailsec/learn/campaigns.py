"""Campaign memory: the messages analysts reclassified, by the keys that find their campaign again (`edf_hash`,
structure hash, MinHash LSH bands), and the sketch of every stored message, so that both "is this arriving message
one we were told about?" and "which stored messages look like this one?" are index lookups, never scans."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, delete, insert, or_, select
from sqlalchemy.exc import IntegrityError

from mailsec.model import Disposition
from mailsec.scan.campaign import CampaignKeys, same_campaign
from mailsec.scan.learned import Lesson
from mailsec.store.schema import learn_bands, learn_campaign_bands, learn_campaigns, learn_sketches

MAX_CANDIDATES = 50
"""Remembered campaigns compared with one message at most (the newest first)."""


@contextmanager
def reading(engine: Engine, conn: Connection | None = None) -> Iterator[Connection]:
    """`conn` when the caller has one (the pipeline reads every lesson on one connection), else a new one."""
    if conn is not None:
        yield conn
        return
    with engine.connect() as fresh:
        yield fresh


def _now_us() -> int:
    return time.time_ns() // 1000


def _disposition(value: str | None) -> Disposition | None:
    try:
        return Disposition(value) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Campaign:
    id: int
    submission_id: str
    message_pk: int | None
    requested: Disposition
    original: Disposition | None
    keys: CampaignKeys
    created_us: int


class CampaignRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def remember(
        self,
        account_id: str,
        submission_id: str,
        message_pk: int | None,
        requested: Disposition,
        original: Disposition | None,
        keys: CampaignKeys,
    ) -> int:
        """A reclassified message becomes the campaign's memory. A later reclassification of the same message
        replaces the earlier one (the analyst changed their mind)."""
        with self.engine.begin() as conn:
            if message_pk is not None:
                conn.execute(
                    delete(learn_campaigns).where(
                        learn_campaigns.c.account_id == account_id, learn_campaigns.c.message_pk == message_pk
                    )
                )
            inserted = conn.execute(
                insert(learn_campaigns).values(
                    account_id=account_id, submission_id=submission_id, message_pk=message_pk,
                    requested=requested.value, original=original.value if original else None,
                    edf_hash=keys.edf_hash, structure_hash=keys.structure_hash, signature=keys.signature,
                    created_us=_now_us(),
                )
            )  # fmt: skip
            campaign_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
            bands = keys.bands
            if bands:
                conn.execute(
                    insert(learn_campaign_bands),
                    [{"account_id": account_id, "band": b, "campaign_id": campaign_id} for b in bands],
                )
        return int(campaign_id)

    def forget(self, account_id: str, submission_id: str) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(learn_campaigns).where(
                    learn_campaigns.c.account_id == account_id, learn_campaigns.c.submission_id == submission_id
                )
            )
        return int(result.rowcount or 0)

    def candidates(
        self, account_id: str, keys: CampaignKeys, by_structure: bool = False, conn: Connection | None = None
    ) -> list[Campaign]:
        """Remembered campaigns sharing the text fingerprint or an LSH band with `keys` (or, `by_structure`, its
        structure hash: a template many campaigns may share, so looked up on its own), newest first."""
        c = learn_campaigns.c
        match = []
        if by_structure:
            match.append(c.structure_hash == keys.structure_hash)
        else:
            if keys.edf_indexable:
                match.append(c.edf_hash == keys.edf_hash)
            if keys.bands:
                match.append(
                    c.id.in_(
                        select(learn_campaign_bands.c.campaign_id).where(
                            learn_campaign_bands.c.account_id == account_id,
                            learn_campaign_bands.c.band.in_(keys.bands),
                        )
                    )
                )
        if not match:
            return []
        query = (
            select(learn_campaigns)
            .where(and_(c.account_id == account_id, or_(*match)))
            .order_by(c.created_us.desc(), c.id.desc())
            .limit(MAX_CANDIDATES)
        )
        with reading(self.engine, conn) as db:
            rows = db.execute(query).all()
        return [_campaign(r) for r in rows]

    def lesson_for(self, account_id: str, keys: CampaignKeys, conn: Connection | None = None) -> Lesson | None:
        """The newest remembered campaign this message belongs to, as a lesson for the scan."""
        for by_structure in (False, True):
            for campaign in self.candidates(account_id, keys, by_structure, conn):
                how = same_campaign(keys, campaign.keys)
                if how is not None:
                    return Lesson(campaign.submission_id, campaign.requested, campaign.original, how)
        return None

    def list(self, account_id: str) -> list[Campaign]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(learn_campaigns)
                .where(learn_campaigns.c.account_id == account_id)
                .order_by(learn_campaigns.c.created_us.desc())
            ).all()
        return [_campaign(r) for r in rows]


def _campaign(r: object) -> Campaign:
    row = r._mapping  # type: ignore[attr-defined]
    return Campaign(
        id=int(row["id"]),
        submission_id=str(row["submission_id"]),
        message_pk=row["message_pk"],
        requested=_disposition(row["requested"]) or Disposition.NONE,
        original=_disposition(row["original"]),
        keys=CampaignKeys(row["edf_hash"], row["structure_hash"], bytes(row["signature"])),
        created_us=int(row["created_us"]),
    )


class SketchRepo:
    """The MinHash sketch of every stored message, and its bands: what the blast radius searches."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def save(self, account_id: str, message_pk: int, scanned_us: int, keys: CampaignKeys) -> None:
        """Once per message: a rerun of the same message finds its sketch there and leaves it."""
        if not keys.signature:
            return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(learn_sketches).values(
                        message_pk=message_pk, account_id=account_id, scanned_us=scanned_us, signature=keys.signature
                    )
                )
                conn.execute(
                    insert(learn_bands),
                    [
                        {"account_id": account_id, "band": b, "message_pk": message_pk}
                        for b in dict.fromkeys(keys.bands)
                    ],
                )
        except IntegrityError:
            pass

    def sharing_bands(self, account_id: str, bands: list[int], since_us: int, limit: int) -> dict[int, bytes]:
        """message_pk → signature of the account's messages since `since_us` that share a band."""
        if not bands:
            return {}
        s = learn_sketches.c
        hits = select(learn_bands.c.message_pk).where(
            learn_bands.c.account_id == account_id, learn_bands.c.band.in_(bands)
        )
        query = (
            select(s.message_pk, s.signature)
            .where(s.account_id == account_id, s.scanned_us >= since_us, s.message_pk.in_(hits))
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return {int(r.message_pk): bytes(r.signature) for r in conn.execute(query)}

    def signatures(self, pks: list[int]) -> dict[int, bytes]:
        if not pks:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(learn_sketches.c.message_pk, learn_sketches.c.signature).where(
                    learn_sketches.c.message_pk.in_(pks)
                )
            ).all()
        return {int(r.message_pk): bytes(r.signature) for r in rows}
