"""Stored messages to the wire shapes of `models.py`. Both SDK generations' names are always sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailsec.ids import format_ts
from mailsec.mime import parse_message
from mailsec.model import Operation, Verdict
from mailsec.store.messages import ActionRecord, StoredMessage, TraceEntry

_POST_DELIVERY = {
    Operation.PREVIEW.value: "PREVIEW",
    Operation.QUARANTINE_RELEASE.value: "QUARANTINE_RELEASE",
    Operation.RELEASE.value: "QUARANTINE_RELEASE",
    Operation.SUBMISSION.value: "SUBMISSION",
    Operation.RECLASSIFY.value: "SUBMISSION",
    Operation.MOVE.value: "MOVE",
}
_AUTH_VALUES = {"pass", "neutral", "fail", "error", "none"}
_WIRE_PROPERTIES = (
    "allowlisted_pattern",
    "allowlisted_pattern_type",
    "blocklisted_message",
    "blocklisted_pattern",
    "whitelisted_pattern_type",
)


def delivery_status(status: str | None) -> list[str] | None:
    """The wire carries a list (reference schema, SDK 5.9); the store keeps the message's one current status."""
    return [status] if status else None


def iso_z(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def action_entry(a: ActionRecord) -> dict[str, Any]:
    return {
        "completed_at": iso_z(a.completed_at),
        "completed_timestamp": iso_z(a.completed_at),
        "operation": a.operation,
        "properties": {"folder": a.folder, "requested_by": a.requested_by},
        "status": a.status,
    }


def _auth(value: str | None) -> str | None:
    return value if value in _AUTH_VALUES else ("error" if value else None)


def validation(verdict: Verdict) -> dict[str, Any]:
    v = verdict.validation
    return {"comment": v.comment, "dkim": _auth(v.dkim), "dmarc": _auth(v.dmarc), "spf": _auth(v.spf)}


def findings(verdict: Verdict) -> list[dict[str, Any]]:
    return [
        {
            "attachment": f.attachment,
            "detail": f.detail,
            "detection": str(f.detection),
            "field": f.field,
            "name": f.name,
            "portion": f.portion,
            "reason": f.reason,
            "score": f.score,
            "value": f.value,
        }
        for f in verdict.findings
    ]


def message(m: StoredMessage, actions: list[ActionRecord], embed_actions: bool) -> dict[str, Any]:
    data, verdict = m.data, m.verdict
    scanned, sent = m.scanned_at, m.sent_at
    ops = list(dict.fromkeys(_POST_DELIVERY[a.operation] for a in actions if a.operation in _POST_DELIVERY))
    props = {k: v for k, v in verdict.properties.items() if k in _WIRE_PROPERTIES}
    return {
        "id": m.id,
        "postfix_id": m.postfix_id,
        "action_log": [action_entry(a) for a in actions] if embed_actions else [],
        "client_recipients": list(data.client_recipients),
        "detection_reasons": list(verdict.detection_reasons),
        "is_phish_submission": m.is_phish_submission,
        "is_quarantined": m.is_quarantined,
        "properties": props,
        "ts": format_ts(scanned),
        "alert_id": m.alert_id,
        "delivery_mode": str(m.delivery_mode),
        "delivery_status": delivery_status(m.delivery_status),
        "edf_hash": verdict.edf_hash,
        "envelope_from": m.envelope_from,
        "envelope_to": list(data.envelope_to),
        "final_disposition": str(m.final_disposition),
        "findings": findings(verdict),
        "from": m.from_addr,
        "from_name": m.from_name,
        "htmltext_structure_hash": verdict.htmltext_structure_hash,
        "message_id": m.internet_message_id,
        "post_delivery_operations": ops,
        "postfix_id_outbound": m.postfix_id_outbound,
        "replyto": m.replyto,
        "scanned_at": iso_z(scanned),
        "sent_at": iso_z(sent) if sent else None,
        "sent_date": format_ts(sent) if sent else None,
        "smtp_helo_server_ip": m.smtp_helo_server_ip,
        "smtp_previous_hop_ip": m.smtp_previous_hop_ip,
        "subject": m.subject,
        "threat_categories": list(verdict.threat_categories),
        "to": list(data.to),
        "to_name": list(data.to_name),
        "cc": list(data.cc),
        "validation": validation(verdict),
        "x_originating_ip": m.x_originating_ip,
    }


def detections(
    m: StoredMessage,
    raw: bytes,
    attachments: list[dict[str, Any]],
    links: list[dict[str, Any]],
    categories: list[dict[str, Any]],
) -> dict[str, Any]:
    verdict = m.verdict
    parsed = parse_message(raw)
    sender = verdict.sender_info
    action = "QUARANTINED" if m.is_quarantined else (m.delivery_status or "NONE").upper()
    return {
        "action": action,
        "attachments": [
            {
                "size": a["size"],
                "content_type": a["content_type"],
                "detection": a["detection"],
                "encrypted": bool(a["encrypted"]),
                "name": a["name"],
                "filename": a["name"],
                "md5": a["md5"],
                "sha1": a["sha1"],
                "sha256": a["sha256"],
            }
            for a in attachments
        ],
        "headers": [{"name": k, "value": v} for k, v in parsed.headers],
        "links": [{"href": lk["href"], "text": lk["text"] or None} for lk in links],
        "sender_info": {
            "as_name": sender.as_name,
            "as_number": sender.as_number,
            "geo": sender.geo,
            "ip": sender.ip or m.smtp_helo_server_ip,
            "pld": sender.pld,
        },
        "threat_categories": categories,
        "validation": validation(verdict),
        "final_disposition": str(m.final_disposition),
        "findings": findings(verdict),
        "detection_reasons": list(verdict.detection_reasons),
        "edf_hash": verdict.edf_hash,
        "htmltext_structure_hash": verdict.htmltext_structure_hash,
    }


def raw_text(raw: bytes) -> dict[str, str]:
    try:
        return {"raw": raw.decode("utf-8"), "encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"raw": raw.decode("latin-1"), "encoding": "latin-1"}


def trace(lines: dict[str, list[TraceEntry]], pending: dict[str, bool]) -> dict[str, Any]:
    def side(name: str) -> dict[str, Any]:
        return {
            "lines": [
                {"lineno": e.lineno, "message": e.message, "ts": iso_z(e.logged_at), "logged_at": iso_z(e.logged_at)}
                for e in lines.get(name, [])
            ],
            "pending": pending.get(name, False),
        }

    return {"inbound": side("inbound"), "outbound": side("outbound")}
