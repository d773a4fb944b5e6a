"""Everything a scan may ask the outside world, injected so that `scan_message` stays a pure function."""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import dns.entropy
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.reversename

from mailsec.config import Settings, parse_hostport

log = logging.getLogger(__name__)


class DnsResolver(Protocol):
    def txt(self, name: str) -> list[str]:
        """TXT strings of `name`; [] for NXDOMAIN/NODATA; raises `DnsTempError` on timeout or SERVFAIL."""
        ...

    def a(self, name: str) -> list[str]: ...

    def aaaa(self, name: str) -> list[str]: ...

    def mx(self, name: str) -> list[tuple[int, str]]: ...

    def ptr(self, ip: str) -> list[str]: ...


class DnsTempError(Exception):
    """A lookup that could not be answered now (timeout, SERVFAIL, no server reachable)."""


@dataclass
class Resolvers:
    dns: DnsResolver | None = None
    geoip_db: str = ""
    asn_db: str = ""
    dnsbl_zones: tuple[str, ...] = ()
    trusted_arc_sealers: tuple[str, ...] = ()
    dns_budget_seconds: float = 0.0  # the most one message may wait on DNS in total; 0: no limit beyond timeouts
    dns_note: str = ""  # why there is no `dns`, for the verdict's comment

    def message_dns(self) -> DnsResolver | None:
        """The resolver one message's checks use: its lookups share one deadline, so a slow or hostile set of
        domains costs the message at most `dns_budget_seconds`, whatever the number of lookups."""
        if self.dns is None or self.dns_budget_seconds <= 0:
            return self.dns
        return BudgetedDns(self.dns, self.dns_budget_seconds)


class BudgetedDns:
    """A `DnsResolver` for one message: answers from the shared cache as always; a lookup that must go to the
    network gets only what is left of the message's budget, and none once it is spent (`DnsTempError`)."""

    def __init__(self, inner: DnsResolver, budget_seconds: float) -> None:
        self._inner = inner
        self.deadline = time.monotonic() + budget_seconds

    def _call(self, method: str, arg: str) -> Any:
        fn = getattr(self._inner, method)
        if isinstance(self._inner, DnspythonResolver):
            return fn(arg, deadline=self.deadline)
        if time.monotonic() >= self.deadline:
            raise DnsTempError("this message's DNS time budget is spent")
        return fn(arg)

    def txt(self, name: str) -> list[str]:
        return list(self._call("txt", name))

    def a(self, name: str) -> list[str]:
        return list(self._call("a", name))

    def aaaa(self, name: str) -> list[str]:
        return list(self._call("aaaa", name))

    def mx(self, name: str) -> list[tuple[int, str]]:
        return list(self._call("mx", name))

    def ptr(self, ip: str) -> list[str]:
        return list(self._call("ptr", ip))


_Value = list[Any]


@lru_cache(maxsize=64)
def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(host)


_MAX_POINTERS = 16  # dns.name.MAX_COMPRESSION_POINTER_CHAIN


def _name_end(data: bytes, pos: int, end: int) -> int | None:
    """Where the (possibly compressed) domain name at `pos` ends, checked as `dns.name.from_wire_parser` checks it
    (labels under 64, pointers strictly backwards into what precedes, at most 16 hops, 255 octets); None for any
    name it would reject, or that reaches past `end`."""
    after = None
    start = biggest = pos
    hops = total = 0
    while True:
        if pos >= end:
            return None
        count = data[pos]
        pos += 1
        if count == 0:
            break
        if count < 64:
            pos += count
            total += count + 1
            if pos > end:
                return None
        elif count >= 192:
            if pos >= end:
                return None
            target = (count & 0x3F) * 256 + data[pos]
            pos += 1
            hops += 1
            if target >= biggest or hops > _MAX_POINTERS:
                return None
            if after is None:
                after = pos
            end = start  # the target must lie wholly before the part of the name already read
            biggest = start = pos = target
        else:
            return None
    if total + 1 > 255:
        return None
    return pos if after is None else after


@dataclass(frozen=True)
class _Negative:
    """A NXDOMAIN or NODATA reply read without dnspython: its rcode and the TTL and minimum of its SOA, if any."""

    rcode: int
    soa: tuple[int, int] | None


def _quick_negative(data: bytes, qid: int, qname_wire: bytes, qtail: bytes) -> _Negative | None:
    """The reply to our query (id, question) when it is a plain NXDOMAIN or NODATA — no answer, at most one SOA in
    authority, no additional records, not truncated — as most replies about spam domains are; None for anything
    else, which dnspython then parses as before. Everything dnspython would refuse is refused here too."""
    if len(data) < 12:
        return None
    rid, flags, qd, an, ns, ar = struct.unpack_from("!HHHHHH", data)
    rcode = flags & 0xF
    if rid != qid or flags & 0xFA00 != 0x8000 or qd != 1 or an or ar or ns > 1 or rcode not in (0, 3):
        return None  # not a response, not QUERY, truncated, or with records
    pos = 12 + len(qname_wire)
    if data[12:pos].lower() != qname_wire.lower() or data[pos : pos + 4] != qtail:
        return None
    pos += 4
    soa = None
    if ns:
        at = _name_end(data, pos, len(data))
        if at is None or at + 10 > len(data):
            return None
        rdtype, rdclass, ttl, rdlen = struct.unpack_from("!HHIH", data, at)
        start, stop = at + 10, at + 10 + rdlen
        if rdtype != 6 or rdclass != 1 or stop > len(data):
            return None
        mname = _name_end(data, start, stop)
        rname = None if mname is None else _name_end(data, mname, stop)
        if rname is None or rname + 20 != stop:
            return None
        soa = (0 if ttl > 0x7FFFFFFF else ttl, struct.unpack_from("!I", data, stop - 4)[0])
        pos = stop
    if pos != len(data):
        return None  # trailing junk
    return _Negative(rcode, soa)


class _Query:
    """One question on the wire. Without EDNS options or custom flags (the resolver's defaults) its wire form is built
    here, byte for byte what dnspython renders, and the dnspython message only when a reply needs it."""

    def __init__(self, r: dns.resolver.Resolver, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> None:
        self._qname, self._rdtype, self._r = qname, rdtype, r
        self._message: dns.message.Message | None = None
        self.name_wire: bytes | None = None
        self.tail = struct.pack("!HH", rdtype, dns.rdataclass.IN)
        if r.edns < 0 and r.flags is None and qname.is_absolute():
            self.id = dns.entropy.random_16()
            self.name_wire = b"".join(bytes((len(label),)) + label for label in qname.labels)
            self.wire = struct.pack("!HHHHHH", self.id, dns.flags.RD, 1, 0, 0, 0) + self.name_wire + self.tail
        else:
            self.wire = self.message.to_wire()
            self.id = self.message.id

    @property
    def message(self) -> dns.message.Message:
        if self._message is None:
            r = self._r
            request = dns.message.make_query(self._qname, self._rdtype, dns.rdataclass.IN)
            request.use_edns(r.edns, r.ednsflags, r.payload, options=r.ednsoptions)
            if r.flags is not None:
                request.flags = r.flags
            if self.name_wire is not None:
                request.id = self.id
            self._message = request
        return self._message


class DnspythonResolver:
    """`DnsResolver` on dnspython: fixed nameservers (or the system's), short timeouts and a small TTL cache.

    Answers, NXDOMAIN/NODATA and failures (SERVFAIL, timeout) are cached — for their TTL, the SOA minimum and
    `fail_ttl` seconds — so a burst of mail from one domain costs one lookup. When a query times out, each server is
    probed once with a tiny query; if none answers (or `max_timeouts_in_a_row` queries in a row timed out: a
    resolver that is up but cut off from the Internet), the resolver is marked down for `down_backoff` seconds and
    every lookup fails at once with `DnsTempError` — an unreachable DNS costs one timeout, not one per message."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        port: int = 53,
        timeout: float = 1.0,
        *,
        resolv_conf: str = "/etc/resolv.conf",
        cache_size: int = 4096,
        max_ttl: float = 3600.0,
        negative_ttl: float = 300.0,
        fail_ttl: float = 30.0,
        down_backoff: float = 30.0,
        probe_timeout: float = 0.3,
        max_timeouts_in_a_row: int = 4,
    ) -> None:
        servers = [s for s in nameservers if s and s != SYSTEM]
        if servers:
            self._resolver = dns.resolver.Resolver(configure=False)
        else:  # the system's servers; `port` applies to them too (resolv.conf has no port)
            self._resolver = dns.resolver.Resolver(filename=resolv_conf)
            self._resolver.port = port
        if servers:
            pairs = [parse_hostport(s, port) for s in servers]
            for host, _ in pairs:
                ipaddress.ip_address(host)  # nameservers must be IP addresses
            self._resolver.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in pairs]
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self._resolver.retry_servfail = False
        self._resolver.use_search_by_default = False
        self._probe_timeout = min(probe_timeout, timeout)
        self._cache: OrderedDict[tuple[str, int], tuple[float, _Value | None]] = OrderedDict()
        self._cache_size = cache_size
        self._max_ttl = max_ttl
        self._negative_ttl = negative_ttl
        self._fail_ttl = fail_ttl
        self._down_backoff = down_backoff
        self._down_until = 0.0
        self._timeouts_in_a_row = 0
        self._max_timeouts_in_a_row = max_timeouts_in_a_row
        self._lock = threading.Lock()
        self.queries = 0  # lookups that went to the network; for tests and benchmarks

    @property
    def servers(self) -> list[tuple[str, int]]:
        out = []
        for ns in self._resolver.nameservers:
            if isinstance(ns, dns.nameserver.Do53Nameserver):
                out.append((ns.address, ns.port))
            elif isinstance(ns, str):
                out.append((ns, self._resolver.port))
        return out

    # -- the protocol -------------------------------------------------------------------------------------------

    # `deadline` (time.monotonic()): a lookup that is not cached must be answered by then (see `BudgetedDns`).

    def txt(self, name: str, deadline: float | None = None) -> list[str]:
        records = self._lookup(name, dns.rdatatype.TXT, deadline)
        return [b"".join(r.strings).decode("utf-8", "surrogateescape") for r in records]

    def a(self, name: str, deadline: float | None = None) -> list[str]:
        return [r.address for r in self._lookup(name, dns.rdatatype.A, deadline)]

    def aaaa(self, name: str, deadline: float | None = None) -> list[str]:
        return [r.address for r in self._lookup(name, dns.rdatatype.AAAA, deadline)]

    def mx(self, name: str, deadline: float | None = None) -> list[tuple[int, str]]:
        records = self._lookup(name, dns.rdatatype.MX, deadline)
        return [(int(r.preference), r.exchange.to_text(omit_final_dot=True)) for r in records]

    def ptr(self, ip: str, deadline: float | None = None) -> list[str]:
        try:
            rev = dns.reversename.from_address(ip).to_text()
        except (ValueError, dns.exception.SyntaxError):
            return []
        return [r.target.to_text(omit_final_dot=True) for r in self._lookup(rev, dns.rdatatype.PTR, deadline)]

    # -- internals ----------------------------------------------------------------------------------------------

    def _lookup(self, name: str, rdtype: dns.rdatatype.RdataType, deadline: float | None = None) -> _Value:
        key = (name.rstrip(".").lower(), int(rdtype))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(key)
                if hit[1] is None:
                    raise DnsTempError(f"{key[0]}: no usable answer (server failure or timeout, cached)")
                return hit[1]
            if now < self._down_until:
                raise DnsTempError(f"no DNS server reachable (retry in {self._down_until - now:.0f}s)")
        lifetime = float(self._resolver.lifetime)
        if deadline is not None:
            left = deadline - now
            if left <= 0:
                raise DnsTempError(f"{key[0]}: not looked up, this message's DNS time budget is spent")
            lifetime = min(lifetime, left)
        value, ttl = self._resolve(key[0], rdtype, lifetime)
        if value is None and ttl < 0:  # cut short by the budget: says nothing about the name or the server
            raise DnsTempError(f"{key[0]}: no answer within this message's DNS time budget")
        self._store(key, value, ttl)
        if value is None:
            raise DnsTempError(f"{key[0]}: no usable answer (server failure or timeout)")
        return value

    def _resolve(
        self, name: str, rdtype: dns.rdatatype.RdataType, lifetime: float | None = None
    ) -> tuple[_Value | None, float]:
        """(records, ttl); records None for SERVFAIL or a timeout (both cached for `fail_ttl`), with ttl -1 for a
        timeout of a `lifetime` shorter than the configured one (not cached, not held against the server)."""
        full = float(self._resolver.lifetime)
        lifetime = full if lifetime is None else lifetime
        try:
            qname = dns.name.from_text(name)
        except (dns.exception.DNSException, UnicodeError, ValueError):
            return [], self._negative_ttl  # not a valid DNS name: nothing can exist there
        self.queries += 1
        try:
            outcome, response = self._exchange(qname, rdtype, lifetime)
        except dns.exception.DNSException as exc:
            raise DnsTempError(f"{name}: {type(exc).__name__}") from exc
        if outcome == "nxdomain":
            self._timeouts_in_a_row = 0
            return [], self._soa_ttl(response)
        if outcome == "yxdomain":
            return [], self._negative_ttl
        if outcome == "no servers":
            return None, self._fail_ttl  # every server answered SERVFAIL/REFUSED or broke
        if outcome == "timeout" and lifetime < full:
            return None, -1.0
        if outcome == "timeout":
            with self._lock:
                self._timeouts_in_a_row += 1
                many = self._timeouts_in_a_row >= self._max_timeouts_in_a_row
            if many or not self._reachable():
                self._mark_down()
            return None, self._fail_ttl  # the server is alive but this name does not resolve in time
        with self._lock:
            self._timeouts_in_a_row = 0
        response, rrset = response
        if rrset is None:
            return [], self._soa_ttl(response)
        return list(rrset), float(rrset.ttl)

    def _exchange(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, lifetime: float) -> tuple[str, Any]:
        """One question to the servers in order, as `dns.resolver.Resolver.resolve` asks it (same request, EDNS and
        flags; TCP after a truncated answer; a server that answers SERVFAIL, REFUSED or garbage is dropped), on a
        plain connected UDP socket: dnspython's resolver costs ~3x the CPU per lookup, which a scan pays per domain.

        ("answer", (response, rrset or None)), ("nxdomain" | "yxdomain", response), ("timeout", None) when some
        server never answered within the lifetime, or ("no servers", None) when every server failed."""
        r = self._resolver
        servers = self.servers
        if not servers:
            raise dns.resolver.NoResolverConfiguration("no nameservers")
        query = _Query(r, qname, rdtype)
        deadline = time.monotonic() + lifetime
        timed_out = False
        for host, port in servers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            try:
                response = self._udp(query, host, port, remaining)
                if response is None:
                    timed_out = True
                    continue
                if isinstance(response, _Negative):  # NXDOMAIN or NODATA, read without dnspython
                    if response.rcode == dns.rcode.NXDOMAIN:
                        return "nxdomain", response
                    return "answer", (response, None)
                if response.flags & dns.flags.TC:
                    response = dns.query.tcp(
                        query.message, host, timeout=max(0.001, deadline - time.monotonic()), port=port
                    )
                rcode = response.rcode()
                if rcode == dns.rcode.NOERROR:  # the answer, validated and CNAMEs followed as dnspython's Answer
                    return "answer", (response, response.resolve_chaining().answer)
            except dns.exception.Timeout:
                timed_out = True
                continue
            except (dns.exception.DNSException, OSError, EOFError, ValueError):
                continue  # this server is no good
            if rcode == dns.rcode.NXDOMAIN:
                return "nxdomain", response
            if rcode == dns.rcode.YXDOMAIN:
                return "yxdomain", response
        return ("timeout" if timed_out else "no servers"), None

    @staticmethod
    def _udp(query: _Query, host: str, port: int, timeout: float) -> Any:
        """The response to `query` from host:port over UDP, or None after `timeout` seconds; datagrams from
        elsewhere, that do not parse or do not answer this request are ignored, as dnspython does. Unconnected, as
        dnspython's: a closed port is a timeout (and the probe that marks a server down), not an error. A plain
        NXDOMAIN/NODATA reply comes back as `_Negative` (a quarter of the CPU of `dns.message.from_wire`)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server = _ip(host)
        deadline = time.monotonic() + timeout
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(query.wire, (host, port))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                sock.settimeout(remaining)
                try:
                    data, source = sock.recvfrom(65535)
                except TimeoutError:
                    return None
                try:
                    if source[1] != port or (source[0] != host and ipaddress.ip_address(source[0]) != server):
                        continue
                    if query.name_wire is not None:
                        quick = _quick_negative(data, query.id, query.name_wire, query.tail)
                        if quick is not None:
                            return quick
                    response = dns.message.from_wire(data)  # a truncated answer keeps its TC flag
                except Exception:
                    continue
                if query.message.is_response(response):
                    return response

    def _soa_ttl(self, response: Any) -> float:
        if isinstance(response, _Negative):
            if response.soa is None:
                return min(60.0, self._negative_ttl)
            return float(min(response.soa[0], response.soa[1], self._negative_ttl))
        try:
            for rrset in response.authority:
                if rrset.rdtype == dns.rdatatype.SOA:
                    return float(min(rrset.ttl, rrset[0].minimum, self._negative_ttl))
        except (AttributeError, IndexError):
            pass
        return min(60.0, self._negative_ttl)

    def _store(self, key: tuple[str, int], value: _Value | None, ttl: float) -> None:
        expires = time.monotonic() + max(0.0, min(ttl, self._max_ttl))
        with self._lock:
            self._cache[key] = (expires, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _reachable(self) -> bool:
        """After a timeout: does any server answer anything at all?"""
        probe = dns.message.make_query(".", dns.rdatatype.NS)
        for host, port in self.servers:
            try:
                dns.query.udp(probe, host, timeout=self._probe_timeout, port=port, ignore_unexpected=True)
                return True
            except (dns.exception.DNSException, OSError):
                continue
        return False

    def _mark_down(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self._down_backoff
        log.warning("no DNS server answers; DNS checks report temperror for %.0fs", self._down_backoff)


SYSTEM = "system"  # `dns_servers` value: the servers of resolv.conf
OFF = frozenset({"off", "none", "no", "false", "0"})  # `dns_servers` values that turn DNS checks off

_shared: dict[tuple[tuple[str, ...], int, float, str], DnspythonResolver] = {}
_shared_lock = threading.Lock()


def shared_dns(
    servers: Sequence[str], port: int = 53, timeout: float = 1.0, resolv_conf: str = "/etc/resolv.conf"
) -> DnspythonResolver:
    """One resolver (and so one cache, positive and negative) per configuration and process: every message and
    every worker thread of a process shares it."""
    key = (tuple(servers), port, timeout, resolv_conf)
    with _shared_lock:
        resolver = _shared.get(key)
        if resolver is None:
            resolver = _shared[key] = DnspythonResolver(servers, port, timeout, resolv_conf=resolv_conf)
        return resolver


def dns_disabled(servers: Sequence[str]) -> bool:
    return not servers or any(s.strip().lower() in OFF for s in servers)


def build_resolvers(settings: Settings, dns_factory: Callable[..., DnsResolver] = shared_dns) -> Resolvers:
    """The resolvers the settings ask for. `dns_servers`: "system" (resolv.conf), IP[:PORT] addresses, or "off";
    unset means off here: `mailsec serve` sets "system" when nothing is configured (`Settings.for_serve`), while
    ingest and rescan, which judge archived mail, look up only when told to."""
    dns_resolver = None
    servers = tuple(s.strip() for s in settings.dns_servers if s.strip())
    note = "not checked: no DNS resolver (MAILSEC_DNS_SERVERS is off or unset)"
    if not dns_disabled(servers):
        try:
            dns_resolver = dns_factory(
                servers, settings.dns_port, settings.dns_timeout_seconds, resolv_conf=settings.dns_resolv_conf
            )
        except (ValueError, OSError, dns.exception.DNSException) as exc:
            note = f"not checked: no DNS resolver usable ({type(exc).__name__})"
            log.error("DNS resolver not usable (%s); authentication checks are off", exc)
    return Resolvers(
        dns=dns_resolver,
        geoip_db=settings.geoip_db,
        asn_db=settings.asn_db,
        dnsbl_zones=tuple(settings.dnsbl_zones),
        trusted_arc_sealers=tuple(s.lower().rstrip(".") for s in settings.trusted_arc_sealers),
        dns_budget_seconds=settings.dns_budget_seconds,
        dns_note="" if dns_resolver is not None else note,
    )
