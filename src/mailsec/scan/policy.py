"""The account policy the scanner reads: allow/block lists, trusted and protected domains, the impersonation
registry and URL ignore patterns. Built from the settings API's rows; pure data, so scanning stays pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from mailsec.model import Disposition, Envelope, Finding, ParsedMessage, Validation
from mailsec.scan.identity import SenderIdentity, identify
from mailsec.scan.saferegex import UntrustedPattern, compile_untrusted


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


_MAX_CANDIDATE = 320  # longest address worth matching; bounds the work a hostile header can cause a regex


@dataclass(frozen=True)
class _Regex:
    """A tenant's pattern, compiled for RE2 (linear time; see saferegex)."""

    compiled: UntrustedPattern


def _regex(pattern: str) -> _Regex | None:
    compiled = compile_untrusted(pattern)
    return _Regex(compiled) if compiled is not None else None


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


def _effective_type(pattern: str, pattern_type: str) -> str:
    """UNKNOWN (legacy entries) is read as what the pattern looks like."""
    if pattern_type in ("EMAIL", "DOMAIN", "IP"):
        return pattern_type
    if "@" in pattern:
        return "EMAIL"
    try:
        ipaddress.ip_network(pattern.strip(), strict=False)
    except ValueError:
        return "DOMAIN"
    return "IP"


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16384)
def _rule(pattern: str, pattern_type: str, is_regex: bool) -> tuple[str, str | _Regex | IPNetwork | None]:
    """A settings pattern prepared once: its effective kind and what to compare with (None: matches nothing)."""
    kind = _effective_type(pattern, pattern_type)
    if is_regex:
        return kind, _regex(pattern)
    want = pattern.strip().lower()
    if kind == "IP":
        try:
            return kind, ipaddress.ip_network(want, strict=False)
        except ValueError:
            return kind, None
    if kind == "DOMAIN":
        want = want.lstrip("@").lstrip("*.").rstrip(".")
    return kind, want or None


@dataclass(frozen=True)
class Candidates:
    """One message's sender (or recipient) identities, normalised once for matching against every rule."""

    emails: frozenset[str]
    domains: frozenset[str]
    parents: frozenset[str]  # every domain and each of its parent domains
    ip_texts: tuple[str, ...]
    ips: tuple[IPAddress, ...]


def candidates(addresses: Iterable[str], ips: Iterable[str] = ()) -> Candidates:
    emails = {a.strip().lower() for a in addresses if a and a.strip() and len(a.strip()) <= _MAX_CANDIDATE}
    domains = {d for d in (_domain_of(a) for a in emails) if d}
    parents = {".".join(d.split(".")[i:]) for d in domains for i in range(d.count(".") + 1)}
    texts = tuple(ip.strip().strip("[]") for ip in ips if ip and len(ip) <= 64)
    parsed: list[IPAddress] = []
    for text in texts:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    return Candidates(frozenset(emails), frozenset(domains), frozenset(parents), texts, tuple(parsed))


def matches(pattern: str, pattern_type: str, is_regex: bool, c: Candidates) -> bool:
    kind, want = _rule(pattern, pattern_type, is_regex)
    if want is None:
        return False
    if isinstance(want, _Regex):
        values: Iterable[str] = c.ip_texts if kind == "IP" else c.emails if kind == "EMAIL" else c.domains
        return any(want.compiled.fullmatch(v) for v in values)
    if isinstance(want, str):
        return want in (c.emails if kind == "EMAIL" else c.parents)
    return any(ip.version == want.version and ip in want for ip in c.ips)


def pattern_matches(
    pattern: str, pattern_type: str, is_regex: bool, addresses: Iterable[str], ips: Iterable[str]
) -> bool:
    """Does a settings pattern match one of these addresses (EMAIL, DOMAIN) or IPs (IP)?

    Regex patterns must match the whole address, domain or IP (case-insensitive), so `example\\.com` does not
    also match `example.com.evil.example`; a domain pattern matches the domain and its subdomains."""
    return matches(pattern, pattern_type, is_regex, candidates(addresses, ips))


def sender_authenticated(validation: Validation | None) -> bool:
    """What `verify_sender` asks for: DMARC passed, or (no DMARC verdict) SPF or DKIM passed."""
    if validation is None:
        return False
    if validation.dmarc == "pass":
        return True
    return validation.dmarc in ("none", "") and "pass" in (validation.spf, validation.dkim)


def _recipients(parsed: ParsedMessage, envelope: Envelope) -> list[str]:
    if envelope.rcpt_to:
        return list(envelope.rcpt_to)
    return [a.email for a in [*parsed.to, *parsed.cc] if a.email]


def evaluate_policy(
    parsed: ParsedMessage,
    envelope: Envelope,
    policy: Policy,
    validation: Validation | None = None,
    identity: SenderIdentity | None = None,
) -> PolicyOutcome:
    """Which allow and block policies apply to this message; `verdict.combine` turns that into the disposition.

    Block senders match the From address, envelope sender or connecting IP. Allow policies: a trusted sender
    (`is_trusted_sender`) clears every detection, an acceptable sender (`is_acceptable_sender`) exempts from SPOOF,
    SPAM and BULK only; both need the sender to pass authentication when `verify_sender` is on (IP patterns
    are not spoofable through headers, so they need no authentication). The connecting IP is the identity's: the
    first public hop behind trusted relays, the same address SPF judged. An exempt recipient (`is_exempt_recipient`)
    clears detections when every recipient of the message is exempt. A matching block wins over any allow."""
    if not policy.allow and not policy.block:
        return PolicyOutcome()
    who = identity or identify(parsed, envelope)
    sender = candidates(who.addresses(), [who.client_ip] if who.client_ip else [])
    properties: dict[str, object] = {}
    findings: list[Finding] = []
    blocked = False
    for b in policy.block:
        if matches(b.pattern, b.pattern_type, b.is_regex, sender):
            blocked = True
            properties["blocklisted_pattern"] = b.pattern
            properties["blocklisted_message"] = True
            break
    authenticated = sender_authenticated(validation)
    trusted: AllowPolicy | None = None
    acceptable: AllowPolicy | None = None
    for a in policy.allow:
        if not (a.is_trusted_sender or a.is_acceptable_sender):
            continue
        if not matches(a.pattern, a.pattern_type, a.is_regex, sender):
            continue
        verified = authenticated or not a.verify_sender or _effective_type(a.pattern, a.pattern_type) == "IP"
        if not verified:
            findings.append(
                Finding(
                    name="ALLOW_POLICY_UNVERIFIED",
                    detection=Disposition.NONE,
                    score=0.0,
                    reason=f"The allow policy {a.pattern!r} was not applied: the sender did not pass authentication.",
                    field="from",
                    value=a.pattern,
                )
            )
            continue
        if a.is_trusted_sender and trusted is None:
            trusted = a
        if a.is_acceptable_sender and acceptable is None:
            acceptable = a
    exempt: AllowPolicy | None = None
    recipients = _recipients(parsed, envelope)
    exempting = [a for a in policy.allow if a.is_exempt_recipient]
    if recipients and exempting:
        chosen: list[AllowPolicy] = []
        for rcpt in recipients:
            one = candidates([rcpt])
            hit = next((a for a in exempting if matches(a.pattern, a.pattern_type, a.is_regex, one)), None)
            if hit is None:
                chosen = []
                break
            chosen.append(hit)
        exempt = chosen[0] if chosen else None
    applied = trusted or exempt or acceptable
    if applied is not None:
        kind = (
            "allowed_sender"
            if applied is trusted
            else "allowed_recipient"
            if applied is exempt
            else "acceptable_sender"
        )
        properties["allowlisted_pattern"] = applied.pattern
        properties["allowlisted_pattern_type"] = kind
        properties["whitelisted_pattern_type"] = kind
        findings.append(
            Finding(
                name="ALLOWLISTED",
                detection=Disposition.NONE,
                score=0.0,
                reason=f"Matches the allow policy {applied.pattern!r} ({kind.replace('_', ' ')}).",
                field="to" if applied is exempt else "from",
                value=applied.pattern,
            )
        )
    return PolicyOutcome(
        findings=tuple(findings),
        properties=properties,
        allowed=acceptable is not None,
        blocked=blocked,
        trusted_sender=trusted is not None or exempt is not None,
    )


def similarity_trust(policy: Policy, domain: str) -> TrustedDomain | None:
    """The trusted domain (`is_similarity`) that lets `domain` resemble a protected domain or a brand: a partner
    whose name is close to yours is not a lookalike attack. A domain pattern covers its subdomains."""
    if not policy.trusted_domains or not domain:
        return None
    sender = candidates([f"postmaster@{domain.strip().lower().rstrip('.')}"])
    return next(
        (t for t in policy.trusted_domains if t.is_similarity and matches(t.pattern, "DOMAIN", t.is_regex, sender)),
        None,
    )


def trusted_lookalike_finding(domain: str, target: str, entry: TrustedDomain, field: str, value: str) -> Finding:
    """Says why a lookalike did not count, so the verdict stays explainable."""
    return Finding(
        name="TRUSTED_DOMAIN_SIMILARITY",
        detection=Disposition.NONE,
        score=0.0,
        reason=f"{domain} resembles {target} but matches the trusted domain {entry.pattern!r}; not a lookalike.",
        field=field,
        value=value[:2000],
        detail=entry.pattern,
    )
