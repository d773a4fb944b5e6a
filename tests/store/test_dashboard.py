"""The dashboard's figures on SQLite and PostgreSQL, over corpus messages scanned at chosen times. The expected
figures are counted here from the verdicts and senders `process_message` returned, never by the dashboard's SQL."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailsec.model import Disposition
from mailsec.pipeline import process_message
from mailsec.services import Services
from mailsec.store.dashboard import Bucket, DashboardError, DashboardRepo, bucket_floor
from mailsec.store.records import MessageRecord

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Scanned:
    at: datetime
    disposition: str
    sender: str
    categories: tuple[str, ...]


@dataclass
class Loaded:
    services: Services
    account: str
    other: str
    messages: list[Scanned]

    def within(self, start: datetime, end: datetime) -> list[Scanned]:
        return [m for m in self.messages if start <= m.at < end]


def _at(when: datetime) -> Callable[[MessageRecord], None]:
    def set_time(record: MessageRecord) -> None:
        record.scanned_at = when

    return set_time


@pytest.fixture
def loaded(services: Services, corpora: Path) -> Iterator[Loaded]:
    files = sorted((corpora / "spamassassin" / "hard-ham-1").glob("*.eml"))[:15]
    files += sorted((corpora / "phishing_pot").glob("*.eml"))[:35]
    account = services.accounts.create_account("dash").id
    other = services.accounts.create_account("other").id
    out = []
    for i, path in enumerate(files):
        when = T0 + timedelta(hours=(i * 7) % 60, minutes=i)  # spread over three days, several per hour
        result = process_message(services, path.read_bytes(), account, before_save=_at(when))
        parsed = result.parsed
        sender = (parsed.from_.email or "").lower() if parsed and parsed.from_ else ""
        v = result.verdict
        out.append(Scanned(when, v.disposition.value, sender, tuple(v.threat_categories)))
    for path in files[15:30]:  # the other account's copies, in the same hours, must never be counted
        process_message(services, path.read_bytes(), other, before_save=_at(T0 + timedelta(hours=1)))
    yield Loaded(services, account, other, out)


def _detections(msgs: list[Scanned]) -> list[Scanned]:
    return [m for m in msgs if m.disposition != Disposition.NONE.value]


def _top(counter: Counter[str], limit: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]


def test_volume_by_hour_and_day(loaded: Loaded) -> None:
    repo = DashboardRepo(loaded.services.engine)
    assert len(_detections(loaded.messages)) >= 10, "the corpus slice must hold detections to count"
    start, end = T0 + timedelta(hours=5, minutes=30), T0 + timedelta(hours=50)
    hourly = repo.volume(loaded.account, start, end, Bucket.HOUR)
    assert hourly[0].start == T0 + timedelta(hours=5) and hourly[-1].start == T0 + timedelta(hours=49)
    assert len(hourly) == 45, "every hour is listed, the empty ones too"
    for b in hourly:
        expected = Counter(m.disposition for m in loaded.within(max(b.start, start), b.start + timedelta(hours=1)))
        assert b.counts == dict(expected), b.start
    daily = repo.volume(loaded.account, T0, T0 + timedelta(days=3), Bucket.DAY)
    assert [b.start for b in daily] == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    for b in daily:
        assert b.counts == dict(Counter(m.disposition for m in loaded.within(b.start, b.start + timedelta(days=1))))
    assert sum(b.total for b in daily) == len(loaded.messages)


def test_top_senders_domains_and_categories_of_detections(loaded: Loaded) -> None:
    repo = DashboardRepo(loaded.services.engine)
    start, end = T0, T0 + timedelta(days=3)
    data = repo.summary(loaded.account, start, end, Bucket.DAY, limit=5)
    detections = _detections(loaded.messages)
    senders = Counter(m.sender for m in detections if m.sender)
    domains = Counter(m.sender.rpartition("@")[2] for m in detections if m.sender)
    categories = Counter(c for m in detections for c in m.categories)
    assert [(r.value, r.count) for r in data.top_senders] == _top(senders, 5)
    assert [(r.value, r.count) for r in data.top_sender_domains] == _top(domains, 5)
    assert [(r.value, r.count) for r in data.top_threat_categories] == _top(categories, 5)
    assert categories, "the phishing slice must carry threat categories"
    assert data.total == len(loaded.messages) and data.detections == len(detections)
    assert data.totals_by_disposition() == dict(Counter(m.disposition for m in loaded.messages))


def test_period_bounds_and_account_scope(loaded: Loaded) -> None:
    repo = DashboardRepo(loaded.services.engine)
    first_day = repo.summary(loaded.other, T0, T0 + timedelta(days=1))
    assert first_day.total == 15
    nothing = repo.summary(loaded.account, T0 + timedelta(days=10), T0 + timedelta(days=11))
    assert nothing.total == 0 and nothing.top_senders == [] and nothing.top_threat_categories == []
    with pytest.raises(DashboardError):
        repo.volume(loaded.account, T0, T0, Bucket.HOUR)
    with pytest.raises(DashboardError):
        repo.volume(loaded.account, T0, T0 + timedelta(days=400), Bucket.HOUR)
    assert bucket_floor(T0 + timedelta(hours=3, minutes=59), Bucket.HOUR) == T0 + timedelta(hours=3)
    assert bucket_floor(T0 + timedelta(hours=23), Bucket.DAY) == T0
