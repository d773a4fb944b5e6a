"""Link analysis: where the message's links really go, against what they show and whom they imitate.

Checks: link text naming one domain while the link goes to another (worse when the text names a well-known brand or
one of the account's protected domains), IP-literal hosts, punycode hosts, lookalikes of protected and brand domains,
a brand domain used as a subdomain of another, user-info tricks (`https://paypal.com@evil.example`), URL shorteners,
and credential forms in the HTML body. Links matching the account's URL ignore patterns are skipped. Each check
yields at most one finding (naming the first offending link and how many more there were), so a newsletter with fifty
tracked links does not add up fifty scores."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from mailsec.model import Disposition, Finding, Link, ParsedMessage
from mailsec.scan.bulk import is_click_tracker
from mailsec.scan.forms import credential_form
from mailsec.scan.identity import SenderIdentity
from mailsec.scan.lookalike import (
    brand_domains,
    decode_idn,
    find_lookalike,
    free_hosting,
    ip_literal,
    registered_domain,
    same_name,
    shortener_domains,
)
from mailsec.scan.policy import Policy, similarity_trust, trusted_lookalike_finding
from mailsec.scan.registry import spec
from mailsec.scan.saferegex import UntrustedPattern, compile_untrusted

D = Disposition
MAX_LINKS = 500
_DOMAIN_TEXT_RE = re.compile(
    r"""(?ix)^\s*[<(\["']?\s*(?:(?:https?|ftp)://)?(?:[^\s/@]+@)?((?:[a-z0-9\u00a1-\uffff](?:[a-z0-9\u00a1-\uffff-]{0,62})\.)+
    (?:[a-z\u00a1-\uffff]{2,63}|xn--[a-z0-9-]{2,59}))\.?(?::\d{1,5})?(?:[/?#][^\s]*)?\s*[>)\]"']?\s*$"""
)
_TLD_OK_RE = re.compile(r"(?i)^(?:[a-z]{2,24}|xn--[a-z0-9-]+)$")


@dataclass(frozen=True)
class _Url:
    href: str
    host: str
    rd: str
    userinfo: str
    path: str = ""


@lru_cache(maxsize=16384)
def parse_url(href: str) -> _Url | None:
    """Host and registered domain of a web link; None for mailto:, relative and unparseable links."""
    href = href.strip()
    if href.lower().startswith("www."):
        href = "http://" + href
    try:
        parts = urlsplit(href)
        if parts.scheme.lower() not in ("http", "https"):
            return None
        netloc = parts.netloc
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return None
    if not host:
        return None
    userinfo = netloc.rpartition("@")[0] if "@" in netloc else ""
    return _Url(href=href, host=host, rd=registered_domain(host), userinfo=userinfo, path=parts.path)


@lru_cache(maxsize=16384)
def _text_domain(text: str) -> str | None:
    """The domain a link's visible text shows, when the text is itself a web address or a bare domain."""
    if not text or len(text) > 300:
        return None
    m = _DOMAIN_TEXT_RE.match(text)
    if not m:
        return None
    host = m.group(1).lower().rstrip(".")
    tld = host.rpartition(".")[2]
    if not _TLD_OK_RE.match(tld) or "." not in host:
        return None
    rd = registered_domain(host)
    if rd == host and rd.count(".") == 0:
        return None
    return rd


def shown_domain(text: str) -> str | None:
    """The registered domain a link's visible text shows (`www.paypal.com/login` → `paypal.com`), else None."""
    return _text_domain(text) if text else None


def _ignored(href: str, patterns: Iterable[UntrustedPattern | str]) -> bool:
    for p in patterns:
        if isinstance(p, str):
            if p.lower() in href.lower():
                return True
        elif p.search(href):
            return True
    return False


def compile_patterns(patterns: Iterable[str]) -> list[UntrustedPattern | str]:
    """The account's URL ignore patterns: regular expressions (RE2: linear time) searched in the URL; one RE2
    cannot run is a substring."""
    out: list[UntrustedPattern | str] = []
    for p in patterns:
        if not p:
            continue
        compiled = compile_untrusted(p)
        out.append(compiled if compiled is not None else p)
    return out


@dataclass
class _Hits:
    """The first evidence per check and how many links showed it."""

    first: dict[str, tuple[Finding, int]] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        prev = self.first.get(finding.name)
        if prev is None:
            self.first[finding.name] = (finding, 1)
        else:
            keep = finding if finding.score > prev[0].score else prev[0]
            self.first[finding.name] = (keep, prev[1] + 1)

    def findings(self) -> list[Finding]:
        out = []
        for f, n in self.first.values():
            if n > 1:
                more = n - 1
                f = Finding(
                    name=f.name,
                    detection=f.detection,
                    score=f.score,
                    reason=f"{f.reason} ({more} more link{'s' if more > 1 else ''} like it)",
                    field=f.field,
                    portion=f.portion,
                    value=f.value,
                    detail=f.detail,
                    category=f.category,
                )
            out.append(f)
        return out


def _finding(
    name: str, det: Disposition, score: float, reason: str, link: Link, category: str, detail: str = ""
) -> Finding:
    return Finding(
        name=name,
        detection=det,
        score=score,
        reason=reason,
        field="link",
        portion=link.source,
        value=link.href[:2000],
        detail=detail or None,
        category=category,
    )


@lru_cache(maxsize=256)
def _named_domains(protected: tuple[str, ...], brands: tuple[str, ...]) -> frozenset[str]:
    return frozenset(protected) | frozenset(brands)


def _check_link(
    link: Link, url: _Url, protected: tuple[str, ...], hits: _Hits, policy: Policy, sender_org: str = ""
) -> None:
    brands = brand_domains()
    shown = _text_domain(link.text) if link.text else None
    if shown and shown != url.rd and not url.rd.endswith("." + shown) and not same_name(shown, url.rd):
        if sender_org and (shown == sender_org or same_name(shown, sender_org)) and is_click_tracker(url.host):
            hits.add(
                spec("LINK_CLICK_TRACKER").make(
                    f"The link text shows the sender's own {shown} and goes through the click-tracker {url.host}: "
                    "tracked, not deceptive",
                    field="link",
                    portion=link.source,
                    value=link.href[:2000],
                )
            )
        elif shown in protected:
            hits.add(
                _finding(
                    "LINK_PROTECTED_DOMAIN_MISMATCH",
                    D.MALICIOUS,
                    5.0,
                    f"The link text shows {shown}, one of your domains, but it goes to {url.host}",
                    link,
                    "Link",
                )
            )
        elif shown in brands:
            hits.add(
                _finding(
                    "LINK_BRAND_MISMATCH",
                    D.MALICIOUS,
                    5.0,
                    f"The link text shows {shown} but it goes to {url.host}",
                    link,
                    "BrandImpersonation",
                )
            )
        else:
            hits.add(
                _finding(
                    "LINK_TEXT_MISMATCH",
                    D.SUSPICIOUS,
                    2.0,
                    f"The link text shows {shown} but it goes to {url.host}",
                    link,
                    "Link",
                )
            )
    if url.userinfo and "." in url.userinfo:
        hits.add(
            _finding(
                "LINK_USERINFO_TRICK",
                D.SUSPICIOUS,
                4.0,
                f"A link starts with {url.userinfo[:100]}@ to look like that site, but it goes to {url.host}",
                link,
                "Link",
            )
        )
    ip = ip_literal(url.host)
    if ip:
        hits.add(
            _finding(
                "LINK_IP_HOST",
                D.SUSPICIOUS,
                3.0,
                f"A link goes to the bare IP address {ip} instead of a domain name",
                link,
                "Link",
            )
        )
        return
    if "xn--" in url.host:
        hits.add(
            _finding(
                "LINK_PUNYCODE_HOST",
                D.SUSPICIOUS,
                2.0,
                f"A link goes to the internationalised name {url.host} (shown as {decode_idn(url.host)})",
                link,
                "Link",
            )
        )
    if url.rd in shortener_domains() or url.host in shortener_domains():
        hits.add(
            _finding(
                "LINK_SHORTENER",
                D.SUSPICIOUS,
                1.0,
                f"A link goes through the URL shortener {url.host}, which hides its real target",
                link,
                "Link",
            )
        )
    hosting = free_hosting(url.host, url.path) if url.rd != sender_org else None
    if hosting:
        hits.add(
            spec("LINK_FREE_HOSTING").make(
                f"A link goes to {url.host}, a page on the free hosting or form service {hosting} that anyone can "
                "publish on",
                field="link",
                portion=link.source,
                value=link.href[:2000],
            )
        )
    look = find_lookalike(url.host, protected) if protected else None
    if look is None:
        look = find_lookalike(url.host, brands)
    trusted = similarity_trust(policy, url.host) if look is not None or policy.trusted_domains else None
    if trusted is not None:
        if look is not None:
            hits.add(trusted_lookalike_finding(url.host, look.target, trusted, "link", link.href))
        return
    if look is not None and look.target in protected:
        hits.add(
            _finding(
                "LINK_LOOKALIKE_PROTECTED_DOMAIN",
                D.MALICIOUS,
                8.0,
                f"A link goes to {url.host}, {look.describe()} your domain {look.target}",
                link,
                "Link",
                look.kind,
            )
        )
        return
    if look is not None:
        strong = look.kind != "embedded"
        hits.add(
            _finding(
                "LINK_LOOKALIKE_BRAND" if strong else "LINK_BRAND_EMBEDDED",
                D.MALICIOUS if strong else D.SUSPICIOUS,
                6.0 if strong else 3.0,
                f"A link goes to {url.host}, {look.describe()} {look.target}",
                link,
                "BrandImpersonation",
                look.kind,
            )
        )
        return
    labels = url.host[: -len(url.rd)].strip(".") if url.host.endswith(url.rd) else ""
    if labels:
        parts = labels.split(".")[:8]
        wanted = _named_domains(protected, brands)
        found = next(
            (
                t
                for i in range(len(parts))
                for j in range(i + 2, len(parts) + 1)
                if (t := ".".join(parts[i:j])) in wanted
            ),
            None,
        )
        if found:
            hits.add(
                _finding(
                    "LINK_BRAND_IN_SUBDOMAIN",
                    D.SUSPICIOUS,
                    4.0,
                    f"A link goes to {url.host}: it starts with {found} but belongs to {url.rd}",
                    link,
                    "BrandImpersonation",
                )
            )


def analyze_links(parsed: ParsedMessage, policy: Policy, identity: SenderIdentity | None = None) -> list[Finding]:
    """Findings about the message's links and the forms in its HTML body."""
    sender_org = identity.from_org if identity is not None else ""
    protected = tuple(sorted({registered_domain(d.strip().lower()) for d in policy.protected_domains if d.strip()}))
    patterns = compile_patterns(policy.url_ignore_patterns)
    hits = _Hits()
    for link in parsed.links[:MAX_LINKS]:
        if patterns and _ignored(link.href, patterns):
            continue
        url = parse_url(link.href)
        if url is None:
            continue
        _check_link(link, url, protected, hits, policy, sender_org)
    findings = hits.findings()
    html = parsed.html_body.lower() if parsed.html_body else ""
    if "<form" in html or "password" in html:
        findings.extend(_body_forms(parsed))
    return findings


def _body_forms(parsed: ParsedMessage) -> list[Finding]:
    ev = credential_form(parsed.html_body)
    if ev is None:
        return []
    if ev.password:
        target = f" and sends it to {ev.actions[0]}" if ev.actions else ""
        return [
            Finding(
                name="BODY_CREDENTIAL_FORM",
                detection=D.MALICIOUS,
                score=6.0,
                reason=f"The message body holds a form asking for a password{target}",
                field="body",
                value=ev.actions[0] if ev.actions else None,
                category="CredentialHarvester",
            )
        ]
    return []  # a form without a password field is, in the body, a newsletter's search or sign-up box
