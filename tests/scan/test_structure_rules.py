"""The third round of structural rules (issue 12): deceptions in how a phish was sent and where it sends the reader,
each of which corroborates phishing text into MALICIOUS and stays silent on the honest mail that shares half of it."""

from __future__ import annotations

from email.message import EmailMessage

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Finding, Verdict
from mailsec.scan import scan_message
from mailsec.scan.verdict import combine
from support import make_eml

D = Disposition
LURE = '<p>Your reward is waiting.</p><a href="https://claim-reward.example/r/81">Claim</a>'


def scan(raw: bytes, envelope: Envelope | None = None) -> Verdict:
    return scan_message(parse_message(raw), envelope or Envelope(), model=False)


def names(raw: bytes, envelope: Envelope | None = None) -> set[str]:
    return {f.name for f in scan(raw, envelope).findings if f.score}


def with_message_id(raw: bytes, message_id: str) -> bytes:
    return raw.replace(b"Message-ID: <", b"X-Old-Id: <", 1).replace(b"\n", f"\nMessage-ID: {message_id}\n".encode(), 1)


def phishing_text(p: float = 0.7) -> Finding:
    return Finding(name="CONTENT_PHISHING", detection=D.MALICIOUS, score=5.0 + (p - 0.5) * 4, reason="Reads like "
                   "phishing.", value=f"{p:.3f}", category="Phishing")  # fmt: skip


def corroborated(raw: bytes, name: str, envelope: Envelope | None = None) -> Disposition:
    """The verdict of phishing text (p 0.7, no other evidence) plus this message's finding `name`."""
    found = [f for f in scan(raw, envelope).findings if f.name == name]
    assert found, f"{name} did not fire"
    return combine([phishing_text(), *found]).disposition


def test_from_envelope_and_message_id_on_three_organisations() -> None:
    """Written as a shop, composed on a cloud tenant, sent from a hacked server: three organisations."""
    raw = with_message_id(
        make_eml(sender='"ADAC Versand" <versand@adac-kit.example>', html=LURE,
                 headers={"Return-Path": "<bounce@hacked-school.example>"}),
        "<2325abc2-f606@DB3PEPF0000885D.eurprd01.prod.outlook.com>",
    )  # fmt: skip
    assert "SENDER_TRAIL_SCATTERED" in names(raw)
    assert corroborated(raw, "SENDER_TRAIL_SCATTERED") is D.MALICIOUS
    # the envelope from the SMTP session counts the same as an imported message's Return-Path
    session = with_message_id(make_eml(sender="versand@adac-kit.example", html=LURE), "<x1@mail.tenant.example>")
    assert "SENDER_TRAIL_SCATTERED" in names(session, Envelope(mail_from="bounce@hacked-school.example"))


def test_honest_sending_systems_show_at_most_two_organisations() -> None:
    own = make_eml(sender="billing@shop.example", html=LURE, headers={"Return-Path": "<bounce@shop.example>"})
    esp = with_message_id(
        make_eml(sender="billing@shop.example", html=LURE, headers={"Return-Path": "<b-81@bounces.esp.example>"}),
        "<0100018c@email.esp.example>",
    )
    hosted = with_message_id(
        make_eml(sender="anna@firm.example", html=LURE, headers={"Return-Path": "<anna@firm.example>"}),
        "<DB3PR01MB55@DB3PR01MB55.eurprd01.prod.outlook.com>",
    )
    for raw in (own, esp, hosted):
        assert "SENDER_TRAIL_SCATTERED" not in names(raw)


def test_lists_bulk_mail_forwarders_and_bare_message_ids_are_left_alone() -> None:
    def scattered(headers: dict[str, str], message_id: str = "<a1@composer.example>", to: str = "bob@corp.example"):
        raw = make_eml(sender="news@shop.example", to=to, html=LURE, headers=headers)
        return "SENDER_TRAIL_SCATTERED" in names(with_message_id(raw, message_id))

    bounce = {"Return-Path": "<bounce@relay.example>"}
    assert scattered(bounce)
    assert not scattered({**bounce, "List-Id": "<news.lists.example>"})
    assert not scattered({**bounce, "List-Unsubscribe": "<https://shop.example/u>"})
    assert not scattered({"Return-Path": "<SRS0=ab12=7Q=shop.example=news@forwarder.example>"})
    assert not scattered({"Return-Path": "<bob+caf_=SRS=x@forwarder.example>"})
    assert not scattered({"Return-Path": "<bob@corp.example>"})  # the recipient's own forwarding
    assert not scattered(bounce, message_id="<5816419606864150362175@WIN-HM6FI4VOIEP>")
    assert not scattered({"Return-Path": "<>"})


def test_a_message_without_from_or_message_id_does_not_fail() -> None:
    msg = EmailMessage()
    msg["To"] = "bob@corp.example"
    msg["Return-Path"] = "<x@relay.example>"
    msg.set_content("hello")
    v = scan(msg.as_bytes())
    assert "ANALYZER_ERROR" not in {f.name for f in v.findings}


def test_every_link_through_a_shortener_behind_words_or_a_picture() -> None:
    hidden = '<a href="https://t.co/Ab12"><img src="cid:offer"></a> <a href="https://bit.ly/3xYz">Claim now</a>'
    raw = make_eml(sender='"Survey Team" <win@prize-draw.example>', html=hidden)
    assert "LINKS_ALL_SHORTENED" in names(raw)
    assert corroborated(raw, "LINKS_ALL_SHORTENED") is D.MALICIOUS


def test_shortened_links_beside_the_senders_own_or_shown_openly_are_no_deception() -> None:
    newsletter = '<a href="https://bit.ly/3xYz">Read the post</a> <a href="https://blog.example/unsubscribe">Leave</a>'
    shown = '<a href="https://bit.ly/3xYz">https://bit.ly/3xYz</a>'
    pasted = "Slides from today: https://bit.ly/3xYz\n"
    assert "LINKS_ALL_SHORTENED" not in names(make_eml(sender="news@blog.example", html=newsletter))
    assert "LINKS_ALL_SHORTENED" not in names(make_eml(sender="anna@firm.example", html=shown))
    assert "LINKS_ALL_SHORTENED" not in names(make_eml(sender="anna@firm.example", body=pasted))
    assert "LINKS_ALL_SHORTENED" not in names(make_eml(sender="anna@firm.example"))


def test_phishing_like_text_plus_a_deception_is_suspicious_never_malicious() -> None:
    """From the classifier's weak threshold (0.3) a deception found elsewhere makes the message SUSPICIOUS; alone,
    either is not enough, and below 0.6 it never becomes MALICIOUS."""
    scattered = Finding(name="SENDER_TRAIL_SCATTERED", detection=D.SPOOF, score=1.0, reason="Three organisations.",
                        category="Spoof")  # fmt: skip
    weak = Finding(name="CONTENT_PHISHING", detection=D.MALICIOUS, score=2.5, reason="Reads a little like phishing.",
                   value="0.410", category="Phishing")  # fmt: skip
    both = combine([weak, scattered])
    assert both.disposition is D.SUSPICIOUS
    added = [x for x in both.findings if x.name == "PHISHING_SUSPECTED"]
    assert len(added) == 1 and "41%" in added[0].reason and added[0].detail == "SENDER_TRAIL_SCATTERED"
    assert combine([weak]).disposition is D.NONE
    assert combine([scattered]).disposition is D.NONE
    below = Finding(name="CONTENT_PHISHING", detection=D.MALICIOUS, score=2.5, reason="Hardly.", value="0.250")
    assert combine([below, scattered]).disposition is D.BULK  # the two scores add up, to no more than BULK
    assert [x.name for x in combine(list(both.findings)).findings].count("PHISHING_SUSPECTED") == 1
    shortener = Finding(name="LINK_SHORTENER", detection=D.SUSPICIOUS, score=1.0, reason="Shortened.")
    assert combine([weak, shortener]).disposition is D.BULK  # a shortener is no deception
    sure = combine([phishing_text(0.7), scattered])
    assert sure.disposition is D.MALICIOUS and "PHISHING_SUSPECTED" not in {x.name for x in sure.findings}


def test_a_brand_spelt_with_a_capital_i_for_an_l_is_disguised() -> None:
    for subject in ("Your PayPaI account is Iimited", "Scan your Iedger now", "\u26a0 PayPaI: action needed"):
        assert "TEXT_DISGUISED" in names(make_eml(subject=subject)), subject
    assert "TEXT_DISGUISED" in names(make_eml(sender='"Iedger Support" <s@x.example>'))
    for fine in ("Is it PayPal or IBM?", "Ideas for Ireland", "Your LinkedIn digest", "INVOICE 12", "iCloud storage"):
        assert "TEXT_DISGUISED" not in names(make_eml(subject=fine)), fine


def test_phishing_text_without_a_lure_decides_from_0_7_unless_its_senders_own_system_sent_it() -> None:
    from mailsec.scan.content import classify
    from mailsec.scan.features import extract_text
    from mailsec.scan.lure import Lure

    class Fixed:
        def __init__(self, phishing: float) -> None:
            self.p = {"ham": 1 - phishing, "spam": 0.0, "phishing": phishing}

        def probabilities(self, _doc: str) -> dict[str, float]:
            return self.p

    mt = extract_text(parse_message(make_eml(body="Please confirm the transfer today.")))

    def score(p: float, lure: Lure) -> float:
        return next(f.score for f in classify(mt, Fixed(p), lure) if f.name == "CONTENT_PHISHING")  # type: ignore[arg-type]

    assert score(0.72, Lure(())) >= 5.0
    assert score(0.68, Lure(())) < 5.0
    assert score(0.95, Lure((), self_consistent=True)) < 5.0
