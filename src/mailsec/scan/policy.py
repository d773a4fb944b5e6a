"""The account policy the scanner reads: allow/block lists, trusted and protected domains, the impersonation
registry and URL ignore patterns. Built from the settings API's rows; pure data, so scanning stays pure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class AllowPolicy:
    pattern: str
    pattern_type: str  # EMAIL, DOMAIN, IP or UNKNOWN, as in the settings API
    is_regex: bool = False
    is_acceptable_sender: bool = False
    is_exempt_recipient: bool = False
    is_trusted_sender: bool = False
    verify_sender: bool = True
    id: int | None = None


@dataclass(frozen=True)
class BlockPolicy:
    pattern: str
    pattern_type: str
    is_regex: bool = False
    id: int | None = None


@dataclass(frozen=True)
class TrustedDomain:
    pattern: str
    is_regex: bool = False
    is_recent: bool = False
    is_similarity: bool = False
    id: int | None = None


@dataclass(frozen=True)
class ImpersonationEntry:
    name: str
    email: str
    is_email_regex: bool = False
    id: int | None = None


@dataclass(frozen=True)
class Policy:
    allow: tuple[AllowPolicy, ...] = ()
    block: tuple[BlockPolicy, ...] = ()
    trusted_domains: tuple[TrustedDomain, ...] = ()
    protected_domains: tuple[str, ...] = ()
    impersonation: tuple[ImpersonationEntry, ...] = ()
    url_ignore_patterns: tuple[str, ...] = ()
    extra: dict[str, object] = field(default_factory=dict)


EMPTY_POLICY = Policy()


@dataclass(frozen=True)
class PolicyOutcome:
    """What the account's allow/block policies say about one message, for `verdict.py` to apply."""

    findings: tuple[object, ...] = ()
    properties: dict[str, object] = field(default_factory=dict)
    allowed: bool = False
    blocked: bool = False
    trusted_sender: bool = False


def evaluate_policy(parsed: object, envelope: object, policy: Policy) -> PolicyOutcome:
    """Stub until the policy analyzer lands: no policy applies."""
    return PolicyOutcome()
