"""Dispatch: quarantine by the account's policy, or hand the message to each recipient's next hop with the verdict
stamped in headers; record every attempt as an outbound trace line and every recipient's resulting state."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.header import Header, decode_header
from typing import Any

from mailsec.gateway import decide
from mailsec.gateway.deliver import Connections, NextHop, Reply, deliver, parse_next_hop
from mailsec.gateway.fold import clean, fold_header
from mailsec.gateway.reencode import relay_form
from mailsec.model import RecipientState, TraceDirection
from mailsec.observability import Timer, logger, metrics
from mailsec.services import Services
from mailsec.store.messages import DeliveryWrites, StoredMessage
from mailsec.store.policies import QuarantinePolicy, get_quarantine_policy
from mailsec.store.records import to_us

SENDING = RecipientState.SENDING.value
OUTBOUND = TraceDirection.OUTBOUND
log = logging.getLogger("mailsec.gateway.dispatch")
events = logger("mailsec.delivery")


@dataclass
class Outcome:
    """Per recipient, what the next hop said, split the way the release API reports it."""

    replies: dict[str, Reply] = field(default_factory=dict)
    conclusion: decide.Conclusion = field(default_factory=decide.Conclusion)

    @property
    def delivered(self) -> list[str]:
        return [r for r, rep in self.replies.items() if rep.ok]

    @property
    def failed(self) -> list[str]:
        return [r for r, rep in self.replies.items() if rep.permanent]

    @property
    def undelivered(self) -> list[str]:
        return [r for r, rep in self.replies.items() if not rep.ok and not rep.permanent]


def _header_value(value: str, limit: int = 900) -> str:
    value = " ".join(value.replace("\r", " ").replace("\n", " ").split())
    return value.encode("ascii", "replace").decode("ascii")[:limit]


def delivery_id(message: StoredMessage, hostname: str) -> str:
    """The same for every copy of this message mailsec hands off (first try, retry, rerun after a kill, release), so
    the receiving side can recognise a duplicate (e.g. Sieve `duplicate :header "X-MailSec-Delivery-Id"`)."""
    return f"<{message.postfix_id}@{_header_value(hostname, 200) or 'mailsec.local'}>"


def verdict_headers(
    message: StoredMessage,
    released_by: str | None = None,
    hostname: str = "mailsec.local",
    possible_duplicate: str | None = None,
) -> bytes:
    """The X-MailSec-* fields, folded and encoded (gateway/fold.py); each detection reason once."""
    reasons = "; ".join(distinct_reasons(message.detection_reasons))
    fields = [
        fold_header("X-MailSec-Disposition", message.final_disposition.value, 200),
        fold_header("X-MailSec-Reasons", reasons or "none"),
        fold_header("X-MailSec-Queue-ID", message.postfix_id, 200),
        fold_header("X-MailSec-Delivery-Id", delivery_id(message, hostname), 300),
    ]
    if released_by is not None:
        fields.append(fold_header("X-MailSec-Released", released_by or "yes", 200))
    if possible_duplicate is not None:
        fields.append(fold_header("X-MailSec-Possible-Duplicate", possible_duplicate, 300))
    return b"".join(fields)


def distinct_reasons(reasons: Iterable[str]) -> list[str]:
    """Each reason once, in order: exact repeats go, and so does a reason another one already quotes whole (the
    corroboration reason repeats its evidence's)."""
    cleaned = list(dict.fromkeys(c for c in (clean(r) for r in reasons) if c))
    return [r for r in cleaned if not any(r != other and r in other for other in cleaned)]


def received_field(message: StoredMessage) -> bytes:
    """The Received line the gateway wrote when it accepted the message (none for mail that did not come by SMTP,
    or was accepted by a version that did not write one)."""
    value = message.data.received_header
    return fold_header("Received", str(value), 2000) if value else b""


# -- the raw message's own header block (bytes as received: CRLF or LF, maybe 8-bit, maybe no headers at all) --------

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_SUBJECT = re.compile(rb"(?im)^subject[ \t]*:")
_MESSAGE_ID = re.compile(rb"(?im)^message-id[ \t]*:[ \t]*(\r?\n[ \t]+)*[^\s]")
_LOGICAL_LINE_END = re.compile(rb"\r?\n(?![ \t])")


def _head(raw: bytes) -> bytes:
    if raw.startswith((b"\r\n", b"\n")):
        return b""
    m = _HEAD_END.search(raw)
    return raw[: m.start()] if m else raw


def _decoded(value: bytes) -> str:
    text = re.sub(r"\r?\n[ \t]", " ", value.decode("utf-8", "replace"))
    try:
        # Word by word, each in its own charset, bad bytes replaced (make_header fails on an unknown charset).
        words = decode_header(text)
    except Exception:  # hostile input: a malformed encoded-word is compared as it is
        return text
    if len(words) == 1 and isinstance(words[0][0], str):
        return text
    return "".join(_chunk(c, cs) for c, cs in words)


def _chunk(data: bytes | str, charset: str | None) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode(charset or "ascii", "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _encoded_tag(tag: str, before_encoded_word: bool, raw_utf8: bool = False) -> bytes:
    if tag.isascii():
        return tag.encode("ascii")
    if raw_utf8:  # the subject is already 8-bit (SMTPUTF8 mail): keep it one kind of text
        return tag.encode("utf-8")
    # Whitespace between two encoded-words is dropped when decoding: carry the separating space inside the word.
    return Header(tag + (" " if before_encoded_word else ""), "utf-8").encode().encode("ascii")


def tag_subject(raw: bytes, tag: str) -> bytes:
    """`tag` put before the Subject (added when there is none). The rest of the header is kept byte for byte, so
    RFC 2047 encoded-words stay valid; a subject that already starts with the tag is left alone (no double tag)."""
    head = _head(raw)
    m = _SUBJECT.search(head)
    if m is None:
        return b"Subject: " + _encoded_tag(tag, False) + b"\r\n" + raw
    end = _LOGICAL_LINE_END.search(head, m.end())
    value_end = end.start() if end else len(head)
    value = head[m.end() : value_end]
    if _decoded(value).lstrip().startswith(tag):
        return raw
    rest = value.lstrip(b" \t")
    glue = b" " if rest and not rest.startswith((b"\r", b"\n")) else b""
    encoded = _encoded_tag(tag, rest.startswith(b"=?"), re.search(rb"[\x80-\xff]", rest) is not None)
    return raw[: m.start()] + b"Subject: " + encoded + glue + rest + raw[value_end:]


def has_message_id(raw: bytes) -> bool:
    return _MESSAGE_ID.search(_head(raw)) is not None


def quarantine_policy(services: Services, account_id: str) -> QuarantinePolicy:
    return get_quarantine_policy(services.engine, account_id, services.settings.quarantine_dispositions)


def account_quarantines(services: Services, message: StoredMessage, policy: QuarantinePolicy | None = None) -> bool:
    policy = policy or quarantine_policy(services, message.account_id)
    return policy.holds(message.final_disposition.value)


def outgoing_bytes(
    services: Services,
    message: StoredMessage,
    released_by: str | None = None,
    possible_duplicate: str | None = None,
    policy: QuarantinePolicy | None = None,
    raw: bytes | None = None,
) -> bytes:
    """What the next hop gets: mailsec's Received line, verdict headers, a Message-ID when the original has none
    (derived from the postfix_id, so every copy has the same one), then the original, its Subject tagged when the
    policy says so.
    `raw` is the stored original when the caller has it in memory (no blob read)."""
    host = services.settings.smtp_hostname
    if raw is None:
        raw = services.blobs.get(message.raw_sha256)
    raw = relay_form(raw)  # no X-MailSec-* from outside, no line over 998 octets
    policy = policy or quarantine_policy(services, message.account_id)
    tag = policy.tag_for(message.final_disposition.value)
    if tag:
        raw = tag_subject(raw, tag)
    head = received_field(message) + verdict_headers(message, released_by, host, possible_duplicate)
    if not has_message_id(raw):
        head += f"Message-ID: {delivery_id(message, host)}\r\n".encode("ascii")
    return head + raw


def quarantine(services: Services, message: StoredMessage, states: list[dict[str, Any]] | None = None) -> None:
    """Hold the message; idempotent (a second call after a crash changes nothing). One transaction."""
    if message.is_quarantined and message.delivery_status == "quarantined":
        return
    rows = states if states is not None else services.messages.recipient_states(message.pk)
    writes = decide.hold(message.final_disposition.value, [r["address"] for r in rows])
    services.messages.write_delivery(message.pk, writes)


quarantine_note = decide.quarantine_note
sending_note = decide.sending_note


def hop_for(services: Services, address: str, cache: dict[str, NextHop | str] | None = None) -> NextHop | str:
    """The next hop of the domain that owns `address`, or the reason there is none. `cache` (by domain) spares the
    lookup for the other messages of a worker's batch."""
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    if cache is not None:
        found = cache.get(domain)
        if found is None:
            found = cache[domain] = _hop_for(services, address)
        return found
    return _hop_for(services, address)


def _hop_for(services: Services, address: str) -> NextHop | str:
    owner = services.domains.owner_of(address)
    if owner is None:
        return "5.1.2 no protected domain for this recipient"
    if not owner.next_hop:
        return f"5.3.5 domain {owner.domain} has no next hop configured"
    try:
        return parse_next_hop(owner.next_hop)
    except ValueError as exc:
        return f"5.3.5 {exc}"


def known_states(rows: Iterable[dict[str, Any]]) -> dict[str, RecipientState]:
    return {str(r["address"]): decide.parse_state(r["status"]) for r in rows}


def deliver_message(
    services: Services,
    message: StoredMessage,
    recipients: Iterable[str],
    mail_from: str,
    label: str,
    released_by: str | None = None,
    policy: QuarantinePolicy | None = None,
    states: list[dict[str, Any]] | None = None,
    *,
    raw: bytes | None = None,
    connections: Connections | None = None,
    hops: dict[str, NextHop | str] | None = None,
    attempt: decide.Attempt | None = None,
    sending_written: bool = False,
) -> Outcome:
    """Deliver to every recipient's next hop now; record trace lines and recipient states from the real replies,
    and the message's state as `decide.conclude` says (with `attempt`, the queue's: defer or give up).

    Before a next hop is contacted its recipients are marked `sending` (committed), and only its reply replaces
    that. A recipient found still `sending` was being handed off when the process died: the next hop may have
    the message already, so this copy goes alone, marked X-MailSec-Possible-Duplicate, and the trace says so.

    Each hop costs two commits: `sending`, then its replies with their trace lines; the conclusion joins the last.
    `raw`, `connections` and `hops` are the worker's: the original in memory, open sessions and next hops of its
    batch. `sending_written`: the `sending` states in `states` were committed by the caller for this attempt (with
    the message itself), so they mark no interrupted hand-off and need no commit of their own."""
    wanted = list(dict.fromkeys(recipients))
    before = known_states(states if states is not None else services.messages.recipient_states(message.pk))
    plan = decide.plan_hand_off(wanted, before, {r: hop_for(services, r, hops) for r in wanted}, sending_written)
    outcome = Outcome()
    pending = DeliveryWrites()  # written with the next commit
    for rcpt, reply in plan.unroutable.items():
        outcome.replies[rcpt] = reply
        _log_attempt(message, mail_from, rcpt, "none", reply, 0.0, label)
        decide.record_reply(pending, rcpt, reply)
        pending.add_trace(OUTBOUND, f"{label}: <{rcpt}> not delivered: {reply}")
    settings = services.settings
    policy = policy or quarantine_policy(services, message.account_id)
    plain: bytes | None = None
    for step in plan.hand_offs:
        rcpts = list(step.recipients)
        if step.interrupted:
            note = decide.interrupted_note(step.hop)
            data = outgoing_bytes(services, message, released_by, note, policy, raw)
            pending.add_trace(
                OUTBOUND,
                f"{label}: {note}; sending again to {', '.join(f'<{r}>' for r in rcpts)} (may be a duplicate, "
                f"same X-MailSec-Delivery-Id {delivery_id(message, settings.smtp_hostname)})",
            )
        else:
            plain = plain if plain is not None else outgoing_bytes(services, message, released_by, None, policy, raw)
            data = plain
        for rcpt in step.mark:
            pending.add_state(rcpt, RecipientState.SENDING.value, sending_note(step.hop))
        services.messages.write_delivery(message.pk, pending)  # committed before the next hop is contacted
        pending = DeliveryWrites()
        timer = Timer()
        replies = hand_off(services, step.hop, mail_from, rcpts, data, connections)
        metrics().delivery_seconds.observe(timer.seconds)
        for rcpt in rcpts:  # the state first: the window in which a kill leaves `sending` behind stays short
            outcome.replies[rcpt] = replies.get(rcpt, decide.NO_REPLY)
            decide.record_reply(pending, rcpt, outcome.replies[rcpt])
        for rcpt in rcpts:
            _log_attempt(message, mail_from, rcpt, str(step.hop), outcome.replies[rcpt], timer.seconds, label)
        for rcpt in rcpts:
            pending.add_trace(OUTBOUND, f"{label} to {step.hop}: <{rcpt}> {outcome.replies[rcpt]}")
    outcome.conclusion = decide.conclude(before, outcome.replies, attempt)
    last = outcome.conclusion.writes
    pending.states += last.states
    pending.trace += last.trace
    pending.delivery_status = last.delivery_status
    pending.is_quarantined = last.is_quarantined
    services.messages.write_delivery(message.pk, pending)
    if outcome.conclusion.bounced:
        bounced(services, message, outcome.conclusion.bounced)
    return outcome


def hand_off(
    services: Services,
    hop: NextHop,
    mail_from: str,
    recipients: list[str],
    data: bytes,
    connections: Connections | None = None,
) -> dict[str, Reply]:
    """The one place where a message's bytes leave mailsec for a next hop (delivery, retry, release)."""
    settings = services.settings
    return deliver(
        hop,
        mail_from,
        recipients,
        data,
        helo=settings.smtp_hostname,
        timeout=settings.delivery_timeout_seconds,
        connections=connections,
    )


def _log_attempt(
    message: StoredMessage, mail_from: str, rcpt: str, relay: str, reply: Reply, seconds: float, label: str
) -> None:
    """One line per recipient and attempt, as Postfix's smtp/lmtp line: to, relay, delay since the message was
    accepted, this attempt's time, status and the next hop's reply."""
    state = recipient_state(reply)
    metrics().deliveries.labels(status=state).inc()
    accepted_us = message.data.received_us or to_us(message.scanned_at)
    delay = max(0.0, time.time() - accepted_us / 1e6) if accepted_us else None
    status = {"delivered": "sent"}.get(state, state)
    fields = {"queue_id": message.postfix_id, "from": mail_from, "to": rcpt, "relay": relay}
    events.info(
        "delivery",
        **fields,
        delay=None if delay is None else round(delay, 3),
        attempt_seconds=round(seconds, 3),
        status=status,
        reply=str(reply)[:300],
        attempt=label,
    )


def recipient_state(reply: Reply) -> str:
    return "delivered" if reply.ok else "bounced" if reply.permanent else "deferred"


def bounced(services: Services, message: StoredMessage, reasons: dict[str, str]) -> None:
    """The one place where recipients are given up for good (a 5xx, or the queue lifetime over), after the
    commit that recorded it: what the sender is told starts here."""
    for rcpt, reason in reasons.items():
        log.info("message %s: <%s> bounced: %s", message.postfix_id, rcpt, reason)


def message_status(services: Services, pk: int, states: list[str] | None = None) -> str:
    """The message's delivery_status from its recipients (see decide.message_status). `states` are the
    recipients' states when the caller already knows them (no read)."""
    if states is None:
        states = [r["status"] for r in services.messages.recipient_states(pk)]
    return decide.message_status(states)
