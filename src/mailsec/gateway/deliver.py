"""Delivery to a next hop over SMTP or LMTP. Returns the next hop's own reply for every recipient (LMTP answers
DATA once per recipient), so callers can record exactly what happened: 2xx delivered, 4xx (or no connection)
temporary, 5xx permanent."""

from __future__ import annotations

import re
import smtplib
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class NextHop:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class Reply:
    code: int
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


def parse_next_hop(value: str) -> NextHop:
    """`smtp://HOST:PORT` or `lmtp://HOST:PORT` (default ports 25 and 24)."""
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "lmtp") or not parts.hostname:
        raise ValueError(f"next hop {value!r} is not smtp://HOST:PORT or lmtp://HOST:PORT")
    try:
        port = parts.port or (25 if scheme == "smtp" else 24)
    except ValueError as exc:
        raise ValueError(f"next hop {value!r} has a bad port") from exc
    return NextHop(scheme, parts.hostname, port)


def _crlf(data: bytes) -> bytes:
    return re.sub(rb"\r?\n", b"\r\n", data)


def _text(msg: bytes | str) -> str:
    value = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return " ".join(value.split())


def deliver(
    hop: NextHop,
    mail_from: str,
    recipients: list[str],
    data: bytes,
    helo: str = "mailsec.local",
    timeout: float = 30.0,
) -> dict[str, Reply]:
    """One transaction to `hop`; a reply for every recipient. A connection failure is a 421 for all of them."""
    replies: dict[str, Reply] = {}
    if not recipients:
        return replies
    conn: smtplib.SMTP | None = None
    try:
        conn = (
            smtplib.LMTP(hop.host, hop.port, local_hostname=helo, timeout=timeout)
            if hop.scheme == "lmtp"
            else smtplib.SMTP(hop.host, hop.port, local_hostname=helo, timeout=timeout)
        )
        code, msg = conn.ehlo(helo)
        if code != 250:
            code, msg = conn.helo(helo)
            if code != 250:
                return {r: Reply(code, _text(msg)) for r in recipients}
        options: list[str] = []
        if re.search(rb"[\x80-\xff]", data) and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (mail_from.isascii() and all(r.isascii() for r in recipients)):
            if not conn.has_extn("smtputf8"):
                return {
                    r: Reply(553, f"5.6.7 {hop} does not support SMTPUTF8 for a non-ASCII address") for r in recipients
                }
            options.append("SMTPUTF8")
        code, msg = conn.mail(mail_from, options)
        if code != 250:
            return {r: Reply(code, _text(msg)) for r in recipients}
        accepted: list[str] = []
        for rcpt in recipients:
            code, msg = conn.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                replies[rcpt] = Reply(code, _text(msg))
        if not accepted:
            conn.rset()
            return replies
        code, msg = conn.data(_crlf(data))
        replies[accepted[0]] = Reply(code, _text(msg))
        for rcpt in accepted[1:]:
            if hop.scheme == "lmtp":
                code, msg = conn.getreply()
            replies[rcpt] = Reply(code, _text(msg))
        return replies
    except smtplib.SMTPDataError as exc:
        for rcpt in recipients:
            replies.setdefault(rcpt, Reply(exc.smtp_code, _text(exc.smtp_error)))
        return replies
    except (OSError, smtplib.SMTPException) as exc:
        reason = f"4.4.1 connection to {hop} failed: {type(exc).__name__}: {exc}".strip()
        for rcpt in recipients:
            replies.setdefault(rcpt, Reply(421, reason))
        return replies
    finally:
        if conn is not None:
            try:
                conn.quit()
            except (OSError, smtplib.SMTPException):
                conn.close()
