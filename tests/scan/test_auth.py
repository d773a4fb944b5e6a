"""SPF, DKIM, DMARC, ARC and sender info against a real DNS server on loopback holding the test zones."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_zone import Zones, dns_server

from mailsec.config import load_settings
from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope
from mailsec.pipeline import process_message
from mailsec.scan import scan_message
from mailsec.scan.auth import AuthOutcome, check_authentication
from mailsec.scan.identity import identify
from mailsec.scan.policy import BlockPolicy, Policy
from mailsec.scan.resolvers import DnspythonResolver, DnsTempError, Resolvers, build_resolvers
from mailsec.scan.sender import connecting_host
from support import CORPORA, free_port, make_eml

IP = "1.2.3.4"  # the sending host in these tests (a public address; nothing is ever sent to it)
LIST_IP = "5.6.7.8"
API_VALUES = {"pass", "neutral", "fail", "error", "none"}


class Key:
    def __init__(self) -> None:
        k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        self.private = k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
        der = k.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {name: Key() for name in ("pass", "strict", "relaxed", "list", "other")}


@pytest.fixture(scope="module")
def zones(keys: dict[str, Key]) -> Zones:
    z = Zones()
    # SPF outcomes
    z.txt("pass.test", f"v=spf1 ip4:{IP.rsplit('.', 1)[0]}.0/24 -all")
    z.txt("fail.test", "v=spf1 ip4:9.9.9.9 -all")
    z.txt("softfail.test", "v=spf1 ip4:9.9.9.9 ~all")
    z.txt("neutral.test", "v=spf1 ?all")
    z.a("nospf.test", "9.9.9.9")
    z.txt("nospf.test", "some-site-verification=abc")
    z.txt("broken.test", "v=spf1 ip4:1.2.3 -all")
    z.txt("mxa.test", "v=spf1 mx a:relay.mxa.test -all")
    z.mx("mxa.test", 10, "mail.mxa.test")
    z.a("mail.mxa.test", IP)
    z.a("relay.mxa.test", "9.9.9.10")
    z.txt("ptr.test", "v=spf1 ptr -all")
    z.ptr("4.3.2.1.in-addr.arpa", "host.ptr.test")
    z.a("host.ptr.test", IP)
    z.txt("v6.test", "v=spf1 ip6:2a00:1450::/32 -all")
    z.servfail.add("servfail.test")
    z.silent.add("silent.test")
    many = " ".join(f"a:h{i}.toomany.test" for i in range(12))
    z.txt("toomany.test", f"v=spf1 {many} -all")
    for i in range(12):
        z.a(f"h{i}.toomany.test", f"9.9.8.{i}")
    # DKIM keys and DMARC policies
    z.txt("sel._domainkey.pass.test", keys["pass"].record)
    z.txt("_dmarc.pass.test", "v=DMARC1; p=reject; sp=quarantine")
    z.txt("sel._domainkey.mail.strict.test", keys["strict"].record)
    z.txt("_dmarc.strict.test", "v=DMARC1; p=reject; adkim=s; aspf=s")
    z.txt("sel._domainkey.mail.relaxed.test", keys["relaxed"].record)
    z.txt("_dmarc.relaxed.test", "v=DMARC1; p=quarantine")
    z.txt("bank.test", "v=spf1 ip4:9.9.9.9 -all")
    z.txt("_dmarc.bank.test", "v=DMARC1; p=reject")
    z.txt("evil.test", f"v=spf1 ip4:{IP} -all")
    z.txt("_dmarc.monitor.test", "v=DMARC1; p=none")
    z.txt("monitor.test", "v=spf1 -all")
    # a mailing list that forwards and ARC-seals
    z.txt("list.test", f"v=spf1 ip4:{LIST_IP} -all")
    z.txt("arc._domainkey.list.test", keys["list"].record)
    z.txt("arc._domainkey.other.test", keys["other"].record)
    # a DNS blocklist listing IP
    z.a("4.3.2.1.bl.test", "127.0.0.2")
    # an established organisation's domain (scan/data/established.txt) and a free mailbox, both authenticating
    z.txt("github.com", f"v=spf1 ip4:{IP} -all")
    z.txt("_dmarc.github.com", "v=DMARC1; p=reject")
    z.txt("gmail.com", f"v=spf1 ip4:{IP} -all")
    z.txt("_dmarc.gmail.com", "v=DMARC1; p=none")
    z.a("test", "127.0.0.1")  # so the probe of an answering server finds something
    return z


@pytest.fixture(scope="module")
def server(zones: Zones) -> Iterator[tuple[str, int]]:
    with dns_server(zones) as addr:
        yield addr


@pytest.fixture(scope="module")
def resolver(server: tuple[str, int]) -> DnspythonResolver:
    host, port = server
    return DnspythonResolver([host], port=port, timeout=0.3)


@pytest.fixture(scope="module")
def resolvers(resolver: DnspythonResolver) -> Resolvers:
    return Resolvers(dns=resolver)


def _signed(raw: bytes, key: Key, domain: str, selector: str = "sel") -> bytes:
    sig = dkim.sign(raw, selector.encode(), domain.encode(), key.private, include_headers=[b"from", b"subject", b"to"])
    return sig + raw


def _auth(raw: bytes, resolvers: Resolvers, mail_from: str = "", ip: str | None = IP) -> AuthOutcome:
    return check_authentication(
        parse_message(raw), Envelope(mail_from=mail_from, client_ip=ip, helo="mx.x.test"), resolvers
    )


def _names(outcome: AuthOutcome) -> set[str]:
    return {f.name for f in outcome.findings}


# -- the resolver ---------------------------------------------------------------------------------------------------


def test_resolver_answers_caches_and_reports_failures(resolver: DnspythonResolver, zones: Zones) -> None:
    assert resolver.txt("pass.test") == ["v=spf1 ip4:1.2.3.0/24 -all"]
    before = resolver.queries
    assert resolver.txt("PASS.test.") == ["v=spf1 ip4:1.2.3.0/24 -all"]
    assert resolver.queries == before, "a second lookup within the TTL is answered from the cache"
    assert resolver.mx("mxa.test") == [(10, "mail.mxa.test")]
    assert resolver.a("mail.mxa.test") == [IP]
    assert resolver.txt("nothing-here.test") == []
    assert resolver.txt("sel._domainkey.pass.test")[0].startswith("v=DKIM1; k=rsa; p=")  # > 255 bytes? joined
    with pytest.raises(DnsTempError):
        resolver.txt("servfail.test")
    started = time.monotonic()
    with pytest.raises(DnsTempError):
        resolver.txt("silent.test")
    assert time.monotonic() - started < 2.0
    assert resolver.a("mail.mxa.test") == [IP], "a timeout on one name does not mark a live server down"


def test_long_txt_records_are_joined_and_tcp_fallback_works(server: tuple[str, int], zones: Zones) -> None:
    zones.txt("long.test", "v=spf1 " + " ".join(f"ip4:10.0.{i}.0/24" for i in range(120)) + " -all")
    r = DnspythonResolver([server[0]], port=server[1], timeout=1.0)
    (record,) = r.txt("long.test")
    assert record.endswith("ip4:10.0.119.0/24 -all") and len(record) > 2000  # > 512 bytes: answered over TCP


def test_unreachable_dns_fails_fast_after_the_first_timeout() -> None:
    dead = DnspythonResolver(["127.0.0.1"], port=free_port(), timeout=0.2)
    with pytest.raises(DnsTempError):
        dead.txt("a.test")
    started = time.monotonic()
    with pytest.raises(DnsTempError, match="no DNS server reachable"):
        dead.txt("b.test")
    assert time.monotonic() - started < 0.05


def test_build_resolvers_from_settings(server: tuple[str, int]) -> None:
    assert build_resolvers(load_settings(env={})).dns is None, "no DNS unless configured (serve: see for_serve)"
    host, port = server
    settings = load_settings(
        env={
            "MAILSEC_DNS_SERVERS": f"{host}:{port}",
            "MAILSEC_DNSBL_ZONES": "bl.test",
            "MAILSEC_TRUSTED_ARC_SEALERS": "List.Test.",
        }
    )
    built = build_resolvers(settings)
    assert built.dns is not None and built.dns.txt("pass.test")
    assert built.dnsbl_zones == ("bl.test",) and built.trusted_arc_sealers == ("list.test",)
    assert build_resolvers(settings).dns is built.dns, "one resolver (and cache) per configuration"


# -- SPF --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "expected", "api"),
    [
        ("pass.test", "pass", "pass"),
        ("mxa.test", "pass", "pass"),
        ("ptr.test", "pass", "pass"),
        ("v6.test", "fail", "fail"),
        ("fail.test", "fail", "fail"),
        ("softfail.test", "softfail", "fail"),
        ("neutral.test", "neutral", "neutral"),
        ("nospf.test", "none", "none"),
        ("servfail.test", "temperror", "error"),
        ("silent.test", "temperror", "error"),
        ("broken.test", "permerror", "error"),
        ("toomany.test", "permerror", "error"),
    ],
)
def test_spf(resolvers: Resolvers, domain: str, expected: str, api: str) -> None:
    out = _auth(make_eml(sender=f"a@{domain}"), resolvers, mail_from=f"bounce@{domain}")
    assert out.validation.spf == api
    assert out.validation.comment is not None and out.validation.comment.startswith(f"spf={expected} ")
    names = _names(out)
    assert ("SPF_FAIL" in names) == (expected == "fail")
    assert ("SPF_SOFTFAIL" in names) == (expected == "softfail")
    assert ("SPF_PERMERROR" in names) == (expected == "permerror")
    assert ("AUTH_TEMPERROR" in names) == (expected == "temperror")


def test_spf_for_an_ipv6_client(resolvers: Resolvers) -> None:
    out = _auth(make_eml(sender="a@v6.test"), resolvers, mail_from="a@v6.test", ip="2a00:1450:4001:82b::1b")
    assert out.validation.spf == "pass" and "from 2a00:1450:4001:82b::1b" in (out.validation.comment or "")


def test_spf_uses_the_first_public_received_hop_for_imported_mail(resolvers: Resolvers) -> None:
    raw = (
        b"Received: from internal.x.test (internal.x.test [10.0.0.5]) by mx2.x.test; 24 Nov 2026 10:00:02 +0000\r\n"
        b"Received: from out.pass.test (out.pass.test [1.2.3.9]) by mx1.x.test; Tue, 24 Nov 2026 10:00:01 +0000\r\n"
        b"Received: from forged.test ([9.9.9.9]) by out.pass.test; Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        b"Return-Path: <bounce@pass.test>\r\n" + make_eml(sender="a@pass.test")
    )
    parsed = parse_message(raw)
    assert connecting_host(parsed, Envelope()) == ("1.2.3.9", "out.pass.test")
    relay = Envelope(client_ip="10.1.1.1", helo="relay.x.test")  # an internal relay in front of the gateway
    assert connecting_host(parsed, relay) == ("1.2.3.9", "out.pass.test")
    assert connecting_host(parse_message(make_eml()), relay) == ("10.1.1.1", "relay.x.test")
    assert _auth(make_eml(sender="a@fail.test"), resolvers, "a@fail.test", ip="10.1.1.1").validation.spf == "none"
    out = check_authentication(parsed, Envelope(), resolvers)
    assert out.validation.spf == "pass" and out.sender_info.ip == "1.2.3.9"


def test_policy_and_spf_judge_the_same_connecting_ip_behind_a_relay(resolvers: Resolvers) -> None:
    """An internal relay hands the gateway a message from 1.2.3.9: SPF, sender info and IP policies all see 1.2.3.9,
    never the relay's 10.1.1.1 (before the shared identity, an IP block policy matched the relay)."""
    raw = (
        b"Received: from out.pass.test (out.pass.test [1.2.3.9]) by relay.x.test; Tue, 24 Nov 2026 10:00:01 +0000\r\n"
        + make_eml(sender="a@pass.test")
    )
    parsed = parse_message(raw)
    relay = Envelope(mail_from="bounce@pass.test", client_ip="10.1.1.1", helo="relay.x.test")
    who = identify(parsed, relay)
    assert (who.client_ip, who.helo, who.envelope_domain, who.from_org) == ("1.2.3.9", "out.pass.test", "pass.test",
                                                                           "pass.test")  # fmt: skip
    block_sender = Policy(block=(BlockPolicy("1.2.3.9", "IP"),))
    block_relay = Policy(block=(BlockPolicy("10.1.1.0/24", "IP"),))
    v = scan_message(parsed, relay, block_sender, resolvers, model=False)
    assert v.validation.spf == "pass" and v.sender_info.ip == "1.2.3.9"
    assert v.disposition is Disposition.MALICIOUS and v.properties["blocklisted_pattern"] == "1.2.3.9"
    v = scan_message(parsed, relay, block_relay, resolvers, model=False)
    assert v.disposition is Disposition.NONE and "blocklisted_pattern" not in v.properties
    assert "SENDER_AUTHENTICATED" not in {f.name for f in v.findings}  # pass.test is no established domain


def test_an_authenticated_established_sender_is_relief_a_free_mailbox_is_not(resolvers: Resolvers) -> None:
    env = Envelope(mail_from="noreply@github.com", client_ip=IP, helo="out.github.com")
    v = scan_message(
        parse_message(make_eml(sender="GitHub <noreply@github.com>")), env, resolvers=resolvers, model=False
    )
    found = {f.name: f.score for f in v.findings}
    assert v.validation.dmarc == "pass" and found["DMARC_PASS"] == -1.0 and found["SENDER_AUTHENTICATED"] == -1.5
    env = Envelope(mail_from="someone@gmail.com", client_ip=IP, helo="mail.gmail.com")
    v = scan_message(parse_message(make_eml(sender="someone@gmail.com")), env, resolvers=resolvers, model=False)
    assert v.validation.dmarc == "pass" and "SENDER_AUTHENTICATED" not in {f.name for f in v.findings}


# -- DKIM -------------------------------------------------------------------------------------------------------------


def test_dkim_pass_fail_and_none(resolvers: Resolvers, keys: dict[str, Key]) -> None:
    raw = make_eml(sender="a@pass.test", body="Pay the invoice.\n")
    signed = _signed(raw, keys["pass"], "pass.test")
    ok = _auth(signed, resolvers, mail_from="b@pass.test")
    assert ok.validation.dkim == "pass" and "dkim=pass (d=pass.test s=sel)" in (ok.validation.comment or "")

    tampered = signed.replace(b"Pay the invoice.", b"Pay the invoice to IBAN XX00.")
    bad = _auth(tampered, resolvers, mail_from="b@pass.test", ip="9.9.9.9")
    assert bad.validation.dkim == "fail" and "DKIM_FAIL" in _names(bad)
    assert "body hash" in next(f.reason for f in bad.findings if f.name == "DKIM_FAIL")

    unsigned = _auth(raw, resolvers, mail_from="b@pass.test")
    assert unsigned.validation.dkim == "none" and "dkim=none" in (unsigned.validation.comment or "")

    no_key = _signed(raw, keys["pass"], "pass.test", selector="gone")
    missing = _auth(no_key, resolvers, mail_from="b@pass.test")
    assert missing.validation.dkim == "error" and "DKIM_PERMERROR" in _names(missing)


def test_dkim_key_lookup_timeout_is_temperror(resolvers: Resolvers, keys: dict[str, Key]) -> None:
    signed = _signed(make_eml(sender="a@silent.test"), keys["pass"], "silent.test")
    out = _auth(signed, resolvers, ip=None)
    assert out.validation.dkim == "error" and "dkim=temperror" in (out.validation.comment or "")
    assert "AUTH_TEMPERROR" in _names(out)


# -- DMARC ------------------------------------------------------------------------------------------------------------


def test_dmarc_pass_by_aligned_spf_and_by_aligned_dkim(resolvers: Resolvers, keys: dict[str, Key]) -> None:
    by_spf = _auth(make_eml(sender="a@pass.test"), resolvers, mail_from="bounce@pass.test")
    assert by_spf.validation.dmarc == "pass"
    (f,) = [f for f in by_spf.findings if f.name == "DMARC_PASS"]
    assert f.score < 0 and f.detection is Disposition.NONE and "SPF" in f.reason

    signed = _signed(make_eml(sender="a@pass.test"), keys["pass"], "pass.test")
    by_dkim = _auth(signed, resolvers, mail_from="bounce@esp.test", ip="9.9.9.9")
    assert by_dkim.validation.spf == "none" and by_dkim.validation.dmarc == "pass"


def test_dmarc_relaxed_and_strict_alignment(resolvers: Resolvers, keys: dict[str, Key]) -> None:
    relaxed = _signed(make_eml(sender="a@relaxed.test"), keys["relaxed"], "mail.relaxed.test")
    assert _auth(relaxed, resolvers, ip="9.9.9.9").validation.dmarc == "pass"

    strict = _signed(make_eml(sender="a@strict.test"), keys["strict"], "mail.strict.test")
    out = _auth(strict, resolvers, ip="9.9.9.9")
    assert out.validation.dkim == "pass" and out.validation.dmarc == "fail"
    assert "dmarc=fail (p=reject strict.test)" in (out.validation.comment or "")


def test_dmarc_subdomain_uses_the_organizational_record(resolvers: Resolvers) -> None:
    out = _auth(make_eml(sender="a@news.pass.test"), resolvers, mail_from="x@news.pass.test", ip="9.9.9.9")
    assert out.validation.dmarc == "fail"
    (f,) = [f for f in out.findings if f.name == "DMARC_FAIL"]
    assert "p=quarantine" in f.reason and f.detail == "record at _dmarc.pass.test"


def test_dmarc_none_without_record_and_p_none_scores_little(resolvers: Resolvers) -> None:
    assert _auth(make_eml(sender="a@nospf.test"), resolvers, mail_from="a@nospf.test").validation.dmarc == "none"
    out = _auth(make_eml(sender="a@monitor.test"), resolvers, mail_from="a@monitor.test")
    assert out.validation.dmarc == "fail"
    assert max(f.score for f in out.findings) < 5 and "SPOOFED_SENDER" not in _names(out)


def test_spoof_of_a_reject_domain_is_spoof(resolvers: Resolvers) -> None:
    raw = make_eml(sender="CEO <ceo@bank.test>", subject="Quarterly numbers", body="See the attached figures.\n")
    parsed = parse_message(raw)
    env = Envelope(mail_from="x@evil.test", client_ip=IP, helo="mx.evil.test", rcpt_to=("bob@corp.example",))
    verdict = scan_message(parsed, env, resolvers=resolvers, model=False)
    assert verdict.disposition is Disposition.SPOOF
    assert verdict.validation.spf == "pass" and verdict.validation.dmarc == "fail"
    spoof = next(f for f in verdict.findings if f.name == "SPOOFED_SENDER")
    assert spoof.score >= 5 and spoof.category == "Spoof" and "evil.test" in spoof.reason
    assert "Spoof" in verdict.threat_categories
    # same envelope domain, but SPF fails and DMARC fails under p=reject: SPOOF as well (4 + 1)
    direct = scan_message(parsed, replace(env, mail_from="x@bank.test"), resolvers=resolvers, model=False)
    assert direct.disposition is Disposition.SPOOF and "SPOOFED_SENDER" not in {f.name for f in direct.findings}
    # the same message from the domain's own server is not a spoof
    own = scan_message(
        parsed, replace(env, mail_from="x@bank.test", client_ip="9.9.9.9"), resolvers=resolvers, model=False
    )
    assert own.disposition is Disposition.NONE and own.validation.dmarc == "pass"


# -- ARC --------------------------------------------------------------------------------------------------------------


def _forwarded_by_list(keys: dict[str, Key]) -> bytes:
    """pass.test signs; list.test checks it, appends a footer (breaking DKIM) and ARC-seals."""
    original = _signed(make_eml(sender="a@pass.test", body="Minutes attached.\n"), keys["pass"], "pass.test")
    ar = b"Authentication-Results: list.test; dkim=pass header.d=pass.test; dmarc=pass header.from=pass.test\r\n"
    modified = ar + original.replace(b"Minutes attached.\n", b"Minutes attached.\n--\nlist footer\n")
    seal = dkim.arc_sign(modified, b"arc", b"list.test", keys["list"].private, b"list.test")
    return b"".join(seal) + modified


def test_arc_from_a_trusted_sealer_overrides_dmarc_fail(resolvers: Resolvers, keys: dict[str, Key]) -> None:
    raw = _forwarded_by_list(keys)
    untrusted = _auth(raw, resolvers, mail_from="list-bounces@list.test", ip=LIST_IP)
    assert untrusted.validation.dkim == "fail" and untrusted.validation.dmarc == "fail"
    assert "arc=pass" in (untrusted.validation.comment or "")
    assert {"DMARC_FAIL", "SPOOFED_SENDER"} <= _names(untrusted)

    trusted = _auth(raw, replace(resolvers, trusted_arc_sealers=("list.test",)), "list-bounces@list.test", LIST_IP)
    assert trusted.validation.dmarc == "pass"
    assert "overridden by trusted ARC sealer list.test" in (trusted.validation.comment or "")
    (f,) = [f for f in trusted.findings if f.name == "DMARC_FAIL_ARC_OVERRIDE"]
    assert "list.test" in f.reason and f.score == 0
    assert not {"DMARC_FAIL", "SPOOFED_SENDER", "DKIM_FAIL"} & _names(trusted)


def test_broken_or_foreign_arc_does_not_override(resolvers: Resolvers, keys: dict[str, Key]) -> None:
    trusting = replace(resolvers, trusted_arc_sealers=("list.test",))
    tampered = _forwarded_by_list(keys).replace(b"list footer", b"list f00ter")
    out = _auth(tampered, trusting, "list-bounces@list.test", LIST_IP)
    assert out.validation.dmarc == "fail" and "arc=fail" in (out.validation.comment or "")

    original = _signed(make_eml(sender="a@pass.test"), keys["pass"], "pass.test")
    ar = b"Authentication-Results: other.test; dmarc=pass header.from=pass.test\r\n"
    sealed = b"".join(
        dkim.arc_sign(ar + original + b"x\r\n", b"arc", b"other.test", keys["other"].private, b"other.test")
    )
    out = _auth(sealed + ar + original + b"x\r\n", trusting, "b@other.test", LIST_IP)
    assert "arc=pass" in (out.validation.comment or "") and out.validation.dmarc == "fail"


# -- sender info ------------------------------------------------------------------------------------------------------


def test_dnsbl_listing_is_an_ip_reputation_finding(resolvers: Resolvers) -> None:
    listing = replace(resolvers, dnsbl_zones=("bl.test", "other-bl.test"))
    out = _auth(make_eml(sender="a@pass.test"), listing, mail_from="a@pass.test")
    (f,) = [f for f in out.findings if f.name == "DNSBL_LISTED"]
    assert f.category == "IPReputation" and f.value == IP and "bl.test" in f.reason and f.score > 0
    clean = _auth(make_eml(sender="a@pass.test"), listing, mail_from="a@pass.test", ip="9.9.9.9")
    assert "DNSBL_LISTED" not in _names(clean)


def test_sender_info_from_maxmind_databases(tmp_path: Path, resolvers: Resolvers) -> None:
    mmdb_writer = pytest.importorskip("mmdb_writer")
    from netaddr import IPSet

    asn = mmdb_writer.MMDBWriter(database_type="GeoLite2-ASN")
    asn.insert_network(
        IPSet(["1.2.3.0/24"]), {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Net"}
    )
    asn.to_db_file(str(tmp_path / "asn.mmdb"))
    geo = mmdb_writer.MMDBWriter(database_type="GeoLite2-Country")
    geo.insert_network(IPSet(["1.2.3.0/24"]), {"country": {"iso_code": "NL", "names": {"en": "Netherlands"}}})
    geo.to_db_file(str(tmp_path / "geo.mmdb"))
    with_db = replace(resolvers, asn_db=str(tmp_path / "asn.mmdb"), geoip_db=str(tmp_path / "geo.mmdb"))
    info = _auth(make_eml(sender="a@news.pass.test"), with_db, mail_from="a@pass.test").sender_info
    assert (info.ip, info.pld, info.as_number, info.as_name, info.geo) == (IP, "pass.test", 64500, "Example Net", "NL")
    unknown = _auth(make_eml(sender="a@pass.test"), with_db, ip="9.9.9.9").sender_info
    assert unknown.as_number is None and unknown.geo is None


# -- without DNS ----------------------------------------------------------------------------------------------------


def _fastest(fn: Callable[[], object], runs: int = 3) -> float:
    """Best of a few runs: the bound is about work done (no network wait), not about a busy CI machine."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        fn()
        times.append(time.monotonic() - started)
    return min(times)


def test_without_dns_a_scan_completes_fast_and_says_so(keys: dict[str, Key]) -> None:
    raw = _signed(make_eml(sender="a@pass.test"), keys["pass"], "pass.test")
    parsed = parse_message(raw)
    env = Envelope(mail_from="a@pass.test", client_ip=IP)
    scan_message(parsed, env, model=False)  # warm up (public suffix list)
    none = build_resolvers(load_settings(env={}))
    assert _fastest(lambda: scan_message(parsed, env, resolvers=none, model=False)) < 0.1
    verdict = scan_message(parsed, env, resolvers=none, model=False)
    assert verdict.validation.spf == verdict.validation.dkim == verdict.validation.dmarc == "none"
    assert "no DNS resolver" in (verdict.validation.comment or "")
    assert verdict.sender_info.ip == IP and verdict.sender_info.pld == "pass.test"

    dead = Resolvers(dns=DnspythonResolver(["127.0.0.1"], port=free_port(), timeout=0.2))
    scan_message(parsed, env, resolvers=dead, model=False)  # pays one timeout and one probe, then marks DNS down
    assert _fastest(lambda: scan_message(parsed, env, resolvers=dead, model=False)) < 0.1
    verdict = scan_message(parsed, env, resolvers=dead, model=False)
    assert verdict.validation.spf == "error" and verdict.validation.dkim == "error"
    assert verdict.disposition is Disposition.NONE


def test_ingest_uses_the_configured_resolver(sqlite_services, server: tuple[str, int]) -> None:  # type: ignore[no-untyped-def]
    host, port = server
    svc = replace(sqlite_services, settings=replace(sqlite_services.settings, dns_servers=(f"{host}:{port}",)))
    raw = make_eml(sender="CEO <ceo@bank.test>", subject="Wire today")
    account = svc.accounts.create_account("A").id
    done = process_message(svc, raw, account, envelope=Envelope(mail_from="x@evil.test", client_ip=IP))
    assert done.verdict.validation.dmarc == "fail"
    assert any(f.name == "SPOOFED_SENDER" for f in done.verdict.findings)


# -- hostile and real mail ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"DKIM-Signature: v=1; a=rsa-sha256; d=; s=\r\nFrom: a@pass.test\r\n\r\nx\r\n",
        b"DKIM-Signature: garbage\r\nARC-Seal: i=1; garbage\r\nFrom: a@pass.test\r\nFrom: b@bank.test\r\n\r\nx\r\n",
        b"From: <@>\r\nReturn-Path: <>\r\nReceived: from [999.1.1.1] by x\r\n\r\n",
        b"\x00\xff" * 50,
    ],
)
def test_hostile_headers_never_raise(resolvers: Resolvers, raw: bytes) -> None:
    out = _auth(raw, resolvers, mail_from="", ip=IP)
    assert {out.validation.spf, out.validation.dkim, out.validation.dmarc} <= API_VALUES


def test_phishing_corpus_sample_yields_validation(resolvers: Resolvers) -> None:
    folder = CORPORA / "phishing_pot"
    if not folder.is_dir():
        pytest.skip(f"corpus not present at {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix == ".eml")[:40]
    assert files
    for path in files:
        out = check_authentication(parse_message(path.read_bytes()), Envelope(), resolvers)
        assert {out.validation.spf, out.validation.dkim, out.validation.dmarc} <= API_VALUES, path.name
        assert out.validation.comment
