"""Response shapes, the superset of what both SDK generations read (see reference/sdk-required-fields.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DispositionName = Literal[
    "MALICIOUS", "MALICIOUS-BEC", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "ENCRYPTED", "EXTERNAL", "UNKNOWN", "NONE"
]
DeliveryStatusName = Literal[
    "delivered", "moved", "quarantined", "rejected", "deferred", "bounced", "queued", "move_failed"
]
AuthResult = Literal["pass", "neutral", "fail", "error", "none"]
OperationName = Literal["MOVE", "RELEASE", "RECLASSIFY", "SUBMISSION", "QUARANTINE_RELEASE", "PREVIEW"]
PatternType = Literal[
    "quarantine_release",
    "acceptable_sender",
    "allowed_sender",
    "allowed_recipient",
    "domain_similarity",
    "domain_recency",
    "managed_acceptable_sender",
    "outbound_ndr",
]


class ActionLogProperties(BaseModel):
    folder: str | None = None
    requested_by: str | None = None


class ActionLogEntry(BaseModel):
    completed_at: str
    completed_timestamp: str | None = None
    operation: OperationName
    properties: ActionLogProperties | None = None
    status: str | None = None


class Properties(BaseModel):
    allowlisted_pattern: str | None = None
    allowlisted_pattern_type: PatternType | None = None
    blocklisted_message: bool | None = None
    blocklisted_pattern: str | None = None
    whitelisted_pattern_type: PatternType | None = None


class FindingOut(BaseModel):
    attachment: str | None = None
    detail: str | None = None
    detection: DispositionName | None = None
    field: str | None = None
    name: str | None = None
    portion: str | None = None
    reason: str | None = None
    score: float | None = None
    value: str | None = None


class ValidationOut(BaseModel):
    comment: str | None = None
    dkim: AuthResult | None = None
    dmarc: AuthResult | None = None
    spf: AuthResult | None = None


class MessageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    postfix_id: str
    action_log: list[ActionLogEntry]
    client_recipients: list[str]
    detection_reasons: list[str]
    is_phish_submission: bool
    is_quarantined: bool
    properties: Properties
    ts: str
    alert_id: str | None = None
    delivery_mode: str | None = None
    delivery_status: list[DeliveryStatusName] | None = None
    edf_hash: str | None = None
    envelope_from: str | None = None
    envelope_to: list[str] | None = None
    final_disposition: DispositionName | None = None
    findings: list[FindingOut] | None = None
    from_: str | None = Field(default=None, alias="from")
    from_name: str | None = None
    htmltext_structure_hash: str | None = None
    message_id: str | None = None
    post_delivery_operations: list[Literal["PREVIEW", "QUARANTINE_RELEASE", "SUBMISSION", "MOVE"]] | None = None
    postfix_id_outbound: str | None = None
    replyto: str | None = None
    scanned_at: str | None = None
    sent_at: str | None = None
    sent_date: str | None = None
    smtp_helo_server_ip: str | None = None
    smtp_previous_hop_ip: str | None = None
    subject: str | None = None
    threat_categories: list[str] | None = None
    to: list[str] | None = None
    to_name: list[str] | None = None
    cc: list[str] | None = None
    validation: ValidationOut | None = None
    x_originating_ip: str | None = None


class AttachmentOut(BaseModel):
    size: int
    content_type: str | None = None
    detection: DispositionName | None = None
    encrypted: bool | None = None
    name: str | None = None
    filename: str | None = None
    md5: str | None = None
    sha1: str | None = None
    sha256: str | None = None


class HeaderOut(BaseModel):
    name: str
    value: str


class LinkOut(BaseModel):
    href: str
    text: str | None = None


class SenderInfoOut(BaseModel):
    as_name: str | None = None
    as_number: int | None = None
    geo: str | None = None
    ip: str | None = None
    pld: str | None = None


class ThreatCategoryOut(BaseModel):
    id: int
    name: str | None = None
    description: str | None = None


class DetectionsOut(BaseModel):
    action: str
    attachments: list[AttachmentOut]
    headers: list[HeaderOut]
    links: list[LinkOut]
    sender_info: SenderInfoOut
    threat_categories: list[ThreatCategoryOut]
    validation: ValidationOut
    final_disposition: DispositionName | None = None
    findings: list[FindingOut] | None = None
    detection_reasons: list[str] | None = None
    edf_hash: str | None = None
    htmltext_structure_hash: str | None = None


class RawOut(BaseModel):
    raw: str
    encoding: Literal["utf-8", "latin-1"] = Field(
        "utf-8", description="How `raw` maps back to the stored bytes: UTF-8, or one code point per byte (latin-1)."
    )


class TraceLineOut(BaseModel):
    lineno: int
    message: str
    ts: str
    logged_at: str


class TraceSide(BaseModel):
    lines: list[TraceLineOut]
    pending: bool


class TraceOut(BaseModel):
    inbound: TraceSide
    outbound: TraceSide
