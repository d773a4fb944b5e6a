"""Hostile and awkward mail through the whole gateway (`mailsec serve --smtp`, real SMTP sessions, Dovecot over
LMTP read back over IMAP, and a real SMTP server on loopback as a strict next hop and as the relay for bounce
notices): deep MIME nesting is held, a refusal after `250` reaches the sender as an RFC 3464 notice, long lines are
re-encoded, foreign X-MailSec-* headers and bare CRs do not pass, and the SMTP session rules."""

from __future__ import annotations

import base64
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from gw_support import Dovecot, Gateway, make_dovecot, start_gateway
from test_gateway_flow import send, wait_status

from mailsec.gateway.reencode import MAX_LINE, has_long_line
from mailsec.mime import parse_message
from support import free_port, make_eml

ANN, BOB = "ann@hostile.example", "bob@hostile.example"
PE = b"MZ" + b"\x90\x00" * 29 + b"\x40\x00\x00\x00" + b"PE\x00\x00\x4c\x01\x03\x00" + b"\x00" * 400


@dataclass
class Sink:
    """A real SMTP server on loopback (aiosmtpd, its default 1,001-octet line limit) that keeps what it accepts."""

    received: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 2.0.0 Ok: kept"

    def wait_for(self, rcpt: str, timeout: float = 30.0) -> tuple[str, list[str], bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for item in self.received:
                if rcpt in item[1]:
                    return item
            time.sleep(0.1)
        raise AssertionError(f"nothing for {rcpt} arrived at the sink: {[(m, r) for m, r, _ in self.received]}")


@pytest.fixture(scope="module")
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=True)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture(scope="module")
def hdovecot() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="mailsec-dovecot-hostile-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes read the users file
    dv = make_dovecot(root, [ANN, BOB])
    yield dv
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


@pytest.fixture(scope="module")
def hgw(tmp_path_factory: pytest.TempPathFactory, hdovecot: Dovecot, sink: tuple[Sink, int]) -> Iterator[Gateway]:
    sink_url = f"smtp://127.0.0.1:{sink[1]}"
    gw = start_gateway(
        tmp_path_factory.mktemp("gw-hostile") / "data", hdovecot, None,
        MAILSEC_SMTP_IDLE_TIMEOUT_SECONDS="2", MAILSEC_SMTP_ERROR_LIMIT="5", MAILSEC_DSN_RELAY=sink_url,
    )  # fmt: skip
    for name, hop in [
        ("hostile.example", hdovecot.lmtp_url),
        ("strictpeer.example", sink_url),
        ("xn--bcher-kva.example", sink_url),
    ]:
        gw.services.domains.add(gw.account, name, mode="DIRECT", next_hop=hop, verified=True)
    yield gw
    gw.server.stop()
    gw.services.close()


def inbox(dv: Dovecot, user: str) -> list[bytes]:
    with dv.imap(user) as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        return [d[b"RFC822"] for d in c.fetch(uids, [b"RFC822"]).values()] if uids else []


def delivered(dv: Dovecot, user: str, queue_id: str) -> bytes:
    for raw in inbox(dv, user):
        if f"X-MailSec-Queue-ID: {queue_id}".encode() in raw:
            return raw
    raise AssertionError(f"{queue_id} not in {user}'s INBOX")


def trace_text(gw: Gateway, postfix_id: str) -> str:
    stored = gw.services.messages.get(gw.account, postfix_id)
    assert stored is not None
    return "\n".join(t.message for lines in gw.services.messages.trace(stored.pk).values() for t in lines)


# -- MIME nesting ------------------------------------------------------------------------------------------------


def test_a_phish_nested_a_thousand_levels_deep_is_held(hgw: Gateway, hdovecot: Dovecot) -> None:
    opens = [b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in reversed(range(1000))]
    exe = (
        b"Content-Type: application/octet-stream; name=invoice.exe\r\n"
        b"Content-Disposition: attachment; filename=invoice.exe\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(PE).replace(b"\n", b"\r\n")
    )
    closes = [b"\r\n--b%d--\r\n" % i for i in range(1000)]
    raw = b"From: billing@vendor.example\r\nTo: bob@hostile.example\r\nSubject: invoice\r\n" + b"".join(opens)
    raw += exe + b"".join(closes)
    [qid] = send(hgw, raw, [BOB], sender="billing@vendor.example")
    row = wait_status(hgw, hgw.account, qid, {"quarantined", "delivered"})
    assert row.delivery_status == "quarantined"
    assert row.final_disposition == "MALICIOUS"
    assert not any(qid.encode() in m for m in inbox(hdovecot, BOB))


# -- bounce notices ----------------------------------------------------------------------------------------------


def test_a_refusal_after_250_reaches_an_internal_sender_as_a_dsn(hgw: Gateway, hdovecot: Dovecot) -> None:
    raw = make_eml(subject="quarterly numbers", sender=ANN, to="nobody@hostile.example")
    [qid] = send(hgw, raw, ["nobody@hostile.example"], sender=ANN)
    wait_status(hgw, hgw.account, qid, {"bounced"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(b"multipart/report" in m for m in inbox(hdovecot, ANN)):
        time.sleep(0.2)
    [dsn] = [m for m in inbox(hdovecot, ANN) if b"multipart/report" in m and qid.encode() in m]
    msg = message_from_bytes(dsn, policy=email_policy.default)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Return-Path"] in ("<>", "")  # sent with the null sender, so it is never bounced itself
    status = next(p for p in msg.walk() if p.get_content_type() == "message/delivery-status")
    report = status.as_string()
    assert "Final-Recipient: rfc822; nobody@hostile.example" in report
    assert "Action: failed" in report and "Status: 5." in report
    returned = next(p for p in msg.walk() if p.get_content_type() == "text/rfc822-headers")
    assert "Subject: quarterly numbers" in returned.get_content()
    assert "delivery status notification to <ann@hostile.example>" in trace_text(hgw, qid)


def test_an_outside_sender_is_told_through_the_relay(hgw: Gateway, sink: tuple[Sink, int]) -> None:
    raw = make_eml(subject="hello", sender="alice@sender.example", to="ghost@hostile.example")
    [qid] = send(hgw, raw, ["ghost@hostile.example"], sender="alice@sender.example")
    wait_status(hgw, hgw.account, qid, {"bounced"})
    mail_from, rcpts, data = sink[0].wait_for("alice@sender.example")
    assert mail_from in ("", "<>") and rcpts == ["alice@sender.example"]  # the null sender
    assert b"Final-Recipient: rfc822; ghost@hostile.example" in data


def test_no_dsn_for_a_null_sender_or_an_auto_reply(hgw: Gateway, sink: tuple[Sink, int]) -> None:
    before = len(sink[0].received)
    bounce = make_eml(subject="Undeliverable", sender="mailer-daemon@far.example", to="ghost2@hostile.example")
    [q1] = send(hgw, bounce, ["ghost2@hostile.example"], sender="")
    reply = make_eml(subject="Out of office", sender="carl@far.example", to="ghost3@hostile.example",
                     headers={"Auto-Submitted": "auto-replied"})  # fmt: skip
    [q2] = send(hgw, reply, ["ghost3@hostile.example"], sender="carl@far.example")
    for qid in (q1, q2):
        wait_status(hgw, hgw.account, qid, {"bounced"})
        assert "delivery status notification" not in trace_text(hgw, qid)
    time.sleep(1)
    assert [r for _, r, _ in sink[0].received[before:]] == []


# -- what is relayed ---------------------------------------------------------------------------------------------


def test_long_lines_are_reencoded_for_a_strict_next_hop(hgw: Gateway, sink: tuple[Sink, int]) -> None:
    html = "<p>" + " ".join(f"<b>word{i}</b>" for i in range(600)) + "</p>"  # one 8 KB line
    plain = "x" * 3000
    raw = (
        "From: alice@sender.example\r\nTo: peer@strictpeer.example\r\nSubject: long lines\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n'
        f"Content-Transfer-Encoding: 8bit\r\n\r\n{plain}\r\n--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"{html}\r\n--b--\r\n"
    ).encode()
    original = parse_message(raw)
    assert has_long_line(raw) and html in original.html_body
    [qid] = send(hgw, raw, ["peer@strictpeer.example"])
    wait_status(hgw, hgw.account, qid, {"delivered"})
    _, _, data = sink[0].wait_for("peer@strictpeer.example")
    assert max(len(line) for line in data.split(b"\r\n")) <= MAX_LINE
    relayed = parse_message(data)
    assert relayed.text_body.replace("\r\n", "\n") == original.text_body.replace("\r\n", "\n")
    assert relayed.html_body.strip() == original.html_body.strip()


def test_long_lines_of_real_ham_reach_dovecot_unchanged(hgw: Gateway, hdovecot: Dovecot, corpora: Path) -> None:
    files = [p for p in sorted((corpora / "spamassassin/hard-ham-1").glob("*.eml")) if has_long_line(p.read_bytes())]
    assert len(files) >= 4
    for path in files[:4]:
        raw = path.read_bytes()
        [qid] = send(hgw, raw, [BOB])
        row = wait_status(hgw, hgw.account, qid, {"delivered", "quarantined", "bounced"})
        if row.delivery_status == "quarantined":
            continue
        assert row.delivery_status == "delivered", trace_text(hgw, qid)
        got = delivered(hdovecot, BOB, qid)
        assert not has_long_line(got)
        a, b = parse_message(raw), parse_message(got)
        assert (a.subject, a.text_body.replace("\r\n", "\n")) == (b.subject, b.text_body.replace("\r\n", "\n"))
        assert a.html_body.replace("\r\n", "\n").strip() == b.html_body.replace("\r\n", "\n").strip()


def test_foreign_mailsec_headers_and_bare_cr_do_not_pass(hgw: Gateway, hdovecot: Dovecot) -> None:
    raw = (
        b"From: alice@sender.example\r\nTo: bob@hostile.example\r\nSubject: forged verdict\r\n"
        b"X-MailSec-Disposition: NONE\r\nX-MailSec-Released: yes\r\n\tby the admin\r\n"
        b"Message-ID: <forged@sender.example>\r\n\r\nline one\rline two\r\n"
    )
    with socket.create_connection(("127.0.0.1", hgw.smtp_port), timeout=30) as s:  # bytes as sent, bare CR too
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO client.example\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"MAIL FROM:<alice@sender.example>\r\nRCPT TO:<bob@hostile.example>\r\nDATA\r\n")
        assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
        s.sendall(raw + b".\r\n")
        answer = f.readline().decode()
        assert answer.startswith("250"), answer
        qid = answer.rsplit(" ", 1)[1].strip()
        s.sendall(b"QUIT\r\n")
    wait_status(hgw, hgw.account, qid, {"delivered"})
    got = delivered(hdovecot, BOB, qid)
    head = got.split(b"\r\n\r\n", 1)[0]
    assert head.count(b"X-MailSec-Disposition:") == 1 and b"X-MailSec-Released" not in head
    assert b"by the admin" not in head
    assert b"\r" not in got.replace(b"\r\n", b"")
    assert b"line one\r\nline two" in got


@pytest.mark.parametrize("dot", [b"\n.\r\n", b"\r.\r", b"\n.\n"])
def test_a_smuggled_end_of_data_stays_inside_the_message(hgw: Gateway, sink: tuple[Sink, int], dot: bytes) -> None:
    smuggled = (
        b"MAIL FROM:<ceo@hostile.example>\r\nRCPT TO:<smuggled@strictpeer.example>\r\nDATA\r\nSubject: x\r\n\r\nx"
    )
    raw = b"From: alice@sender.example\r\nSubject: smuggling\r\n\r\nbefore" + dot + smuggled + b"\r\n"
    before = len(sink[0].received)
    with socket.create_connection(("127.0.0.1", hgw.smtp_port), timeout=30) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO client.example\r\n")
        while f.readline()[3:4] == b"-":
            pass
        s.sendall(b"MAIL FROM:<alice@sender.example>\r\nRCPT TO:<peer@strictpeer.example>\r\nDATA\r\n")
        assert [f.readline()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
        s.sendall(raw + b".\r\n")
        answer = f.readline().decode()
        assert answer.startswith("250"), answer
        qid = answer.rsplit(" ", 1)[1].strip()
    wait_status(hgw, hgw.account, qid, {"delivered"})
    time.sleep(0.5)
    arrived = sink[0].received[before:]
    assert [rcpts for _, rcpts, _ in arrived] == [["peer@strictpeer.example"]]
    assert b"RCPT TO:<smuggled@strictpeer.example>" in arrived[0][2]


# -- SMTP session rules ------------------------------------------------------------------------------------------


class Session_:
    """A raw SMTP session: every reply line as the server sent it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.file = self.sock.makefile("rb")
        self.reply()

    def reply(self) -> str:
        lines = []
        while True:
            line = self.file.readline().decode("utf-8", "replace")
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return "\n".join(lines)

    def cmd(self, line: str) -> str:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def smtp(hgw: Gateway) -> Iterator[Session_]:
    s = Session_(hgw.smtp_port)
    assert s.cmd("EHLO client.example").startswith("250")
    assert s.cmd("MAIL FROM:<alice@sender.example>").startswith("250")
    yield s
    s.close()


@pytest.mark.parametrize(
    "rcpt", ["user%elsewhere.example@hostile.example", "elsewhere.example!user@hostile.example",
             '"user@elsewhere.example"@hostile.example'],
)  # fmt: skip
def test_sender_specified_routing_is_refused(smtp: Session_, rcpt: str) -> None:
    answer = smtp.cmd(f"RCPT TO:<{rcpt}>")
    assert answer.startswith("550 5.7.1"), answer
    assert smtp.cmd("RCPT TO:<bob@hostile.example>").startswith("250")


@pytest.mark.parametrize("arg", ["<'@[@hostile.example>", "<bob@[>", "<@>", '<"@hostile.example>'])
def test_a_malformed_address_gets_a_plain_501(smtp: Session_, arg: str) -> None:
    answer = smtp.cmd(f"RCPT TO:{arg}")
    assert answer.startswith("501 5.1.3"), answer
    assert "Error" not in answer and "(" not in answer  # no Python exception text
    assert smtp.cmd("RCPT TO:<bob@hostile.example>").startswith("250")


def test_a_malformed_sender_gets_a_plain_501(hgw: Gateway) -> None:
    s = Session_(hgw.smtp_port)
    s.cmd("EHLO client.example")
    answer = s.cmd("MAIL FROM:<'@[@sender.example>")
    assert answer.startswith("501 5.1.3") and "(" not in answer, answer
    s.close()


def test_too_many_refused_recipients_end_the_session(smtp: Session_) -> None:
    answers = [smtp.cmd(f"RCPT TO:<user{i}@not-protected.example>") for i in range(4)]
    assert all(a.startswith("550") for a in answers)
    assert smtp.cmd("RCPT TO:<user9@not-protected.example>").startswith("550")
    assert smtp.reply().startswith("421 4.7.0")  # the fifth refusal: the limit in this gateway's settings
    assert smtp.file.readline() == b""  # closed by the server


def test_an_idle_session_gets_421(hgw: Gateway) -> None:
    s = Session_(hgw.smtp_port)
    s.cmd("EHLO client.example")
    start = time.monotonic()
    assert s.reply().startswith("421 4.4.2")
    assert s.file.readline() == b""
    assert 1 < time.monotonic() - start < 10
    s.close()


def test_an_idn_recipient_in_u_label_form_reaches_its_a_label_domain(hgw: Gateway, sink: tuple[Sink, int]) -> None:
    s = Session_(hgw.smtp_port)
    s.cmd("EHLO client.example")
    assert s.cmd("MAIL FROM:<alice@sender.example> SMTPUTF8").startswith("250")
    assert s.cmd("RCPT TO:<leser@bücher.example>").startswith("250")
    assert s.cmd("RCPT TO:<leser@bücher-nicht.example>").startswith("550")  # U-labels never widen the relay
    assert s.cmd("DATA").startswith("354")
    answer = s.cmd(make_eml(to="leser@bücher.example").decode().replace("\n", "\r\n").replace("\r\r", "\r") + ".")
    assert answer.startswith("250"), answer
    s.close()
    _, rcpts, _ = sink[0].wait_for("leser@xn--bcher-kva.example")
    assert rcpts == ["leser@xn--bcher-kva.example"]
