"""The call-to-action check: what a message asks the reader to do outside its sender's own domain."""

from __future__ import annotations

from mailsec.mime import parse_message
from mailsec.scan.lure import Lure, find_lure
from support import make_eml


def lure_of(**kw: object) -> tuple[str, ...]:
    return find_lure(parse_message(make_eml(**kw))).kinds  # type: ignore[arg-type]


def test_links_to_the_senders_own_site_ask_for_nothing_outside() -> None:
    html = '<a href="https://www.shop.example/orders/1">Order</a><a href="https://help.shop.example/">Help</a>'
    assert lure_of(sender="orders@mail.shop.example", html=html) == ()
    assert lure_of(sender="orders@mail.shop.example", html=html + '<a href="https://evil.example/x">x</a>') == ("link",)


def test_risky_attachment_diverted_reply_and_brand_claim() -> None:
    page = ("invoice.html", "text/html", b"<form action='https://x.example'><input type=password></form>")
    assert lure_of(attachments=[page]) == ("attachment",)
    assert lure_of(attachments=[("notes.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n")]) == ()
    assert lure_of(sender="ceo@corp.example", headers={"Reply-To": "ceo.private@gmail.com"}) == ("reply-to",)
    assert lure_of(sender='"PayPal Service" <service@billing-notice.example>') == ("brand",)
    assert lure_of(sender='"PayPal" <service@paypal.com>') == ()
    assert lure_of(sender="chef@kitchen.example", subject="Office party: Zoom link and booking") == ()
    assert lure_of(sender='"Mrs. Ann Lee" <ann.lee.1970@gmail.com>', body="I have a donation for you.") == ("freemail",)


def test_evidence_names_what_was_found() -> None:
    lure = find_lure(
        parse_message(
            make_eml(
                sender='"DocuSign" <sign@files-share.example>',
                html='<a href="https://login.attacker.example/">Review</a>',
                headers={"Reply-To": "help@other.example"},
            )
        )
    )
    assert lure.kinds == ("link", "reply-to", "brand")
    assert "attacker.example" in lure.evidence and "help@other.example" in lure.evidence
    assert "DocuSign" in lure.evidence


def test_links_to_established_sites_and_trackers_are_no_lure_free_hosting_is() -> None:
    html = '<a href="https://github.com/acme/vault">Source</a><a href="https://www.dhl.de/track?id=1">Track</a>'
    html += '<a href="https://acme.us1.list-manage.com/track/click?u=1">News</a>'
    assert lure_of(sender="noreply@vault.acme.example", html=html) == ()
    form = '<a href="https://sites.google.com/view/acme-verify">Verify</a>'
    assert lure_of(sender="noreply@vault.acme.example", html=html + form) == ("link",)


def test_own_system_needs_message_id_and_return_path_on_the_senders_domain() -> None:
    """Mail composed and sent by the sender's own organisation: Message-ID (and Return-Path, when present) on the
    From address's registered domain; a webmail or ESP Message-ID under another name, a bounce address elsewhere or
    a free mailbox is not."""

    def lure(sender: str, message_id: str, return_path: str | None = None) -> Lure:
        raw = make_eml(sender=sender).replace(b"@sender.example>", message_id.encode(), 1)
        if return_path:
            raw = f"Return-Path: {return_path}\r\n".encode() + raw
        return find_lure(parse_message(raw))

    assert lure("noreply@login.acme.example", "@mail.acme.example>").self_consistent
    assert lure("noreply@acme.example", "@acme.example>", "<bounce@acme.example>").self_consistent
    assert not lure("noreply@acme.example", "@acme.example>", "<bounce@esp-bounces.example>").self_consistent
    assert not lure("billing@acme.example", "@mail.gmail.com>").self_consistent
    assert not lure("someone@gmail.com", "@mail.gmail.com>").self_consistent
    assert not lure("noreply@acme.example", "@acme.example>\r\nReply-To: x@other.example").self_consistent


def test_a_self_sent_message_handing_over_a_file_or_a_free_mailbox_is_not_self_consistent() -> None:
    """The compromised mailbox's phish comes from its own system too; it hands over a statement or a gmail address."""

    def own(**kw: object) -> bool:
        raw = make_eml(sender="clerk@town.example", **kw).replace(b"@sender.example>", b"@town.example>", 1)  # type: ignore[arg-type]
        return find_lure(parse_message(raw)).self_consistent

    assert own(body="Your code is 123456.")
    assert own(html='<a href="mailto:help@town.example">Help</a>')
    assert not own(attachments=[("statement.pdf", "application/pdf", b"%PDF-1.4\n%%EOF\n")])
    assert not own(html='<a href="mailto:town.clerk.office@gmail.com">Write to us</a>')


def test_the_software_makers_front_page_in_a_self_sent_message_is_no_lure() -> None:
    """A self-hosted product's reset mail acts on the sender's own site and names its maker in the footer; the same
    front page is a lure when the sender did not send it itself or the message acts nowhere at home, and a page of a
    site the message does not name by its front page is one."""
    act = '<a href="https://login.acme.example/reset?token=abc">Reset</a>'
    maker = '<a href="https://www.authmaker.example">Powered by AuthMaker</a>'

    def kinds(html: str, message_id: str = "@mail.acme.example>") -> tuple[str, ...]:
        raw = make_eml(sender="auth@acme.example", html=html).replace(b"@sender.example>", message_id.encode(), 1)
        return find_lure(parse_message(raw)).kinds

    assert kinds(act + maker) == ()
    help_page = '<a href="https://help.authmaker.example/support/">Help</a>'
    assert kinds(act + help_page + maker) == ()
    assert kinds(act + help_page) == ("link",)
    assert kinds(act + maker, "@webmail.example>") == ("link",)
    assert kinds(maker) == ("link",)
    credit = '<a href="https://www.authmaker.example">AuthMaker</a>'
    assert kinds(credit) == ()  # a credit by name, even without a link to act at home
    assert kinds(credit, "@webmail.example>") == ("link",)
    assert kinds('<a href="https://www.authmaker.example">Claim now</a>') == ("link",)
    assert kinds(act + '<a href="https://www.authmaker.example/login?next=1">Sign in</a>') == ("link",)
    assert kinds(act + '<a href="https://evil.example/verify/account">Verify</a>') == ("link",)
