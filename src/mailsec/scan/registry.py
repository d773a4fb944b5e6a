"""Every finding the scanner can emit, declared once: name, the disposition it argues for, its default score, its
threat category, whether it counts as a deception (independent evidence that corroborates phishing text), which
analyzer emits it and when it fires. In the spirit of rspamd's symbol registration: `verdict.DECEPTIONS` and the
findings table of docs/detection.md are derived from it, and the tests fail when an analyzer emits a name that is
not declared here or the doc table is out of step.

    python -m mailsec.scan.registry docs/detection.md    # rewrite the table between its markers"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from mailsec.model import Disposition, Finding

D = Disposition
DOC_START, DOC_END = "<!-- findings-registry:start -->", "<!-- findings-registry:end -->"


@dataclass(frozen=True)
class FindingSpec:
    """One declared finding. `score` is the default; `varies` says when an analyzer departs from it."""

    name: str
    analyzer: str
    disposition: Disposition
    score: float
    category: str | None
    fires_when: str
    deception: bool = False
    varies: str = ""

    def make(self, reason: str, *, score: float | None = None, **kw: object) -> Finding:
        """A finding of this kind with its declared disposition, score and category unless given."""
        detection = kw.pop("detection", self.disposition)
        category = kw.pop("category", self.category)
        return Finding(
            name=self.name,
            detection=detection,  # type: ignore[arg-type]
            score=self.score if score is None else score,
            reason=reason,
            category=category,  # type: ignore[arg-type]
            **kw,  # type: ignore[arg-type]
        )


_SPECS: tuple[FindingSpec, ...] = (
    # authentication (scan/auth.py, scan/sender.py)
    FindingSpec("SPF_FAIL", "auth", D.SPOOF, 1.0, "Spoof", "SPF fails for the envelope sender's domain"),
    FindingSpec("SPF_SOFTFAIL", "auth", D.SPOOF, 0.5, "Spoof", "SPF softfails"),
    FindingSpec("SPF_PERMERROR", "auth", D.SPOOF, 0.5, "Spoof", "the SPF record is broken"),
    FindingSpec("DKIM_FAIL", "auth", D.SPOOF, 1.0, "Spoof", "no DKIM signature passes and one does not verify"),
    FindingSpec("DKIM_PERMERROR", "auth", D.SPOOF, 0.5, "Spoof", "no DKIM signature passes and one is broken"),
    FindingSpec("DMARC_PASS", "auth", D.NONE, -1.0, None, "SPF or DKIM passes aligned with the From domain"),
    FindingSpec("DMARC_FAIL", "auth", D.SPOOF, 4.0, "Spoof", "DMARC fails (not overridden by a trusted ARC sealer)",
                deception=True, varies="4 for p=reject, 3 for quarantine, 0.5 for none"),
    FindingSpec("SPOOFED_SENDER", "auth", D.SPOOF, 5.0, "Spoof",
                "DMARC fails under p=reject/quarantine and the envelope sender is at another registered domain",
                deception=True),
    FindingSpec("DMARC_FAIL_ARC_OVERRIDE", "auth", D.NONE, 0.0, None,
                "DMARC fails but a trusted ARC sealer recorded a pass before forwarding"),
    FindingSpec("AUTH_TEMPERROR", "auth", D.NONE, 0.0, None, "DNS did not answer an SPF, DKIM or DMARC lookup"),
    FindingSpec("DNSBL_LISTED", "sender", D.SPAM, 3.0, "IPReputation",
                "the public connecting IP is listed on a configured DNS blocklist (per zone)"),
    FindingSpec("SENDER_AUTHENTICATED", "identity", D.NONE, -1.5, None,
                "DMARC passes for a From domain on the established-domain list (on top of DMARC_PASS): an "
                "established organisation vouches for the message"),
    # links and forms (scan/links.py)
    FindingSpec("LINK_BRAND_MISMATCH", "links", D.MALICIOUS, 5.0, "BrandImpersonation",
                "link text shows a brand domain, the link goes elsewhere (not the brand's own click-tracker)",
                deception=True),
    FindingSpec("LINK_PROTECTED_DOMAIN_MISMATCH", "links", D.MALICIOUS, 5.0, "Link",
                "link text shows one of the account's protected domains, the link goes elsewhere", deception=True),
    FindingSpec("LINK_TEXT_MISMATCH", "links", D.SUSPICIOUS, 2.0, "Link",
                "link text shows another domain than the target's (ESP click-trackers of bulk mail excepted)",
                deception=True),
    FindingSpec("LINK_CLICK_TRACKER", "links", D.NONE, 0.0, None,
                "link text shows another domain but the link goes through a known ESP click-tracker of bulk mail: "
                "explains why no mismatch was counted"),
    FindingSpec("LINK_LOOKALIKE_PROTECTED_DOMAIN", "links", D.MALICIOUS, 8.0, "Link",
                "link host imitates a protected domain (`detail`: kind)", deception=True),
    FindingSpec("LINK_LOOKALIKE_BRAND", "links", D.MALICIOUS, 6.0, "BrandImpersonation",
                "link host is a punycode/homoglyph/typo lookalike of a brand, and not itself an established domain",
                deception=True),
    FindingSpec("LINK_BRAND_EMBEDDED", "links", D.SUSPICIOUS, 3.0, "BrandImpersonation",
                "link host is built around a brand name (`paypal-login.example`)", deception=True),
    FindingSpec("LINK_BRAND_IN_SUBDOMAIN", "links", D.SUSPICIOUS, 4.0, "BrandImpersonation",
                "`paypal.com.evil.example`", deception=True),
    FindingSpec("LINK_USERINFO_TRICK", "links", D.SUSPICIOUS, 4.0, "Link", "`https://paypal.com@evil.example/`",
                deception=True),
    FindingSpec("LINK_IP_HOST", "links", D.SUSPICIOUS, 3.0, "Link",
                "host is an IP literal (also decimal and hex forms)", deception=True),
    FindingSpec("LINK_PUNYCODE_HOST", "links", D.SUSPICIOUS, 2.0, "Link", "host has `xn--` labels", deception=True),
    FindingSpec("LINK_SHORTENER", "links", D.SUSPICIOUS, 1.0, "Link", "host is a known URL shortener"),
    FindingSpec("LINK_FREE_HOSTING", "links", D.SUSPICIOUS, 2.0, "Link",
                "a link goes to a page on a free web-hosting, form or file-drop service (anyone can publish there in "
                "a minute: phishing kits live on them), outside the sender's own domain", deception=True),
    FindingSpec("BODY_CREDENTIAL_FORM", "links", D.MALICIOUS, 6.0, "CredentialHarvester",
                "the HTML body has a password input", deception=True),
    # attachments (scan/attachments.py)
    FindingSpec("EXECUTABLE_ATTACHMENT", "attachments", D.MALICIOUS, 8.0, "Malware",
                "a program, installer or shortcut, also inside archives and as an encrypted member"),
    FindingSpec("SCRIPT_ATTACHMENT", "attachments", D.MALICIOUS, 8.0, "Malware", "`.js .vbs .hta .ps1 .bat ...`"),
    FindingSpec("DISK_IMAGE_ATTACHMENT", "attachments", D.MALICIOUS, 8.0, "Malware", "`.iso .img .vhd .dmg`"),
    FindingSpec("ATTACHMENT_TYPE_MISMATCH", "attachments", D.SUSPICIOUS, 3.0, "Attachment",
                "name or declared type claims a document but the content is an archive, HTML or a program",
                deception=True),
    FindingSpec("OFFICE_MACRO_AUTOEXEC", "attachments", D.MALICIOUS, 8.0, "Malware", "an auto-executing macro"),
    FindingSpec("OFFICE_MACRO_SUSPICIOUS", "attachments", D.SUSPICIOUS, 5.0, "Malware",
                "macros using suspicious keywords (Shell, CreateObject, URLDownloadToFile ...)"),
    FindingSpec("OFFICE_MACRO", "attachments", D.SUSPICIOUS, 2.0, "Attachment", "any other VBA/XLM macro"),
    FindingSpec("HTML_CREDENTIAL_FORM", "attachments", D.MALICIOUS, 8.0, "CredentialHarvester",
                "an HTML attachment with a password input (also obfuscated)", deception=True),
    FindingSpec("HTML_FORM_EXTERNAL_POST", "attachments", D.SUSPICIOUS, 5.0, "CredentialHarvester",
                "an HTML attachment with a form posting to a web address", deception=True),
    FindingSpec("HTML_ATTACHMENT_REDIRECT", "attachments", D.SUSPICIOUS, 4.0, "Link",
                "an HTML attachment that redirects to a web address", deception=True),
    FindingSpec("PDF_ACTIVE_CONTENT", "attachments", D.SUSPICIOUS, 3.0, "Attachment",
                "a PDF with `/JavaScript`, `/JS`, `/Launch` or `/EmbeddedFile`", deception=True),
    FindingSpec("ENCRYPTED_ARCHIVE", "attachments", D.ENCRYPTED, 3.0, "Encrypted", "a zip member is encrypted"),
    FindingSpec("ENCRYPTED_OFFICE", "attachments", D.ENCRYPTED, 3.0, "Encrypted", "an encrypted Office file"),
    FindingSpec("ENCRYPTED_PDF", "attachments", D.ENCRYPTED, 3.0, "Encrypted", "a PDF trailer with `/Encrypt`"),
    FindingSpec("ZIP_BOMB", "attachments", D.MALICIOUS, 8.0, "Malware", "archive limits passed"),
    FindingSpec("MIME_UNREADABLE", "unread", D.MALICIOUS, 8.0, "Malware",
                "the message could not be read in full (MIME nesting past 200 levels, more than 1,000 parts, or a "
                "structure no parser survives): what could not be read cannot be called clean"),
    FindingSpec("ATTACHMENTS_UNCHECKED", "unread", D.MALICIOUS, 8.0, "Malware",
                "the attachment analyzer failed or ran out of time on a message that has attachments"),
    # impersonation (scan/impersonation.py)
    FindingSpec("IMPERSONATION_REGISTERED_NAME", "impersonation", D.MALICIOUS_BEC, 8.0, "BEC",
                "the From display name is an impersonation-registry name on an address that is not theirs"),
    FindingSpec("DISPLAY_NAME_ADDRESS_MISMATCH", "impersonation", D.SPOOF, 2.0, "Spoof",
                "the display name is another organisation's address", deception=True,
                varies="MALICIOUS-BEC 8 (category BEC) when it is a protected domain's"),
    FindingSpec("SENDER_LOOKALIKE_PROTECTED_DOMAIN", "impersonation", D.SPOOF, 5.0, "Spoof",
                "From, envelope sender or Reply-To domain imitates a protected domain", deception=True,
                varies="MALICIOUS-BEC 8 (category BEC) for punycode and homoglyphs"),
    FindingSpec("SENDER_LOOKALIKE_BRAND", "impersonation", D.SPOOF, 3.0, "BrandImpersonation",
                "the From domain imitates a brand domain and is not itself an established domain", deception=True,
                varies="5 for punycode and homoglyphs"),
    FindingSpec("SENDER_BRAND_CLAIM", "impersonation", D.SUSPICIOUS, 2.0, "BrandImpersonation",
                "the display name claims a well-known brand but the From domain is not the brand's (list mail and "
                "senders authenticated for an established domain excepted)", deception=True),
    FindingSpec("SENDER_NAME_DOMAIN_MISMATCH", "impersonation", D.SPOOF, 1.5, "Spoof",
                "the display name shows a domain name that is not the sender's (not a deception on its own: "
                "publishers name themselves after their site and mail through an ESP's domain)"),
    FindingSpec("SENDER_CLAIMS_RECIPIENT_DOMAIN", "impersonation", D.SUSPICIOUS, 3.0, "CredentialHarvester",
                "the display name names the recipient's own organisation (its mail or IT service) but the sender "
                "writes from another domain", deception=True),
    FindingSpec("SENDER_INVALID_DOMAIN", "impersonation", D.SPOOF, 2.0, "Spoof",
                "the From address has a domain that cannot exist (no public suffix: `contato@correios`)",
                deception=True),
    FindingSpec("SENDER_FREE_HOSTING", "impersonation", D.SUSPICIOUS, 2.0, "Spoof",
                "the From domain is a free hosting or cloud tenant default domain (`x.firebaseapp.com`, "
                "`x.onmicrosoft.com`) that no organisation's mail is sent from", deception=True),
    FindingSpec("TEXT_DISGUISED", "disguise", D.SUSPICIOUS, 2.0, "Spoof",
                "the subject or sender name hides itself: invisible characters, letters of another script inside a "
                "Latin word, mathematical or small-capital letters, a brand's name with a capital I for an l "
                "(`PayPaI`)",
                deception=True),
    FindingSpec("BRAND_SENDER_FOREIGN_LINKS", "structure", D.SUSPICIOUS, 2.0, "BrandImpersonation",
                "the From domain is a well-known brand's, unauthenticated, and every link goes to an unrelated, "
                "unestablished site", deception=True),
    FindingSpec("SUBJECT_NAMES_RECIPIENT", "structure", D.SUSPICIOUS, 1.0, "Phishing",
                "the subject addresses the reader by their mailbox address (`alice@corp.example, your mailbox is "
                "full`), as mail sent to a harvested address does, and the message asks the reader to act elsewhere "
                "(a lure: a link to an unestablished site, a risky attachment, a diverted reply, a brand claim); list "
                "mail excepted", deception=True),
    FindingSpec("SENDER_TRAIL_SCATTERED", "structure", D.SPOOF, 1.0, "Spoof",
                "the From address, the envelope sender and the Message-ID are on three unrelated registered domains "
                "and the message is no list or bulk mail (a forwarder's rewritten envelope or the recipient's own "
                "domain excepted): written under one name, composed on a second system and sent from a third",
                deception=True),
    FindingSpec("LINKS_ALL_SHORTENED", "structure", D.SUSPICIOUS, 1.0, "Link",
                "every web link goes through a URL shortener and at least one hides behind words or a picture: the "
                "message keeps every destination from the reader (a newsletter's shortened links sit beside its own)",
                deception=True),
    FindingSpec("REPLY_TO_DIVERTED", "impersonation", D.SUSPICIOUS, 1.0, "BEC",
                "Reply-To's registered domain differs from From's (not a recipient's domain, not list mail)",
                deception=True, varies="2 to a free mailbox; MALICIOUS-BEC 4 when the sender poses as someone trusted"),
    # bulk and history (scan/bulk.py, scan/history.py)
    FindingSpec("BULK_SENDER", "bulk", D.NONE, 0.0, None,
                "the message was sent as bulk mail through an ESP or list manager (List-Unsubscribe, List-Id, "
                "Feedback-ID, ESP headers or click-tracking hosts): it caps content-only verdicts at BULK"),
    FindingSpec("SENDER_FIRST_CONTACT", "history", D.SUSPICIOUS, 1.0, None,
                "the account has mail history but has never had mail from this sender's domain nor written to it"),
    FindingSpec("SENDER_KNOWN", "history", D.NONE, -1.0, None,
                "the account has had clean mail from this sender's domain on several earlier days",
                varies="-2 after 5 clean days or more"),
    FindingSpec("SENDER_REPLIED_TO", "history", D.NONE, -2.0, None,
                "the account's users have written to this sender's address (outbound mail seen)"),
    FindingSpec("SENDER_RECLASSIFIED", "history", D.SUSPICIOUS, 2.0, None,
                "an analyst reclassified earlier mail from this sender's domain as malicious, suspicious or spoof"),
    # learning from reclassifications (scan/learned.py; lessons written by mailsec.learn)
    FindingSpec("LEARNED_CAMPAIGN", "learned", D.SPAM, 5.0, None,
                "an analyst reclassified a message of the same campaign (same edf_hash, same structure and similar "
                "text, or near-identical text by MinHash) as bad; the reason names the submission",
                varies="the requested disposition, scored to decide alone: 8 MALICIOUS(-BEC), 5 SUSPICIOUS, SPOOF "
                "and SPAM, 3 BULK"),
    FindingSpec("LEARNED_CAMPAIGN_CLEAN", "learned", D.NONE, 0.0, None,
                "an analyst reclassified a message of the same campaign as NONE: the verdict returns to NONE unless "
                "it is worse than that message's was, or malware or a block policy is involved"),
    FindingSpec("LEARNED_SENDER", "learned", D.MALICIOUS, 8.0, None,
                "an analyst reclassified earlier mail from this sender address (or its authenticated domain) as bad",
                varies="the requested disposition, scored as LEARNED_CAMPAIGN"),
    FindingSpec("LEARNED_SENDER_RELIEF", "learned", D.NONE, 0.0, None,
                "an analyst reclassified a false positive from this sender as NONE and this message is authenticated "
                "for it: mail no worse than that one's verdict returns to NONE (never over malware or a block)"),
    # structure (scan/structure.py)
    FindingSpec("PHISHING_STRUCTURE", "structure", D.MALICIOUS, 8.0, "Phishing",
                "phishing is certain without reading the words: a credential form or a lookalike domain together with "
                "a lure, or a brand claimed by a sender that is not the brand together with a deceptive link"),
    # content (scan/content.py) and verdict
    FindingSpec("CONTENT_PHISHING", "content", D.MALICIOUS, 5.0, "Phishing",
                "the classifier reads phishing (see the table above)", varies="5 → 7 strong, 2.5 weak"),
    FindingSpec("CONTENT_SPAM", "content", D.SPAM, 5.0, "ContentSpam", "the classifier reads spam",
                varies="5 → 7 strong, 2.5 weak"),
    FindingSpec("CONTENT_BULK", "content", D.BULK, 3.0, "Bulk", "the classifier reads bulk", varies="1.5 weak"),
    FindingSpec("CONTENT_UNWANTED", "content", D.BULK, 3.0, "Bulk", "the non-ham mass is likely but no class decides"),
    FindingSpec("BULK_HEADERS", "content", D.BULK, 3.0, "Bulk",
                "unsubscribe headers, `Precedence: bulk`, ESP signatures", varies="the points of the evidence"),
    FindingSpec("PHISHING_CORROBORATED", "verdict", D.MALICIOUS, 3.0, "Phishing",
                "the classifier is sure of phishing and another analyzer found a deception"),
    FindingSpec("PHISHING_SUSPECTED", "verdict", D.SUSPICIOUS, 2.5, "Phishing",
                "the classifier leans to phishing (0.3 <= p < 0.6) and another analyzer found a deception: SUSPICIOUS, "
                "never MALICIOUS"),
    # policy (scan/policy.py, scan/verdict.py) and the scanner itself
    FindingSpec("BLOCKLISTED", "policy", D.MALICIOUS, 8.0, "Blocklisted", "a block policy matches"),
    FindingSpec("ALLOWLISTED", "policy", D.NONE, 0.0, None, "an allow policy applies"),
    FindingSpec("ALLOW_POLICY_UNVERIFIED", "policy", D.NONE, 0.0, None,
                "an allow policy matched but the sender did not pass authentication"),
    FindingSpec("TRUSTED_DOMAIN_SIMILARITY", "policy", D.NONE, 0.0, None,
                "a lookalike matched a trusted domain (`is_similarity`) and did not count"),
    FindingSpec("ANALYZER_ERROR", "scan", D.NONE, 0.0, None,
                "an analyzer failed on the message; its checks are missing"),
    FindingSpec("ANALYZER_TIMEOUT", "scan", D.SUSPICIOUS, 5.0, None,
                "an analyzer ran past its time budget on the message; its checks are incomplete"),
)  # fmt: skip

REGISTRY: dict[str, FindingSpec] = {s.name: s for s in _SPECS}
DECEPTIONS: frozenset[str] = frozenset(s.name for s in _SPECS if s.deception)


def spec(name: str) -> FindingSpec:
    """The declaration of `name`; KeyError names the undeclared finding."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"finding {name!r} is not declared in scan/registry.py") from None


def doc_table() -> str:
    """The findings table of docs/detection.md."""
    rows = [
        "| finding | analyzer | disposition | score | category | deception | fires when |",
        "|---|---|---|---:|---|:-:|---|",
    ]
    for s in _SPECS:
        score = f"{s.score:g}" + (f" ({s.varies})" if s.varies else "")
        rows.append(
            f"| `{s.name}` | {s.analyzer} | {s.disposition.value} | {score} | {s.category or ''} | "
            f"{'yes' if s.deception else ''} | {s.fires_when} |"
        )
    return "\n".join(rows)


def render_into(doc: str) -> str:
    """`doc` with the text between the registry markers replaced by the current table."""
    a, b = doc.index(DOC_START) + len(DOC_START), doc.index(DOC_END)
    return doc[:a] + "\n" + doc_table() + "\n" + doc[b:]


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/detection.md")
    path.write_text(render_into(path.read_text("utf-8")), "utf-8")
