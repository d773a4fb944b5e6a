"""The account's own history with a sender, as an input to the scan: the pipeline reads it from the store and hands
it in, so scanning stays a pure function. First contact from a domain nobody in the account has ever mailed with is a
risk signal; mail the account's users wrote to, and a long clean record, are relief; an analyst's reclassification
of earlier mail from the domain is a warning.

Relief needs the current message to be authenticated for its From domain (DMARC pass): otherwise anyone could borrow
a known sender's name and its history. Free-mailbox domains are judged per address, never per domain."""

from __future__ import annotations

from dataclasses import dataclass

from mailsec.model import Finding
from mailsec.scan.identity import SenderIdentity
from mailsec.scan.lookalike import FREEMAIL
from mailsec.scan.registry import spec

MIN_ACCOUNT_MESSAGES = 200
"""History the account needs before first contact means anything (a fresh install has met nobody)."""
KNOWN_DAYS = 2
LONG_KNOWN_DAYS = 5


@dataclass(frozen=True)
class Contact:
    """What the account has seen of one sender domain or address."""

    inbound: int = 0
    """Messages received from it that were not held."""
    days: int = 0
    """Distinct days on which such messages arrived."""
    outbound: int = 0
    """Messages the account's users sent to it."""
    flagged: int = 0
    """Messages from it held (MALICIOUS, MALICIOUS-BEC, SPOOF) or reclassified as bad by an analyst."""
    first_us: int = 0


@dataclass(frozen=True)
class SenderHistory:
    account_messages: int = 0
    domain: Contact | None = None
    address: Contact | None = None


def history_findings(history: SenderHistory | None, who: SenderIdentity) -> list[Finding]:
    if history is None or not who.from_org:
        return []
    per_address = who.from_org in FREEMAIL
    record = history.address if per_address else history.domain
    whom = who.from_address if per_address else who.from_org
    out: list[Finding] = []
    if history.domain is not None and history.domain.flagged and not per_address:
        out.append(
            spec("SENDER_RECLASSIFIED").make(
                f"Earlier mail from {who.from_org} was held or reclassified as bad ({history.domain.flagged} "
                "message(s)).",
                field="from",
                value=who.from_org,
            )
        )
    if record is None or (record.inbound == 0 and record.outbound == 0):
        if history.account_messages >= MIN_ACCOUNT_MESSAGES:
            out.append(
                spec("SENDER_FIRST_CONTACT").make(
                    f"First contact: nobody in this account has had mail from or written to {whom} before.",
                    field="from",
                    value=whom,
                )
            )
        return out
    if not who.authenticated or record.flagged:
        return out
    if history.address is not None and history.address.outbound:
        out.append(
            spec("SENDER_REPLIED_TO").make(
                f"Your users have written to {who.from_address} ({history.address.outbound} message(s)).",
                field="from",
                value=who.from_address,
            )
        )
    elif record.outbound and not per_address:
        out.append(
            spec("SENDER_REPLIED_TO").make(
                f"Your users have written to {whom} ({record.outbound} message(s)).", field="from", value=whom
            )
        )
    if record.days >= KNOWN_DAYS:
        out.append(
            spec("SENDER_KNOWN").make(
                f"Known sender: clean mail from {whom} on {record.days} earlier days.",
                score=-2.0 if record.days >= LONG_KNOWN_DAYS else None,
                field="from",
                value=whom,
            )
        )
    return out
