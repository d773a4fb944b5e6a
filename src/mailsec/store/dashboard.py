"""What the console's dashboard shows, counted in the database from the `messages` table the API searches: mail
volume by disposition over time, and the top senders, sender domains and threat categories of detections.

Every query is bounded by account and scan time and walks an index that starts with those columns, so a period's
figures cost the rows of that period, not of the whole store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Engine, func, select, text

from mailsec.model import Disposition
from mailsec.store.records import from_us, to_us
from mailsec.store.schema import messages

DISPOSITIONS = tuple(d.value for d in Disposition)
MAX_BUCKETS = 24 * 92  # hourly buckets for a quarter: the chart and the query both stay small


class Bucket(StrEnum):
    HOUR = "hour"
    DAY = "day"

    @property
    def width(self) -> timedelta:
        return timedelta(hours=1) if self is Bucket.HOUR else timedelta(days=1)

    @property
    def width_us(self) -> int:
        return int(self.width.total_seconds()) * 1_000_000


class DashboardError(ValueError):
    """A period the dashboard cannot count (end before start, too many buckets)."""


@dataclass(frozen=True)
class VolumeBucket:
    start: datetime
    counts: dict[str, int]  # disposition -> messages scanned in [start, start + width)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Ranked:
    value: str
    count: int


@dataclass(frozen=True)
class DashboardData:
    start: datetime
    end: datetime
    bucket: Bucket
    volume: list[VolumeBucket]
    top_senders: list[Ranked]
    top_sender_domains: list[Ranked]
    top_threat_categories: list[Ranked]

    @property
    def total(self) -> int:
        return sum(b.total for b in self.volume)

    @property
    def detections(self) -> int:
        return sum(n for b in self.volume for d, n in b.counts.items() if d != Disposition.NONE.value)

    def totals_by_disposition(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for b in self.volume:
            for d, n in b.counts.items():
                out[d] = out.get(d, 0) + n
        return out


def bucket_floor(moment: datetime, bucket: Bucket) -> datetime:
    """The start of the UTC hour or day holding `moment`."""
    us = to_us(moment)
    return from_us(us - us % bucket.width_us)


class DashboardRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def summary(
        self, account_id: str, start: datetime, end: datetime, bucket: Bucket = Bucket.HOUR, limit: int = 10
    ) -> DashboardData:
        """Everything the dashboard shows for scan times in [start, end). Senders and their domains come from one
        pass over the period's detections (the rows are read once, not once per list)."""
        senders = self._sender_counts(account_id, start, end)
        return DashboardData(
            start=start,
            end=end,
            bucket=bucket,
            volume=self.volume(account_id, start, end, bucket),
            top_senders=_top(senders, limit),
            top_sender_domains=_top(_by_domain(senders), limit),
            top_threat_categories=self.top_threat_categories(account_id, start, end, limit),
        )

    def volume(self, account_id: str, start: datetime, end: datetime, bucket: Bucket) -> list[VolumeBucket]:
        """Messages per disposition in each UTC hour or day from the bucket holding `start` to the one before
        `end`; empty buckets are listed too, so a chart has no gaps."""
        lo, hi = self._bounds(start, end)
        width = bucket.width_us
        first = lo - lo % width
        count = -(-(hi - first) // width)
        if count > MAX_BUCKETS:
            raise DashboardError(f"{count} {bucket.value} buckets; at most {MAX_BUCKETS}: choose a wider bucket")
        slot = (messages.c.scanned_us // width).label("slot")
        # IN over every disposition lets both engines walk (account, disposition, scanned_us) as a covering index
        query = (
            select(slot, messages.c.final_disposition, func.count())
            .where(
                messages.c.account_id == account_id,
                messages.c.final_disposition.in_(DISPOSITIONS),
                messages.c.scanned_us >= lo,
                messages.c.scanned_us < hi,
            )
            .group_by(slot, messages.c.final_disposition)
        )
        buckets = [VolumeBucket(from_us(first + i * width), {}) for i in range(count)]
        with self.engine.connect() as conn:
            for slot_no, disposition, n in conn.execute(query):
                buckets[(int(slot_no) * width - first) // width].counts[str(disposition)] = int(n)
        return buckets

    def top_senders(self, account_id: str, start: datetime, end: datetime, limit: int = 10) -> list[Ranked]:
        """Header From addresses with the most detections in the period."""
        return _top(self._sender_counts(account_id, start, end), limit)

    def top_sender_domains(self, account_id: str, start: datetime, end: datetime, limit: int = 10) -> list[Ranked]:
        """Domains of the header From addresses with the most detections in the period."""
        return _top(_by_domain(self._sender_counts(account_id, start, end)), limit)

    def _sender_counts(self, account_id: str, start: datetime, end: datetime) -> dict[str, int]:
        """Detections per (lower-cased) header From address in the period."""
        lo, hi = self._bounds(start, end)
        sender = func.lower(messages.c.from_addr)
        query = (
            select(sender, func.count())
            .where(
                messages.c.account_id == account_id,
                messages.c.is_detection.is_(True),
                messages.c.scanned_us >= lo,
                messages.c.scanned_us < hi,
                messages.c.from_addr.is_not(None),
                messages.c.from_addr != "",
            )
            .group_by(sender)
        )
        with self.engine.connect() as conn:
            return {str(address): int(n) for address, n in conn.execute(query) if address}

    def top_threat_categories(self, account_id: str, start: datetime, end: datetime, limit: int = 10) -> list[Ranked]:
        """The verdicts' threat categories, counted over the detections of the period."""
        lo, hi = self._bounds(start, end)
        if self.engine.dialect.name == "postgresql":
            source = (
                "FROM messages m, jsonb_array_elements_text(CAST(m.verdict_json AS jsonb) -> 'threat_categories') "
                "AS c(category)"
            )
            column = "c.category"
        else:
            source = "FROM messages m, json_each(m.verdict_json, '$.threat_categories') AS c"
            column = "c.value"
        sql = text(
            f"SELECT {column} AS category, count(*) AS n {source} "
            "WHERE m.account_id = :account AND m.is_detection = :yes AND m.scanned_us >= :lo AND m.scanned_us < :hi "
            f"GROUP BY {column} ORDER BY n DESC, category LIMIT :limit"
        )
        params = {"account": account_id, "yes": True, "lo": lo, "hi": hi, "limit": limit}
        with self.engine.connect() as conn:
            return [Ranked(str(value), int(n)) for value, n in conn.execute(sql, params) if value]

    # -- helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    def _bounds(start: datetime, end: datetime) -> tuple[int, int]:
        lo, hi = to_us(start), to_us(end)
        if hi <= lo:
            raise DashboardError("the period must end after it starts")
        return lo, hi


def _by_domain(senders: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for address, n in senders.items():
        domain = address.rpartition("@")[2]
        if domain:
            out[domain] = out.get(domain, 0) + n
    return out


def _top(counts: dict[str, int], limit: int) -> list[Ranked]:
    """The `limit` largest counts, ties in alphabetical order (stable across engines)."""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [Ranked(value, n) for value, n in ranked]
