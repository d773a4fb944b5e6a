"""Everything a scan may ask the outside world, injected so that `scan_message` stays a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
