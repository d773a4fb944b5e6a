"""Impersonation (BEC) analysis: the impersonation registry, lookalike sender domains, addresses in display names
and diverted replies."""

from __future__ import annotations

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Finding
from mailsec.scan import scan_message
from mailsec.scan.impersonation import analyze_impersonation, normalize_name
from mailsec.scan.policy import ImpersonationEntry, Policy, TrustedDomain
from support import make_eml

D = Disposition
POLICY = Policy(
    protected_domains=("acme.example",),
    impersonation=(
        ImpersonationEntry(name="Jane Doe", email="jane.doe@acme.example", id=7),
        ImpersonationEntry(name="Finance Team", email=r".*@(finance\.)?acme\.example", is_email_regex=True),
    ),
)


def imp(sender: str, policy: Policy = POLICY, envelope: Envelope | None = None, **kw: object) -> dict[str, Finding]:
    parsed = parse_message(make_eml(sender=sender, **kw))  # type: ignore[arg-type]
    return {f.name: f for f in analyze_impersonation(parsed, envelope or Envelope(), policy)}


def test_registered_name_on_an_outside_address_is_bec() -> None:
    f = imp('"Jane Doe" <jane.doe.ceo@gmail.com>')["IMPERSONATION_REGISTERED_NAME"]
    assert f.detection is D.MALICIOUS_BEC and f.score >= 8 and f.category == "BEC"
    assert "Jane Doe (jane.doe@acme.example)" in f.reason and "jane.doe.ceo@gmail.com" in f.reason
    assert f.detail == "registry entry 7: Jane Doe / jane.doe@acme.example"


def test_name_variants_match() -> None:
    assert normalize_name("Doe, Jane") == "jane doe"
    for name in ("DOE, JANE", "Jane  Doe (CEO)", "jane.doe", "Doe Jane"):
        assert "IMPERSONATION_REGISTERED_NAME" in imp(f'"{name}" <boss@mail-exec.example>'), name
    assert "IMPERSONATION_REGISTERED_NAME" not in imp('"Jane Doerr" <j@other.example>')
    assert "IMPERSONATION_REGISTERED_NAME" not in imp('"Mary Jane Doe-Smith and the Events Team" <j@other.example>')


def test_registered_address_and_protected_domain_are_not_impersonation() -> None:
    assert imp('"Jane Doe" <jane.doe@acme.example>') == {}
    assert imp('"Jane Doe" <jdoe@eu.acme.example>') == {}  # outside address rule: protected domains are ours
    assert imp('"Finance Team" <ap@finance.acme.example>') == {}  # regex entry
    assert "IMPERSONATION_REGISTERED_NAME" in imp('"Finance Team" <ap@acme-finance.example>')


def test_lookalike_sender_domains_of_protected_domains() -> None:
    homoglyph = imp('"Jane" <jane@acrne.example>')["SENDER_LOOKALIKE_PROTECTED_DOMAIN"]
    assert homoglyph.detection is D.MALICIOUS_BEC and "acme.example" in homoglyph.reason
    punycode = imp('"Billing" <billing@xn--acm-8la.example>')  # acmè.example
    assert punycode["SENDER_LOOKALIKE_PROTECTED_DOMAIN"].detail == "punycode"
    typo = Policy(protected_domains=("contoso.example",))
    f = imp('"Accounts" <ap@contosso.example>', typo)["SENDER_LOOKALIKE_PROTECTED_DOMAIN"]
    assert f.detection is D.SPOOF and f.detail == "typo" and "contoso.example" in f.reason
    envelope = Envelope(mail_from="bounce@acrne.example")
    assert "SENDER_LOOKALIKE_PROTECTED_DOMAIN" in imp('"X" <x@neutral.example>', envelope=envelope)


def test_brand_lookalike_sender() -> None:
    f = imp('"PayPal Service" <service@paypa1.com>', Policy())["SENDER_LOOKALIKE_BRAND"]
    assert f.detection is D.SPOOF and f.category == "BrandImpersonation" and "paypal.com" in f.reason
    assert imp('"PayPal" <service@paypal.com>', Policy()) == {}


def test_address_in_display_name() -> None:
    f = imp('"jane.doe@acme.example" <random123@mailer.example>')["DISPLAY_NAME_ADDRESS_MISMATCH"]
    assert f.detection is D.MALICIOUS_BEC and "jane.doe@acme.example" in f.reason
    weak = imp('"support@bank.example" <x@mailer.example>')["DISPLAY_NAME_ADDRESS_MISMATCH"]
    assert weak.detection is D.SPOOF and weak.score < 5


def test_reply_to_diverted() -> None:
    f = imp('"Vendor" <billing@vendor.example>', headers={"Reply-To": "vendor.billing@gmail.com"})
    assert "gmail.com" in f["REPLY_TO_DIVERTED"].reason and f["REPLY_TO_DIVERTED"].score < 5
    same = imp('"Vendor" <billing@vendor.example>', headers={"Reply-To": "ar@mail.vendor.example"})
    assert same == {}
    listed = imp(
        '"A member" <m@isp.example>', headers={"Reply-To": "list@lists.example.org", "List-Id": "<l.example.org>"}
    )
    assert listed == {}
    bec = imp('"Jane Doe" <jane.doe.ceo@gmail.com>', headers={"Reply-To": "payments@wire-desk.example"})
    assert bec["REPLY_TO_DIVERTED"].detection is D.MALICIOUS_BEC


def test_bec_verdict_names_the_entry() -> None:
    raw = make_eml(sender='"Jane Doe" <jane.doe.ceo@gmail.com>', body="Are you at your desk? I need a wire today.\n")
    v = scan_message(parse_message(raw), Envelope(), POLICY, model=False)
    assert v.disposition is D.MALICIOUS_BEC and v.threat_categories[0] == "BEC"
    assert any("impersonation registry" in r for r in v.detection_reasons)


def test_similarity_trusted_sender_domain_is_not_a_lookalike() -> None:
    assert "SENDER_LOOKALIKE_PROTECTED_DOMAIN" in imp('"Jane" <jane@acrne.example>')
    partner = Policy(
        protected_domains=POLICY.protected_domains,
        impersonation=POLICY.impersonation,
        trusted_domains=(TrustedDomain("acrne.example", is_similarity=True),),
    )
    got = imp('"Jane" <jane@acrne.example>', partner)
    assert "SENDER_LOOKALIKE_PROTECTED_DOMAIN" not in got
    assert got["TRUSTED_DOMAIN_SIMILARITY"].detection is Disposition.NONE
    assert "acme.example" in got["TRUSTED_DOMAIN_SIMILARITY"].reason
