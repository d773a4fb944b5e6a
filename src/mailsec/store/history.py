"""Per account, what it has seen of each sender domain and address: clean inbound mail (count and distinct days),
mail its users sent there, and mail held or reclassified as bad. The pipeline reads a `SenderHistory` before the scan
and records the message after it; an analyst's reclassification calls `record_reclassified`.

Counters are added in one upsert per message (INSERT ... ON CONFLICT DO UPDATE, the same on SQLite and PostgreSQL,
safe against concurrent workers). One row per (account, kind, value); the kind `account`
counts every message of the account, so first contact means something only once the account has a history."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, text

from mailsec.scan.history import Contact, SenderHistory
from mailsec.scan.lookalike import registered_domain

DAY_US = 86_400_000_000
MAX_VALUE = 320


def _now_us() -> int:
    return time.time_ns() // 1000


def _row(kind: str, value: str, when_us: int, inbound: int = 0, outbound: int = 0, flagged: int = 0) -> dict[str, Any]:
    return {
        "kind": kind, "value": value.strip().lower()[:MAX_VALUE], "inbound": inbound, "outbound": outbound,
        "flagged": flagged, "days": 1 if inbound else 0, "last_day": when_us // DAY_US if inbound else 0,
        "first_us": when_us, "last_us": when_us,
    }  # fmt: skip


# One statement for SQLite (3.24+) and PostgreSQL; written out so that it is compiled once, not per message.
_UPSERT = text(
    "INSERT INTO sender_history (account_id, kind, value, inbound, outbound, flagged, days, last_day, first_us, "
    "last_us) VALUES (:account_id, :kind, :value, :inbound, :outbound, :flagged, :days, :last_day, :first_us, "
    ":last_us) ON CONFLICT (account_id, kind, value) DO UPDATE SET "
    "inbound = sender_history.inbound + excluded.inbound, "
    "outbound = sender_history.outbound + excluded.outbound, "
    "flagged = sender_history.flagged + excluded.flagged, "
    "days = sender_history.days + CASE WHEN excluded.inbound > 0 AND sender_history.last_day < excluded.last_day "
    "THEN 1 ELSE 0 END, "
    "last_day = CASE WHEN excluded.inbound > 0 AND sender_history.last_day < excluded.last_day "
    "THEN excluded.last_day ELSE sender_history.last_day END, "
    "last_us = excluded.last_us"
)


def _upsert(conn: Connection, account_id: str, rows: list[dict[str, Any]]) -> None:
    """Add the rows' counts to the stored ones (INSERT ... ON CONFLICT DO UPDATE, safe against concurrent workers):
    a new day of inbound mail counts once, however many messages it brings."""
    rows = [{**r, "account_id": account_id} for r in rows if r["value"] or r["kind"] == "account"]
    if rows:
        conn.execute(_UPSERT, rows)


_READ = text(
    "SELECT kind, inbound, days, outbound, flagged, first_us FROM sender_history WHERE account_id = :account_id "
    "AND ((kind = 'account' AND value = '') OR (kind = 'domain' AND value = :domain) "
    "OR (kind = 'address' AND value = :address))"
)


class HistoryRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def read(self, account_id: str, domain: str, address: str) -> SenderHistory:
        domain, address = domain.strip().lower()[:MAX_VALUE], address.strip().lower()[:MAX_VALUE]
        with self.engine.connect() as conn:
            rows = conn.execute(_READ, {"account_id": account_id, "domain": domain, "address": address}).all()
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
        rows = [
            _row("account", "", when_us, inbound=1),
            _row("domain", domain, when_us, inbound=clean, flagged=bad),
            _row("address", address, when_us, inbound=clean, flagged=bad),
        ]
        with self.engine.begin() as conn:
            _upsert(conn, account_id, rows)

    def record_outbound(self, account_id: str, recipients: Iterable[str], when_us: int = 0) -> None:
        """The account's users wrote to these addresses (and so to their registered domains)."""
        when_us = when_us or _now_us()
        addresses = list(dict.fromkeys(r.strip().lower() for r in recipients if "@" in r))[:100]
        rows = {("address", a): _row("address", a, when_us, outbound=1) for a in addresses}
        for a in addresses:
            domain = registered_domain(a.rpartition("@")[2])
            if ("domain", domain) in rows:
                rows[("domain", domain)]["outbound"] += 1
            else:
                rows[("domain", domain)] = _row("domain", domain, when_us, outbound=1)
        with self.engine.begin() as conn:
            _upsert(conn, account_id, list(rows.values()))

    def record_reclassified(self, account_id: str, domain: str, address: str, when_us: int = 0) -> None:
        """An analyst called earlier mail from this sender bad: its history no longer relieves."""
        when_us = when_us or _now_us()
        with self.engine.begin() as conn:
            _upsert(
                conn,
                account_id,
                [_row("domain", domain, when_us, flagged=1), _row("address", address, when_us, flagged=1)],
            )
