"""A protected domain's report address (`mailsec domain add|edit --report-address`): mail sent to it is a user's
report of a suspicious message, recorded as a USER submission and never delivered. Kept in the domain's settings;
read by the SMTP receive stage, so this module stays import-light."""

from __future__ import annotations

from typing import Protocol

REPORT_ADDRESS = "report_address"  # the key in a domain's settings


class HasSettings(Protocol):
    @property
    def settings(self) -> dict[str, object]: ...


def report_address_of(domain: HasSettings) -> str | None:
    value = domain.settings.get(REPORT_ADDRESS)
    return str(value).strip().lower() if value else None


def is_report_address(domain: HasSettings | None, address: str) -> bool:
    return domain is not None and report_address_of(domain) == address.strip().lower()


def validate_report_address(address: str, domain: str) -> str:
    """`local@DOMAIN` of this very domain, lowercased; ValueError otherwise."""
    value = address.strip().lower()
    local, _, at = value.rpartition("@")
    if not local or at != domain.lower() or any(c.isspace() or c in "<>,;\"'\\@" for c in local) or len(value) > 254:
        raise ValueError(f"the report address must be an address of {domain}, e.g. report@{domain}")
    return value
