"""Reclassify: an analyst's verdict on one stored message. It becomes a TEAM submission, an action-log entry and
the message's new final disposition (the scan's stays recorded in the verdict), and is handed to learning.

An analyst may send the .eml (`eml_content`, base64) to be analysed in place of the stored copy: the submission
then carries that copy's fingerprint and verdict. Reclassifying with `escalated_submission_id` takes up an end
user's report (a USER submission): the two are linked both ways."""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailsec.learn import on_reclassified
from mailsec.mime import parse_message
from mailsec.model import SEARCHABLE_DISPOSITIONS, Disposition, Envelope, Operation, ParsedMessage, Reclassification
from mailsec.pipeline import scan_for_account
from mailsec.services import Services
from mailsec.store.messages import StoredMessage
from mailsec.store.submissions import (
    RECLASSIFIED_PREFIX,
    NewSubmission,
    SubmissionKind,
    SubmissionRepo,
    SubmissionStatus,
)

log = logging.getLogger("mailsec.actions.reclassify")

PHISH = frozenset({Disposition.MALICIOUS, Disposition.SUSPICIOUS, Disposition.SPOOF})
MAX_EML_BYTES = 25 * 1024 * 1024
_MAIL_HEADERS = ("from", "to", "subject", "date", "message-id", "received", "sender", "reply-to")


class ReclassifyError(ValueError):
    """A request that cannot be honoured as sent: the API answers 400 with this text."""

    def __init__(self, message: str, pointer: str | None = None) -> None:
        super().__init__(message)
        self.pointer = pointer


class MessageNotFound(LookupError):
    """No message of this account has that id."""


@dataclass(frozen=True)
class EmlAnalysis:
    sha256: str
    size: int
    disposition: str
    edf_hash: str | None
    htmltext_structure_hash: str | None
    subject: str


def decode_eml(eml_content: str) -> tuple[bytes, ParsedMessage]:
    """The analyst's .eml: strict base64 of something that parses as a mail message, else ReclassifyError."""
    text = "".join(eml_content.split())
    if not text:
        raise ReclassifyError("eml_content is empty", pointer="/eml_content")
    if len(text) > MAX_EML_BYTES * 4 // 3 + 4:
        raise ReclassifyError(f"eml_content is larger than {MAX_EML_BYTES // (1024 * 1024)} MiB", "/eml_content")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ReclassifyError("eml_content is not base64", pointer="/eml_content") from exc
    parsed = parse_message(raw)
    names = {k.strip().lower() for k, _ in parsed.headers}
    if not names.intersection(_MAIL_HEADERS) or b"\n" not in raw:
        raise ReclassifyError("eml_content is not an e-mail message (no mail headers)", pointer="/eml_content")
    return raw, parsed


def _analyse_eml(services: Services, account_id: str, eml_content: str) -> EmlAnalysis:
    raw, parsed = decode_eml(eml_content)
    digest = services.blobs.put(raw)
    verdict = scan_for_account(services, parsed, Envelope(), account_id)
    return EmlAnalysis(
        sha256=digest,
        size=len(raw),
        disposition=verdict.disposition.value,
        edf_hash=verdict.edf_hash,
        htmltext_structure_hash=verdict.htmltext_structure_hash,
        subject=parsed.subject,
    )


def parse_disposition(value: str) -> Disposition:
    text = str(value or "").strip().upper()
    if text not in SEARCHABLE_DISPOSITIONS:
        raise ReclassifyError(
            f"expected_disposition must be one of {', '.join(SEARCHABLE_DISPOSITIONS)}", pointer="/expected_disposition"
        )
    return Disposition(text)


def reclassify(
    services: Services,
    account_id: str,
    ref: str,
    expected_disposition: str,
    requested_by: str,
    eml_content: str | None = None,
    escalated_submission_id: str | None = None,
) -> Reclassification:
    message = services.messages.get(account_id, ref)
    if message is None:
        raise MessageNotFound(ref)
    requested = parse_disposition(expected_disposition)
    repo = SubmissionRepo(services.engine)
    user_report = None
    if escalated_submission_id:
        user_report = repo.get(account_id, escalated_submission_id.strip())
        if user_report is None or user_report.kind is not SubmissionKind.USER:
            raise ReclassifyError(
                f"escalated_submission_id {escalated_submission_id[:64]!r} names no user submission of this account",
                pointer="/escalated_submission_id",
            )
        if user_report.message_pk is not None and user_report.message_pk != message.pk:
            raise ReclassifyError(
                "escalated_submission_id names a user submission about another message",
                pointer="/escalated_submission_id",
            )
    eml = _analyse_eml(services, account_id, eml_content) if eml_content is not None else None
    at = datetime.now(UTC)
    original = message.final_disposition
    detail: dict[str, Any] = {"investigate_id": message.id}
    if eml is not None:
        detail["eml"] = {
            "sha256": eml.sha256,
            "size": eml.size,
            "disposition": eml.disposition,
            "htmltext_structure_hash": eml.htmltext_structure_hash,
        }
    team = repo.record(
        NewSubmission(
            account_id=account_id,
            kind=SubmissionKind.TEAM,
            message_pk=message.pk,
            requested_disposition=requested.value,
            requested_by=requested_by,
            original_disposition=original.value,
            outcome_disposition=requested.value,
            outcome=f"final disposition changed from {original.value} to {requested.value}",
            status=SubmissionStatus.COMPLETED,
            subject=eml.subject if eml else message.subject,
            from_addr=message.from_addr,
            original_postfix_id=message.postfix_id,
            original_edf_hash=(eml.edf_hash if eml else None) or message.verdict.edf_hash,
            escalated_submission_id=user_report.id if user_report else None,
            detail=detail,
        ),
        Operation.RECLASSIFY,
        at,
        new_disposition=requested,
        reason=f"{RECLASSIFIED_PREFIX}{requested.value} by {requested_by} (was {original.value})",
        phish=requested in PHISH,
    )
    event = Reclassification(
        account_id=account_id,
        message_pk=message.pk,
        message_id=message.id,
        submission_id=team.id,
        original=original,
        requested=requested,
        requested_by=requested_by,
        at=at,
    )
    _learn(services, event, message)
    return event


def _learn(services: Services, event: Reclassification, message: StoredMessage) -> None:
    """What the account learns from the verdict (campaign, sender history, content model: `mailsec.learn`).
    A failure here is logged: the reclassification itself is recorded."""
    try:
        on_reclassified(services, event)
    except Exception:
        log.exception("learning from submission %s failed", event.submission_id)
