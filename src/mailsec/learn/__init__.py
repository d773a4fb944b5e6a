"""Learning from reclassifications, per account, explained and reversible.

`actions.reclassify` records an analyst's verdict (submission, action log, new final disposition) and hands the
event to `on_reclassified`, which
- remembers the message's campaign (`campaigns.py`): later messages like it get the requested disposition, with a
  finding that names the submission;
- remembers the sender (`senders.py`): relief for an authenticated sender's false positives, or its mail treated as
  the analyst said;
- teaches the account's content model the label (`model.py`), versioned, refused below the floor;
- reports the blast radius (`blast.py`): stored messages of the last 30 days that look the same and would change."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailsec.model import Disposition, Envelope, Reclassification
from mailsec.services import Services

if TYPE_CHECKING:
    from mailsec.learn.blast import Applied, BlastRadius

log = logging.getLogger(__name__)

__all__ = ["LearnOutcome", "apply_similar", "blast_radius", "on_reclassified"]


@dataclass
class LearnOutcome:
    campaign_id: int | None = None
    sender_keys: list[tuple[str, str]] = field(default_factory=list)
    model: str = ""
    """What happened to the content model: the version made, or why none was."""
    similar: int = 0
    would_change: list[str] = field(default_factory=list)


def on_reclassified(services: Services, event: Reclassification) -> LearnOutcome:
    """Everything the account learns from one reclassification. Nothing here may undo the reclassification
    itself: each part that fails is logged and left out of the outcome."""
    from mailsec.learn.blast import blast_radius as radius_of
    from mailsec.learn.campaigns import CampaignRepo
    from mailsec.learn.model import learn_label
    from mailsec.learn.senders import SenderLessonRepo
    from mailsec.mime import parse_message
    from mailsec.scan.campaign import campaign_keys
    from mailsec.scan.features import extract_text, model_tokens
    from mailsec.scan.identity import identify
    from mailsec.scan.learned import BAD
    from mailsec.store.history import HistoryRepo

    outcome = LearnOutcome()
    m = services.messages.get_by_pk(event.message_pk)
    if m is None or m.account_id != event.account_id:
        log.warning("reclassified message %s not found in account %s", event.message_pk, event.account_id)
        return outcome
    if event.requested not in BAD and event.requested is not Disposition.NONE:
        outcome.model = f"nothing learned from {event.requested.value}"
        return outcome
    try:
        parsed = parse_message(services.blobs.get(m.raw_sha256))
    except Exception as exc:
        log.warning("reclassified message %s unreadable, nothing learned: %s", m.pk, exc)
        outcome.model = f"nothing learned: the stored message could not be read ({type(exc).__name__})"
        return outcome
    who = identify(parsed, Envelope(mail_from=m.envelope_from, rcpt_to=m.envelope_to))
    if m.verdict.validation.dmarc == "pass" and who.from_domain:
        who = who.authenticate(who.from_domain)
    try:
        keys = campaign_keys(parsed)
        outcome.campaign_id = CampaignRepo(services.engine).remember(
            event.account_id, event.submission_id, m.pk, event.requested, event.original, keys
        )
    except Exception:
        log.exception("campaign of message %s not remembered", m.pk)
    try:
        outcome.sender_keys = SenderLessonRepo(services.engine).remember(
            event.account_id, who, event.submission_id, event.requested, event.original
        )
        if event.requested in BAD:  # the sender history's record; `actions.reclassify` leaves it to learning
            domain = who.from_org if who.authenticated else ""  # a forged From says nothing about its domain
            HistoryRepo(services.engine).record_reclassified(event.account_id, domain, who.from_address)
    except Exception:
        log.exception("sender of message %s not remembered", m.pk)
    try:
        tokens = model_tokens(extract_text(parsed))
        update = learn_label(services, event.account_id, tokens, event.requested, event.submission_id)
        outcome.model = f"version {update.version}: {update.reason}" if update.version else update.reason
    except Exception as exc:
        log.exception("content model not updated from message %s", m.pk)
        outcome.model = f"not updated: {type(exc).__name__}"
    try:
        radius = radius_of(services, event.account_id, m.pk, requested=event.requested)
        outcome.similar = len(radius.similar)
        outcome.would_change = [s.id for s in radius.would_change]
    except Exception:
        log.exception("blast radius of message %s not computed", m.pk)
    return outcome


def blast_radius(services: Services, account_id: str, message_pk: int, days: int = 30) -> BlastRadius:
    """The stored messages of the last `days` that look like this one, and those whose verdict would change."""
    from mailsec.learn.blast import blast_radius as radius_of

    return radius_of(services, account_id, message_pk, days)


def apply_similar(
    services: Services, account_id: str, message_pk: int, days: int = 30, requested_by: str | None = None
) -> Applied:
    """Re-scan the messages of the blast radius whose verdict would change (and move them, when the account has
    mailbox integrations)."""
    from mailsec.learn.blast import apply
    from mailsec.learn.blast import blast_radius as radius_of

    return apply(services, radius_of(services, account_id, message_pk, days), account_id, requested_by)
