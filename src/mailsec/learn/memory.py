"""What the pipeline asks of learning for each message: the keys of its campaign (computed once), the lessons that
apply to it, and, after it is stored, its sketch for later blast-radius searches. A failure here costs the message
its lessons (logged), never its scan."""

from __future__ import annotations

import logging

from mailsec.learn.campaigns import CampaignRepo, SketchRepo
from mailsec.learn.senders import SenderLessonRepo
from mailsec.model import ParsedMessage
from mailsec.scan.campaign import CampaignKeys, campaign_keys
from mailsec.scan.identity import SenderIdentity
from mailsec.scan.learned import Learned
from mailsec.services import Services

log = logging.getLogger(__name__)


def keys_for(parsed: ParsedMessage) -> CampaignKeys | None:
    try:
        return campaign_keys(parsed)
    except Exception:
        log.exception("campaign keys not computed")
        return None


def learned_for(services: Services, account_id: str, who: SenderIdentity, keys: CampaignKeys | None) -> Learned | None:
    try:
        campaign = CampaignRepo(services.engine).lesson_for(account_id, keys) if keys is not None else None
        sender = SenderLessonRepo(services.engine).lesson_for(account_id, who)
    except Exception:
        log.exception("learned lessons not read for account %s", account_id)
        return None
    return Learned(campaign=campaign, sender=sender) if campaign or sender else None


def remember_sketch(
    services: Services, account_id: str, message_pk: int, scanned_us: int, keys: CampaignKeys | None
) -> None:
    if keys is None:
        return
    try:
        SketchRepo(services.engine).save(account_id, message_pk, scanned_us, keys)
    except Exception:
        log.exception("sketch of message %s not saved", message_pk)
