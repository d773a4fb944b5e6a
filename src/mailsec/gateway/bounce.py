"""Telling the envelope sender that mail accepted with `250` was refused for good by the next hop: the notice is
built by gateway/dsn.py and handed off by the gateway's own delivery client, with a null envelope sender, to the
sender's next hop when the sender is in a protected domain, else through `dsn_relay` (a smarthost). Every outcome
is a trace line on the original message."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from mailsec.gateway import dispatch
from mailsec.gateway.deliver import NextHop, Reply, deliver, parse_next_hop
from mailsec.gateway.dsn import Failure, build_dsn, wants_dsn
from mailsec.model import TraceDirection
from mailsec.services import Services
from mailsec.store.messages import StoredMessage

log = logging.getLogger("mailsec.gateway.bounce")
OUTBOUND = TraceDirection.OUTBOUND


def _route(services: Services, sender: str) -> NextHop | str:
    hop = dispatch.hop_for(services, sender)
    if not isinstance(hop, str):
        return hop
    relay = services.settings.dsn_relay
    if not relay:
        return "the sender is outside the protected domains and no dsn_relay is configured"
    try:
        return parse_next_hop(relay)
    except ValueError as exc:
        return f"dsn_relay: {exc}"


def notify_sender(
    services: Services,
    message: StoredMessage,
    mail_from: str,
    failed: Mapping[str, Reply],
    raw: bytes | None,
    arrival: datetime,
    expired: frozenset[str] = frozenset(),
) -> Reply | None:
    """Send one DSN for the recipients in `failed` (their final replies); None when none is owed or it could not
    be routed. Never raises: a notice that cannot go out is a trace line, not a failed queue row."""
    try:
        if raw is None:
            raw = services.blobs.get(message.raw_sha256)
        if not failed or not wants_dsn(mail_from, raw):
            return None
        sender = mail_from.strip().strip("<>")
        failures = []
        for rcpt, reply in failed.items():
            hop = dispatch.hop_for(services, rcpt)
            remote = None if isinstance(hop, str) or rcpt in expired else hop.host
            failures.append(Failure(rcpt, reply.code, reply.text, remote, expired=rcpt in expired))
        settings = services.settings
        data = build_dsn(
            reporting_mta=settings.smtp_hostname,
            queue_id=message.postfix_id,
            mail_from=sender,
            failures=failures,
            original=raw,
            arrival=arrival,
            now=datetime.now(UTC),
        )
        route = _route(services, sender)
        if isinstance(route, str):
            services.messages.add_trace(
                message.pk, OUTBOUND, f"delivery status notification to <{sender}> not sent: {route}"
            )
            return None
        replies = deliver(
            route, "", [sender], data, helo=settings.smtp_hostname, timeout=settings.delivery_timeout_seconds
        )
        answer = replies.get(sender, Reply(451, "4.3.0 no reply"))
        services.messages.add_trace(
            message.pk, OUTBOUND, f"delivery status notification to <{sender}> via {route}: {answer}"
        )
        return answer
    except Exception:
        log.exception("delivery status notification for %s failed", message.postfix_id)
        return None
