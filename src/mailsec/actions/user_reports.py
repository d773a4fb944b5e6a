"""User reports: mail sent to a protected domain's report address (`mailsec domain add|edit --report-address`).
The gateway stores the report (delivery mode REVIEW_SUBMISSION) and does not deliver it; this module finds the
message the user reported — attached as message/rfc822 or an .eml file, or forwarded inline — matches it to the
stored original by Message-ID, then by fingerprint, and records a USER submission on it (action log SUBMISSION).
An analyst takes the report up with `reclassify(..., escalated_submission_id=...)`."""

from __future__ import annotations

import base64
import email
import email.message
import quopri
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy as email_policy

from mailsec.mime import parse_message
from mailsec.model import Disposition, Operation, ParsedMessage, TraceDirection
from mailsec.scan import fingerprint
from mailsec.scan.features import extract_text
from mailsec.services import Services
from mailsec.store.messages import StoredMessage
from mailsec.store.submissions import (
    CustomerStatus,
    NewSubmission,
    Submission,
    SubmissionKind,
    SubmissionRepo,
    SubmissionStatus,
    find_original,
)

PHISH = frozenset({Disposition.MALICIOUS, Disposition.SUSPICIOUS, Disposition.SPOOF})
_FORWARD_MARKERS = re.compile(
    r"^\s*(?:-{2,}\s*(?:Forwarded message|Original Message)\s*-{2,}|Begin forwarded message:)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_LINE = re.compile(r"^\s*\*?(From|To|Cc|Subject|Date|Sent|Message-ID)\*?\s*:\s*(.*)$", re.IGNORECASE)
_NOT_SPAM = re.compile(r"\b(not (?:spam|junk|phish\w*)|false positive|legit\w*)\b", re.IGNORECASE)
_SPAM = re.compile(r"\b(spam|junk)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Reported:
    """What a report says about the message it reports."""

    message_id: str | None
    subject: str
    edf_hash: str | None
    how: str  # attached, inline, none


def _fingerprint(parsed: ParsedMessage) -> str | None:
    try:
        return fingerprint.edf_hash(extract_text(parsed))
    except Exception:  # hostile content: no fingerprint, the Message-ID may still match
        return None


def _rfc822_part(raw: bytes) -> bytes | None:
    """The first attached message. Some clients base64-encode it (RFC 2046 forbids it; it happens): decoded."""
    try:
        outer = email.message_from_bytes(raw, policy=email_policy.compat32)
        for part in outer.walk():
            if part.get_content_type() != "message/rfc822":
                continue
            payload = part.get_payload()
            if not (isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message)):
                continue
            data = payload[0].as_bytes()
            encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
            if encoding == "base64":
                return base64.b64decode(b"".join(data.split()), validate=False)
            if encoding == "quoted-printable":
                return quopri.decodestring(data.lstrip(b"\r\n"))
            return data
    except Exception:  # hostile structure: look for an .eml file or an inline forward instead
        return None
    return None


def _attached(report: ParsedMessage, raw: bytes) -> bytes | None:
    inner = _rfc822_part(raw)
    if inner is not None:
        return inner
    for a in report.attachments:
        if a.name.lower().endswith(".eml") and a.content:
            return a.content
    return None


def _inline(report: ParsedMessage) -> Reported | None:
    """The forwarded header block a mail client writes above an inline forward, and the text below it."""
    body = report.text_body or ""
    marker = _FORWARD_MARKERS.search(body)
    if marker is None:
        return None
    lines = body[marker.end() :].lstrip("\r\n").splitlines()
    fields: dict[str, str] = {}
    body_start = 0
    for number, line in enumerate(lines[:30]):
        match = _HEADER_LINE.match(line)
        if match:
            fields.setdefault(match.group(1).lower(), match.group(2).strip())
            body_start = number + 1
        elif fields:
            break
    rest = "\n".join(lines[body_start:]).strip() + "\n"
    subject = fields.get("subject", "")
    quoted = parse_message(f"Subject: {subject}\r\n\r\n{rest}".encode("utf-8", "replace"))
    return Reported(fields.get("message-id"), subject, _fingerprint(quoted), "inline")


def reported_message(raw: bytes) -> Reported:
    report = parse_message(raw)
    attached = _attached(report, raw)
    if attached is not None:
        inner = parse_message(attached)
        return Reported(inner.message_id or None, inner.subject, _fingerprint(inner), "attached")
    inline = _inline(report)
    if inline is not None:
        return inline
    return Reported(None, report.subject, None, "none")


def requested_disposition(subject: str) -> Disposition:
    """What the user asks for, from the report's subject: "not spam" / "false positive" → NONE, "spam" or "junk" →
    SPAM, anything else (the usual "phishing?") → MALICIOUS."""
    if _NOT_SPAM.search(subject):
        return Disposition.NONE
    if _SPAM.search(subject):
        return Disposition.SPAM
    return Disposition.MALICIOUS


def _of_the_account(services: Services, account_id: str, addresses: Iterable[str]) -> bool:
    protected = [d.lower() for d in services.policies.policy(account_id).protected_domains]
    domains = [a.rpartition("@")[2].strip().lower() for a in addresses if a]
    return bool(domains) and all(any(d == p or d.endswith("." + p) for p in protected) for d in domains)


def record_report(services: Services, report: StoredMessage, raw: bytes) -> Submission | None:
    """The USER submission of a stored report (idempotent: a rerun after a crash returns the one recorded). Only
    the account's own users report: a report whose sender is outside its domains is kept, but records nothing."""
    repo = SubmissionRepo(services.engine)
    submission_id = f"user-{report.postfix_id}"
    existing = repo.get(report.account_id, submission_id)
    if existing is not None:
        return existing
    if not _of_the_account(services, report.account_id, [report.from_addr or "", report.envelope_from]):
        services.messages.add_trace(
            report.pk,
            TraceDirection.INBOUND,
            f"report from {report.from_addr or report.envelope_from or 'unknown'} ignored: not a user of the "
            "account's domains; not delivered",
        )
        return None
    reported = reported_message(raw)
    match = find_original(services.engine, report.account_id, reported.message_id, reported.edf_hash)
    original = services.messages.get_by_pk(match[0]) if match else None
    requested = requested_disposition(report.subject or "")
    reporter = str(report.from_addr or report.envelope_from or "")
    submission = repo.record(
        NewSubmission(
            id=submission_id,
            account_id=report.account_id,
            kind=SubmissionKind.USER,
            message_pk=original.pk if original else None,
            requested_disposition=requested.value,
            requested_by=reporter,
            original_disposition=original.final_disposition.value if original else None,
            status=SubmissionStatus.PENDING,
            customer_status=CustomerStatus.UNREVIEWED,
            subject=(original.subject if original else None) or reported.subject,
            from_addr=original.from_addr if original else None,
            original_postfix_id=original.postfix_id if original else None,
            original_edf_hash=(original.verdict.edf_hash if original else None) or reported.edf_hash,
            detail={
                "report_id": report.id,
                "report_postfix_id": report.postfix_id,
                "reported_as": reported.how,
                "matched_by": match[1] if match else None,
                "reported_message_id": reported.message_id,
            },
        ),
        Operation.SUBMISSION,
        datetime.now(UTC),
        phish=original is not None and requested in PHISH,
    )
    found = f"on {original.id} (matched by {match[1]})" if original and match else "; no stored message matches it"
    services.messages.add_trace(
        report.pk,
        TraceDirection.INBOUND,
        f"user report from {reporter or 'unknown'}: USER submission {submission.id} {found}; not delivered",
    )
    return submission
