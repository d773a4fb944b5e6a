"""Campaign memory: messages like a reclassified one get the analyst's disposition when they arrive, with a finding
that names the submission; clean lessons bring near-copies of a false positive back to NONE, never over malware."""

from __future__ import annotations

from learn_helpers import ALERT, CLUB, PROMO, finding, near_copy, reclassify, store

from mailsec.learn.campaigns import CampaignRepo
from mailsec.mime import parse_message
from mailsec.model import Disposition
from mailsec.pipeline import process_message
from mailsec.scan.campaign import campaign_keys, same_campaign, similarity
from support import make_eml

D = Disposition


def test_a_near_copy_of_a_message_reclassified_spam_arrives_as_spam(services) -> None:  # type: ignore[no-untyped-def]
    account = services.accounts.create_account("Corp").id
    other = services.accounts.create_account("Other").id
    first = store(services, account, PROMO)
    assert first.verdict.disposition is D.NONE
    reclassify(services, account, first, D.SPAM, "sub-promo")

    copy = store(services, account, near_copy(PROMO), subject="Offer 2", sender="deals@else.example")
    assert copy.verdict.disposition is D.SPAM  # the classifier alone reads the copy as SUSPICIOUS (phishing)
    reason = finding(copy, "LEARNED_CAMPAIGN")
    assert "sub-promo" in reason and "SPAM" in reason
    assert copy.verdict.detection_reasons[0].startswith("Would be SUSPICIOUS on its wording, but an analyst")
    # what one account learned is its own
    elsewhere = store(services, other, near_copy(PROMO), sender="deals@else.example")
    assert not any(f.name.startswith("LEARNED_") for f in elsewhere.verdict.findings)
    # new evidence is not the wording the analyst overruled: a near-copy with a deceptive link keeps its verdict
    html = f"<p>{near_copy(PROMO)}</p><p><a href='http://paypa1-secure.example/login'>https://www.paypal.com/</a></p>"
    raw = make_eml(subject="Offer 3", sender="deals@else.example", body=near_copy(PROMO), html=html)
    armed = process_message(services, raw, account)
    finding(armed, "LEARNED_CAMPAIGN")
    assert armed.verdict.disposition.severity > D.SPAM.severity, [f.name for f in armed.verdict.findings]
    # unrelated mail is untouched
    club = store(services, account, CLUB, subject="Club news", sender="club@garden.example")
    assert club.verdict.disposition is D.NONE
    assert not any(f.name.startswith("LEARNED_") for f in club.verdict.findings)


def test_a_near_copy_of_a_false_positive_arrives_clean_but_malware_stays(services) -> None:  # type: ignore[no-untyped-def]
    account = services.accounts.create_account("Corp").id
    alert = store(services, account, ALERT, subject="Mailbox", sender="it@corp-helpdesk.example")
    assert alert.verdict.disposition.severity >= D.SUSPICIOUS.severity
    reclassify(services, account, alert, D.NONE, "sub-fp")

    copy = store(services, account, near_copy(ALERT), subject="Mailbox", sender="it@corp-helpdesk.example")
    assert copy.verdict.disposition is D.NONE, copy.verdict.detection_reasons
    assert "sub-fp" in finding(copy, "LEARNED_CAMPAIGN_CLEAN")

    exe = [("invoice.exe", "application/octet-stream", b"MZ\x90\x00" + b"\x00" * 200)]
    armed = store(services, account, near_copy(ALERT), subject="Mailbox", sender="x@y.example", attachments=exe)
    assert armed.verdict.disposition is D.MALICIOUS
    finding(armed, "LEARNED_CAMPAIGN_CLEAN")  # it matched, and did not clear malware


def test_lookups_go_through_the_index_and_a_newer_verdict_wins(services) -> None:  # type: ignore[no-untyped-def]
    account = services.accounts.create_account("Corp").id
    first = store(services, account, PROMO)
    reclassify(services, account, first, D.SPAM, "sub-1")
    reclassify(services, account, first, D.BULK, "sub-2")  # the analyst changed their mind about the same message
    repo = CampaignRepo(services.engine)
    assert [c.submission_id for c in repo.list(account)] == ["sub-2"]
    keys = campaign_keys(parse_message(make_eml(body=near_copy(PROMO))))
    assert [c.submission_id for c in repo.candidates(account, keys)] == ["sub-2"]
    assert repo.candidates(account, campaign_keys(parse_message(make_eml(body=CLUB)))) == []
    copy = store(services, account, near_copy(PROMO), sender="deals@else.example")
    assert copy.verdict.disposition is D.BULK and "sub-2" in finding(copy, "LEARNED_CAMPAIGN")


def test_similarity_keys() -> None:
    a = campaign_keys(parse_message(make_eml(body=PROMO)))
    b = campaign_keys(parse_message(make_eml(body=near_copy(PROMO))))
    c = campaign_keys(parse_message(make_eml(body=CLUB)))
    assert similarity(a.signature, b.signature) >= 0.6 > similarity(a.signature, c.signature)
    assert set(a.bands) & set(b.bands)
    assert same_campaign(b, a) is not None and same_campaign(c, a) is None
    short = campaign_keys(parse_message(make_eml(body="Thanks!")))
    assert short.signature == b"" and short.bands == [] and same_campaign(short, short) is None
