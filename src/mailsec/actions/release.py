"""Release from quarantine: deliver held messages to their recipients through the next hop now, and report per
recipient exactly what the next hop said — delivered (2xx), failed (5xx), undelivered (4xx or no connection; the
queue retries these). The action log records who asked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mailsec import ids
from mailsec.gateway import decide, dispatch
from mailsec.model import Operation, TraceDirection
from mailsec.services import Services
from mailsec.store.queue import QueueRepo

RELEASABLE = decide.RELEASABLE


@dataclass
class ReleaseResult:
    id: str
    postfix_id: str | None
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    undelivered: list[str] = field(default_factory=list)
    found: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "postfix_id": self.postfix_id,
            "delivered": self.delivered,
            "failed": self.failed,
            "undelivered": self.undelivered,
        }


def release_one(services: Services, account_id: str, ref: str, requested_by: str | None) -> ReleaseResult:
    message = services.messages.get(account_id, ref)
    if message is None:
        return ReleaseResult(ids.normalize_message_ref(ref), ids.postfix_id_of(ref), found=False)
    result = ReleaseResult(message.id, message.postfix_id)
    if not message.is_quarantined:
        return result  # nothing is held: nothing to deliver
    recipients = decide.releasable(dispatch.known_states(services.messages.recipient_states(message.pk)))
    services.messages.add_trace(
        message.pk, TraceDirection.INBOUND, f"released from quarantine by {requested_by or 'unknown'}"
    )
    mail_from = message.envelope_from
    outcome = dispatch.deliver_message(
        services, message, recipients, mail_from, "release delivery", released_by=requested_by or ""
    )
    result.delivered, result.failed, result.undelivered = outcome.delivered, outcome.failed, outcome.undelivered
    concluded = decide.conclude_release(outcome.replies, services.settings.queue_retry_seconds)
    if concluded.retry_in_us is not None:
        envelope = {
            "mail_from": mail_from,
            "rcpt_to": recipients,
            "mode": message.delivery_mode.value,
            "received_us": int(message.scanned_at.timestamp() * 1_000_000),
        }
        QueueRepo(services.engine).schedule_retry(
            message.postfix_id, account_id, message.raw_sha256, envelope, {"release": True},
            concluded.retry_in_us,
        )  # fmt: skip
        services.messages.add_trace(
            message.pk,
            TraceDirection.OUTBOUND,
            f"release: {len(outcome.undelivered)} recipient(s) deferred; will retry",
        )
    services.messages.add_action(
        message.pk, Operation.QUARANTINE_RELEASE, status=concluded.status, folder="Inbox", requested_by=requested_by
    )
    return result


def release(services: Services, account_id: str, refs: list[str], requested_by: str | None) -> list[ReleaseResult]:
    return [release_one(services, account_id, ref, requested_by) for ref in refs]
