"""Sender authentication on by default: `mailsec serve` asks the system resolver (resolv.conf), ingest and eval stay
offline unless told; a resolver that is down or black-holed costs a bounded time and gives temperror; answers,
NXDOMAIN and NODATA are cached and shared."""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dns_zone import Zones, dns_server

from mailsec.config import load_settings
from mailsec.mime import parse_message
from mailsec.model import Envelope
from mailsec.scan import scan_message
from mailsec.scan.auth import check_authentication
from mailsec.scan.resolvers import DnspythonResolver, DnsTempError, Resolvers, build_resolvers
from mailsec.services import Services, open_services
from support import free_port, make_eml, make_live_server, wait_port

IP = "1.2.3.4"


@pytest.fixture(scope="module")
def zones() -> Zones:
    z = Zones()
    z.txt("bank.test", "v=spf1 ip4:9.9.9.9 -all")
    z.txt("_dmarc.bank.test", "v=DMARC1; p=reject")
    z.txt("evil.test", f"v=spf1 ip4:{IP} -all")
    z.a("test", "127.0.0.1")  # the probe of a live server finds an answer
    for i in range(6):
        z.silent.add(f"slow{i}.test")
    return z


@pytest.fixture(scope="module")
def server(zones: Zones) -> Iterator[tuple[str, int]]:
    with dns_server(zones) as addr:
        yield addr


def resolv_conf(tmp_path: Path, host: str) -> Path:
    path = tmp_path / "resolv.conf"
    path.write_text(f"# written by the test\nnameserver {host}\noptions timeout:1\n")
    return path


def spoof() -> tuple[bytes, Envelope]:
    raw = make_eml(sender="Bank <news@bank.test>", subject="Minutes of the meeting", to="bob@corp.example")
    return raw, Envelope(mail_from="x@evil.test", client_ip=IP, helo="mx.evil.test")


def test_unset_is_off_for_ingest_and_system_for_serve(tmp_path: Path, server: tuple[str, int]) -> None:
    plain = load_settings(env={})
    assert build_resolvers(plain).dns is None, "ingest and rescan judge archived mail: no lookups unless told"
    for off in ("off", "OFF", "none"):
        assert build_resolvers(load_settings(env={"MAILSEC_DNS_SERVERS": off}).for_serve()).dns is None
    host, port = server
    conf = resolv_conf(tmp_path, host)
    served = load_settings(env={"MAILSEC_DNS_RESOLV_CONF": str(conf), "MAILSEC_DNS_PORT": str(port)}).for_serve()
    assert served.dns_servers == ("system",)
    built = build_resolvers(served)
    assert isinstance(built.dns, DnspythonResolver)
    assert built.dns.servers == [(host, port)], "the servers of resolv.conf"
    assert built.dns.txt("bank.test") == ["v=spf1 ip4:9.9.9.9 -all"]
    explicit = load_settings(env={"MAILSEC_DNS_SERVERS": f"{host}:{port}"})
    assert explicit.for_serve().dns_servers == (f"{host}:{port}",), "an explicit setting wins"


def test_a_resolv_conf_without_servers_turns_checks_off_and_says_why(tmp_path: Path) -> None:
    empty = tmp_path / "resolv.conf"
    empty.write_text("search example.org\n")
    built = build_resolvers(load_settings(env={"MAILSEC_DNS_RESOLV_CONF": str(empty)}).for_serve())
    assert built.dns is None
    raw, env = spoof()
    verdict = scan_message(parse_message(raw), env, resolvers=built, model=False)
    assert verdict.validation.dmarc == "none"
    assert "no DNS resolver usable" in (verdict.validation.comment or "")


def test_answers_and_negative_answers_are_cached(server: tuple[str, int], zones: Zones) -> None:
    r = DnspythonResolver([f"{server[0]}:{server[1]}"], timeout=1.0)
    assert r.txt("absent.bank.test") == []  # NXDOMAIN
    assert r.mx("bank.test") == []  # NODATA
    assert r.txt("bank.test")
    asked = len(zones.queries)
    for _ in range(3):
        assert r.txt("absent.bank.test") == [] and r.mx("bank.test") == [] and r.txt("bank.test")
    assert len(zones.queries) == asked, "answered from the cache: positive and negative"
    with pytest.raises(DnsTempError):
        r.txt("slow0.test")
    started = time.monotonic()
    with pytest.raises(DnsTempError, match="cached"):
        r.txt("slow0.test")
    assert time.monotonic() - started < 0.05, "a failure is remembered for a while, not paid again"


def test_serve_checks_sender_authentication_by_default(tmp_path: Path, server: tuple[str, int]) -> None:
    """`mailsec serve --smtp` with no DNS setting: a message from a DMARC p=reject domain, sent by another domain,
    is SPOOF (and so held by the default policy)."""
    host, port = server
    smtp_port = free_port()
    live = make_live_server(
        tmp_path / "live",
        f"sqlite:///{tmp_path / 'live' / 'mailsec.db'}",
        MAILSEC_DNS_SERVERS="",
        MAILSEC_DNS_RESOLV_CONF=str(resolv_conf(tmp_path, host)),
        MAILSEC_DNS_PORT=str(port),
        MAILSEC_QUEUE_WORKERS="1",
        MAILSEC_QUEUE_POLL_SECONDS="0.1",
    )
    services = open_services(load_settings(env={}, data_dir=live.data_dir, database_url=live.database_url))
    account = services.accounts.create_account("Corp").id
    services.domains.add(account, "corp.example", mode="BCC", next_hop="", verified=True)
    live.start("--smtp", f"127.0.0.1:{smtp_port}")
    try:
        wait_port("127.0.0.1", smtp_port)
        raw, _ = spoof()
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("x@evil.test", ["bob@corp.example"], raw)
        deadline = time.monotonic() + 60
        stored = None
        while time.monotonic() < deadline and stored is None:
            found = [m for m in services.messages.get_many(list(services.messages.iter_pks(account)))]
            stored = found[0] if found else None
            time.sleep(0.2)
        assert stored is not None, (live.data_dir / "serve.log").read_text()[-2000:]
        assert stored.verdict.validation.dmarc == "fail", stored.verdict.validation
        assert any(f.name == "SPOOFED_SENDER" for f in stored.verdict.findings)
        assert stored.final_disposition == "SPOOF"
    finally:
        live.stop()
        services.close()


def test_a_black_holed_resolver_costs_one_timeout_then_nothing(tmp_path: Path) -> None:
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes queries and never answers
    hole.bind(("127.0.0.1", 0))
    try:
        conf = resolv_conf(tmp_path, "127.0.0.1")
        settings = load_settings(
            env={
                "MAILSEC_DNS_RESOLV_CONF": str(conf),
                "MAILSEC_DNS_PORT": str(hole.getsockname()[1]),
                "MAILSEC_DNS_TIMEOUT_SECONDS": "0.5",
            }
        ).for_serve()
        resolvers = build_resolvers(settings)
        raw, env = spoof()
        parsed = parse_message(raw)
        started = time.monotonic()
        first = scan_message(parsed, env, resolvers=resolvers, model=False)
        assert time.monotonic() - started < 2.0, "one timeout and one probe, then the resolver is marked down"
        assert first.validation.spf == "error" and "temperror" in (first.validation.comment or "")
        started = time.monotonic()
        for _ in range(5):
            again = scan_message(parsed, env, resolvers=resolvers, model=False)
            assert again.validation.dmarc == "error"
            assert any(f.name == "AUTH_TEMPERROR" for f in again.findings)
        assert time.monotonic() - started < 0.5, "while it is down, no message waits on it"
        assert str(again.disposition) != "SPOOF", "a resolver outage never turns into a spoofing verdict"
    finally:
        hole.close()


def test_one_message_waits_on_dns_at_most_its_budget(server: tuple[str, int]) -> None:
    """Six DKIM signatures whose key lookups never answer: a 1 s timeout each, but the message's budget is 1.5 s,
    and the server (which answers other names) is not held responsible."""
    host, port = server
    resolver = DnspythonResolver([host], port=port, timeout=1.0, max_timeouts_in_a_row=100)
    signatures = "".join(
        f"DKIM-Signature: v=1; a=rsa-sha256; d=slow{i}.test; s=sel; h=from; bh=AAAA; b=AAAA\r\n" for i in range(6)
    ).encode()
    parsed = parse_message(signatures + make_eml(sender="a@slow0.test"))
    env = Envelope(mail_from="a@slow0.test", client_ip=IP)
    budgeted = Resolvers(dns=resolver, dns_budget_seconds=1.5)
    started = time.monotonic()
    outcome = check_authentication(parsed, env, budgeted)
    took = time.monotonic() - started
    assert took < 2.2, f"{took:.2f}s"
    assert outcome.validation.dkim == "error"
    assert resolver.txt("bank.test"), "the budget ran out; the server is still used"


def test_rescan_without_dns_keeps_the_authentication_of_the_first_scan(
    sqlite_services: Services, server: tuple[str, int], zones: Zones
) -> None:
    """Gateway mail was judged with DNS; a rescan without DNS (its default) must not turn a SPOOF into NONE, and
    one with DNS checks again."""
    from dataclasses import replace

    from mailsec.pipeline import process_message
    from mailsec.rescan import rescan

    host, port = server
    with_dns = replace(sqlite_services, settings=replace(sqlite_services.settings, dns_servers=(f"{host}:{port}",)))
    account = sqlite_services.accounts.create_account("Retro").id
    raw, env = spoof()
    done = process_message(with_dns, raw, account, envelope=env)
    assert str(done.verdict.disposition) == "SPOOF"

    summary = rescan(sqlite_services, account)  # settings without DNS
    assert summary.scanned == 1 and not summary.changed
    stored = sqlite_services.messages.get(account, done.postfix_id)
    assert stored is not None and stored.final_disposition == "SPOOF"
    assert stored.verdict.validation.dmarc == "fail"
    assert {"DMARC_FAIL", "SPOOFED_SENDER"} <= {f.name for f in stored.verdict.findings}

    removed = zones.records.pop(("_dmarc.bank.test", "TXT"))
    try:  # another timeout: another resolver, whose cache has not seen the record
        fresh = replace(with_dns, settings=replace(with_dns.settings, dns_timeout_seconds=0.99))
        again = rescan(fresh, account)
    finally:
        zones.records[("_dmarc.bank.test", "TXT")] = removed
    # with DNS, checked again: no DMARC record now, so no DMARC failure (the disposition may stay bad on other
    # evidence: the sender's record now holds a flagged message, and its trail is still scattered)
    assert again.scanned == 1
    rechecked = sqlite_services.messages.get(account, done.postfix_id)
    assert rechecked is not None and rechecked.verdict.validation.dmarc != "fail"
    assert not {"DMARC_FAIL", "SPOOFED_SENDER"} & {f.name for f in rechecked.verdict.findings}
