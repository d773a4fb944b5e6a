"""Stored messages to the wire shapes of `models.py`. Both SDK generations' names are always sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailsec.ids import format_ts
from mailsec.mime import parse_message
from mailsec.model import Operation
from mailsec.store.messages import ActionRecord, StoredMessage, TraceEntry
from mailsec.store.records import from_us

_POST_DELIVERY = {
    Operation.PREVIEW.value: "PREVIEW",
    Operation.QUARANTINE_RELEASE.value: "QUARANTINE_RELEASE",
    Operation.RELEASE.value: "QUARANTINE_RELEASE",
    Operation.SUBMISSION.value: "SUBMISSION",
    Operation.RECLASSIFY.value: "SUBMISSION",
    Operation.MOVE.value: "MOVE",
}
_AUTH_VALUES = {"pass", "neutral", "fail", "error", "none"}


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


def _auth(value: Any) -> str | None:
    return value if value in _AUTH_VALUES else ("error" if value else None)


def validation(verdict: dict[str, Any]) -> dict[str, Any]:
    v = verdict.get("validation") or {}
    return {
        "comment": v.get("comment"),
        "dkim": _auth(v.get("dkim")),
        "dmarc": _auth(v.get("dmarc")),
        "spf": _auth(v.get("spf")),
    }


def findings(verdict: dict[str, Any]) -> list[dict[str, Any]]:
    keys = ("attachment", "detail", "detection", "field", "name", "portion", "reason", "score", "value")
    return [{k: f.get(k) for k in keys} for f in verdict.get("findings", [])]


def message(m: StoredMessage, actions: list[ActionRecord], embed_actions: bool) -> dict[str, Any]:
    row, data, verdict = m.row, m.data, m.verdict
    scanned = m.scanned_at
    sent = from_us(row["sent_us"]) if row.get("sent_us") is not None else None
    ops = list(dict.fromkeys(_POST_DELIVERY[a.operation] for a in actions if a.operation in _POST_DELIVERY))
    props = {
        k: v
        for k, v in (verdict.get("properties") or {}).items()
        if k
        in (
            "allowlisted_pattern",
            "allowlisted_pattern_type",
            "blocklisted_message",
            "blocklisted_pattern",
            "whitelisted_pattern_type",
        )
    }
    return {
        "id": row["id"],
        "postfix_id": row["postfix_id"],
        "action_log": [action_entry(a) for a in actions] if embed_actions else [],
        "client_recipients": data.get("client_recipients", []),
        "detection_reasons": verdict.get("detection_reasons", []),
        "is_phish_submission": bool(row["is_phish_submission"]),
        "is_quarantined": bool(row["is_quarantined"]),
        "properties": props,
        "ts": format_ts(scanned),
        "alert_id": row["alert_id"],
        "delivery_mode": row["delivery_mode"],
        "delivery_status": delivery_status(row.get("delivery_status")),
        "edf_hash": row.get("edf_hash"),
        "envelope_from": row.get("envelope_from"),
        "envelope_to": data.get("envelope_to", []),
        "final_disposition": row["final_disposition"],
        "findings": findings(verdict),
        "from": row.get("from_addr"),
        "from_name": row.get("from_name"),
        "htmltext_structure_hash": row.get("htmltext_structure_hash"),
        "message_id": row.get("message_id"),
        "post_delivery_operations": ops,
        "postfix_id_outbound": row.get("postfix_id_outbound"),
        "replyto": row.get("replyto"),
        "scanned_at": iso_z(scanned),
        "sent_at": iso_z(sent) if sent else None,
        "sent_date": format_ts(sent) if sent else None,
        "smtp_helo_server_ip": row.get("smtp_helo_server_ip"),
        "smtp_previous_hop_ip": row.get("smtp_previous_hop_ip"),
        "subject": row.get("subject"),
        "threat_categories": verdict.get("threat_categories", []),
        "to": data.get("to", []),
        "to_name": data.get("to_name", []),
        "cc": data.get("cc", []),
        "validation": validation(verdict),
        "x_originating_ip": row.get("x_originating_ip"),
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
    sender = verdict.get("sender_info") or {}
    action = "QUARANTINED" if m.row["is_quarantined"] else (m.row.get("delivery_status") or "NONE").upper()
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
            "as_name": sender.get("as_name"),
            "as_number": sender.get("as_number"),
            "geo": sender.get("geo"),
            "ip": sender.get("ip") or m.row.get("smtp_helo_server_ip"),
            "pld": sender.get("pld"),
        },
        "threat_categories": categories,
        "validation": validation(verdict),
        "final_disposition": m.row["final_disposition"],
        "findings": findings(verdict),
        "detection_reasons": verdict.get("detection_reasons", []),
        "edf_hash": m.row.get("edf_hash"),
        "htmltext_structure_hash": m.row.get("htmltext_structure_hash"),
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
