"""Does the message ask the reader to act somewhere its sender does not control? Phishing needs a way to harm: a link
to another site (not an established one), a risky attachment, replies diverted elsewhere, a brand it claims to be,
or a free mailbox that no organisation answers for (advance-fee and callback scams have nothing else). A message
with none of these can only talk, so its wording alone must be overwhelming before the content classifier calls it
phishing. The check exists because the labelled ham is from 2002: modern business mail reads "like phishing" to a
model trained on it, and this structural question does not depend on the era of the words."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from mailsec.model import ParsedMessage
from mailsec.scan.bulk import is_click_tracker
from mailsec.scan.links import parse_url
from mailsec.scan.lookalike import FREEMAIL, brand_domains, free_hosting, is_established, registered_domain

MAX_LINKS = 200
RISKY_EXTENSIONS = frozenset(
    {
        *("htm", "html", "shtml", "xhtml", "svg", "zip", "rar", "7z", "gz", "tgz", "cab", "ace", "iso", "img", "vhd"),
        *("exe", "scr", "com", "pif", "bat", "cmd", "ps1", "js", "jse", "vbs", "vbe", "wsf", "hta", "msi", "jar"),
        *("lnk", "one", "docm", "dotm", "xlsm", "xltm", "xlam", "pptm", "potm", "ppam"),
    }
)
RISKY_TYPES = ("text/html", "application/zip", "application/x-msdownload", "application/x-rar", "image/svg+xml")
# brand names that are everyday words: naming them in a subject is no claim to be the company
GENERIC_BRAND_WORDS = frozenset({"live", "office", "outlook", "booking", "visa", "zoom", "chase", "blockchain"})


@dataclass(frozen=True)
class Lure:
    """What the message asks the reader to do elsewhere; empty `kinds` means it asks for nothing outside."""

    kinds: tuple[str, ...]
    evidence: str = ""
    # no lure, and the sender's own system wrote and sent it (`own_system`): phishing text alone cannot condemn it
    self_consistent: bool = False

    def __bool__(self) -> bool:
        return bool(self.kinds)


@cache
def _brand_names() -> re.Pattern[str]:
    names = {d.split(".")[0] for d in brand_domains()}
    names = {n for n in names if len(n) >= 4 and n not in GENERIC_BRAND_WORDS}
    return re.compile(r"\b(" + "|".join(sorted(names)) + r")\b", re.IGNORECASE)


def _credited_sites(parsed: ParsedMessage, acts_at_home: bool) -> frozenset[str]:
    """Sites the message names by their front page (`https://www.maker.example`, no path, query or fragment): all of
    them when the message acts on its sender's own site, else those whose link text is the site's own name
    (`<a href="https://www.authelia.com">Authelia</a>`): a credit, not a call to act."""
    sites = set()
    for link in parsed.links[:MAX_LINKS]:
        url = parse_url(link.href)
        if not url or not url.rd or url.path.strip("/") or re.search(r"[?#]", url.href):
            continue
        if acts_at_home or re.sub(r"\W", "", link.text).lower() == url.rd.split(".")[0]:
            sites.add(url.rd)
    return frozenset(sites)


def _offsite_link(parsed: ParsedMessage, sender_rd: str, own: bool = False, acts_at_home: bool = False) -> str | None:
    """The first link to a site the sender does not control and that is not an established one (GitHub, a carrier's
    tracking page, a newsletter's click-tracker): phishing sends the reader to a place its author controls. A page on
    free hosting counts even under an established name (`sites.google.com`). When the sender's own system sent the
    message (`own`), a site it credits (`_credited_sites`) is the maker of the software named in the footer
    ("Powered by ..."), not a place to act."""
    named = _credited_sites(parsed, acts_at_home) if own else frozenset()
    for link in parsed.links[:MAX_LINKS]:
        url = parse_url(link.href)
        if url is None or not url.rd or url.rd == sender_rd:
            continue
        if url.rd in named and not free_hosting(url.host, url.path):
            continue
        if free_hosting(url.host, url.path) or not (is_established(url.rd) or is_click_tracker(url.host)):
            return url.rd
    return None


def _risky_attachment(parsed: ParsedMessage) -> str | None:
    for a in parsed.attachments:
        ext = a.name.rpartition(".")[2].lower() if "." in (a.name or "") else ""
        if ext in RISKY_EXTENSIONS or a.content_type.lower() in RISKY_TYPES:
            return a.name or a.content_type
    return None


def _diverted_reply(parsed: ParsedMessage, sender_rd: str) -> str | None:
    for rt in parsed.reply_to[:5]:
        if rt.domain and registered_domain(rt.domain) != sender_rd:
            return rt.email
    return None


def _brand_claim(parsed: ParsedMessage, sender_rd: str) -> str | None:
    if sender_rd in brand_domains():
        return None
    claim = f"{parsed.from_.name if parsed.from_ else ''} {parsed.subject}"[:1000]
    found = _brand_names().search(claim)
    return found.group(1) if found else None


def _address_rd(value: str | None) -> str:
    address = (value or "").strip().strip("<>").strip()
    return registered_domain(address.rpartition("@")[2].rstrip(">").strip()) if "@" in address else ""


def own_system(parsed: ParsedMessage, sender_rd: str) -> bool:
    """Did the sender's own organisation compose and send the message? Its Message-ID and, when there is one, its
    Return-Path are on the From address's registered domain, which is no free mailbox. A product's own
    transactional mail (password reset, sign-in code, invitation, receipt) is made this way; phishing that links
    only to its own site is mostly composed on a webmail or ESP account under another name. Not proof of anything on
    its own, only that nothing in the message points away from one organisation. A message that hands over a file
    or gives a free mailbox to write to (the compromised mailbox's phish: "see the attached statement") is not
    counted: it asks for something the sender's site does not hold."""
    if not sender_rd or sender_rd in FREEMAIL or _address_rd(parsed.message_id) != sender_rd:
        return False
    return_path = _address_rd(parsed.header("return-path"))
    if return_path and return_path != sender_rd:
        return False
    if any(a.disposition == "attachment" for a in parsed.attachments):
        return False
    for link in parsed.links[:MAX_LINKS]:
        if link.href[:7].lower() == "mailto:" and _address_rd(link.href[7:].partition("?")[0]) in FREEMAIL:
            return False
    return True


def find_lure(parsed: ParsedMessage) -> Lure:
    sender_rd = registered_domain(parsed.from_.domain) if parsed.from_ and parsed.from_.domain else ""
    kinds: list[str] = []
    evidence: list[str] = []
    self_consistent = own_system(parsed, sender_rd)
    acts_at_home = self_consistent and any(
        (url := parse_url(link.href)) is not None and url.rd == sender_rd for link in parsed.links[:MAX_LINKS]
    )
    if site := _offsite_link(parsed, sender_rd, self_consistent, acts_at_home):
        kinds.append("link")
        evidence.append(f"a link to {site}")
    if name := _risky_attachment(parsed):
        kinds.append("attachment")
        evidence.append(f"the attachment {name[:80]}")
    if address := _diverted_reply(parsed, sender_rd):
        kinds.append("reply-to")
        evidence.append(f"replies to {address[:120]}")
    if brand := _brand_claim(parsed, sender_rd):
        kinds.append("brand")
        evidence.append(f"the name {brand} from {sender_rd or 'an unknown domain'}")
    if sender_rd in FREEMAIL:
        kinds.append("freemail")
        evidence.append(f"a sender at the free mailbox provider {sender_rd}")
    if not kinds:
        return Lure((), "", self_consistent=self_consistent)
    return Lure(tuple(kinds), ", ".join(evidence))
