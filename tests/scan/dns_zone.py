"""A real authoritative DNS server on loopback (dnslib, UDP and TCP) holding test zones, for analyzers that look
things up through the injected resolver. Names can be made to answer SERVFAIL or to never answer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dnslib import AAAA, MX, PTR, QTYPE, RCODE, RR, SOA, TXT, A, DNSLabel, DNSRecord
from dnslib.server import BaseResolver, DNSError, DNSServer

from support import free_port


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


class Zones(BaseResolver):  # type: ignore[misc]
    """Records by (name, type); `servfail` and `silent` hold names (and their subdomains) that fail."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def add(self, name: str, qtype: str, value: Any) -> None:
        key = (name.rstrip(".").lower(), qtype)
        self.records.setdefault(key, []).append(value)

    def txt(self, name: str, text: str) -> None:
        raw = text.encode()
        self.add(name, "TXT", TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]))

    def a(self, name: str, *ips: str) -> None:
        for ip in ips:
            self.add(name, "A", A(ip))

    def aaaa(self, name: str, *ips: str) -> None:
        for ip in ips:
            self.add(name, "AAAA", AAAA(ip))

    def mx(self, name: str, pref: int, host: str) -> None:
        self.add(name, "MX", MX(host, pref))

    def ptr(self, name: str, host: str) -> None:
        self.add(name, "PTR", PTR(host))

    @staticmethod
    def _under(name: str, names: set[str]) -> bool:
        return any(name == n or name.endswith("." + n) for n in names)

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        qname = str(request.q.qname).rstrip(".").lower()
        qtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((qname, qtype))
        if self._under(qname, self.silent):
            raise DNSError("dropped on purpose")  # the handler sends nothing: the client times out
        reply = request.reply()
        if self._under(qname, self.servfail):
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        answers = self.records.get((qname, qtype), [])
        for rdata in answers:
            reply.add_answer(RR(DNSLabel(qname), QTYPE.reverse[qtype], rdata=rdata, ttl=300))
        if not answers:
            exists = any(n == qname for n, _ in self.records)
            if not exists:
                reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(
                RR("test.", QTYPE.SOA, rdata=SOA("ns.test.", "hostmaster.test.", (1, 60, 60, 60, 60)), ttl=60)
            )
        return reply


@contextmanager
def dns_server(zones: Zones) -> Iterator[tuple[str, int]]:
    """(host, port) of a UDP+TCP server answering from `zones` until the block ends."""
    for _ in range(20):
        port = free_port()
        try:
            udp = DNSServer(zones, address="127.0.0.1", port=port, logger=_Quiet())
            tcp = DNSServer(zones, address="127.0.0.1", port=port, tcp=True, logger=_Quiet())
            break
        except OSError:
            continue
    else:
        raise RuntimeError("no free port for the DNS server")
    udp.start_thread()
    tcp.start_thread()
    try:
        yield "127.0.0.1", port
    finally:
        udp.stop()
        tcp.stop()
        udp.server.server_close()
        tcp.server.server_close()
