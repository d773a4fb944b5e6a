"""Dispatch: quarantine by the account's policy, or hand the message to each recipient's next hop with the verdict
stamped in headers; record every attempt as an outbound trace line and every recipient's resulting state."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.header import Header, decode_header
from typing import Any

from mailsec.gateway.deliver import Connections, NextHop, Reply, deliver, parse_next_hop
from mailsec.gateway.reencode import relay_form
from mailsec.model import TraceDirection
from mailsec.services import Services
from mailsec.store.messages import DeliveryWrites, StoredMessage
from mailsec.store.policies import QuarantinePolicy, get_quarantine_policy

FINAL_RECIPIENT_STATES = ("delivered", "bounced", "rejected")
# A recipient whose hand-off has begun and whose reply is not recorded yet. Written (committed) before the next hop
# is contacted, so after a kill the rerun knows the copy it sends may be the second one and says so.
SENDING = "sending"
OUTBOUND = TraceDirection.OUTBOUND


@dataclass
class Outcome:
    """Per recipient, what the next hop said, split the way the release API reports it."""

    replies: dict[str, Reply] = field(default_factory=dict)

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
    reasons = "; ".join(message.verdict.get("detection_reasons", [])) or "none"
    lines = [
        f"X-MailSec-Disposition: {_header_value(str(message.row['final_disposition']))}",
        f"X-MailSec-Reasons: {_header_value(reasons)}",
        f"X-MailSec-Queue-ID: {message.postfix_id}",
        f"X-MailSec-Delivery-Id: {delivery_id(message, hostname)}",
    ]
    if released_by is not None:
        lines.append(f"X-MailSec-Released: {_header_value(released_by or 'yes', 200)}")
    if possible_duplicate is not None:
        lines.append(f"X-MailSec-Possible-Duplicate: {_header_value(possible_duplicate, 300)}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


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
    return policy.holds(str(message.row["final_disposition"]))


def outgoing_bytes(
    services: Services,
    message: StoredMessage,
    released_by: str | None = None,
    possible_duplicate: str | None = None,
    policy: QuarantinePolicy | None = None,
    raw: bytes | None = None,
) -> bytes:
    """What the next hop gets: verdict headers, a Message-ID when the original has none (derived from the
    postfix_id, so every copy has the same one), then the original, its Subject tagged when the policy says so.
    `raw` is the stored original when the caller has it in memory (no blob read)."""
    host = services.settings.smtp_hostname
    if raw is None:
        raw = services.blobs.get(message.row["raw_sha256"])
    raw = relay_form(raw)  # no X-MailSec-* from outside, no line over 998 octets
    policy = policy or quarantine_policy(services, message.account_id)
    tag = policy.tag_for(str(message.row["final_disposition"]))
    if tag:
        raw = tag_subject(raw, tag)
    head = verdict_headers(message, released_by, host, possible_duplicate)
    if not has_message_id(raw):
        head += f"Message-ID: {delivery_id(message, host)}\r\n".encode("ascii")
    return head + raw


def quarantine(services: Services, message: StoredMessage, states: list[dict[str, Any]] | None = None) -> None:
    """Hold the message; idempotent (a second call after a crash changes nothing). One transaction."""
    if message.row.get("is_quarantined") and message.row.get("delivery_status") == "quarantined":
        return
    writes = DeliveryWrites(delivery_status="quarantined", is_quarantined=True)
    for r in states if states is not None else services.messages.recipient_states(message.pk):
        writes.add_state(r["address"], "quarantined", "held by quarantine policy")
    writes.add_trace(TraceDirection.INBOUND, quarantine_note(str(message.row["final_disposition"])))
    services.messages.write_delivery(message.pk, writes)


def quarantine_note(disposition: str) -> str:
    return f"quarantined: disposition {disposition} is held by the account's quarantine policy"


def sending_note(hop: NextHop) -> str:
    return f"hand-off to {hop} started"


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
    conclude: Callable[[Outcome], DeliveryWrites] | None = None,
    sending_written: bool = False,
) -> Outcome:
    """Deliver to every recipient's next hop now; record trace lines and recipient states from the real replies.

    Before a next hop is contacted its recipients are marked `sending` (committed), and only its reply replaces
    that. A recipient found still `sending` was being handed off when the process died: the next hop may have
    the message already, so this copy goes alone, marked X-MailSec-Possible-Duplicate, and the trace says so.

    Each hop costs two commits: `sending`, then its replies with their trace lines. `conclude(outcome)` returns
    what the caller writes once every reply is known (the message's state); it joins the last commit. `raw`,
    `connections` and `hops` are the worker's: the original in memory, open sessions and next hops of its batch.
    `sending_written`: the `sending` states in `states` were committed by the caller for this attempt (with the
    message itself), so they mark no interrupted hand-off and need no commit of their own."""
    wanted = list(dict.fromkeys(recipients))
    states = states if states is not None else services.messages.recipient_states(message.pk)
    sending = {r["address"] for r in states if r["status"] == SENDING} & set(wanted)
    interrupted = set() if sending_written else sending
    by_hop: dict[tuple[NextHop, bool], list[str]] = defaultdict(list)
    outcome = Outcome()
    pending = DeliveryWrites()  # written with the next commit
    for rcpt in wanted:
        hop = hop_for(services, rcpt, hops)
        if isinstance(hop, str):
            outcome.replies[rcpt] = Reply(554, hop)
            _record(pending, rcpt, outcome.replies[rcpt])
            pending.add_trace(OUTBOUND, f"{label}: <{rcpt}> not delivered: 554 {hop}")
        else:
            by_hop[(hop, rcpt in interrupted)].append(rcpt)
    settings = services.settings
    policy = policy or quarantine_policy(services, message.account_id)
    plain: bytes | None = None
    for (hop, again), rcpts in by_hop.items():
        if again:
            note = f"an earlier hand-off to {hop} was interrupted before its reply was recorded"
            data = outgoing_bytes(services, message, released_by, note, policy, raw)
            pending.add_trace(
                OUTBOUND,
                f"{label}: {note}; sending again to {', '.join(f'<{r}>' for r in rcpts)} (may be a duplicate, "
                f"same X-MailSec-Delivery-Id {delivery_id(message, settings.smtp_hostname)})",
            )
        else:
            plain = plain if plain is not None else outgoing_bytes(services, message, released_by, None, policy, raw)
            data = plain
        for rcpt in rcpts:
            if not (sending_written and rcpt in sending):
                pending.add_state(rcpt, SENDING, sending_note(hop))
        services.messages.write_delivery(message.pk, pending)  # committed before the next hop is contacted
        pending = DeliveryWrites()
        replies = deliver(
            hop,
            mail_from,
            rcpts,
            data,
            helo=settings.smtp_hostname,
            timeout=settings.delivery_timeout_seconds,
            connections=connections,
        )
        for rcpt in rcpts:  # the state first: the window in which a kill leaves `sending` behind stays short
            reply = replies.get(rcpt, Reply(451, "4.3.0 no reply"))
            outcome.replies[rcpt] = reply
            _record(pending, rcpt, reply)
        for rcpt in rcpts:
            pending.add_trace(OUTBOUND, f"{label} to {hop}: <{rcpt}> {outcome.replies[rcpt]}")
    if conclude is not None:
        last = conclude(outcome)
        pending.states += last.states
        pending.trace += last.trace
        pending.delivery_status = last.delivery_status
        pending.is_quarantined = last.is_quarantined
    services.messages.write_delivery(message.pk, pending)
    return outcome


def recipient_state(reply: Reply) -> str:
    return "delivered" if reply.ok else "bounced" if reply.permanent else "deferred"


def _record(writes: DeliveryWrites, rcpt: str, reply: Reply) -> None:
    writes.add_state(rcpt, recipient_state(reply), str(reply)[:1000], "Inbox" if reply.ok else None)


def message_status(services: Services, pk: int, states: list[str] | None = None) -> str:
    """The message's delivery_status from its recipients: deferred while any is pending, else delivered or bounced.
    `states` are the recipients' states when the caller already knows them (no read)."""
    if states is None:
        states = [r["status"] for r in services.messages.recipient_states(pk)]
    if any(s in ("deferred", "queued", SENDING) for s in states):
        return "deferred"
    if any(s == "delivered" for s in states):
        return "delivered"
    if states and all(s in ("bounced", "rejected") for s in states):
        return "bounced"
    return "quarantined" if any(s == "quarantined" for s in states) else "delivered"
