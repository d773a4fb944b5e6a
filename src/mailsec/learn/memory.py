"""What the pipeline asks of learning for each message: the keys of its campaign (computed once), the lessons that
apply to it, and, after it is stored, its sketch for later blast-radius searches. A failure here costs the message
its lessons (logged), never its scan."""

from __future__ import annotations

import logging

from sqlalchemy import text

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


# One statement that says which lessons the account has at all and its active model version: most messages of most
# accounts need nothing more (written out, so that it is compiled once, not per message).
_WHAT_IS_LEARNED = text(
    "SELECT EXISTS (SELECT 1 FROM learn_campaigns WHERE account_id = :account_id) AS campaigns, "
    "EXISTS (SELECT 1 FROM learn_senders WHERE account_id = :account_id) AS senders, "
    "(SELECT version FROM learn_models WHERE account_id = :account_id AND state = 'active') AS version"
)


def learned_for(
    services: Services, account_id: str, who: SenderIdentity, keys: CampaignKeys | None
) -> tuple[Learned | None, int | None]:
    """The lessons for this message and the account's active model version, read on one connection (None for the
    version when it could not be read: the caller reads it again)."""
    try:
        with services.engine.connect() as conn:
            has = conn.execute(_WHAT_IS_LEARNED, {"account_id": account_id}).one()
            campaign = sender = None
            if has.campaigns and keys is not None:
                campaign = CampaignRepo(services.engine).lesson_for(account_id, keys, conn)
            if has.senders:
                sender = SenderLessonRepo(services.engine).lesson_for(account_id, who, conn)
    except Exception:
        log.exception("learned lessons not read for account %s", account_id)
        return None, None
    return (Learned(campaign=campaign, sender=sender) if campaign or sender else None), int(has.version or 0)


def remember_sketch(
    services: Services, account_id: str, message_pk: int, scanned_us: int, keys: CampaignKeys | None
) -> None:
    if keys is None:
        return
    try:
        SketchRepo(services.engine).save(account_id, message_pk, scanned_us, keys)
    except Exception:
        log.exception("sketch of message %s not saved", message_pk)
