"""Phishing that is certain without reading a word: what the message claims to be, what it asks for and where it
sends the reader, from the other analyzers' findings and the message's links. These hold in any language, which the
content classifier does not.

- a credential form (in the body or an attached page) together with a lure: a link elsewhere, a risky attachment,
  replies diverted, a brand claimed;
- a lookalike domain (sender or link) together with a lure beyond the lookalike itself;
- a sender address no organisation mails from (a domain that cannot exist, free hosting, a cloud tenant's default
  name) sending the reader to a site that is neither its own nor established, or handing over an attachment;
- the recipient's own organisation named by a sender outside it (the mail-admin notice), with a link elsewhere;
- a well-known brand claimed by a sender that is not the brand, sending the reader to a site that is neither the
  brand's nor an established one (or handing over a risky attachment, or diverting replies to a free mailbox).

Each gives PHISHING_STRUCTURE (MALICIOUS, score 8, category Phishing), once, its reason naming both halves.
Doubtful halves are findings of their own, deceptions that corroborate phishing text (verdict.py):
BRAND_SENDER_FOREIGN_LINKS, SUBJECT_NAMES_RECIPIENT, SENDER_TRAIL_SCATTERED and LINKS_ALL_SHORTENED."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailsec.model import Finding, ParsedMessage
from mailsec.scan.bulk import is_click_tracker
from mailsec.scan.identity import SenderIdentity
from mailsec.scan.impersonation import claimed_brand
from mailsec.scan.links import parse_url, shown_domain
from mailsec.scan.lookalike import (
    FREEMAIL,
    brand_domains,
    brand_names,
    is_established,
    registered_domain,
    same_name,
    shortener_domains,
)
from mailsec.scan.lure import Lure
from mailsec.scan.registry import spec

MAX_LINKS = 200
FORMS = ("HTML_CREDENTIAL_FORM", "BODY_CREDENTIAL_FORM", "HTML_FORM_EXTERNAL_POST")
LOOKALIKES = ("LINK_LOOKALIKE_PROTECTED_DOMAIN", "LINK_LOOKALIKE_BRAND", "SENDER_LOOKALIKE_PROTECTED_DOMAIN",
              "SENDER_LOOKALIKE_BRAND")  # fmt: skip
RISKY_DESTINATIONS = ("LINK_IP_HOST", "LINK_FREE_HOSTING", "LINK_USERINFO_TRICK", "LINK_BRAND_MISMATCH",
                      "LINK_BRAND_IN_SUBDOMAIN", "LINK_BRAND_EMBEDDED", "LINK_LOOKALIKE_BRAND", "LINK_SHORTENER",
                      "HTML_ATTACHMENT_REDIRECT")  # fmt: skip


def _first(findings: Sequence[Finding], names: Sequence[str]) -> Finding | None:
    return next((f for f in findings if f.name in names and f.score > 0), None)


def _foreign_site(parsed: ParsedMessage, owned: frozenset[str]) -> str | None:
    """The first linked site that is neither `owned` (the claimed brand's or the sender's domains), nor an
    established domain, nor an ESP click-tracker."""
    for link in parsed.links[:MAX_LINKS]:
        url = parse_url(link.href)
        if url is None or not url.rd:
            continue
        if url.rd in owned or any(same_name(url.rd, d) for d in owned):
            continue
        if is_established(url.rd) or is_click_tracker(url.host):
            continue
        return url.host
    return None


def _brand_lure(parsed: ParsedMessage, findings: Sequence[Finding], lure: Lure) -> str | None:
    claim = _first(findings, ("SENDER_BRAND_CLAIM",))
    if claim is None or parsed.from_ is None:
        return None
    brand = claimed_brand(parsed.from_.name or "")
    if brand is None:
        return None
    risky = _first(findings, RISKY_DESTINATIONS)
    if risky is not None:
        return f"{claim.reason}; {risky.reason}"
    site = _foreign_site(parsed, brand[1])
    if site:
        return f"{claim.reason}; it sends the reader to {site}, which is not {brand[0]}'s"
    if "attachment" in lure.kinds:
        return f"{claim.reason}; it asks to open an attachment"
    diverted = _first(findings, ("REPLY_TO_DIVERTED",))
    if diverted is not None and diverted.score >= 2:
        return f"{claim.reason}; {diverted.reason}"
    return None


def _brand_sender_foreign_links(parsed: ParsedMessage, identity: SenderIdentity) -> list[Finding]:
    """The From domain is a brand's own (`bradesco.com.br`), it is not authenticated, and every web link leads to an
    unrelated, unestablished site: a forged brand sender, since brands link to themselves."""
    if identity.authenticated or identity.from_org not in brand_domains() or identity.from_org in FREEMAIL:
        return []
    hosts = [u for link in parsed.links[:MAX_LINKS] if (u := parse_url(link.href)) is not None and u.rd]
    if not hosts:
        return []
    owned = {identity.from_org} | next((d for _, d in brand_names() if identity.from_org in d), frozenset[str]())
    for u in hosts:
        if u.rd in owned or any(same_name(u.rd, d) for d in owned) or is_established(u.rd) or is_click_tracker(u.host):
            return []
    return [
        spec("BRAND_SENDER_FOREIGN_LINKS").make(
            f"The mail claims to come from {identity.from_org} without authenticating, and every link goes elsewhere "
            f"({hosts[0].host})",
            field="from",
            value=identity.from_address,
        )
    ]


def _subject_names_recipient(parsed: ParsedMessage, lure: Lure) -> list[Finding]:
    """The subject addresses the reader by mailbox (`alice@corp.example, ...`): the sender knows nothing of the
    reader but the address it bought or harvested, yet writes as if to them. Only with a lure, so that a service
    confirming the address a user just signed up with, on its own site, is not counted."""
    if not lure or parsed.header("list-id") or parsed.header("list-post"):
        return []
    subject = parsed.subject[:1000].lower()
    for address in [*parsed.to, *parsed.cc][:20]:
        email = (address.email or "").lower()
        if "@" in email and email in subject:
            return [
                spec("SUBJECT_NAMES_RECIPIENT").make(
                    f"The subject addresses the reader by their mailbox address ({email}) and the message points to "
                    f"{lure.evidence}",
                    field="subject",
                    value=email,
                )
            ]
    return []


_FORWARDED_RE = re.compile(r"(?:^|[+=])srs[01]?=|\+caf_=")  # SRS (`SRS0=h=tt=orig=user@`), Gmail's `+caf_=`
LIST_HEADERS = ("list-id", "list-post", "list-unsubscribe", "mailing-list", "x-mailing-list")


def _message_id_org(parsed: ParsedMessage) -> str:
    """The registered domain the Message-ID was made on; empty for a bare host name (`WIN-HM6FI4VOIEP`)."""
    domain = parsed.message_id.strip().strip("<>").rpartition("@")[2].strip().rstrip(">").lower()
    return registered_domain(domain) if "." in domain.strip(".") else ""


def _sender_trail_scattered(parsed: ParsedMessage, identity: SenderIdentity) -> list[Finding]:
    """From, envelope sender and Message-ID on three unrelated organisations. A sending system stamps its own
    Message-ID and bounce address: an organisation's own server puts both on its domain, an ESP or a hosted mailbox
    puts one or both on the provider's, so honest mail shows at most two organisations. Three is a message written
    under a borrowed name, composed on one system (a webmail or cloud tenant) and injected from another (a compromised
    server). List and bulk mail are left alone (list managers and ESPs rewrite the envelope on purpose), and so is a
    forwarder's SRS address, which rewrites the envelope of mail it passes on."""
    envelope = identity.envelope_sender.lower()
    if not identity.from_org or not identity.envelope_domain or any(parsed.header(h) for h in LIST_HEADERS):
        return []
    if _FORWARDED_RE.search(envelope.partition("@")[0]):
        return []
    envelope_org = registered_domain(identity.envelope_domain)
    made_on = _message_id_org(parsed)
    if not made_on or len({identity.from_org, envelope_org, made_on}) < 3:
        return []
    if envelope_org in {registered_domain(a.domain) for a in [*parsed.to, *parsed.cc][:20] if a.domain}:
        return []  # the recipient's own forwarder
    return [
        spec("SENDER_TRAIL_SCATTERED").make(
            f"The mail is written from {identity.from_org}, was composed on {made_on} (its Message-ID) and sent from "
            f"{envelope_org} (its envelope sender): three unrelated organisations",
            field="from",
            value=identity.envelope_sender[:320],
        )
    ]


def _links_all_shortened(parsed: ParsedMessage) -> list[Finding]:
    """Every web link goes through a URL shortener, and one of them hides behind words or a picture rather than
    showing its address: the message keeps every destination from the reader. A newsletter's shortened links sit
    beside links to its own site; a colleague pasting a short link shows it (plain text shows every address)."""
    shorteners = shortener_domains()
    hidden = None
    for link in parsed.links[:MAX_LINKS]:
        u = parse_url(link.href)
        if u is None or not u.rd:
            continue
        if u.rd not in shorteners and u.host not in shorteners:
            return []  # most messages stop at their first link
        if hidden is None and link.source == "html" and not shown_domain(link.text):
            hidden = u
    if hidden is None:
        return []
    return [
        spec("LINKS_ALL_SHORTENED").make(
            f"Every link goes through a URL shortener ({hidden.host}), behind words or a picture: the message hides "
            "where it sends the reader",
            field="link",
            value=hidden.href[:2000],
        )
    ]


def analyze_structure(
    parsed: ParsedMessage, identity: SenderIdentity, findings: Sequence[Finding], lure: Lure
) -> list[Finding]:
    """PHISHING_STRUCTURE when phishing is certain from structure alone (see the module doc), else nothing; and the
    doubtful halves (module doc)."""
    forged = _brand_sender_foreign_links(parsed, identity)
    doubtful = [
        *forged,
        *_subject_names_recipient(parsed, lure),
        *_sender_trail_scattered(parsed, identity),
        *_links_all_shortened(parsed),
    ]
    return doubtful + _certain(parsed, identity, [*findings, *forged], lure)


def _certain(parsed: ParsedMessage, identity: SenderIdentity, findings: Sequence[Finding], lure: Lure) -> list[Finding]:
    why: str | None = None
    form = _first(findings, FORMS)
    if form is not None and form.name != "HTML_CREDENTIAL_FORM" and (lure or _first(findings, ("SENDER_BRAND_CLAIM",))):
        why = f"{form.reason}; and it {('points to ' + lure.evidence) if lure else 'claims a brand it is not'}"
    look = _first(findings, LOOKALIKES)
    if why is None and look is not None:
        other = [k for k in lure.kinds if not (k == "link" and look.field == "link")]
        if other or _first(findings, ("SENDER_BRAND_CLAIM", "REPLY_TO_DIVERTED")):
            why = f"{look.reason}; and it asks the reader to act: {lure.evidence or 'a brand it is not'}"
    if why is None:
        why = _brand_lure(parsed, findings, lure)
    odd = _first(findings, ("SENDER_INVALID_DOMAIN", "SENDER_FREE_HOSTING"))
    if why is None and odd is not None:
        risky = _first(findings, RISKY_DESTINATIONS)
        site = _foreign_site(parsed, frozenset({identity.from_org}))
        if risky is not None or site or "attachment" in lure.kinds:
            where = risky.reason if risky is not None else f"it sends the reader to {site}" if site else "an attachment"
            why = f"{odd.reason}; {where}"
    claim = _first(findings, ("SENDER_CLAIMS_RECIPIENT_DOMAIN",))
    if why is None and claim is not None:
        risky = _first(findings, RISKY_DESTINATIONS)
        site = _foreign_site(parsed, frozenset({claim.detail or ""}))
        if risky is not None or site or "attachment" in lure.kinds:
            where = risky.reason if risky is not None else f"it sends the reader to {site}" if site else "an attachment"
            why = f"{claim.reason}; {where}"
    if why is None:
        return []
    return [spec("PHISHING_STRUCTURE").make(f"Phishing by its structure: {why}", field="from")]
