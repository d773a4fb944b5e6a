"""Messages and reclassifications for the learning tests: stored through the real pipeline, reclassified by building
the event `actions.reclassify` hands to `learn.on_reclassified`."""

from __future__ import annotations

from datetime import UTC, datetime

from mailsec.learn import LearnOutcome, on_reclassified
from mailsec.model import Disposition, Envelope, Reclassification
from mailsec.pipeline import Processed, process_message
from mailsec.services import Services
from support import make_eml

PROMO = (
    "Dear friend, we are pleased to offer you our exclusive selection of premium garden furniture at wholesale "
    "prices. Order before Friday and receive free delivery to your door, plus a ten percent discount on your next "
    "order. Reply to this message to get the catalogue."
)
"""Scans as NONE: an analyst calls it SPAM."""
ALERT = (
    "URGENT: verify your account now. Your password expires today. Click here to confirm your login details and "
    "avoid suspension of your mailbox. Act immediately to keep access to your email account."
)
"""Scans as SUSPICIOUS: for the tests, the IT department's own (clumsy) reminder, a false positive."""
CLUB = (
    "Hello from the Gardening Club! This month we planted tomatoes and basil in the community garden. The next "
    "meeting is on Saturday at ten in the library hall. See you there, the committee."
)


def near_copy(text: str) -> str:
    """What the next message of a campaign changes: a greeting, a day, a sign-off."""
    out = text.replace("Dear friend", "Dear customer").replace("Friday", "Monday").replace("today", "tomorrow")
    return out + " Kind regards."


def store(
    services: Services,
    account: str,
    body: str,
    subject: str = "Offer",
    sender: str = "sales@shop.example",
    envelope: Envelope | None = None,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> Processed:
    raw = make_eml(subject=subject, sender=sender, body=body, attachments=attachments)
    return process_message(services, raw, account, envelope=envelope)


def reclassify(services: Services, account: str, p: Processed, requested: Disposition, submission: str) -> LearnOutcome:
    event = Reclassification(
        account_id=account, message_pk=p.pk, message_id=p.id, submission_id=submission,
        original=p.verdict.disposition, requested=requested, requested_by="soc@corp.example", at=datetime.now(UTC),
    )  # fmt: skip
    return on_reclassified(services, event)


def finding(p: Processed, name: str) -> str:
    """The reason of the named finding (AssertionError naming the findings there are when it is missing)."""
    for f in p.verdict.findings:
        if f.name == name:
            return f.reason
    raise AssertionError(f"no {name} among {[f.name for f in p.verdict.findings]}")
