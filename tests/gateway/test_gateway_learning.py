"""What an analyst's reclassification teaches the gateway, end to end: a message received over a real SMTP session,
reclassified (the event `actions.reclassify` hands to `learn.on_reclassified`), and a near-copy sent over SMTP
afterwards gets the analyst's verdict from the `mailsec serve --smtp` worker process: SPAM for a campaign called
SPAM, clean and delivered to Dovecot for a false positive called NONE."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from gw_support import Gateway
from test_gateway_flow import send, wait_status

from mailsec.learn import on_reclassified
from mailsec.model import Disposition, Reclassification
from mailsec.store.messages import StoredMessage
from support import make_eml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "learn"))
from learn_helpers import ALERT, PROMO, near_copy

D = Disposition
FINAL = {"delivered", "quarantined"}


def _receive(gw: Gateway, body: str, subject: str, sender: str) -> StoredMessage:
    raw = make_eml(subject=subject, sender=sender, to="bob@corp.example", body=body)
    (postfix_id,) = send(gw, raw, ["bob@corp.example"], sender=sender)
    return wait_status(gw, gw.account, postfix_id, FINAL)


def _reclassify(gw: Gateway, m: StoredMessage, requested: Disposition, submission: str) -> None:
    event = Reclassification(
        account_id=gw.account, message_pk=m.pk, message_id=m.id, submission_id=submission,
        original=m.final_disposition, requested=requested, requested_by="soc@corp.example", at=datetime.now(UTC),
    )  # fmt: skip
    on_reclassified(gw.services, event)


def _findings(m: StoredMessage) -> dict[str, str]:
    return {f.name: f.reason for f in m.verdict.findings}


def test_a_near_copy_of_a_message_reclassified_spam_arrives_as_spam(gateway: Gateway) -> None:
    first = _receive(gateway, PROMO, "Garden furniture", "sales@shop.example")
    assert first.final_disposition is D.NONE
    _reclassify(gateway, first, D.SPAM, "sub-gw-spam")
    copy = _receive(gateway, near_copy(PROMO), "Garden furniture, last days", "offers@shop2.example")
    assert copy.final_disposition is D.SPAM
    assert "sub-gw-spam" in _findings(copy)["LEARNED_CAMPAIGN"]


def test_a_near_copy_of_a_false_positive_arrives_clean(gateway: Gateway) -> None:
    first = _receive(gateway, ALERT, "Mailbox reminder", "it@helpdesk.example")
    assert first.final_disposition.severity >= D.SUSPICIOUS.severity
    _reclassify(gateway, first, D.NONE, "sub-gw-fp")
    copy = _receive(gateway, near_copy(ALERT), "Mailbox reminder", "it@helpdesk.example")
    assert copy.final_disposition is D.NONE and copy.delivery_status == "delivered"
    assert "sub-gw-fp" in _findings(copy)["LEARNED_CAMPAIGN_CLEAN"]
