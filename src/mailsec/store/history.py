"""Per account, what it has seen of each sender domain and address: clean inbound mail (count and distinct days),
mail its users sent there, and mail held or reclassified as bad. The pipeline reads a `SenderHistory` before the scan
and records the message after it; an analyst's reclassification calls `record_reclassified`.

Counters are updated in place (UPDATE, then INSERT when the row is new; a concurrent insert of the same row is
retried as an update), the same on SQLite and PostgreSQL. One row per (account, kind, value); the kind `account`
counts every message of the account, so first contact means something only once the account has a history."""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import ColumnElement, Connection, Engine, and_, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from mailsec.scan.history import Contact, SenderHistory
from mailsec.scan.lookalike import registered_domain
from mailsec.store.schema import sender_history as t

DAY_US = 86_400_000_000
MAX_VALUE = 320


def _now_us() -> int:
    return time.time_ns() // 1000


def _key(account_id: str, kind: str, value: str) -> ColumnElement[bool]:
    return and_(t.c.account_id == account_id, t.c.kind == kind, t.c.value == value)


def _bump(
    conn: Connection, account_id: str, kind: str, value: str, when_us: int, *, inbound: int = 0, outbound: int = 0,
    flagged: int = 0,
) -> None:  # fmt: skip
    value = value.strip().lower()[:MAX_VALUE]
    if not value and kind != "account":
        return
    day = when_us // DAY_US
    new_day = 1 if inbound else 0
    changes = {
        "inbound": t.c.inbound + inbound,
        "outbound": t.c.outbound + outbound,
        "flagged": t.c.flagged + flagged,
        "days": t.c.days + (case((t.c.last_day < day, new_day), else_=0) if inbound else 0),
        "last_day": case((t.c.last_day < day, day), else_=t.c.last_day) if inbound else t.c.last_day,
        "last_us": when_us,
    }
    for _ in range(2):
        if conn.execute(update(t).where(_key(account_id, kind, value)).values(**changes)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(t).values(
                        account_id=account_id, kind=kind, value=value, inbound=inbound, outbound=outbound,
                        flagged=flagged, days=new_day, last_day=day if inbound else 0, first_us=when_us,
                        last_us=when_us,
                    )
                )  # fmt: skip
            return
        except IntegrityError:
            continue  # another worker inserted it first: count on its row


class HistoryRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self, account_id: str, domain: str, address: str) -> SenderHistory:
        domain, address = domain.strip().lower(), address.strip().lower()
        wanted = [("account", ""), ("domain", domain), ("address", address)]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t).where(
                    t.c.account_id == account_id, or_(*(and_(t.c.kind == k, t.c.value == v) for k, v in wanted))
                )
            ).all()
        found = {
            r.kind: Contact(inbound=r.inbound, days=r.days, outbound=r.outbound, flagged=r.flagged, first_us=r.first_us)
            for r in rows
        }
        account = found.get("account")
        return SenderHistory(
            account_messages=account.inbound if account else 0,
            domain=found.get("domain") if domain else None,
            address=found.get("address") if address else None,
        )

    def record_inbound(self, account_id: str, domain: str, address: str, held: bool, when_us: int = 0) -> None:
        """One message received: clean mail adds to the sender's record, held mail to its flagged count."""
        when_us = when_us or _now_us()
        clean, bad = (0, 1) if held else (1, 0)
        with self.engine.begin() as conn:
            _bump(conn, account_id, "account", "", when_us, inbound=1)
            _bump(conn, account_id, "domain", domain, when_us, inbound=clean, flagged=bad)
            _bump(conn, account_id, "address", address, when_us, inbound=clean, flagged=bad)

    def record_outbound(self, account_id: str, recipients: Iterable[str], when_us: int = 0) -> None:
        """The account's users wrote to these addresses (and so to their registered domains)."""
        when_us = when_us or _now_us()
        with self.engine.begin() as conn:
            for rcpt in list(dict.fromkeys(r.strip().lower() for r in recipients if "@" in r))[:100]:
                _bump(conn, account_id, "address", rcpt, when_us, outbound=1)
                _bump(conn, account_id, "domain", registered_domain(rcpt.rpartition("@")[2]), when_us, outbound=1)

    def record_reclassified(self, account_id: str, domain: str, address: str, when_us: int = 0) -> None:
        """An analyst called earlier mail from this sender bad: its history no longer relieves."""
        when_us = when_us or _now_us()
        with self.engine.begin() as conn:
            _bump(conn, account_id, "domain", domain, when_us, flagged=1)
            _bump(conn, account_id, "address", address, when_us, flagged=1)
