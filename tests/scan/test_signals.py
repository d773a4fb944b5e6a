"""Signals besides text: established domains, ESP bulk mail and click-trackers, free hosting, brand and recipient
claims, and the structural rules that make phishing MALICIOUS without the content model."""

from __future__ import annotations

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Finding
from mailsec.scan import scan_message
from mailsec.scan.bulk import recognise
from mailsec.scan.impersonation import claimed_brand
from mailsec.scan.lookalike import brand_domains, find_lookalike, free_hosting
from mailsec.scan.verdict import combine
from support import make_eml

D = Disposition
ESP = {"List-Unsubscribe": "<https://shop.example/u?x=1>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
       "Feedback-ID": "c1:shop:esp"}  # fmt: skip


def names(raw: bytes, **kw: object) -> set[str]:
    v = scan_message(parse_message(raw), Envelope(), model=False, **kw)  # type: ignore[arg-type]
    return {f.name for f in v.findings}


def verdict(raw: bytes) -> Disposition:
    return scan_message(parse_message(raw), Envelope(), model=False).disposition


def test_established_domains_are_never_lookalikes() -> None:
    assert find_lookalike("qmail.org", brand_domains()) is None  # one letter from gmail.com, a project of its own
    assert find_lookalike("mail.qmail.org", brand_domains()) is None
    look = find_lookalike("gmai1.com", brand_domains())
    assert look is not None and look.target == "gmail.com"
    assert "SENDER_LOOKALIKE_BRAND" not in names(make_eml(sender="djb@qmail.org"))
    assert "SENDER_LOOKALIKE_BRAND" in names(make_eml(sender="billing@paypa1.com"))


def test_esp_click_tracker_showing_the_senders_own_domain_is_not_deceptive() -> None:
    html = '<a href="https://shop.us1.list-manage.com/track/click?u=1&id=2">www.shop.example</a>'
    found = names(make_eml(sender="news@shop.example", html=html, headers=ESP))
    assert "LINK_CLICK_TRACKER" in found and "LINK_TEXT_MISMATCH" not in found
    # the same tracker behind a brand the sender is not: still a brand mismatch
    html = '<a href="https://shop.us1.list-manage.com/track/click?u=1&id=2">www.paypal.com</a>'
    found = names(make_eml(sender="news@shop.example", html=html, headers=ESP))
    assert "LINK_BRAND_MISMATCH" in found and "LINK_CLICK_TRACKER" not in found


def test_bulk_recognition_separates_esp_mail_from_discussion_lists() -> None:
    esp = recognise(parse_message(make_eml(headers=ESP)))
    assert esp.marketing and "Feedback-ID" in esp.evidence
    listed = recognise(parse_message(make_eml(headers={**ESP, "List-Post": "<mailto:dev@lists.example>"})))
    assert listed.discussion and not listed.marketing  # a list relays a stranger's post: no relief
    assert not recognise(parse_message(make_eml())).marketing


def f(name: str, detection: Disposition, score: float) -> Finding:
    return Finding(name=name, detection=detection, score=score, reason=f"{name} fired.")


def test_newsletters_are_bulk_at_worst_unless_something_else_is_wrong() -> None:
    bulk = f("BULK_SENDER", D.NONE, 0.0)
    spam = f("CONTENT_SPAM", D.SPAM, 6.0)
    phish = f("CONTENT_PHISHING", D.MALICIOUS, 6.0)
    assert combine([spam]).disposition is D.SPAM
    capped = combine([bulk, spam])
    assert capped.disposition is D.BULK and "bulk mail from an ESP" in capped.detection_reasons[0]
    assert combine([bulk, spam, f("LINK_IP_HOST", D.SUSPICIOUS, 3.0)]).disposition is D.SPAM  # something else wrong
    assert combine([bulk, phish]).disposition is D.SUSPICIOUS  # phishers rent ESP accounts: no cap unvouched
    assert combine([bulk, phish, f("DMARC_PASS", D.NONE, -1.0)]).disposition is D.BULK


def test_free_hosting_links() -> None:
    assert free_hosting("login-secure.web.app") == "web.app"
    assert free_hosting("docs.google.com", "/forms/d/e/1/viewform") == "docs.google.com/forms"
    assert free_hosting("docs.google.com", "/document/d/1") is None
    assert free_hosting("storage.googleapis.com", "/bucket/build-123.log") is None  # a CI artifact
    assert free_hosting("storage.googleapis.com", "/bucket/index.html") == "storage.googleapis.com"
    html = '<a href="https://acct-verify.web.app/login">Sign in</a>'
    assert "LINK_FREE_HOSTING" in names(make_eml(sender="it@corp.example", html=html))
    own_site = '<a href="https://tool.web.app/docs">Docs</a>'
    assert "LINK_FREE_HOSTING" not in names(make_eml(sender="dev@tool.web.app", html=own_site))


def test_brand_claims_in_display_names() -> None:
    assert claimed_brand("PayPal Service") is not None
    assert claimed_brand("Microsoft, _") is not None  # "Last, First" swapped, noise dropped
    assert claimed_brand("Chase Miller") is None  # a first name, not the bank
    assert claimed_brand("General Ledger Team") is None
    assert claimed_brand("Hiba from Ledger") is not None
    disguised = claimed_brand("L\u0435dg\u0435r")  # Cyrillic e
    assert disguised is not None and disguised[0] == "ledger" and disguised[2]
    assert "SENDER_BRAND_CLAIM" in names(make_eml(sender='"PayPal" <service@pp-help.example>'))
    assert "SENDER_BRAND_CLAIM" not in names(make_eml(sender='"PayPal" <service@paypal.com>'))
    assert "SENDER_BRAND_CLAIM" not in names(make_eml(sender='"PayPal" <service@paypal.de>'))
    assert "SENDER_BRAND_CLAIM" in names(make_eml(sender='"Microsoft" <no-reply@outlook.com>'))  # a free mailbox
    assert "SENDER_BRAND_CLAIM" not in names(make_eml(sender='"Apple via LinkedIn" <n@linkedin.com>'))


def test_brand_impersonation_with_a_foreign_link_is_malicious_without_the_classifier() -> None:
    html = '<p>Ihr Konto wurde eingeschr\u00e4nkt.</p><a href="https://konto-check.example/de">Jetzt pr\u00fcfen</a>'
    raw = make_eml(sender='"PayPal" <service@pp-help.example>', subject="Konto", html=html)
    v = scan_message(parse_message(raw), Envelope(), model=False)
    assert v.disposition is D.MALICIOUS and "Phishing" in v.threat_categories
    assert any(f.name == "PHISHING_STRUCTURE" and "konto-check.example" in f.reason for f in v.findings)
    # the brand's own mail, linking to the brand: nothing certain
    own = make_eml(sender='"PayPal" <service@paypal.com>', html='<a href="https://www.paypal.com/x">Log in</a>')
    assert verdict(own) is D.NONE
    # a claim alone, no link: doubtful, not held
    assert verdict(make_eml(sender='"PayPal" <service@pp-help.example>', body="Hello")) is D.NONE


def test_the_mail_admin_notice_naming_the_readers_own_domain() -> None:
    html = '<a href="https://ipfs.io/ipfs/bafy/index.html">Keep my password</a>'
    raw = make_eml(sender='"corp.example Mail Admin" <admin@mailhost.example>', to="bob@corp.example",
                   subject="Password expiry", html=html)  # fmt: skip
    v = scan_message(parse_message(raw), Envelope(), model=False)
    found = {f.name for f in v.findings}
    assert {"SENDER_CLAIMS_RECIPIENT_DOMAIN", "LINK_FREE_HOSTING", "PHISHING_STRUCTURE"} <= found
    assert v.disposition is D.MALICIOUS
    colleague = make_eml(sender='"Ann (Corp)" <ann@corp.example>', to="bob@corp.example", html=html)
    assert "SENDER_CLAIMS_RECIPIENT_DOMAIN" not in names(colleague)


def test_display_name_showing_another_domain() -> None:
    assert "SENDER_NAME_DOMAIN_MISMATCH" in names(make_eml(sender='"lists.sourceforge.net" <x@fqfggh.example>'))
    assert "SENDER_BRAND_CLAIM" in names(make_eml(sender='"amazon.co.jp" <x@fqfggh.example>'))  # a brand: the claim
    assert "SENDER_NAME_DOMAIN_MISMATCH" not in names(make_eml(sender='"shop.example" <news@shop.example>'))
    assert "SENDER_NAME_DOMAIN_MISMATCH" not in names(make_eml(sender='"Dr. J. Smith" <js@uni.example>'))


def test_sender_domains_that_no_organisation_mails_from() -> None:
    assert "SENDER_INVALID_DOMAIN" in names(make_eml(sender='"Correios" <contato@correios>'))
    assert "SENDER_INVALID_DOMAIN" in names(make_eml(sender="winner@prize.notatld"))
    for fine in ("root@localhost", "cron@build.corp.internal", "ann@sender.example", "x@[192.0.2.1]", "jm@iki.fi"):
        assert "SENDER_INVALID_DOMAIN" not in names(make_eml(sender=fine)), fine
    assert "SENDER_FREE_HOSTING" in names(make_eml(sender="noreply@yander6-86008.firebaseapp.com"))
    assert "SENDER_FREE_HOSTING" in names(make_eml(sender="ref@qmhs.onmicrosoft.com"))
    assert "SENDER_FREE_HOSTING" not in names(make_eml(sender="billing@shop.example"))


def test_disguised_subjects_and_names() -> None:
    assert "TEXT_DISGUISED" in names(make_eml(subject="Account suspended", sender='"L\u0435dg\u0435r" <a@b.example>'))
    assert "TEXT_DISGUISED" in names(make_eml(subject="\u30b3\u2061\u30a4\u30f3 \u505c\u6b62"))  # invisible char
    assert "TEXT_DISGUISED" in names(make_eml(subject="\U0001d5e3\U0001d5ee\U0001d606 now"))  # mathematical bold
    plain = ("Caf\u00e9 menu \u2615\ufe0f", "\u041f\u0440\u0438\u0432\u0435\u0442 team", "\u05e9\u05dc\u05d5\u05dd")
    for fine in plain:
        assert "TEXT_DISGUISED" not in names(make_eml(subject=fine)), fine


def test_a_brand_domain_that_only_links_elsewhere() -> None:
    html = '<a href="https://funnyrx.example/pontos">Resgatar</a>'
    found = names(make_eml(sender='"Banco Bradesco" <sac@bradesco.com.br>', html=html))
    assert "BRAND_SENDER_FOREIGN_LINKS" in found
    own = '<a href="https://banco.bradesco/x">Ver</a><a href="https://www.bradesco.com.br/extrato">Extrato</a>'
    assert "BRAND_SENDER_FOREIGN_LINKS" not in names(make_eml(sender="sac@bradesco.com.br", html=own))


def test_hostile_names_and_subjects_are_judged_quickly_without_errors() -> None:
    import time

    name = "a." * 1500 + "!" + "\u0435" * 500 + "\u2061" * 50
    raw = make_eml(sender=f'"{name}" <x@{"b" * 60}.example>', subject="\U0001d5e3" * 500 + "PayPal " * 100,
                   to=", ".join(f"u{i}@corp{i}.example" for i in range(100)))  # fmt: skip
    scan_message(parse_message(make_eml()), Envelope(), model=False)  # data files loaded once per process
    started = time.process_time()
    v = scan_message(parse_message(raw), Envelope(), model=False)
    assert time.process_time() - started < 0.5
    assert "ANALYZER_ERROR" not in {f.name for f in v.findings}
    assert "TEXT_DISGUISED" in {f.name for f in v.findings}


def test_a_sender_no_organisation_mails_from_sending_the_reader_elsewhere_is_malicious() -> None:
    html = '<a href="https://premio-agora.example/resgatar">Resgatar</a>'
    assert verdict(make_eml(sender='"Correios" <contato@correios>', html=html)) is D.MALICIOUS
    assert verdict(make_eml(sender="noreply@yander6-86008.firebaseapp.com", html=html)) is D.MALICIOUS
    # Firebase's own password-reset mail links to the project's own pages: nothing certain
    own = '<a href="https://yander6-86008.firebaseapp.com/__/auth/action?mode=resetPassword">Reset</a>'
    assert verdict(make_eml(sender="noreply@yander6-86008.firebaseapp.com", html=own)) is not D.MALICIOUS


def test_a_subject_addressing_the_reader_by_mailbox_with_a_lure() -> None:
    """`bob@corp.example, your mailbox is full` with a link elsewhere is a deception that corroborates phishing text;
    the same subject from a service that asks for nothing elsewhere, or on a list, is not."""
    subject = "bob@corp.example, your mailbox quota is exceeded"
    lure = '<a href="https://quota-fix.example/bob">Keep my mail</a>'
    found = names(make_eml(subject=subject, sender="it@helpdesk.example", html=lure))
    assert "SUBJECT_NAMES_RECIPIENT" in found
    at_home = '<a href="https://helpdesk.example/settings">Settings</a>'
    assert "SUBJECT_NAMES_RECIPIENT" not in names(make_eml(subject=subject, sender="it@helpdesk.example", html=at_home))
    listed = make_eml(
        subject=subject, sender="it@helpdesk.example", html=lure, headers={"List-Id": "<x.lists.example>"}
    )
    assert "SUBJECT_NAMES_RECIPIENT" not in names(listed)
    assert "SUBJECT_NAMES_RECIPIENT" not in names(make_eml(subject="Your mailbox quota", html=lure))
    text = Finding(name="CONTENT_PHISHING", detection=Disposition.MALICIOUS, score=5.8, reason="Reads like phishing.",
                   value="0.700", category="Phishing")  # fmt: skip
    mark = scan_message(parse_message(make_eml(subject=subject, sender="it@helpdesk.example", html=lure)), Envelope())
    corroborated = combine([text, *(x for x in mark.findings if x.name == "SUBJECT_NAMES_RECIPIENT")])
    assert corroborated.disposition is Disposition.MALICIOUS
