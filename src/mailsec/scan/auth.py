"""Sender authentication: SPF, DKIM, DMARC (with organizational alignment) and ARC, plus who sent it (IP, registered
domain, AS, country, DNS blocklists).

Every lookup goes through the injected `DnsResolver`: pyspf evaluates SPF with its `dns` method redirected to it,
dkimpy verifies DKIM and ARC with a `dnsfunc` backed by it, and DMARC is evaluated here. Without a resolver nothing is
looked up and the results are "none", so an unconfigured installation never waits on the network.

`Validation` holds the values the API may show (pass, neutral, fail, error, none): softfail counts as fail and
temperror/permerror as error; the precise results are in `Validation.comment` and in the findings."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dkim
import dns.exception
import dns.name
import dns.reversename
import spf

from mailsec.model import Disposition, Envelope, Finding, ParsedMessage, SenderInfo, Validation
from mailsec.scan.identity import SenderIdentity, identify
from mailsec.scan.lookalike import registered_domain
from mailsec.scan.resolvers import DnsResolver, DnsTempError, Resolvers
from mailsec.scan.sender import (
    address_domain,
    check_dnsbl,
    is_public,
    parse_ip,
    sender_info,
)

log = logging.getLogger(__name__)

MAX_DKIM_SIGNATURES = 8
"""Signatures verified per message; more are reported, not verified (each costs a key lookup)."""
MIN_KEY_BITS = 1024

SCORE_SPF_FAIL = 1.0
SCORE_SPF_SOFTFAIL = 0.5
SCORE_SPF_PERMERROR = 0.5
SCORE_DKIM_FAIL = 1.0
SCORE_DKIM_PERMERROR = 0.5
SCORE_DMARC_FAIL = {"reject": 4.0, "quarantine": 3.0, "none": 0.5}
SCORE_DMARC_PASS = -1.0
SCORE_SPOOFED_SENDER = 5.0

_API_VALUE = {
    "pass": "pass",
    "fail": "fail",
    "softfail": "fail",
    "neutral": "neutral",
    "none": "none",
    "temperror": "error",
    "permerror": "error",
    "policy": "neutral",
}


@dataclass(frozen=True)
class SpfResult:
    result: str
    domain: str = ""
    ip: str | None = None
    explanation: str = ""


@dataclass(frozen=True)
class DkimResult:
    result: str
    domain: str = ""
    selector: str = ""
    reason: str = ""


@dataclass(frozen=True)
class DmarcResult:
    result: str
    domain: str = ""
    policy: str = ""
    record_domain: str = ""
    adkim: str = "r"
    aspf: str = "r"
    pct: int = 100
    spf_aligned: bool = False
    dkim_aligned: bool = False
    reason: str = ""


@dataclass(frozen=True)
class ArcResult:
    result: str
    sealers: tuple[str, ...] = ()
    trusted_sealer: str = ""
    trusted_dmarc_pass: bool = False
    reason: str = ""


AUTH_FINDINGS = frozenset(
    {
        "SPF_FAIL", "SPF_SOFTFAIL", "SPF_PERMERROR", "DKIM_FAIL", "DKIM_PERMERROR", "DMARC_PASS", "DMARC_FAIL",
        "DMARC_FAIL_ARC_OVERRIDE", "SPOOFED_SENDER", "AUTH_TEMPERROR", "DNSBL_LISTED",
    }
)  # fmt: skip
"""The findings `check_authentication` makes: what a rescan without DNS carries over from the first scan."""


@dataclass(frozen=True)
class AuthOutcome:
    validation: Validation = field(default_factory=Validation)
    findings: tuple[Finding, ...] = ()
    sender_info: SenderInfo = field(default_factory=SenderInfo)
    authenticated_domain: str = ""
    """The From domain when DMARC passed aligned (or a trusted ARC sealer recorded that it did), else empty."""


# -- SPF --------------------------------------------------------------------------------------------------------------


class _SpfQuery(spf.query):
    """pyspf's evaluator with every DNS question sent to the injected resolver."""

    def __init__(self, resolver: DnsResolver, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._resolver = resolver

    def dns(self, name: Any, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
        name = str(name).rstrip(".").lower()
        if not name or not all(0 < len(label) < 64 for label in name.split(".")):
            return []
        key = (name, qtype)
        if key in self.cache:
            return list(self.cache[key])
        r = self._resolver
        try:
            result: list[Any]
            if qtype == "TXT":
                result = [[t.encode("utf-8", "surrogateescape")] for t in r.txt(name)]
            elif qtype == "A":
                result = list(r.a(name))
            elif qtype == "AAAA":
                result = list(r.aaaa(name))
            elif qtype == "MX":
                result = list(r.mx(name))
            elif qtype == "PTR":
                result = list(r.ptr(dns.reversename.to_address(dns.name.from_text(name))))
            else:
                result = []  # type SPF (99) is obsolete
        except DnsTempError as exc:
            raise spf.TempError(f"DNS {exc}") from exc
        except (ValueError, dns.exception.DNSException):
            result = []
        self.cache[key] = result
        if not result and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return result


def check_spf(resolver: DnsResolver, ip: str, mail_from: str, helo: str) -> SpfResult:
    """RFC 7208 for the MAIL FROM identity (postmaster@HELO when MAIL FROM is empty)."""
    domain = address_domain(mail_from) or helo.lower().rstrip(".")
    if not domain or "." not in domain:
        return SpfResult("none", domain, ip, "no domain to check")
    try:
        q = _SpfQuery(resolver, i=ip, s=mail_from or f"postmaster@{domain}", h=helo or domain, strict=True)
        result, _code, explanation = q.check()
    except Exception as exc:  # pyspf raises odd things on hostile input
        return SpfResult("permerror", domain, ip, f"{type(exc).__name__}: {exc}"[:200])
    if result == "ambiguous":
        result = "permerror"
    return SpfResult(str(result), domain, ip, str(explanation)[:200])


# -- DKIM and ARC --------------------------------------------------------------------------------------------------


class _KeyFetcher:
    """dkimpy's `dnsfunc`, remembering why the last key lookup gave nothing."""

    def __init__(self, resolver: DnsResolver) -> None:
        self.resolver = resolver
        self.state = ""

    def __call__(self, name: bytes | str, timeout: float = 5) -> bytes | None:
        qname = (name.decode("ascii", "replace") if isinstance(name, bytes) else name).rstrip(".")
        try:
            records = self.resolver.txt(qname)
        except DnsTempError as exc:
            self.state = "temperror"
            raise dkim.DnsTimeoutError(str(exc)) from exc
        if not records:
            self.state = "missing"
            return None
        self.state = "found"
        chosen = next((t for t in records if "p=" in t), records[0])
        return chosen.encode("utf-8", "surrogateescape")


class _LazyBody:
    """dkimpy splits the whole message into lines and joins the body again before it reads a signature, but hashes
    the body only once a key was found, which most signatures in spam never get that far. Handed the headers alone
    (`_message_headers`, parsed once for DKIM and ARC), this verifier parses the body from the full message on first
    use: same headers, same body, same results."""

    _raw = b""
    _lazy: bytes | None = None

    @property
    def body(self) -> bytes:
        if self._lazy is None:
            self._lazy = dkim.rfc822_parse(self._raw)[1]
        return self._lazy

    @body.setter
    def body(self, value: bytes) -> None:
        pass  # set_message's (empty) body of the header block; the real one is read when used


class _LazyDKIM(_LazyBody, dkim.DKIM):
    pass


class _LazyARC(_LazyBody, dkim.ARC):
    def sorted_arc_headers(self) -> Any:
        """dkimpy's, on the ARC headers alone: it canonicalises every header (each on its own, names to lower case)
        and then keeps the ARC ones, the same list as canonicalising only those."""
        every: list[list[bytes]] = self.__dict__["headers"]
        self.headers = [h for h in every if h[0].lower() in dkim.ARC.ARC_HEADERS]
        try:
            return super().sorted_arc_headers()
        finally:
            self.headers = every


def _header_block(raw: bytes) -> int:
    """Where a header block ends that holds everything `dkim.rfc822_parse` reads as headers (up to the newline
    before the first empty line; lines end at CRLF or LF), or 0 when no empty line follows the first."""
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if i > 0]
    return min(ends) + 1 if ends else 0


_LINES_RE = re.compile(b"\r?\n")
_HEADER_NAME_RE = re.compile(rb"([\x21-\x7e]+?):")
_heads = threading.local()


def _rfc822_headers(head: bytes) -> list[list[bytes]]:
    """`dkim.rfc822_parse(head)[0]`, same values and same errors, with its patterns compiled once (it looks one up
    per header line)."""
    headers: list[list[bytes]] = []
    for line in _LINES_RE.split(head):
        if not line:
            break
        if line[0] in (0x09, 0x20):
            headers[-1][1] += line + b"\r\n"
        else:
            m = _HEADER_NAME_RE.match(line)
            if m is not None:
                headers.append([m.group(1), line[m.end(0) :] + b"\r\n"])
            elif not line.startswith(b"From "):
                raise dkim.MessageFormatError(f"Unexpected characters in RFC822 header: {line!r}")
    return headers


def _message_headers(raw: bytes) -> list[list[bytes]] | None:
    """The headers dkimpy would read from `raw`, parsed once for DKIM and ARC (the last message per thread); None
    when there is no header block to cut out."""
    last = getattr(_heads, "last", None)
    if last is not None and last[0] is raw:
        return last[1]
    end = _header_block(raw)
    headers = _rfc822_headers(raw[:end]) if end else None
    _heads.last = (raw, headers)
    return headers


def _verifier(cls: Any, lazy: Any, raw: bytes, **kwargs: Any) -> Any:
    headers = _message_headers(raw)
    if headers is None:
        return cls(raw, **kwargs)
    verifier = lazy(None, **kwargs)
    verifier.headers = [[name, value] for name, value in headers]
    verifier._raw = raw
    return verifier


_TAG_RES = {t: re.compile(rf"(?:^|;)\s*{t}\s*=\s*([^;]*)") for t in ("d", "s")}
_SPACES_RE = re.compile(r"\s+")


def _tag(header_value: str, tag: str) -> str:
    m = (_TAG_RES.get(tag) or re.compile(rf"(?:^|;)\s*{tag}\s*=\s*([^;]*)")).search(header_value)
    return _SPACES_RE.sub("", m.group(1)).lower() if m else ""


def check_dkim(parsed: ParsedMessage, resolver: DnsResolver) -> list[DkimResult]:
    """One result per DKIM-Signature (the first `MAX_DKIM_SIGNATURES`), top to bottom."""
    values = parsed.header_all("DKIM-Signature")
    if not values:
        return []
    try:
        verifier = _verifier(dkim.DKIM, _LazyDKIM, parsed.raw, minkey=MIN_KEY_BITS, timeout=1)
    except Exception as exc:
        return [DkimResult("permerror", reason=f"message not verifiable: {type(exc).__name__}")]
    out: list[DkimResult] = []
    for idx, value in enumerate(values):
        domain, selector = _tag(value, "d"), _tag(value, "s")
        if idx >= MAX_DKIM_SIGNATURES:
            out.append(DkimResult("neutral", domain, selector, "not verified: too many signatures"))
            continue
        fetch = _KeyFetcher(resolver)
        try:
            ok = verifier.verify(idx=idx, dnsfunc=fetch)
        except dkim.ValidationError as exc:
            # Only a body hash mismatch shows tampering; an expired (x=) or malformed signature is an error, which
            # also keeps old mail from a retro scan from looking forged.
            result = "fail" if "body hash mismatch" in str(exc) else "permerror"
            out.append(DkimResult(result, domain, selector, str(exc)[:200]))
            continue
        except (dkim.DKIMException, ValueError, KeyError, IndexError, TypeError) as exc:
            out.append(DkimResult("permerror", domain, selector, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        if ok:
            out.append(DkimResult("pass", domain, selector))
        elif fetch.state == "temperror":
            out.append(DkimResult("temperror", domain, selector, "key lookup failed temporarily"))
        elif fetch.state == "missing":
            out.append(DkimResult("permerror", domain, selector, f"no key published at {selector}._domainkey.{domain}"))
        else:
            out.append(DkimResult("fail", domain, selector, "signature does not verify"))
    return out


def _matches(domain: str, patterns: Iterable[str]) -> str:
    for p in patterns:
        p = p.lower().strip().rstrip(".")
        if p and (domain == p or domain.endswith("." + p)):
            return p
    return ""


def check_arc(parsed: ParsedMessage, resolver: DnsResolver, trusted: Sequence[str]) -> ArcResult:
    """ARC chain validation; a passing chain sealed by a trusted sealer may vouch for DMARC at its hop."""
    if not parsed.header_all("ARC-Seal"):
        return ArcResult("none")
    fetch = _KeyFetcher(resolver)
    try:
        # dkim.arc_verify, with the lazy body
        arc = _verifier(dkim.ARC, _LazyARC, parsed.raw, logger=None, minkey=MIN_KEY_BITS, timeout=5)
        try:
            cv, results, reason = arc.verify(dnsfunc=fetch)
        except dkim.DKIMException as x:
            cv, results, reason = dkim.CV_Fail, [], f"{x}"
    except Exception as exc:
        return ArcResult("fail", reason=f"{type(exc).__name__}: {exc}"[:200])
    sealers = tuple(
        (r.get("as-domain") or b"").decode("ascii", "replace").lower() for r in results if isinstance(r, dict)
    )
    if cv != dkim.CV_Pass:
        if fetch.state == "temperror":
            return ArcResult("temperror", sealers, reason="key lookup failed temporarily")
        return ArcResult("fail", sealers, reason=str(reason)[:200])
    for r, sealer in zip(results, sealers, strict=False):  # most recent hop first
        if _matches(sealer, trusted):
            aar = (r.get("aar-value") or b"").decode("utf-8", "replace")
            vouches = re.search(r"\bdmarc\s*=\s*pass\b", aar, re.I) is not None
            return ArcResult("pass", sealers, sealer, vouches)
    return ArcResult("pass", sealers)


# -- DMARC --------------------------------------------------------------------------------------------------------


def _parse_dmarc(record: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in record.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            tags.setdefault(k.strip().lower(), v.strip())
    return tags


def _dmarc_record(resolver: DnsResolver, domain: str) -> str | None:
    records = [t for t in resolver.txt(f"_dmarc.{domain}") if t.strip().lower().startswith("v=dmarc1")]
    return records[0] if len(records) == 1 else None


def aligned(a: str, b: str, mode: str) -> bool:
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if not a or not b:
        return False
    return a == b if mode == "s" else registered_domain(a) == registered_domain(b)


def check_dmarc(
    resolver: DnsResolver, from_domain: str, spf_result: SpfResult, dkim_results: Sequence[DkimResult]
) -> DmarcResult:
    """RFC 7489: the policy of the From domain (or its organizational domain), and whether SPF or DKIM aligns."""
    if not from_domain:
        return DmarcResult("none", reason="no single From domain")
    org = registered_domain(from_domain)
    try:
        record, at = _dmarc_record(resolver, from_domain), from_domain
        if record is None and org != from_domain:
            record, at = _dmarc_record(resolver, org), org
    except DnsTempError as exc:
        return DmarcResult("temperror", from_domain, reason=str(exc)[:200])
    if record is None:
        return DmarcResult("none", from_domain, reason="no DMARC record")
    tags = _parse_dmarc(record)

    def policy_value(v: str | None) -> str | None:
        v = (v or "").lower()
        return v if v in ("none", "quarantine", "reject") else None

    p = policy_value(tags.get("p")) or "none"
    policy = (policy_value(tags.get("sp")) or p) if at != from_domain else p
    adkim = "s" if tags.get("adkim", "r").lower() == "s" else "r"
    aspf = "s" if tags.get("aspf", "r").lower() == "s" else "r"
    try:
        pct = max(0, min(100, int(tags.get("pct", "100"))))
    except ValueError:
        pct = 100
    spf_ok = spf_result.result == "pass" and aligned(spf_result.domain, from_domain, aspf)
    dkim_ok = any(d.result == "pass" and aligned(d.domain, from_domain, adkim) for d in dkim_results)
    found = DmarcResult("fail", from_domain, policy, at, adkim, aspf, pct, spf_ok, dkim_ok)
    if spf_ok or dkim_ok:
        return replace(found, result="pass")
    if spf_result.result == "temperror" or any(d.result == "temperror" for d in dkim_results):
        return replace(found, result="temperror", reason="SPF or DKIM could not be checked")
    return replace(found, reason="neither SPF nor DKIM passed aligned with From")


# -- the analyzer --------------------------------------------------------------------------------------------------


def _dkim_summary(results: Sequence[DkimResult]) -> str:
    if not results:
        return "none"
    order = ("pass", "fail", "temperror", "permerror", "neutral")
    return next(r for r in order if any(d.result == r for d in results))


def _comment(spf_r: SpfResult, dkim_r: Sequence[DkimResult], dmarc_r: DmarcResult, arc_r: ArcResult) -> str:
    """Authentication-Results in short: the precise result of every check."""
    parts = [f"spf={spf_r.result}" + (f" ({spf_r.domain} from {spf_r.ip})" if spf_r.ip and spf_r.domain else "")]
    sigs = ", ".join(f"{d.result} (d={d.domain or '?'} s={d.selector or '?'})" for d in dkim_r[:4])
    parts.append(f"dkim={sigs or 'none'}")
    parts.append(f"dmarc={dmarc_r.result}" + (f" (p={dmarc_r.policy} {dmarc_r.domain})" if dmarc_r.policy else ""))
    if arc_r.result != "none":
        trusted = f" (trusted sealer {arc_r.trusted_sealer})" if arc_r.trusted_sealer else ""
        parts.append(f"arc={arc_r.result}{trusted}")
    return "; ".join(parts)


def _findings(
    spf_r: SpfResult, dkim_r: Sequence[DkimResult], dmarc_r: DmarcResult, arc_r: ArcResult, mail_from: str
) -> list[Finding]:
    out: list[Finding] = []
    spoof = Disposition.SPOOF

    def add(name: str, detection: Disposition, score: float, reason: str, **kw: Any) -> None:
        out.append(Finding(name=name, detection=detection, score=score, reason=reason, **kw))

    override = dmarc_r.result == "fail" and arc_r.trusted_dmarc_pass
    if override:
        # A trusted forwarder vouches for the original authentication: its own changes explain these failures.
        add("DMARC_FAIL_ARC_OVERRIDE", Disposition.NONE, 0.0,
            f"DMARC fails for {dmarc_r.domain} (p={dmarc_r.policy}), but the trusted ARC sealer {arc_r.trusted_sealer} "
            "recorded a DMARC pass before forwarding; the failure is overridden.",
            field="from", value=dmarc_r.domain, detail=f"arc sealers: {', '.join(arc_r.sealers)}")  # fmt: skip
        return out
    if spf_r.result in ("fail", "softfail"):
        add(f"SPF_{spf_r.result.upper()}", spoof, SCORE_SPF_FAIL if spf_r.result == "fail" else SCORE_SPF_SOFTFAIL,
            f"SPF {spf_r.result}: {spf_r.domain} does not authorize {spf_r.ip} to send its mail.",
            field="envelope_from", value=spf_r.domain, detail=f"ip={spf_r.ip}; {spf_r.explanation}",
            category="Spoof")  # fmt: skip
    elif spf_r.result == "permerror":
        add("SPF_PERMERROR", spoof, SCORE_SPF_PERMERROR,
            f"SPF permerror: the SPF record of {spf_r.domain} is broken ({spf_r.explanation}).",
            field="envelope_from", value=spf_r.domain, category="Spoof")  # fmt: skip
    if dkim_r and not any(d.result == "pass" for d in dkim_r):
        bad = next((d for d in dkim_r if d.result == "fail"), None)
        broken = next((d for d in dkim_r if d.result == "permerror"), None)
        if bad is not None:
            add("DKIM_FAIL", spoof, SCORE_DKIM_FAIL,
                f"The DKIM signature of {bad.domain or 'an unnamed domain'} does not verify ({bad.reason}).",
                field="dkim-signature", value=bad.domain, category="Spoof")  # fmt: skip
        elif broken is not None:
            add("DKIM_PERMERROR", spoof, SCORE_DKIM_PERMERROR,
                f"The DKIM signature of {broken.domain or 'an unnamed domain'} cannot be verified ({broken.reason}).",
                field="dkim-signature", value=broken.domain, category="Spoof")  # fmt: skip
    if dmarc_r.result == "pass":
        how = " and ".join(w for w, ok in (("SPF", dmarc_r.spf_aligned), ("DKIM", dmarc_r.dkim_aligned)) if ok)
        add("DMARC_PASS", Disposition.NONE, SCORE_DMARC_PASS,
            f"DMARC pass: {how} aligned with the From domain {dmarc_r.domain}.",
            field="from", value=dmarc_r.domain)  # fmt: skip
    elif dmarc_r.result == "fail":
        add("DMARC_FAIL", spoof, SCORE_DMARC_FAIL.get(dmarc_r.policy, SCORE_DMARC_FAIL["none"]),
            f"DMARC fail: neither SPF nor DKIM aligns with the From domain {dmarc_r.domain}, whose policy is "
            f"p={dmarc_r.policy}.",
            field="from", value=dmarc_r.domain, detail=f"record at _dmarc.{dmarc_r.record_domain}",
            category="Spoof")  # fmt: skip
        env_domain = address_domain(mail_from)
        if (
            dmarc_r.policy in ("reject", "quarantine")
            and env_domain
            and registered_domain(env_domain) != registered_domain(dmarc_r.domain)
        ):
            add("SPOOFED_SENDER", spoof, SCORE_SPOOFED_SENDER,
                f"The From domain {dmarc_r.domain} asks to {dmarc_r.policy} unauthenticated mail, and this message "
                f"fails DMARC while its envelope sender is at another domain ({env_domain}).",
                field="from", value=dmarc_r.domain, detail=f"envelope from {mail_from}", category="Spoof")  # fmt: skip
    temp = [w for w, r in (("SPF", spf_r.result), ("DKIM", _dkim_summary(dkim_r)), ("DMARC", dmarc_r.result))
            if r == "temperror"]  # fmt: skip
    if temp:
        add("AUTH_TEMPERROR", Disposition.NONE, 0.0, f"{', '.join(temp)} could not be checked now: DNS did not answer.")
    return out


def check_authentication(
    parsed: ParsedMessage, envelope: Envelope, resolvers: Resolvers, identity: SenderIdentity | None = None
) -> AuthOutcome:
    who = identity or identify(parsed, envelope)
    ip, helo, mail_from, from_domain = who.client_ip, who.helo, who.envelope_sender, who.from_domain
    info = sender_info(resolvers, ip, from_domain or address_domain(mail_from))
    resolver = resolvers.message_dns()
    if resolver is None:
        note = resolvers.dns_note or "not checked: no DNS resolver configured"
        return AuthOutcome(validation=Validation(comment=note), sender_info=info)

    addr = parse_ip(ip)
    if addr is not None and is_public(addr):
        spf_r = check_spf(resolver, str(addr), mail_from, helo)
    else:
        spf_r = SpfResult("none", explanation=f"connecting IP {ip} is not public" if ip else "no connecting IP")
    dkim_r = check_dkim(parsed, resolver)
    dmarc_r = check_dmarc(resolver, from_domain, spf_r, dkim_r)
    arc_r = check_arc(parsed, resolver, resolvers.trusted_arc_sealers)
    findings = _findings(spf_r, dkim_r, dmarc_r, arc_r, mail_from)
    if ip and resolvers.dnsbl_zones:
        findings.extend(check_dnsbl(resolver, ip, resolvers.dnsbl_zones))

    comment = _comment(spf_r, dkim_r, dmarc_r, arc_r)
    override = dmarc_r.result == "fail" and arc_r.trusted_dmarc_pass
    if override:
        comment += f"; dmarc=fail overridden by trusted ARC sealer {arc_r.trusted_sealer}"
    validation = Validation(
        spf=_API_VALUE.get(spf_r.result, "error"),
        dkim=_API_VALUE.get(_dkim_summary(dkim_r), "error"),
        dmarc="pass" if override else _API_VALUE.get(dmarc_r.result, "error"),
        comment=comment[:1000],
    )
    passed = dmarc_r.result == "pass" or override
    return AuthOutcome(
        validation=validation,
        findings=tuple(findings),
        sender_info=info,
        authenticated_domain=dmarc_r.domain if passed else "",
    )
