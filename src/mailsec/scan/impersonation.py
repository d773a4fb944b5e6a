"""Impersonation (BEC) analysis: a sender posing as someone the account trusts.

Checks: the From display name of a person in the account's impersonation registry on an address that is not theirs
and outside the protected domains; a display name that is itself another address; a sender domain that imitates a
protected domain (punycode, Unicode confusables, one-letter misspellings) or a well-known brand; and a Reply-To that
diverts answers to another organisation than the From (mailing lists, which do that by design, are exempt)."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

from mailsec.model import Address, Disposition, Envelope, Finding, ParsedMessage
from mailsec.scan.identity import SenderIdentity, identify
from mailsec.scan.lookalike import (
    FREEMAIL,
    brand_domains,
    brand_names,
    find_lookalike,
    free_hosting,
    ip_literal,
    is_established,
    registered_domain,
    same_name,
    skeleton,
)
from mailsec.scan.policy import ImpersonationEntry, Policy, similarity_trust, trusted_lookalike_finding
from mailsec.scan.registry import spec
from mailsec.scan.saferegex import UntrustedPattern, compile_untrusted

D = Disposition
_EMAIL_IN_NAME_RE = re.compile(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", re.UNICODE)
MAX_NAME = 300
"""Display-name characters searched for addresses and domains: the address patterns backtrack on hostile names."""
_NAME_NOISE_RE = re.compile(r"[\"'`()\[\]<>,.|_\-]+")


def normalize_name(name: str) -> str:
    """A display name reduced for comparison: NFKC, case-folded, punctuation dropped, `Last, First` → `first last`."""
    n = unicodedata.normalize("NFKC", name).strip()
    if n.count(",") == 1:
        last, first = (p.strip() for p in n.split(","))
        if last and first and " " not in last:
            n = f"{first} {last}"
    n = _NAME_NOISE_RE.sub(" ", n.casefold())
    return " ".join(n.split())


def _compile(pattern: str) -> UntrustedPattern | None:
    return compile_untrusted(pattern)


def _is_registered_address(entry: ImpersonationEntry, email: str) -> bool:
    email = email.strip().lower()
    if not entry.email:
        return False
    if entry.is_email_regex:
        rx = _compile(entry.email)
        return bool(rx and rx.fullmatch(email))
    return email == entry.email.strip().lower()


def _in_protected(domain: str, protected: tuple[str, ...]) -> bool:
    return any(domain == p or domain.endswith("." + p) for p in protected)


def _name_matches(display: str, entry: ImpersonationEntry) -> bool:
    want = normalize_name(entry.name)
    have = normalize_name(display)
    if not want or not have:
        return False
    if have == want:
        return True
    # "Jane Doe (CEO)", "Jane Doe via DocuSign", "CEO Jane Doe": the registered name as whole words of a short name
    tokens_have = have.split()
    tokens_want = want.split()
    if len(tokens_want) >= 2 and len(tokens_have) <= len(tokens_want) + 3:
        joined = " " + have + " "
        if " " + want + " " in joined:
            return True
        if sorted(tokens_want) == sorted(tokens_have):
            return True
    return False


def _registry(parsed: ParsedMessage, sender: Address, protected: tuple[str, ...], policy: Policy) -> list[Finding]:
    if not sender.name or _in_protected(sender.domain, protected):
        return []
    for entry in policy.impersonation:
        if not entry.name or not _name_matches(sender.name, entry):
            continue
        if _is_registered_address(entry, sender.email):
            return []
        who = f"{entry.name} ({entry.email})" if entry.email and not entry.is_email_regex else entry.name
        return [
            Finding(
                name="IMPERSONATION_REGISTERED_NAME",
                detection=D.MALICIOUS_BEC,
                score=8.0,
                reason=(
                    f"The sender calls itself {sender.name!r}, the name of {who} in your impersonation registry, "
                    f"but writes from {sender.email}"
                ),
                field="from",
                value=f"{sender.name} <{sender.email}>",
                detail=f"registry entry {entry.id}: {entry.name} / {entry.email}" if entry.id is not None else None,
                category="BEC",
            )
        ]
    return []


def _address_in_name(sender: Address, protected: tuple[str, ...]) -> list[Finding]:
    """`"ceo@corp.example" <x@evil.example>`: the display name shows one address, the mail comes from another."""
    m = _EMAIL_IN_NAME_RE.search((sender.name or "")[:MAX_NAME])
    if not m:
        return []
    shown = m.group(0).lower()
    shown_rd = registered_domain(m.group(1).lower())
    if not sender.domain or shown_rd == registered_domain(sender.domain):
        return []
    protected_hit = _in_protected(shown_rd, protected)
    return [
        Finding(
            name="DISPLAY_NAME_ADDRESS_MISMATCH",
            detection=D.MALICIOUS_BEC if protected_hit else D.SPOOF,
            score=8.0 if protected_hit else 2.0,
            reason=f"The sender's name shows the address {shown} but the mail comes from {sender.email}",
            field="from",
            value=f"{sender.name} <{sender.email}>",
            category="BEC" if protected_hit else "Spoof",
        )
    ]


_DOMAIN_IN_NAME_RE = re.compile(r"(?<![\w@.-])((?:[a-z0-9-]{1,63}\.)+[a-z]{2,24})(?![\w.-])", re.I)


def _domain_in_name(sender: Address) -> list[Finding]:
    """`"amazon.co.jp" <x@fqfggh.shop>`: the display name is (or shows) a domain name that is not the sender's."""
    if not sender.name or not sender.domain or "@" in sender.name:
        return []
    m = _DOMAIN_IN_NAME_RE.search(sender.name[:MAX_NAME])
    if not m:
        return []
    shown = m.group(1).lower()
    shown_rd = registered_domain(shown)
    label = shown_rd.partition(".")[0]
    if "." not in shown_rd or len(label) < 3 or shown_rd == registered_domain(sender.domain):
        return []  # `R.Hughes` is a name with an initial, not the domain r.hughes
    if not _TLD_RE.match(shown_rd.rpartition(".")[2]):
        return []
    return [
        spec("SENDER_NAME_DOMAIN_MISMATCH").make(
            f"The sender's name shows the domain {shown} but the mail comes from {sender.email}",
            field="from",
            value=f"{sender.name[:200]} <{sender.email}>",
        )
    ]


_STRICT_PSL = PublicSuffixList(accept_unknown=False)
TENANT_SUFFIXES = ("onmicrosoft.com",)
# names that are not on the public internet but are real inside networks and tests (RFC 2606, 6761, 6762, habits)
PRIVATE_TLDS = frozenset({"example", "test", "invalid", "localhost", "localdomain", "local", "lan", "internal",
                          "intranet", "corp", "home", "private"})  # fmt: skip


def _odd_sender_domain(sender: Address) -> list[Finding]:
    """A From domain that cannot exist, or one on free hosting or a cloud tenant's default name."""
    domain = sender.domain.strip().lower().rstrip(".")
    if not domain or not sender.email or "@" not in sender.email:
        return []
    tld = domain.rpartition(".")[2]
    try:
        valid = tld in PRIVATE_TLDS or ("." in domain and _STRICT_PSL.publicsuffix(domain) is not None)
    except Exception:
        valid = False
    if not valid and not ip_literal(domain):
        return [
            spec("SENDER_INVALID_DOMAIN").make(
                f"The sender address {sender.email[:120]} has a domain that cannot exist ({domain[:80]})",
                field="from",
                value=sender.email[:320],
            )
        ]
    hosted = free_hosting(domain) or next((t for t in TENANT_SUFFIXES if domain.endswith("." + t)), None)
    if hosted:
        return [
            spec("SENDER_FREE_HOSTING").make(
                f"The sender writes from {domain}, a name on {hosted} that anyone can have, not an organisation's "
                "mail domain",
                field="from",
                value=sender.email[:320],
            )
        ]
    return []


def _recipient_claim(parsed: ParsedMessage, sender: Address, who: SenderIdentity) -> list[Finding]:
    """The display name names the recipient's own domain (`"sourceforge.net Mail Admin" <x@elsewhere>`): mail posing as
    the reader's own IT or mail service, the shape of mailbox and webmail credential phishing. The whole domain, not
    its first label: "kernel test robot" writing to a kernel.org address claims nothing."""
    if not sender.name or not who.from_org:
        return []
    rcpts = {registered_domain(a.domain) for a in [*parsed.to, *parsed.cc][:20] if a.domain}
    rcpts.discard(who.from_org)
    rcpts -= FREEMAIL
    name = sender.name.lower()
    for org in sorted(rcpts):
        if "." in org and org in name:
            return [
                spec("SENDER_CLAIMS_RECIPIENT_DOMAIN").make(
                    f"The sender calls itself {sender.name.strip()[:80]!r}, naming your own {org}, but writes from "
                    f"{who.from_org}",
                    field="from",
                    value=f"{sender.name[:200]} <{sender.email}>",
                    detail=org,
                )
            ]
    return []


def _lookalike_sender(sender_domain: str, where: str, protected: tuple[str, ...], policy: Policy) -> list[Finding]:
    if not sender_domain:
        return []
    look = find_lookalike(sender_domain, protected) if protected else None
    if look is None:
        brand = find_lookalike(sender_domain, brand_domains())
        look = brand if brand is not None and brand.kind != "embedded" else None
    trusted = similarity_trust(policy, sender_domain) if look is not None else None
    if look is not None and trusted is not None:
        field = where.replace(" ", "_").lower()
        return [trusted_lookalike_finding(sender_domain, look.target, trusted, field, sender_domain)]
    if look is not None and look.target in protected:
        deliberate = look.kind in ("punycode", "homoglyph")
        return [
            Finding(
                name="SENDER_LOOKALIKE_PROTECTED_DOMAIN",
                detection=D.MALICIOUS_BEC if deliberate else D.SPOOF,
                score=8.0 if deliberate else 5.0,
                reason=f"The {where} domain {sender_domain} is {look.describe()} your domain {look.target}",
                field=where.replace(" ", "_").lower(),
                value=sender_domain,
                detail=look.kind,
                category="BEC" if deliberate else "Spoof",
            )
        ]
    if look is not None:
        return [
            Finding(
                name="SENDER_LOOKALIKE_BRAND",
                detection=D.SPOOF,
                score=5.0 if look.kind in ("punycode", "homoglyph") else 3.0,
                reason=f"The {where} domain {sender_domain} is {look.describe()} {look.target}",
                field=where.replace(" ", "_").lower(),
                value=sender_domain,
                detail=look.kind,
                category="BrandImpersonation",
            )
        ]
    return []


# Brand names that are also everyday words, first names or surnames: they claim the brand only when the display name
# is the brand and nothing else but words a company's sender name is made of.
STRICT_BRAND_NAMES = frozenset({
    "apple", "meta", "wise", "chase", "steam", "zoom", "ledger", "norton", "peacock", "caixa", "outlook", "prime video",
    "telegram", "discord", "github", "google", "amazon", "ebay", "stripe", "booking.com", "irs", "dhl", "usps",
    "fedex", "itau", "itaú", "ameli", "xfinity", "verizon", "costco", "walmart", "spotify", "netflix", "tiktok",
})  # fmt: skip
SENDER_WORDS = frozenset({
    "support", "team", "service", "services", "customer", "care", "help", "account", "accounts", "security",
    "billing", "notification", "notifications", "alert", "alerts", "online", "no-reply", "noreply", "info", "mail",
    "official", "admin", "update", "updates", "verification", "express", "delivery", "shipping", "the", "id", "pay",
    "store", "shop", "bank", "banking", "card", "wallet", "plus", "premium", "prime", "rewards", "center", "centre",
    "inc", "llc", "ltd", "via", "app", "web", "mobile", "cloud", "storage", "drive", "docs",
    "com", "net", "org", "co", "jp", "de", "br", "uk", "fr", "it", "es", "ca", "au", "us", "in", "nl", "mx",
})  # fmt: skip
_TLD_RE = re.compile(r"^(?:[a-z]{2,24}|xn--[a-z0-9-]+)$")
_SENDER_SKELETONS = frozenset(skeleton(w) for w in SENDER_WORDS)
SCORE_BRAND_CLAIM = 2.0
SCORE_BRAND_CLAIM_FREEMAIL = 4.0


@lru_cache(maxsize=4096)
def claimed_brand(display_name: str) -> tuple[str, frozenset[str], bool] | None:
    """The brand a display name claims to be, the domains that brand sends from, and whether the name spells it with
    look-alike characters (Cyrillic letters that render as `Ledger`); None when it claims none. Compared on
    confusable skeletons."""
    have = normalize_name(display_name)
    if not have:
        return None
    plain = skeleton(have)
    words = plain.split()
    joined = f" {plain} "
    for name, domains in brand_names():
        sk = skeleton(name)
        if f" {sk} " not in joined:
            continue
        disguised = f" {name} " not in f" {have} "
        rest = [w for w in joined.replace(f" {sk} ", " ", 1).split() if w not in _SENDER_SKELETONS]
        signed = joined.endswith((f" from {sk} ", f" at {sk} ", f" by {sk} "))  # "Hiba from Ledger"
        if name in STRICT_BRAND_NAMES and rest and not signed and not disguised:
            continue
        if len(words) - len(name.split()) > 4:
            continue
        return name, domains, disguised
    return None


def _brand_claim(sender: Address, who: SenderIdentity | None) -> list[Finding]:
    """A display name claiming a well-known brand on an address the brand does not send from."""
    if not sender.name or not sender.domain:
        return []
    claim = claimed_brand(sender.name)
    if claim is None:
        return []
    name, domains, disguised = claim
    org = registered_domain(sender.domain)
    freemail = org in FREEMAIL  # Microsoft owns outlook.com, but anyone can write from an address there
    if not freemail and (org in domains or any(same_name(org, d) for d in domains)):
        return []
    if not freemail and not disguised and is_established(org):
        return []  # one large organisation does not pose as another ("Apple via LinkedIn")
    if who is not None and who.authenticated and not freemail and name.replace(" ", "") in org:
        return []  # the brand's own regional domain, authenticated (`bradesco-seguros.com.br`)
    return [
        spec("SENDER_BRAND_CLAIM").make(
            f"The sender calls itself {sender.name.strip()[:80]!r}, the name of {sorted(domains)[0]}, but writes from "
            f"{org}"
            + (", a free mailbox" if freemail else "")
            + (", spelt with look-alike letters" if disguised else ""),
            score=SCORE_BRAND_CLAIM_FREEMAIL if freemail or disguised else SCORE_BRAND_CLAIM,
            field="from",
            value=f"{sender.name[:200]} <{sender.email}>",
            detail=name,
        )
    ]


def _is_list_mail(parsed: ParsedMessage) -> bool:
    return any(parsed.header(h) for h in ("List-Id", "List-Post", "List-Unsubscribe", "Mailing-List", "X-Mailing-List"))


def _reply_to(parsed: ParsedMessage, sender: Address, protected: tuple[str, ...], bec_signal: bool) -> list[Finding]:
    if not parsed.reply_to or not sender.domain or _is_list_mail(parsed):
        return []
    from_rd = registered_domain(sender.domain)
    for rt in parsed.reply_to:
        if not rt.domain:
            continue
        rt_rd = registered_domain(rt.domain)
        if rt_rd == from_rd:
            continue
        if any(rt_rd == registered_domain(a.domain) for a in parsed.to + parsed.cc if a.domain):
            continue  # replies go to a recipient's organisation: a hand-off, not a diversion
        claims_protected = _in_protected(from_rd, protected)
        score = 1.0
        why = ""
        if claims_protected or bec_signal:
            score = 4.0
            why = " while the sender poses as someone you trust"
        elif rt_rd in FREEMAIL and from_rd not in FREEMAIL:
            score = 2.0
            why = ", a free mailbox"
        return [
            Finding(
                name="REPLY_TO_DIVERTED",
                detection=D.MALICIOUS_BEC if claims_protected or bec_signal else D.SUSPICIOUS,
                score=score,
                reason=f"Replies go to {rt.email} ({rt_rd}{why}), not to the sender's domain {from_rd}",
                field="reply_to",
                value=rt.email,
                category="BEC",
            )
        ]
    return []


def analyze_impersonation(
    parsed: ParsedMessage, envelope: Envelope, policy: Policy, identity: SenderIdentity | None = None
) -> list[Finding]:
    """Findings about who the message pretends to come from."""
    who = identity or identify(parsed, envelope)
    sender = parsed.from_
    if sender is None:
        return []
    protected = tuple(sorted({registered_domain(d.strip().lower()) for d in policy.protected_domains if d.strip()}))
    findings: list[Finding] = []
    findings += _registry(parsed, sender, protected, policy)
    findings += _address_in_name(sender, protected)
    findings += _brand_claim(sender, who)
    if not findings:
        findings += _domain_in_name(sender)
    findings += _recipient_claim(parsed, sender, who)
    findings += _odd_sender_domain(sender)
    from_domain = sender.domain
    findings += _lookalike_sender(from_domain, "From", protected, policy)
    mail_from_domain = who.envelope_domain
    if mail_from_domain and registered_domain(mail_from_domain) != registered_domain(from_domain):
        findings += [
            f
            for f in _lookalike_sender(mail_from_domain, "envelope sender", protected, policy)
            if f.name == "SENDER_LOOKALIKE_PROTECTED_DOMAIN"
        ]
    for rt in parsed.reply_to[:3]:
        if rt.domain and registered_domain(rt.domain) != registered_domain(from_domain):
            findings += [
                f
                for f in _lookalike_sender(rt.domain, "Reply-To", protected, policy)
                if f.name == "SENDER_LOOKALIKE_PROTECTED_DOMAIN"
            ]
    bec_signal = any(f.detection is D.MALICIOUS_BEC for f in findings)
    findings += _reply_to(parsed, sender, protected, bec_signal)
    return findings
