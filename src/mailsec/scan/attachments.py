"""Attachment analysis. Stub until it lands."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsec.model import Finding, ParsedMessage


@dataclass(frozen=True)
class AttachmentOutcome:
    findings: tuple[Finding, ...] = ()
    detections: dict[str, str] = field(default_factory=dict)  # sha256 -> disposition name
    encrypted: frozenset[str] = frozenset()  # sha256 of encrypted attachments


def analyze_attachments(parsed: ParsedMessage) -> AttachmentOutcome:
    return AttachmentOutcome()
