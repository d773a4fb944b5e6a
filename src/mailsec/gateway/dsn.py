"""Delivery status notifications (RFC 3464): what the envelope sender is told when mail the gateway accepted with
`250` could not be delivered. Every MTA owes this (RFC 5321 6.1): a silent bounce loses mail nobody knows is lost.
Never for a null sender, and never for mail that is itself a bounce or an auto-reply (RFC 3834), so two systems
cannot bounce at each other forever. Pure functions: the worker decides when, gateway/bounce.py sends."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime

MAX_RETURNED_HEADER_BYTES = 64 * 1024  # the original's headers are returned (text/rfc822-headers), not its body
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailer_daemon"})


@dataclass(frozen=True)
class Failure:
    """One recipient the next hop refused for good (or that was given up on)."""

    recipient: str
    code: int  # the SMTP reply code
    text: str  # the reply text, enhanced status first when the next hop sent one
    remote_mta: str | None = None  # the next hop's host, when it answered
    expired: bool = False  # given up after the queue lifetime, not refused

    @property
    def status(self) -> str:
        m = _STATUS.search(self.text)
        if self.expired:
            return "4.4.7"
        if m and m.group(1) == "5":
            return m.group(0)
        return "5.0.0"


def _head(raw: bytes) -> bytes:
    m = _HEAD_END.search(raw)
    return raw[: m.start()] if m else raw


def _header_values(head: bytes, name: str) -> list[str]:
    pattern = re.compile(rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:[ \t]*((?:.*)(?:\r?\n[ \t].*)*)")
    return [" ".join(m.group(1).decode("latin-1").split()) for m in pattern.finditer(head)]


def wants_dsn(mail_from: str, raw: bytes) -> bool:
    """Whether a failure of this message may be reported to its envelope sender."""
    sender = mail_from.strip().strip("<>")
    if not sender or "@" not in sender:
        return False  # null sender: the message is a bounce itself (RFC 5321 4.5.5)
    if sender.rpartition("@")[0].lower() in _BOUNCE_SENDERS:
        return False
    head = _head(raw)
    if any(v.lower() != "no" for v in _header_values(head, "Auto-Submitted")):
        return False  # auto-generated or auto-replied (RFC 3834)
    content_type = " ".join(_header_values(head, "Content-Type")).lower()
    if "multipart/report" in content_type and "delivery-status" in content_type:
        return False
    return not any(v.lower() in ("bulk", "junk", "list") for v in _header_values(head, "Precedence"))


def _line(text: str, limit: int = 900) -> str:
    """One header or field line: no line breaks, ASCII, bounded (a hostile reply text can be anything)."""
    flat = " ".join(text.replace("\r", " ").replace("\n", " ").split())
    return flat.encode("ascii", "replace").decode("ascii")[:limit]


def _returned_headers(raw: bytes) -> bytes:
    head = _head(raw)[:MAX_RETURNED_HEADER_BYTES]
    lines = re.split(rb"\r\n|\r|\n", head)
    return b"".join(line[:998] + b"\r\n" for line in lines if line)


def build_dsn(
    *,
    reporting_mta: str,
    queue_id: str,
    mail_from: str,
    failures: list[Failure],
    original: bytes,
    arrival: datetime,
    now: datetime,
) -> bytes:
    """The notification, ready to send with a null envelope sender: a human-readable part, the
    message/delivery-status part (one block per recipient) and the original's headers."""
    host = _line(reporting_mta, 200) or "mailsec.local"
    sender = _line(mail_from.strip().strip("<>"), 300)
    boundary = f"{queue_id}.{secrets.token_hex(8)}/{host}"
    human = [
        f"This is the mail system at host {host}.",
        "",
        "Your message could not be delivered to one or more recipients. It was accepted, then refused by the",
        "next mail server (or could not be delivered in time). The reasons are below; the message was not delivered",
        "to these recipients and will not be retried.",
        "",
    ]
    for f in failures:
        human.append(f"<{_line(f.recipient, 300)}>: {_line(f'{f.code} {f.text}', 800)}")
    status = [
        f"Reporting-MTA: dns; {host}",
        f"X-Postfix-Queue-ID: {_line(queue_id, 64)}",
        f"X-Postfix-Sender: rfc822; {sender}",
        f"Arrival-Date: {format_datetime(arrival)}",
    ]
    for f in failures:
        status += [
            "",
            f"Final-Recipient: rfc822; {_line(f.recipient, 300)}",
            f"Original-Recipient: rfc822; {_line(f.recipient, 300)}",
            "Action: failed",
            f"Status: {f.status}",
        ]
        if f.remote_mta:
            status.append(f"Remote-MTA: dns; {_line(f.remote_mta, 200)}")
        status.append(f"Diagnostic-Code: smtp; {_line(f'{f.code} {f.text}', 800)}")
        status.append(f"Last-Attempt-Date: {format_datetime(now)}")
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{host}>",
        f"To: <{sender}>",
        "Subject: Undelivered Mail Returned to Sender",
        f"Date: {format_datetime(now)}",
        f"Message-ID: <{queue_id}.dsn.{secrets.token_hex(6)}@{host}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"',
        "Content-Transfer-Encoding: 7bit",
    ]
    crlf = "\r\n"
    text = (
        crlf.join(head)
        + crlf * 2
        + "This is a MIME-encapsulated message."
        + crlf * 2
        + f"--{boundary}{crlf}Content-Description: Notification{crlf}Content-Type: text/plain; charset=us-ascii"
        + crlf * 2
        + crlf.join(human)
        + crlf * 2
        + f"--{boundary}{crlf}Content-Description: Delivery report{crlf}Content-Type: message/delivery-status"
        + crlf * 2
        + crlf.join(status)
        + crlf * 2
        + f"--{boundary}{crlf}Content-Description: Undelivered Message Headers{crlf}Content-Type: text/rfc822-headers"
        + crlf * 2
    )
    return text.encode("ascii") + _returned_headers(original) + f"{crlf}--{boundary}--{crlf}".encode("ascii")
