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


@dataclass
class _Session:
    """One session to a next hop during one transaction. `keep`: the transaction ended cleanly, so the session may
    carry the next message (given back to the pool); otherwise it is closed."""

    hop: NextHop
    conn: smtplib.SMTP
    reused: bool
    pipelining: bool = False
    keep: bool = False


Replies = dict[str, Reply]


def _open(hop: NextHop, helo: str, timeout: float, connections: Connections | None) -> tuple[_Session, Reply | None]:
    """A kept session to the hop, or a new one (its greeting and EHLO/LHLO refused: the reply for everyone)."""
    conn = connections.take(hop, helo, timeout) if connections is not None else None
    if conn is not None:
        return _Session(hop, conn, reused=True), None
    conn, refused = _connect(hop, helo, timeout)
    return _Session(hop, conn, reused=False), refused


def _options(session: _Session, mail_from: str, recipients: list[str], data: bytes) -> list[str] | Reply:
    """MAIL FROM parameters for this message, or the refusal when the hop cannot take it (no SMTPUTF8)."""
    conn = session.conn
    options: list[str] = []
    if re.search(rb"[\x80-\xff]", data) and conn.has_extn("8bitmime"):
        options.append("BODY=8BITMIME")
    if not (mail_from.isascii() and all(r.isascii() for r in recipients)):
        if not conn.has_extn("smtputf8"):
            session.keep = True  # nothing was sent: the session is still clean
            return Reply(553, f"5.6.7 {session.hop} does not support SMTPUTF8 for a non-ASCII address")
        options.append("SMTPUTF8")
    return options


def _begin(
    session: _Session, mail_from: str, options: list[str], recipients: list[str], helo: str, timeout: float
) -> Reply | None:
    """MAIL FROM (pipelined with the RCPTs and DATA when offered); None when accepted, else its refusal for every
    recipient. A reused session the hop has closed (or answers 421) is replaced once: nothing of this message was
    sent on it, so a fresh session is no duplicate."""
    session.pipelining = "SMTPUTF8" not in options and session.conn.has_extn("pipelining")
    try:
        code, msg = _mail(session.conn, mail_from, options, recipients, session.pipelining)
    except (OSError, smtplib.SMTPServerDisconnected):
        if not session.reused:
            raise
        code, msg = 421, b"session closed"
    if code == 421 and session.reused:
        session.conn.close()
        session.conn, refused = _connect(session.hop, helo, timeout)
        session.reused = False
        if refused is not None:
            return refused
        session.pipelining = "SMTPUTF8" not in options and session.conn.has_extn("pipelining")
        code, msg = _mail(session.conn, mail_from, options, recipients, session.pipelining)
    if code == 250:
        return None
    pipelined = len(recipients) + 1 if session.pipelining else 0
    session.keep = code != 421 and _drain(session.conn, pipelined) and _reset(session.conn)
    return Reply(code, _text(msg))


def _recipients(session: _Session, recipients: list[str], replies: Replies) -> list[str]:
    """The RCPT replies (and, pipelined, the one to DATA); the accepted recipients. A refused DATA after an
    accepted RCPT raises SMTPDataError: its reply is every accepted recipient's."""
    conn = session.conn
    accepted: list[str] = []
    for rcpt in recipients:
        code, msg = conn.getreply() if session.pipelining else conn.rcpt(rcpt)
        if code in (250, 251):
            accepted.append(rcpt)
        else:
            replies[rcpt] = Reply(code, _text(msg))
    if session.pipelining:
        code, msg = conn.getreply()  # to DATA: 354 when a recipient was accepted
        if accepted and code != 354:
            raise smtplib.SMTPDataError(code, msg)
    if not accepted:
        session.keep = _reset(conn)
    return accepted


def _content(session: _Session, accepted: list[str], data: bytes, replies: Replies) -> None:
    """The message itself, and the reply to it: one for the transaction (SMTP), one per accepted recipient (LMTP)."""
    conn = session.conn
    if session.pipelining:
        body = smtplib._quote_periods(_crlf(data))  # type: ignore[attr-defined]
        conn.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n")
        code, msg = conn.getreply()
    else:
        code, msg = conn.data(_crlf(data))
    replies[accepted[0]] = Reply(code, _text(msg))
    for rcpt in accepted[1:]:
        if session.hop.scheme == "lmtp":
            code, msg = conn.getreply()
        replies[rcpt] = Reply(code, _text(msg))
    session.keep = True


def _end(session: _Session, helo: str, timeout: float, connections: Connections | None) -> None:
    if session.keep and connections is not None:
        connections.give_back(session.hop, helo, timeout, session.conn)
    else:
        _quit(session.conn)


def deliver(
    hop: NextHop,
    mail_from: str,
    recipients: list[str],
    data: bytes,
    helo: str = "mailsec.local",
    timeout: float = 30.0,
    connections: Connections | None = None,
) -> Replies:
    """One transaction to `hop`, in phases (open, options, MAIL, RCPTs, content, end); a reply for every recipient.
    A connection failure is a 421 for all of them. With `connections`, an open session to the hop is reused and,
    when the transaction ended cleanly, kept."""
    replies: Replies = {}
    if not recipients:
        return replies
    session: _Session | None = None
    try:
        session, refused = _open(hop, helo, timeout, connections)
        if refused is not None:
            return {r: refused for r in recipients}
        options = _options(session, mail_from, recipients, data)
        if isinstance(options, Reply):
            return {r: options for r in recipients}
        refused = _begin(session, mail_from, options, recipients, helo, timeout)
        if refused is not None:
            return {r: refused for r in recipients}
        accepted = _recipients(session, recipients, replies)
        if accepted:
            _content(session, accepted, data, replies)
        return replies
    except smtplib.SMTPDataError as exc:
        for rcpt in recipients:
            replies.setdefault(rcpt, Reply(exc.smtp_code, _text(exc.smtp_error)))
        return replies
    except (OSError, smtplib.SMTPException) as exc:
        if session is not None:
            session.keep = False  # the session's state is unknown
        reason = f"4.4.1 connection to {hop} failed: {type(exc).__name__}: {exc}".strip()
        for rcpt in recipients:
            replies.setdefault(rcpt, Reply(421, reason))
        return replies
    finally:
        if session is not None:
            _end(session, helo, timeout, connections)
