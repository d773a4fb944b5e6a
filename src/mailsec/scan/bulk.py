"""Bulk mail recognised by how it was sent, not by what it says: an ESP or list manager leaves List-Unsubscribe
(often one-click), Feedback-ID, `Precedence: bulk`, its own headers and click-tracking link hosts. Such mail comes from
an account an ESP answers for, so a newsletter whose words read like phishing is graymail (BULK at worst) unless
another analyzer finds something wrong; and a link whose text shows the sender's own domain but goes through the
ESP's click-tracker is tracked, not deceptive.

A discussion list (Mailman, Google Groups, List-Post) is not this: it relays whatever a stranger posts, so its
headers are no evidence for the post and never cap a verdict."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from urllib.parse import urlsplit

from mailsec.model import Finding, ParsedMessage
from mailsec.scan.lookalike import data_lines, registered_domain
from mailsec.scan.registry import spec

MAX_LINKS = 200
ESP_HEADERS = {
    "x-mailgun-sid": "Mailgun", "x-mailgun-tag": "Mailgun", "x-ses-outgoing": "Amazon SES",
    "x-ses-configuration-set": "Amazon SES", "x-sg-eid": "SendGrid", "x-sg-id": "SendGrid", "x-mc-user": "Mailchimp",
    "x-mandrill-user": "Mandrill", "x-sfmc-stack": "Salesforce Marketing Cloud", "x-msys-api": "SparkPost",
    "x-mailjet-campaign": "Mailjet", "x-sib-id": "Brevo", "x-hs-cid": "HubSpot", "x-marketo-id": "Marketo",
    "x-cmail-trackingid": "Campaign Monitor", "x-csa-complaints": "a certified sender", "x-pm-message-id": "Postmark",
    "x-campaign-id": "a campaign tool", "x-campaignid": "a campaign tool", "x-listmember": "a list manager",
}  # fmt: skip
DISCUSSION_HEADERS = ("list-post", "x-mailman-version", "x-beenthere", "mailing-list", "x-google-group-id")


@cache
def tracker_domains() -> frozenset[str]:
    """The shipped list of ESP click-tracking hosts (scan/data/esp_trackers.txt)."""
    return frozenset(data_lines("esp_trackers.txt"))


def is_click_tracker(host: str) -> bool:
    host = host.lower().rstrip(".")
    trackers = tracker_domains()
    return host in trackers or registered_domain(host) in trackers


@dataclass(frozen=True)
class BulkMail:
    """How the message shows it was sent in bulk. `marketing` is ESP or list-manager mail an account answers for;
    `discussion` a list that relays posts (never a relief)."""

    evidence: tuple[str, ...]
    marketing: bool
    discussion: bool
    esp: str = ""


def recognise(parsed: ParsedMessage) -> BulkMail:
    names = parsed.header_names()
    evidence: list[str] = []
    esp = next((vendor for header, vendor in ESP_HEADERS.items() if header in names), "")
    if esp:
        evidence.append(f"sent through {esp}")
    unsubscribe = "list-unsubscribe" in names
    if unsubscribe:
        evidence.append("List-Unsubscribe")
    if "list-unsubscribe-post" in names:
        evidence.append("one-click unsubscribe")
    if "feedback-id" in names or "x-feedback-id" in names:
        evidence.append("Feedback-ID")
    if (parsed.header("Precedence") or "").strip().lower() in ("bulk", "list"):
        evidence.append("Precedence: bulk")
    if "list-id" in names:
        evidence.append("List-Id")
    tracker = next((u for link in parsed.links[:MAX_LINKS] if (u := _host(link.href)) and is_click_tracker(u)), "")
    if tracker:
        evidence.append(f"links tracked by {tracker}")
    discussion = any(h in names for h in DISCUSSION_HEADERS)
    sender_marks = sum(1 for e in evidence if e != "List-Id")
    marketing = unsubscribe and sender_marks >= 2 and not discussion
    return BulkMail(tuple(evidence), marketing, discussion, esp)


@lru_cache(maxsize=16384)
def _host(href: str) -> str:
    try:
        return (urlsplit(href.strip()).hostname or "").rstrip(".").lower()
    except ValueError:
        return ""


def bulk_finding(bulk: BulkMail) -> list[Finding]:
    if not bulk.marketing:
        return []
    return [
        spec("BULK_SENDER").make(
            "Sent as bulk mail by an ESP or list manager (" + ", ".join(bulk.evidence) + "); its wording alone makes "
            "it graymail at worst.",
            field="headers",
        )
    ]
