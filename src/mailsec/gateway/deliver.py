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
    """Every line end as CRLF: bare LF and bare CR alike (the parser splits lines at both, so the next hop must too)."""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", data)


def _text(msg: bytes | str) -> str:
    value = msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)
    return " ".join(value.split())


class Connections:
    """Open connections to next hops, kept for a batch of messages: one connect and one LHLO/EHLO per hop instead of
    one per message (the next hop saves a process start or session setup too). A connection that fails before its
    MAIL FROM was accepted is replaced once (the server may have closed an idle session); after that, nothing is
    retried here, so a message is never sent twice by this layer. `close()` ends every session with QUIT."""

    def __init__(self) -> None:
        self._open: dict[tuple[NextHop, str, float], smtplib.SMTP] = {}

    def take(self, hop: NextHop, helo: str, timeout: float) -> smtplib.SMTP | None:
        return self._open.pop((hop, helo, timeout), None)

    def give_back(self, hop: NextHop, helo: str, timeout: float, conn: smtplib.SMTP) -> None:
        old = self._open.pop((hop, helo, timeout), None)
        if old is not None:
            _quit(old)
        self._open[(hop, helo, timeout)] = conn

    def close(self) -> None:
        while self._open:
            _quit(self._open.popitem()[1])

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quit(conn: smtplib.SMTP) -> None:
    try:
        conn.quit()
    except (OSError, smtplib.SMTPException):
        conn.close()


def _drain(conn: smtplib.SMTP, replies: int) -> bool:
    """Read the replies to pipelined commands after a refused MAIL; True when the session is still in step."""
    try:
        for _ in range(replies):
            conn.getreply()
    except (OSError, smtplib.SMTPException):
        return False
    return True


def _reset(conn: smtplib.SMTP) -> bool:
    """RSET after a refused transaction; True when the session is usable for the next message."""
    try:
        return conn.rset()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def _mail(
    conn: smtplib.SMTP, mail_from: str, options: list[str], recipients: list[str], pipelining: bool
) -> tuple[int, bytes]:
    """MAIL FROM, and its reply. With PIPELINING (RFC 2920) the RCPTs and DATA go in the same write: one round trip
    for the envelope instead of one per command; the caller reads their replies in order."""
    if not pipelining:
        return conn.mail(mail_from, options)
    extra = (" " + " ".join(options)) if options else ""
    lines = [f"MAIL FROM:{smtplib.quoteaddr(mail_from)}{extra}\r\n"]
    lines += [f"RCPT TO:{smtplib.quoteaddr(r)}\r\n" for r in recipients]
    conn.send("".join(lines) + "DATA\r\n")
    return conn.getreply()


def _connect(hop: NextHop, helo: str, timeout: float) -> tuple[smtplib.SMTP, Reply | None]:
    conn = (
        smtplib.LMTP(hop.host, hop.port, local_hostname=helo, timeout=timeout)
        if hop.scheme == "lmtp"
        else smtplib.SMTP(hop.host, hop.port, local_hostname=helo, timeout=timeout)
    )
    code, msg = conn.ehlo(helo)
    if code != 250:
        code, msg = conn.helo(helo)
        if code != 250:
            return conn, Reply(code, _text(msg))
    return conn, None


def deliver(
    hop: NextHop,
    mail_from: str,
    recipients: list[str],
    data: bytes,
    helo: str = "mailsec.local",
    timeout: float = 30.0,
    connections: Connections | None = None,
) -> dict[str, Reply]:
    """One transaction to `hop`; a reply for every recipient. A connection failure is a 421 for all of them.
    With `connections`, an open session to the hop is reused and, when the transaction ended cleanly, kept."""
    replies: dict[str, Reply] = {}
    if not recipients:
        return replies
    conn: smtplib.SMTP | None = connections.take(hop, helo, timeout) if connections is not None else None
    reused = conn is not None
    keep = False
    try:
        if conn is None:
            conn, refused = _connect(hop, helo, timeout)
            if refused is not None:
                return {r: refused for r in recipients}
        options: list[str] = []
        if re.search(rb"[\x80-\xff]", data) and conn.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        if not (mail_from.isascii() and all(r.isascii() for r in recipients)):
            if not conn.has_extn("smtputf8"):
                keep = True
                return {
                    r: Reply(553, f"5.6.7 {hop} does not support SMTPUTF8 for a non-ASCII address") for r in recipients
                }
            options.append("SMTPUTF8")
        pipelining = "SMTPUTF8" not in options and conn.has_extn("pipelining")
        try:
            code, msg = _mail(conn, mail_from, options, recipients, pipelining)
        except (OSError, smtplib.SMTPServerDisconnected):
            if not reused:
                raise
            code, msg = 421, b"session closed"
        if code == 421 and reused:
            # The kept session was closed by the next hop (421: it is shutting the channel; or it is gone): nothing
            # of this message was sent on it, so a fresh session is no duplicate.
            conn.close()
            conn, reused = None, False
            conn, refused = _connect(hop, helo, timeout)
            if refused is not None:
                return {r: refused for r in recipients}
            pipelining = "SMTPUTF8" not in options and conn.has_extn("pipelining")
            code, msg = _mail(conn, mail_from, options, recipients, pipelining)
        if code != 250:
            keep = code != 421 and _drain(conn, len(recipients) + 1 if pipelining else 0) and _reset(conn)
            return {r: Reply(code, _text(msg)) for r in recipients}
        accepted: list[str] = []
        for rcpt in recipients:
            code, msg = conn.getreply() if pipelining else conn.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                replies[rcpt] = Reply(code, _text(msg))
        if pipelining:
            code, msg = conn.getreply()  # to DATA: 354 when a recipient was accepted
            if accepted and code != 354:
                raise smtplib.SMTPDataError(code, msg)
        if not accepted:
            keep = _reset(conn)
            return replies
        if pipelining:
            body = smtplib._quote_periods(_crlf(data))  # type: ignore[attr-defined]
            conn.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            code, msg = conn.getreply()
        else:
            code, msg = conn.data(_crlf(data))
        replies[accepted[0]] = Reply(code, _text(msg))
        for rcpt in accepted[1:]:
            if hop.scheme == "lmtp":
                code, msg = conn.getreply()
            replies[rcpt] = Reply(code, _text(msg))
        keep = True
        return replies
    except smtplib.SMTPDataError as exc:
        for rcpt in recipients:
            replies.setdefault(rcpt, Reply(exc.smtp_code, _text(exc.smtp_error)))
        return replies
    except (OSError, smtplib.SMTPException) as exc:
        keep = False  # the session's state is unknown
        reason = f"4.4.1 connection to {hop} failed: {type(exc).__name__}: {exc}".strip()
        for rcpt in recipients:
            replies.setdefault(rcpt, Reply(421, reason))
        return replies
    finally:
        if conn is not None:
            if keep and connections is not None:
                connections.give_back(hop, helo, timeout, conn)
            else:
                _quit(conn)
