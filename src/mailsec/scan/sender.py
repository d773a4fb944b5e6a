"""Who sent a message: the connecting host (SMTP session, or the first public `Received` hop of imported mail), its
AS and country from MaxMind databases, the registered domain of the sender, and DNS blocklist listings."""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

import dns.exception
import dns.reversename
import maxminddb

from mailsec.model import Disposition, Envelope, Finding, ParsedMessage, SenderInfo
from mailsec.scan.lookalike import registered_domain
from mailsec.scan.resolvers import DnsResolver, DnsTempError, Resolvers

log = logging.getLogger(__name__)

MAX_RECEIVED_HOPS = 12
SCORE_DNSBL = 3.0


# -- who connected ------------------------------------------------------------------------------------------------

_FROM_CLAUSE = re.compile(r"^\s*from\s+(\S+)(.*?)(?:\bby\b|$)", re.I | re.S)
_IP_IN_BRACKETS = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_BARE_IP = re.compile(r"(?<![\w.:])((?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7})(?![\w.:])")


@lru_cache(maxsize=4096)  # the same relays' addresses come back in message after message; ipaddress is slow
def parse_ip(value: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address in `value` (brackets allowed; IPv4-mapped IPv6 as IPv4), None when it is not one."""
    if not value:
        return None
    try:
        addr = ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


@lru_cache(maxsize=4096)  # `is_global` walks the reserved-network tables on every call
def is_public(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return addr.is_global and not addr.is_multicast


def connecting_host(parsed: ParsedMessage, envelope: Envelope) -> tuple[str | None, str]:
    """(IP, HELO name) of the client that handed the message to the receiving side.

    From the SMTP session when its client is public; otherwise (imported mail, or an internal relay in front of us)
    the first `Received` hop from the top whose connecting address is public — the hops above it were added inside
    the receiving side and can be trusted, those below it could have been written by the sender. Falls back to the
    session's own (private) client."""
    addr = parse_ip(envelope.client_ip)
    if addr is not None and is_public(addr):
        return str(addr), (envelope.helo or "").strip()
    for header in parsed.received[:MAX_RECEIVED_HOPS]:
        m = _FROM_CLAUSE.match(header)
        if not m:
            continue
        helo, rest = m.group(1), m.group(2)
        for finder in (_IP_IN_BRACKETS, _BARE_IP):  # bracketed addresses first; bare ones only when none is public
            for cand in finder.findall(rest):
                hop = parse_ip(cand)
                if hop is not None and is_public(hop):
                    return str(hop), helo.strip("[]()")
    for fallback in (parsed.smtp_helo_server_ip, parsed.smtp_previous_hop_ip):
        hop = parse_ip(fallback)
        if hop is not None and is_public(hop):
            return str(hop), ""
    if addr is not None:
        return str(addr), (envelope.helo or "").strip()
    return None, ""


def address_domain(addr: str) -> str:
    """The lower-case domain of `local@domain` (angle brackets allowed); "" without one."""
    addr = addr.strip().strip("<>").strip()
    return addr.rpartition("@")[2].strip().rstrip(".").lower() if "@" in addr else ""


def envelope_sender(parsed: ParsedMessage, envelope: Envelope) -> str:
    """MAIL FROM, or for imported mail the topmost Return-Path (which the final MTA wrote from MAIL FROM)."""
    if envelope.mail_from:
        return envelope.mail_from.strip().strip("<>").strip()
    paths = parsed.header_all("Return-Path")
    return paths[0].strip().strip("<>").strip() if paths else ""


# -- sender info ---------------------------------------------------------------------------------------------------


@cache
def _mmdb(path: str) -> Any:
    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        log.error("cannot open MaxMind database %s: %s", path, exc)
        return None


def _mmdb_get(path: str, ip: str) -> dict[str, Any]:
    reader = _mmdb(path) if path else None
    if reader is None:
        return {}
    try:
        rec = reader.get(ip)
    except (ValueError, maxminddb.InvalidDatabaseError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _as_info(path: str, ip: str) -> tuple[int | None, str | None]:
    rec = _mmdb_get(path, ip)
    number = rec.get("autonomous_system_number", rec.get("asn"))
    name = rec.get("autonomous_system_organization", rec.get("as_name", rec.get("name")))
    if isinstance(number, str):
        digits = number.upper().removeprefix("AS")
        number = int(digits) if digits.isascii() and digits.isdigit() else None
    return (number if isinstance(number, int) else None), (str(name) if name else None)


def _country(path: str, ip: str) -> str | None:
    rec = _mmdb_get(path, ip)
    country = rec.get("country")
    if isinstance(country, dict):
        code = country.get("iso_code")
        return str(code) if code else None
    code = rec.get("country_code", country)
    return str(code) if isinstance(code, str) and code else None


def dnsbl_name(ip: str, zone: str) -> str:
    """`4.3.2.1.zen.example` for 1.2.3.4; nibbles for IPv6."""
    rev = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
    rev = rev.rsplit(".", 2)[0]  # drop in-addr.arpa / ip6.arpa
    return f"{rev}.{zone.strip('.')}"


def check_dnsbl(resolver: DnsResolver, ip: str, zones: Sequence[str]) -> list[Finding]:
    """One finding per zone listing a public `ip` (answers 127.0.0.x; 127.255.255.x are the lists' error codes)."""
    findings: list[Finding] = []
    addr = parse_ip(ip)
    if addr is None or not is_public(addr):
        return findings
    for zone in zones:
        try:
            answers = resolver.a(dnsbl_name(ip, zone))
        except DnsTempError:
            continue
        except (ValueError, dns.exception.DNSException):
            return findings
        codes = [a for a in answers if a.startswith("127.") and not a.startswith("127.255.255.")]
        if codes:
            findings.append(
                Finding(
                    name="DNSBL_LISTED",
                    detection=Disposition.SPAM,
                    score=SCORE_DNSBL,
                    reason=f"The sending IP {ip} is listed on the blocklist {zone} ({', '.join(sorted(codes))}).",
                    field="sender_ip",
                    value=ip,
                    detail=f"{zone}: {', '.join(sorted(codes))}",
                    category="IPReputation",
                )
            )
    return findings


def sender_info(resolvers: Resolvers, ip: str | None, domain: str) -> SenderInfo:
    as_number = as_name = geo = None
    if ip:
        if resolvers.asn_db:
            as_number, as_name = _as_info(resolvers.asn_db, ip)
        if resolvers.geoip_db:
            geo = _country(resolvers.geoip_db, ip)
        if geo is None and resolvers.asn_db:
            geo = _country(resolvers.asn_db, ip)
    return SenderInfo(
        ip=ip, pld=registered_domain(domain) if domain else None, as_number=as_number, as_name=as_name, geo=geo
    )
