"""One message through receive → parse → scan → store, with a trace line for each step. Used by file ingest
now and by every other way in (SMTP, mailbox import) later; each call is idempotent on its postfix_id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailsec import ids
from mailsec.learn.memory import keys_for, learned_for, remember_sketch
from mailsec.learn.model import account_model
from mailsec.mime import parse_message
from mailsec.model import DeliveryMode, Disposition, Envelope, ParsedMessage, TraceDirection, Verdict
from mailsec.observability import Timer, metrics
from mailsec.scan import scan_message
from mailsec.scan.auth import AuthOutcome
from mailsec.scan.campaign import CampaignKeys
from mailsec.scan.identity import identify
from mailsec.scan.lookalike import registered_domain
from mailsec.scan.resolvers import build_resolvers
from mailsec.services import Services
from mailsec.store.history import HistoryRepo
from mailsec.store.messages import StoredMessage
from mailsec.store.records import MessageRecord, to_us

HELD = frozenset({Disposition.MALICIOUS, Disposition.MALICIOUS_BEC, Disposition.SPOOF})


@dataclass
class Processed:
    pk: int
    postfix_id: str
    id: str
    verdict: Verdict
    duplicate: bool = False
    parsed: ParsedMessage | None = field(default=None, repr=False)
    stored: StoredMessage | None = field(default=None, repr=False)  # the row as saved (no read back needed)
    # recipient rows as this call inserted them; None when the postfix_id was stored already (a rerun)
    recipients: list[dict[str, Any]] | None = field(default=None, repr=False)


def _now() -> datetime:
    return datetime.now(UTC)


def scan_for_account(
    services: Services,
    parsed: ParsedMessage,
    envelope: Envelope,
    account_id: str,
    auth: AuthOutcome | None = None,
    keys: CampaignKeys | None = None,
) -> Verdict:
    """The account's policy, its history with the sender, what it learned from reclassifications (campaigns,
    senders, its content model) and the configured resolvers, handed to the pure scanner (`auth`: authentication
    results already known, not checked again; `keys`: the message's campaign keys when the caller has them)."""
    resolvers = build_resolvers(services.settings)
    who = identify(parsed, envelope)
    history = HistoryRepo(services.engine).read(account_id, who.from_org, who.from_address)
    learned, version = learned_for(services, account_id, who, keys if keys is not None else keys_for(parsed))
    return scan_message(
        parsed,
        envelope,
        services.policies.policy(account_id),
        resolvers,
        model=account_model(services, account_id, version),
        auth=auth,
        history=history,
        learned=learned,
    )


def remember_sender(services: Services, account_id: str, parsed: ParsedMessage, envelope: Envelope, v: Verdict) -> None:
    """After a scan: mail from the account's own domains counts as written to its recipients outside them; any other
    mail adds to its sender's record (as flagged when the verdict holds it)."""
    who = identify(parsed, envelope)
    protected = {registered_domain(d.strip().lower()) for d in services.policies.policy(account_id).protected_domains}
    repo = HistoryRepo(services.engine)
    if who.from_org and who.from_org in protected:
        rcpts = envelope.rcpt_to or tuple(a.email for a in [*parsed.to, *parsed.cc] if a.email)
        repo.record_outbound(account_id, [r for r in rcpts if registered_domain(r.rpartition("@")[2]) not in protected])
        return
    repo.record_inbound(account_id, who.from_org, who.from_address, v.disposition in HELD)


def process_message(
    services: Services,
    raw: bytes,
    account_id: str,
    envelope: Envelope | None = None,
    mode: DeliveryMode = DeliveryMode.API,
    source: str = "",
    dedupe: bool = True,
    postfix_id: str | None = None,
    received_at: datetime | None = None,
    delivery_status: str | None = None,
    extra_trace: list[tuple[str, str, datetime]] | None = None,
    before_save: Callable[[MessageRecord], None] | None = None,
) -> Processed:
    """`before_save(record)` may complete the record (e.g. the queue worker's recipient states) so that it is
    written in the same transaction as the message."""
    envelope = envelope or Envelope()
    digest = hashlib.sha256(raw).hexdigest()
    if dedupe:
        existing = services.messages.find_by_raw(account_id, digest)
        if existing is not None:
            return Processed(existing.pk, existing.postfix_id, existing.id, Verdict(), duplicate=True)
    received_at = received_at or _now()
    postfix_id = postfix_id or ids.new_postfix_id()
    trace: list[tuple[str, str, datetime]] = list(extra_trace or [])  # e.g. the SMTP session's lines
    inbound = TraceDirection.INBOUND.value
    origin = f" from {source}" if source else ""
    trace.append((inbound, f"received{origin} ({len(raw)} bytes, delivery mode {mode.value})", received_at))
    services.blobs.put(raw)
    trace.append((inbound, f"queued as {postfix_id}; raw message stored as sha256:{digest[:16]}", _now()))
    timer = Timer()
    parsed = parse_message(raw)
    detail = (
        f"; {len(parsed.defects)} defect(s): {', '.join(sorted(set(parsed.defects))[:5])}" if parsed.defects else ""
    )
    trace.append(
        (inbound, f"parsed: {len(parsed.attachments)} attachment(s), {len(parsed.links)} link(s){detail}", _now())
    )
    keys = keys_for(parsed)
    verdict = scan_for_account(services, parsed, envelope, account_id, keys=keys)
    metrics().scan_seconds.observe(timer.seconds)
    scanned_at = _now()
    reasons = "; ".join(verdict.detection_reasons[:3])
    trace.append((inbound, f"scanned: {verdict.disposition.value}" + (f" ({reasons})" if reasons else ""), scanned_at))
    record = MessageRecord(
        account_id=account_id,
        postfix_id=postfix_id,
        scanned_at=scanned_at,
        raw_sha256=digest,
        raw_size=len(raw),
        delivery_mode=mode,
        parsed=parsed,
        envelope=envelope,
        verdict=verdict,
        delivery_status=delivery_status,
        trace=trace,
    )
    record.trace.append((inbound, f"stored as {record.investigate_id}", _now()))
    if before_save is not None:
        before_save(record)
    stored, recipients = services.messages.save_stored(record)
    metrics().scanned.labels(disposition=str(verdict.disposition)).inc()
    remember_sender(services, account_id, parsed, envelope, verdict)
    remember_sketch(services, account_id, stored.pk, to_us(stored.scanned_at), keys)
    return Processed(
        stored.pk, postfix_id, record.investigate_id, verdict, parsed=parsed, stored=stored, recipients=recipients
    )
