"""Dispatch: quarantine by the account's policy, or hand the message to each recipient's next hop with the verdict
stamped in headers; record every attempt as an outbound trace line and every recipient's resulting state."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from mailsec.gateway.deliver import NextHop, Reply, deliver, parse_next_hop
from mailsec.model import TraceDirection
from mailsec.services import Services
from mailsec.store.messages import StoredMessage
from mailsec.store.queue import QueueRepo

FINAL_RECIPIENT_STATES = ("delivered", "bounced", "rejected")
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


def verdict_headers(message: StoredMessage, released_by: str | None = None) -> bytes:
    reasons = "; ".join(message.verdict.get("detection_reasons", [])) or "none"
    lines = [
        f"X-MailSec-Disposition: {_header_value(str(message.row['final_disposition']))}",
        f"X-MailSec-Reasons: {_header_value(reasons)}",
        f"X-MailSec-Queue-ID: {message.postfix_id}",
    ]
    if released_by is not None:
        lines.append(f"X-MailSec-Released: {_header_value(released_by or 'yes', 200)}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def account_quarantines(services: Services, message: StoredMessage) -> bool:
    held = QueueRepo(services.engine).quarantine_dispositions(
        message.account_id, services.settings.quarantine_dispositions
    )
    return str(message.row["final_disposition"]).upper() in held


def quarantine(services: Services, message: StoredMessage) -> None:
    """Hold the message; idempotent (a second call after a crash changes nothing)."""
    if message.row.get("is_quarantined") and message.row.get("delivery_status") == "quarantined":
        return
    for r in services.messages.recipient_states(message.pk):
        services.messages.set_recipient_state(message.pk, r["address"], "quarantined", "held by quarantine policy")
    services.messages.set_state(message.pk, delivery_status="quarantined", is_quarantined=True)
    services.messages.add_trace(
        message.pk,
        TraceDirection.INBOUND,
        f"quarantined: disposition {message.row['final_disposition']} is held by the account's quarantine policy",
    )


def hop_for(services: Services, address: str) -> NextHop | str:
    """The next hop of the domain that owns `address`, or the reason there is none."""
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
) -> Outcome:
    """Deliver to every recipient's next hop now; record trace lines and recipient states from the real replies."""
    raw = services.blobs.get(message.row["raw_sha256"])
    data = verdict_headers(message, released_by) + raw
    by_hop: dict[NextHop, list[str]] = defaultdict(list)
    outcome = Outcome()
    for rcpt in recipients:
        hop = hop_for(services, rcpt)
        if isinstance(hop, str):
            outcome.replies[rcpt] = Reply(554, hop)
            services.messages.add_trace(message.pk, OUTBOUND, f"{label}: <{rcpt}> not delivered: 554 {hop}")
        else:
            by_hop[hop].append(rcpt)
    settings = services.settings
    for hop, rcpts in by_hop.items():
        replies = deliver(
            hop, mail_from, rcpts, data, helo=settings.smtp_hostname, timeout=settings.delivery_timeout_seconds
        )
        for rcpt in rcpts:
            reply = replies.get(rcpt, Reply(451, "4.3.0 no reply"))
            outcome.replies[rcpt] = reply
            services.messages.add_trace(message.pk, OUTBOUND, f"{label} to {hop}: <{rcpt}> {reply}")
    for rcpt, reply in outcome.replies.items():
        state = "delivered" if reply.ok else "bounced" if reply.permanent else "deferred"
        services.messages.set_recipient_state(message.pk, rcpt, state, str(reply)[:1000], "Inbox" if reply.ok else None)
    return outcome


def message_status(services: Services, pk: int) -> str:
    """The message's delivery_status from its recipients: deferred while any is pending, else delivered or bounced."""
    states = [r["status"] for r in services.messages.recipient_states(pk)]
    if any(s in ("deferred", "queued") for s in states):
        return "deferred"
    if any(s == "delivered" for s in states):
        return "delivered"
    if states and all(s in ("bounced", "rejected") for s in states):
        return "bounced"
    return "quarantined" if any(s == "quarantined" for s in states) else "delivered"
