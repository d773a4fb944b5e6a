"""One table row per stored message, for the quarantine and bulk pages: the few fields an analyst scans a list by,
read from the stored row (never the message's HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailsec.store.messages import StoredMessage


@dataclass(frozen=True)
class MessageRow:
    id: str
    postfix_id: str
    scanned_at: datetime
    sender: str
    sender_name: str
    recipients: str
    subject: str
    disposition: str
    delivery_status: str
    reasons: str

    @property
    def badge(self) -> str:
        return "badge-" + self.disposition.lower()


def message_row(m: StoredMessage) -> MessageRow:
    return MessageRow(
        id=m.id,
        postfix_id=m.postfix_id,
        scanned_at=m.scanned_at,
        sender=m.from_addr or m.envelope_from or "",
        sender_name=m.from_name or "",
        recipients=", ".join(m.envelope_to[:3]) + (f" +{len(m.envelope_to) - 3}" if len(m.envelope_to) > 3 else ""),
        subject=m.subject or "",
        disposition=m.final_disposition.value,
        delivery_status=m.delivery_status or "",
        reasons="; ".join(m.detection_reasons[:3]),
    )
