"""Sender lessons: a false positive reclassified NONE relieves later mail of that sender only when it is
authenticated (DMARC pass against a real DNS server on loopback) and never over malware or a block policy; a sender
reclassified MALICIOUS is treated as such, and a verdict on forged (unauthenticated) mail does not follow the real
sender's authenticated mail."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from learn_helpers import ALERT, CLUB, finding, reclassify, store

from mailsec.model import Disposition, Envelope
from mailsec.services import Services
from mailsec.store import policies as kinds
from mailsec.store.history import HistoryRepo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scan"))
from dns_zone import Zones, dns_server

D = Disposition
IP = "1.2.3.4"  # the sending host (public; nothing is sent to it)
FORGER_IP = "5.6.7.8"
ENV = Envelope(mail_from="it@partner.test", client_ip=IP, helo="mail.partner.test")
FORGED = Envelope(mail_from="it@partner.test", client_ip=FORGER_IP, helo="evil.example")
OTHER_TEXT = (
    "Your mailbox storage is almost full. Confirm your account immediately or your login will be suspended; click "
    "the button below to verify your password and keep receiving messages today."
)


@pytest.fixture
def dns_services(services: Services) -> Iterator[Services]:
    zones = Zones()
    zones.txt("partner.test", f"v=spf1 ip4:{IP} -all")
    zones.txt("_dmarc.partner.test", "v=DMARC1; p=none")
    zones.a("test", "127.0.0.1")
    with dns_server(zones) as (host, port):
        yield replace(services, settings=replace(services.settings, dns_servers=(f"{host}:{port}",)))


def test_relief_for_an_authenticated_false_positive_sender(dns_services: Services) -> None:
    svc, account = dns_services, dns_services.accounts.create_account("Corp").id
    fp = store(svc, account, ALERT, subject="Mailbox", sender="it@partner.test", envelope=ENV)
    assert fp.verdict.validation.dmarc == "pass"
    assert fp.verdict.disposition.severity >= D.SUSPICIOUS.severity
    out = reclassify(svc, account, fp, D.NONE, "sub-fp")
    assert ("domain", "partner.test") in out.sender_keys

    # different words, same kind of mail, from the authenticated sender: relieved
    later = store(svc, account, OTHER_TEXT, subject="Storage", sender="it@partner.test", envelope=ENV)
    assert later.verdict.disposition is D.NONE, later.verdict.detection_reasons
    assert "sub-fp" in finding(later, "LEARNED_SENDER_RELIEF")
    # the same text from a forger (SPF fails, no DMARC pass): no relief
    forged = store(svc, account, OTHER_TEXT, subject="Storage", sender="it@partner.test", envelope=FORGED)
    assert forged.verdict.validation.dmarc != "pass"
    assert forged.verdict.disposition.severity >= D.SUSPICIOUS.severity
    assert not any(f.name == "LEARNED_SENDER_RELIEF" for f in forged.verdict.findings)
    # never over a block policy
    svc.policies.create(account, kinds.BLOCK, {"pattern": "partner.test", "pattern_type": "DOMAIN", "is_regex": False})
    blocked = store(svc, account, OTHER_TEXT, subject="Storage 2", sender="it@partner.test", envelope=ENV)
    assert blocked.verdict.disposition is D.MALICIOUS


def test_a_sender_reclassified_malicious_is_treated_as_such(dns_services: Services) -> None:
    svc, account = dns_services, dns_services.accounts.create_account("Corp").id
    first = store(svc, account, CLUB, subject="Club", sender="it@partner.test", envelope=ENV)
    assert first.verdict.disposition is D.NONE
    reclassify(svc, account, first, D.MALICIOUS, "sub-bad")
    record = HistoryRepo(svc.engine).read(account, "partner.test", "it@partner.test")
    assert record.domain is not None and record.domain.flagged == 1
    later = store(svc, account, "Minutes of the meeting are attached to this note for everyone.", subject="Notes",
                  sender="someone@partner.test", envelope=ENV)  # fmt: skip
    assert later.verdict.disposition is D.MALICIOUS
    assert "sub-bad" in finding(later, "LEARNED_SENDER")


def test_a_verdict_on_forged_mail_does_not_follow_the_real_sender(dns_services: Services) -> None:
    svc, account = dns_services, dns_services.accounts.create_account("Corp").id
    forged = store(svc, account, CLUB, subject="Club", sender="it@partner.test", envelope=FORGED)
    assert forged.verdict.validation.dmarc != "pass"
    out = reclassify(svc, account, forged, D.MALICIOUS, "sub-forged")
    assert out.sender_keys == [("address", "it@partner.test")]  # an unauthenticated From names no domain
    record = HistoryRepo(svc.engine).read(account, "partner.test", "it@partner.test")
    assert record.address is not None and record.address.flagged == 1
    assert record.domain is None or record.domain.flagged == 0
    again = store(svc, account, "Another note from the forger, nothing more to say here.", subject="x",
                  sender="it@partner.test", envelope=FORGED)  # fmt: skip
    assert again.verdict.disposition is D.MALICIOUS
    real = store(svc, account, "The real sender writes about the quarterly meeting agenda.", subject="y",
                 sender="it@partner.test", envelope=ENV)  # fmt: skip
    assert real.verdict.validation.dmarc == "pass"
    assert not any(f.name == "LEARNED_SENDER" for f in real.verdict.findings)
    assert real.verdict.disposition.severity < D.SUSPICIOUS.severity
