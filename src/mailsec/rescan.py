"""Re-scan stored messages with today's rules and the account's current policy (`mailsec rescan`).

Each stored raw message is parsed again from the blob store and scanned as it would be now; the new verdict
replaces the old one (findings, reasons, disposition, search text), the original delivery mode and identifiers are
kept, and a trace line records the retro-scan (RETRO_SCAN) with the old and new disposition. Nothing is delivered
again. When the disposition changed and the account's auto-move rules name a folder for the new one, the copies in
the recipients' mailboxes are moved there afterwards (a retro-action, in batched requests per destination), as the
queue worker does for a fresh copy; held (quarantined) mail is in no mailbox and is left alone."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mailsec.actions import auto_move
from mailsec.actions.move import BackendFor, MoveItem, move
from mailsec.mime import parse_message
from mailsec.model import DeliveryMode, Destination, Disposition, Envelope, TraceDirection
from mailsec.pipeline import scan_for_account
from mailsec.scan.auth import AUTH_FINDINGS, AuthOutcome
from mailsec.scan.resolvers import build_resolvers
from mailsec.services import Services
from mailsec.store.blobs import BlobNotFound
from mailsec.store.messages import StoredMessage
from mailsec.store.records import MessageRecord


@dataclass(frozen=True)
class RescanFilter:
    since: datetime | None = None  # scan time, inclusive
    until: datetime | None = None  # scan time, exclusive
    sender: str | None = None  # an address, or a domain (and its subdomains), of the From or envelope sender
    dispositions: frozenset[str] = frozenset()  # the current disposition is one of these

    def matches(self, m: StoredMessage) -> bool:
        at = m.scanned_at
        if self.since is not None and at < self.since:
            return False
        if self.until is not None and at >= self.until:
            return False
        if self.dispositions and str(m.final_disposition).upper() not in self.dispositions:
            return False
        if self.sender:
            want = self.sender.strip().lower()
            addresses = [a.lower() for a in (m.from_addr, m.envelope_from) if a]
            if "@" in want:
                return want in addresses
            domains = [a.rpartition("@")[2] for a in addresses]
            want = want.lstrip("@")
            return any(d == want or d.endswith("." + want) for d in domains)
        return True


@dataclass(frozen=True)
class Change:
    id: str
    old: str
    new: str


@dataclass
class RescanSummary:
    scanned: int = 0
    changed: list[Change] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, reason)
    moves: list[MoveItem] = field(default_factory=list)  # the auto-move retro-action, one item per mailbox copy


def select(services: Services, account_id: str, filters: RescanFilter, batch: int = 500) -> list[int]:
    """The keys of the account's stored messages that pass the filters, oldest first (rows read in batches)."""
    out: list[int] = []
    pks: list[int] = []
    for pk in services.messages.iter_pks(account_id, batch=batch):
        pks.append(pk)
        if len(pks) >= batch:
            out.extend(m.pk for m in services.messages.get_many(pks) if filters.matches(m))
            pks = []
    if pks:
        out.extend(m.pk for m in services.messages.get_many(pks) if filters.matches(m))
    return out


def _load(services: Services, pks: list[int], batch: int = 200) -> Iterator[StoredMessage]:
    for i in range(0, len(pks), batch):
        yield from services.messages.get_many(pks[i : i + batch])


def _envelope(m: StoredMessage) -> Envelope:
    return Envelope(
        mail_from=m.envelope_from,
        rcpt_to=m.data.envelope_to,
        client_ip=m.data.client_ip,
        helo=m.data.helo,
        tls=m.data.tls,
    )


def recorded_auth(m: StoredMessage) -> AuthOutcome:
    """The sender authentication of the first scan, as it was stored. A rescan without DNS keeps it: SPF, DKIM and
    DMARC were facts of the day the message arrived (today's DNS would misjudge rotated keys), and dropping them
    would turn a SPOOF into NONE."""
    verdict = m.verdict
    return AuthOutcome(
        validation=verdict.validation,
        findings=tuple(f for f in verdict.findings if f.name in AUTH_FINDINGS),
        sender_info=verdict.sender_info,
    )


def rescan_one(services: Services, account_id: str, m: StoredMessage) -> Change:
    raw = services.blobs.get(m.raw_sha256)
    parsed = parse_message(raw)
    envelope = _envelope(m)
    recorded = None if build_resolvers(services.settings).dns is not None else recorded_auth(m)
    verdict = scan_for_account(services, parsed, envelope, account_id, auth=recorded)
    record = MessageRecord(
        account_id=account_id,
        postfix_id=m.postfix_id,
        scanned_at=m.scanned_at,
        raw_sha256=m.raw_sha256,
        raw_size=m.raw_size,
        delivery_mode=m.delivery_mode,
        parsed=parsed,
        envelope=envelope,
        verdict=verdict,
    )
    old = str(m.final_disposition)
    new = old if m.reclassified else str(verdict.disposition)
    services.messages.update_verdict(m.pk, verdict, search_text=record.search_text())
    reasons = "; ".join(verdict.detection_reasons[:3])
    if m.reclassified:
        what = f"{old} kept (an analyst's reclassification; the scan alone says {verdict.disposition})"
    else:
        what = f"{old} -> {new}" if old != new else f"{new} (unchanged)"
    services.messages.add_trace(
        m.pk,
        TraceDirection.INBOUND,
        f"re-scanned ({DeliveryMode.RETRO_SCAN.value}) with current rules and policy: {what}"
        + (f" ({reasons})" if reasons else ""),
    )
    return Change(m.id, old, new)


MOVE_CHUNK = 1000  # messages per move request, as the API's bulk move


def rescan(
    services: Services,
    account_id: str,
    pks: list[int] | None = None,
    on_item: Callable[[Change | None], None] | None = None,
    move_after: bool = True,
    backend_for: BackendFor | None = None,
) -> RescanSummary:
    """Re-scan the given messages (default: all of the account's); one that cannot be re-scanned (raw blob gone)
    is reported in the summary, never fatal. `move_after`: apply the account's auto-move rules to the messages
    whose disposition changed."""
    if pks is None:
        pks = select(services, account_id, RescanFilter())
    rules = auto_move.get_rules(services.engine, account_id) if move_after else {}
    to_move: dict[Destination, list[str]] = {}
    summary = RescanSummary()
    for m in _load(services, pks):
        if m.account_id != account_id:
            continue
        try:
            change: Change | None = rescan_one(services, account_id, m)
        except BlobNotFound:
            summary.failed.append((m.id, "the raw message is missing from the blob store"))
            change = None
        except Exception as exc:  # one bad message must not stop a long rescan
            summary.failed.append((m.id, f"{type(exc).__name__}: {exc}"[:300]))
            change = None
        if change is not None:
            summary.scanned += 1
            if change.old != change.new:
                summary.changed.append(change)
                destination = rules.get(change.new)
                if destination is not None and not m.is_quarantined:
                    to_move.setdefault(destination, []).append(m.id)
        if on_item is not None:
            on_item(change)
    for destination, ids in to_move.items():
        for start in range(0, len(ids), MOVE_CHUNK):
            chunk = ids[start : start + MOVE_CHUNK]
            summary.moves += move(services, account_id, chunk, destination, auto_move.REQUESTED_BY, backend_for)
    return summary


def parse_dispositions(values: Iterable[str]) -> frozenset[str]:
    """`SPAM,BULK` or repeated options → upper-case disposition names; unknown names are a ValueError."""
    known = {d.value for d in Disposition}
    out = {v.strip().upper() for value in values for v in value.split(",") if v.strip()}
    unknown = out - known
    if unknown:
        raise ValueError(f"unknown disposition(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return frozenset(out)


def parse_when(text: str) -> datetime:
    """`2026-11-01`, `2026-11-01T10:00`, `...Z` or with an offset; naive times are UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    dt = datetime.fromisoformat(value)
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
