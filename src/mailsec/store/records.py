"""What is stored for a message: the row, its search text and its filter terms, built from the parse and verdict."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from mailsec import ids
from mailsec.model import DeliveryMode, Disposition, Envelope, Finding, ParsedMessage, SenderInfo, Validation, Verdict

RECLASSIFIED_PREFIX = "Reclassified as "
"""How an analyst's reclassification begins its detection reason (`submissions` writes it; a rescan keeps it)."""


def to_us(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1_000_000)


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=UTC)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".") if "@" in address else ""


def link_domain(href: str) -> str:
    try:
        host = urlsplit(href if "://" in href else "http://" + href).hostname or ""
    except ValueError:
        return ""
    return host.lower().rstrip(".")


def domain_and_parents(domain: str) -> list[str]:
    """`a.b.example.com` → itself, `b.example.com`, `example.com`, `com` is left out (a bare TLD is no filter)."""
    labels = [label for label in domain.lower().strip(".").split(".") if label]
    if len(labels) < 2:
        return [".".join(labels)] if labels else []
    return [".".join(labels[i:]) for i in range(len(labels) - 1)]


def verdict_to_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "findings": [
            {
                "name": f.name,
                "detection": str(f.detection),
                "score": f.score,
                "reason": f.reason,
                "field": f.field,
                "portion": f.portion,
                "value": f.value,
                "attachment": f.attachment,
                "detail": f.detail,
                "category": f.category,
            }
            for f in verdict.findings
        ],
        "threat_categories": list(verdict.threat_categories),
        "detection_reasons": list(verdict.detection_reasons),
        "validation": {
            "spf": verdict.validation.spf,
            "dkim": verdict.validation.dkim,
            "dmarc": verdict.validation.dmarc,
            "comment": verdict.validation.comment,
        },
        "sender_info": {
            "ip": verdict.sender_info.ip,
            "pld": verdict.sender_info.pld,
            "as_number": verdict.sender_info.as_number,
            "as_name": verdict.sender_info.as_name,
            "geo": verdict.sender_info.geo,
        },
        "properties": dict(verdict.properties),
        "attachment_detections": dict(verdict.attachment_detections),
        "encrypted_attachments": sorted(verdict.encrypted_attachments),
    }


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


def _disposition(value: Any) -> Disposition:
    try:
        return Disposition(str(value))
    except ValueError:
        return Disposition.UNKNOWN


def verdict_from_json(
    doc: dict[str, Any], disposition: Disposition, edf_hash: str | None, htmltext_structure_hash: str | None
) -> Verdict:
    """The inverse of `verdict_to_json`; the disposition and hashes live in their own columns. A field an older
    version did not write reads as the model's default."""
    v = doc.get("validation") or {}
    s = doc.get("sender_info") or {}
    findings = tuple(
        Finding(
            name=str(f.get("name") or ""), detection=_disposition(f.get("detection")),
            score=f["score"] if isinstance(f.get("score"), int | float) else 0.0, reason=str(f.get("reason") or ""),
            field=_optional_str(f.get("field")), portion=_optional_str(f.get("portion")),
            value=_optional_str(f.get("value")), attachment=_optional_str(f.get("attachment")),
            detail=_optional_str(f.get("detail")), category=_optional_str(f.get("category")),
        )
        for f in doc.get("findings") or ()
        if isinstance(f, dict)
    )  # fmt: skip
    as_number = s.get("as_number")
    return Verdict(
        disposition=disposition,
        findings=findings,
        threat_categories=_strings(doc.get("threat_categories")),
        detection_reasons=_strings(doc.get("detection_reasons")),
        validation=Validation(
            spf=str(v.get("spf") or "none"), dkim=str(v.get("dkim") or "none"), dmarc=str(v.get("dmarc") or "none"),
            comment=_optional_str(v.get("comment")),
        ),
        sender_info=SenderInfo(
            ip=_optional_str(s.get("ip")), pld=_optional_str(s.get("pld")),
            as_number=as_number if isinstance(as_number, int) else None, as_name=_optional_str(s.get("as_name")),
            geo=_optional_str(s.get("geo")),
        ),
        properties=dict(doc.get("properties") or {}),
        edf_hash=edf_hash,
        htmltext_structure_hash=htmltext_structure_hash,
        attachment_detections={str(k): str(x) for k, x in (doc.get("attachment_detections") or {}).items()},
        encrypted_attachments=frozenset(_strings(doc.get("encrypted_attachments"))),
    )  # fmt: skip


@dataclass(frozen=True)
class MessageData:
    """The envelope and header facts stored as the message's `data_json` (what has no column of its own)."""

    to: tuple[str, ...] = ()
    to_name: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    cc_name: tuple[str, ...] = ()
    envelope_to: tuple[str, ...] = ()
    client_recipients: tuple[str, ...] = ()
    sent_at: str | None = None
    client_ip: str | None = None
    helo: str | None = None
    tls: bool = False
    defects: tuple[str, ...] = ()
    received_header: str | None = None  # the Received line the gateway wrote on acceptance
    received_us: int | None = None  # when the gateway accepted it

    def to_json(self) -> dict[str, Any]:
        return {
            "to": list(self.to),
            "to_name": list(self.to_name),
            "cc": list(self.cc),
            "cc_name": list(self.cc_name),
            "envelope_to": list(self.envelope_to),
            "client_recipients": list(self.client_recipients),
            "sent_at": self.sent_at,
            "client_ip": self.client_ip,
            "helo": self.helo,
            "tls": self.tls,
            "defects": list(self.defects),
            **({"received_header": self.received_header} if self.received_header else {}),
            **({"received_us": self.received_us} if self.received_us else {}),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> MessageData:
        received_us = doc.get("received_us")
        return cls(
            to=_strings(doc.get("to")),
            to_name=_strings(doc.get("to_name")),
            cc=_strings(doc.get("cc")),
            cc_name=_strings(doc.get("cc_name")),
            envelope_to=_strings(doc.get("envelope_to")),
            client_recipients=_strings(doc.get("client_recipients")),
            sent_at=_optional_str(doc.get("sent_at")),
            client_ip=_optional_str(doc.get("client_ip")),
            helo=_optional_str(doc.get("helo")),
            tls=bool(doc.get("tls", False)),
            defects=_strings(doc.get("defects")),
            received_header=_optional_str(doc.get("received_header")) or None,
            received_us=int(received_us) if isinstance(received_us, int | float) and received_us else None,
        )


@dataclass
class MessageRecord:
    """Everything `MessageRepo.save` writes for one message."""

    account_id: str
    postfix_id: str
    scanned_at: datetime
    raw_sha256: str
    raw_size: int
    delivery_mode: DeliveryMode
    parsed: ParsedMessage
    envelope: Envelope
    verdict: Verdict
    delivery_status: str | None = None
    is_quarantined: bool = False
    is_phish_submission: bool = False
    trace: list[tuple[str, str, datetime]] = field(default_factory=list)
    # address → (status, detail) for recipients that do not start as `delivery_status` (or queued), e.g. the queue
    # worker's `sending` or `quarantined`, written in the same transaction as the message
    recipient_states: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    @cached_property
    def alert_id(self) -> str:
        return ids.alert_id(self.postfix_id, self.scanned_at)

    @cached_property
    def investigate_id(self) -> str:  # cached: it hashes the raw message, and a save asks four times
        return ids.investigate_id(self.postfix_id, self.scanned_at, self.parsed.raw)

    @property
    def envelope_from(self) -> str:
        if self.envelope.mail_from:
            return self.envelope.mail_from
        return_path = (self.parsed.header("Return-Path") or "").strip().strip("<>").strip()
        if "@" in return_path:
            return return_path
        return self.parsed.from_.email if self.parsed.from_ else ""

    @property
    def envelope_to(self) -> list[str]:
        if self.envelope.rcpt_to:
            return list(self.envelope.rcpt_to)
        for name in ("Delivered-To", "X-Original-To", "Envelope-To"):
            values = [v.strip().strip("<>") for v in self.parsed.header_all(name) if "@" in v]
            if values:
                return values[:1]
        return [a.email for a in self.parsed.to + self.parsed.cc if a.email]

    def data(self) -> MessageData:
        p = self.parsed
        return MessageData(
            to=tuple(a.email for a in p.to),
            to_name=tuple(a.name for a in p.to),
            cc=tuple(a.email for a in p.cc),
            cc_name=tuple(a.name for a in p.cc),
            envelope_to=tuple(self.envelope_to),
            client_recipients=tuple(self.envelope_to),
            sent_at=p.sent_at.isoformat() if p.sent_at else None,
            client_ip=self.envelope.client_ip,
            helo=self.envelope.helo,
            tls=self.envelope.tls,
            defects=tuple(p.defects[:50]),
            received_header=self.envelope.received_header or None,
            received_us=self.envelope.received_us or None,
        )

    def search_text(self) -> str:
        p = self.parsed
        v = self.verdict
        parts: list[str | None] = [
            self.alert_id,
            self.investigate_id,
            self.envelope_from,
            p.from_.email if p.from_ else None,
            p.from_.name if p.from_ else None,
            str(v.disposition),
            *(a.email for a in p.cc),
            *(a.name for a in p.cc),
            *(a.email for a in p.to),
            *(a.name for a in p.to),
            *self.envelope_to,
            *(x for a in p.attachments for x in (a.md5, a.sha1, a.sha256, a.name)),
            *v.detection_reasons,
            ids.format_ts(self.scanned_at),
            ids.format_ts(p.sent_at) if p.sent_at else None,
            *(a.email for a in p.reply_to),
            p.message_id,
            p.smtp_helo_server_ip,
            p.smtp_previous_hop_ip,
            p.x_originating_ip,
            p.subject,
        ]
        return "\n".join(s for s in parts if s).lower()

    def terms(self) -> set[tuple[str, str]]:
        p = self.parsed
        out: set[tuple[str, str]] = set()
        senders = {a.lower() for a in (self.envelope_from, p.from_.email if p.from_ else "") if a}
        rcpts = {a.lower() for a in [*self.envelope_to, *(x.email for x in p.to + p.cc)] if a}
        for kind_addr, kind_dom, addresses in (("sa", "sd", senders), ("ra", "rd", rcpts)):
            for addr in addresses:
                out.add((kind_addr, addr[:320]))
                for dom in domain_and_parents(domain_of(addr)):
                    out.add((kind_dom, dom))
                    out.add(("d", dom))
        for link in p.links[:200]:
            for dom in domain_and_parents(link_domain(link.href)):
                out.add(("d", dom))
        return out


def disposition_is_detection(disposition: Disposition | str) -> bool:
    return str(disposition) != Disposition.NONE.value


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
