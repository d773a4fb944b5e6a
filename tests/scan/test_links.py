"""Link analysis on crafted messages: text/target mismatches, IP and punycode hosts, lookalikes of protected and
brand domains, shorteners, user-info tricks, body credential forms, URL ignore patterns, and the phishing corpus."""

from __future__ import annotations

import re

import pytest

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Finding
from mailsec.scan import scan_message
from mailsec.scan.links import analyze_links
from mailsec.scan.lookalike import find_lookalike, registered_domain, skeleton
from mailsec.scan.policy import Policy, TrustedDomain
from support import CORPORA, make_eml

D = Disposition


def links(html: str, policy: Policy | None = None) -> list[Finding]:
    return analyze_links(parse_message(make_eml(html=html)), policy or Policy())


def by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


def test_brand_text_pointing_elsewhere_names_both_domains() -> None:
    got = by_name(links('<a href="http://paypa1-login.ru/verify">www.paypal.com</a>'))
    f = got["LINK_BRAND_MISMATCH"]
    assert f.reason == "The link text shows paypal.com but it goes to paypa1-login.ru"
    assert f.detection is D.MALICIOUS and f.score >= 5 and f.category == "BrandImpersonation"
    assert f.field == "link" and f.value == "http://paypa1-login.ru/verify"
    assert got["LINK_BRAND_EMBEDDED"].detail == "embedded"  # paypa1 → paypal as a hyphenated word


def test_generic_mismatch_is_weak_and_same_site_is_fine() -> None:
    got = by_name(links('<a href="https://clicks.mailstats.test/c/1">https://shop.example.org/deals</a>'))
    assert got["LINK_TEXT_MISMATCH"].score < 5
    assert links('<a href="https://www.example.org/a">example.org</a><a href="https://example.org">Click</a>') == []
    assert links('<a href="https://www.amazon.co.uk/deal">www.amazon.com</a>') == []


def test_ip_literal_hosts_including_decimal_form() -> None:
    got = by_name(links('<a href="http://192.0.2.44/login">Log in</a>'))
    assert "192.0.2.44" in got["LINK_IP_HOST"].reason
    got = by_name(links('<a href="http://3221226028/x">Log in</a>'))
    assert "192.0.2.44" in got["LINK_IP_HOST"].reason


def test_punycode_homograph_of_a_brand() -> None:
    got = by_name(links('<a href="https://xn--pypal-4ve.com/signin">Sign in</a>'))
    assert "LINK_PUNYCODE_HOST" in got
    look = got["LINK_LOOKALIKE_BRAND"]
    assert look.detection is D.MALICIOUS and look.detail == "punycode" and "paypal.com" in look.reason


@pytest.mark.parametrize(
    ("host", "kind"),
    [("acmebenk.com", "typo"), ("acrnebank.com", "homoglyph"), ("acmebank-secure.com", "embedded")],
)
def test_lookalikes_of_protected_domains(host: str, kind: str) -> None:
    policy = Policy(protected_domains=("acmebank.com",))
    got = by_name(links(f'<a href="https://{host}/login">Statement</a>', policy))
    f = got["LINK_LOOKALIKE_PROTECTED_DOMAIN"]
    assert f.detail == kind and "acmebank.com" in f.reason and host in f.reason
    assert f.detection is D.MALICIOUS and f.score >= 8


def test_real_brand_and_protected_domains_are_not_lookalikes() -> None:
    policy = Policy(protected_domains=("acmebank.com",))
    html = (
        '<a href="https://www.paypal.com/signin">PayPal</a><a href="https://accounts.google.com/">Google</a>'
        '<a href="https://online.acmebank.com/">Bank</a><a href="https://www.amazon.de/">Amazon</a>'
        '<a href="https://tenant.onmicrosoft.com/">Teams</a><a href="https://www.apple.com">apple.com</a>'
    )
    assert links(html, policy) == []


def test_brand_as_subdomain_and_userinfo_tricks() -> None:
    got = by_name(links('<a href="https://paypal.com.account-check.example.ru/">Check</a>'))
    assert "belongs to example.ru" in got["LINK_BRAND_IN_SUBDOMAIN"].reason
    got = by_name(links('<a href="http://www.paypal.com@198.51.100.7/">Check</a>'))
    assert {"LINK_USERINFO_TRICK", "LINK_IP_HOST"} <= set(got)


def test_shorteners_are_weak_evidence() -> None:
    f = by_name(links('<a href="https://bit.ly/3abcd">Track parcel</a>'))["LINK_SHORTENER"]
    assert f.score < 3 and "bit.ly" in f.reason


def test_one_finding_per_check_counts_the_rest() -> None:
    html = "".join(f'<a href="http://203.0.113.{i}/p">x{i}</a>' for i in range(1, 21))
    found = [f for f in links(html) if f.name == "LINK_IP_HOST"]
    assert len(found) == 1 and "(19 more links like it)" in found[0].reason


def test_url_ignore_patterns_skip_links() -> None:
    html = '<a href="http://paypa1-login.ru/verify">www.paypal.com</a><a href="http://192.0.2.5/">x</a>'
    assert {f.name for f in links(html, Policy(url_ignore_patterns=(r"paypa1-login\.ru/",)))} == {"LINK_IP_HOST"}
    assert links(html, Policy(url_ignore_patterns=(r"paypa1-login\.ru", r"^http://192\.0\.2\."))) == []
    # an invalid regular expression is taken literally, never raises
    assert {f.name for f in links(html, Policy(url_ignore_patterns=("192.0.2.5/(",)))} >= {"LINK_BRAND_MISMATCH"}


def test_text_body_links_are_checked_too() -> None:
    got = analyze_links(parse_message(make_eml(body="Verify now: http://198.51.100.9/verify\n")), Policy())
    assert by_name(got)["LINK_IP_HOST"].portion == "text"


def test_password_form_in_body_is_a_credential_harvester() -> None:
    html = '<form action="https://grab.example.ru/p"><input name=u><input type="password" name=p></form>'
    f = by_name(links(html))["BODY_CREDENTIAL_FORM"]
    assert f.category == "CredentialHarvester" and "grab.example.ru" in f.reason


def test_lookalike_plus_mismatch_makes_the_verdict_malicious() -> None:
    raw = make_eml(
        html='<p>Your account is limited.</p><a href="https://xn--pypal-4ve.com/x">https://www.paypal.com</a>'
    )
    v = scan_message(parse_message(raw), Envelope(), model=False)
    assert v.disposition is D.MALICIOUS
    assert "BrandImpersonation" in v.threat_categories
    assert any("paypal.com" in r for r in v.detection_reasons)


def test_domain_helpers() -> None:
    assert registered_domain("a.b.example.co.uk") == "example.co.uk"
    assert skeleton("p\u0430ypa1") == skeleton("paypal")
    look = find_lookalike("secure.paypa1.com", ["paypal.com"])
    assert look is not None and look.target == "paypal.com" and look.kind == "homoglyph"
    assert find_lookalike("paypal.com", ["paypal.com"]) is None
    assert find_lookalike("example.com", ["paypal.com"]) is None


PHISH = CORPORA / "phishing_pot"
_IP_HREF = re.compile(rb"""(?i)href\s*=\s*(?:3D)?["']?https?://(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})[/:"'\s>]""")


@pytest.mark.skipif(not PHISH.is_dir(), reason=f"corpus not present at {PHISH}")
def test_corpus_links_to_bare_ips_are_found() -> None:
    """Messages whose raw HTML links to an IP address (found here with a plain regex) get LINK_IP_HOST."""
    hits = []
    for path in sorted(PHISH.glob("*.eml")):
        raw = path.read_bytes()
        if _IP_HREF.search(raw):
            hits.append(path)
    assert len(hits) >= 5
    missed = [
        p.name for p in hits if "LINK_IP_HOST" not in by_name(analyze_links(parse_message(p.read_bytes()), Policy()))
    ]
    assert len(missed) <= len(hits) // 10, missed


def test_similarity_trusted_domains_are_not_lookalikes() -> None:
    html = '<a href="https://pay.acmebenk.com/x">Pay</a><a href="https://paypa1.com/">PayPal</a>'
    plain = Policy(protected_domains=("acmebank.com",))
    assert {"LINK_LOOKALIKE_PROTECTED_DOMAIN", "LINK_LOOKALIKE_BRAND"} <= set(by_name(links(html, plain)))
    trusted = Policy(
        protected_domains=("acmebank.com",),
        trusted_domains=(
            TrustedDomain("acmebenk.com", is_similarity=True),
            TrustedDomain("paypa1.com", is_recent=True),
        ),
    )
    got = by_name(links(html, trusted))
    assert "LINK_LOOKALIKE_PROTECTED_DOMAIN" not in got
    assert (
        got["TRUSTED_DOMAIN_SIMILARITY"].detection is D.NONE
        and "acmebenk.com" in got["TRUSTED_DOMAIN_SIMILARITY"].reason
    )
    assert "LINK_LOOKALIKE_BRAND" in got  # an is_recent entry does not excuse similarity
    regex = Policy(
        protected_domains=("acmebank.com",), trusted_domains=(TrustedDomain(r".*\.acmebenk\.com", True, False, True),)
    )
    assert "LINK_LOOKALIKE_PROTECTED_DOMAIN" not in by_name(links(html, regex))
