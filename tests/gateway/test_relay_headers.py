"""What the gateway writes on relayed mail, read back from Dovecot over IMAP: its own `Received:` line (RFC 5321 4.4)
with the TLS in use, the protocol, the queue id and the single recipient; X-MailSec-* fields folded (RFC 5322),
non-ASCII encoded (RFC 2047), each reason once."""

from __future__ import annotations

import email
import re
import smtplib
import ssl
import time
from email import policy as email_policy
from email.header import decode_header, make_header

import httpx
import pytest
from gw_support import Dovecot, Gateway
from test_gateway_flow import queued_ids, wait_status

from mailsec.store.queue import QueueRepo
from support import make_eml


def delivered_header(dovecot: Dovecot, user: str, postfix_id: str, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with dovecot.imap(user) as c:
            c.select_folder("INBOX", readonly=True)
            uids = c.search(["HEADER", "X-MailSec-Queue-ID", postfix_id])
            if uids:
                data = c.fetch(uids[:1], [b"BODY.PEEK[HEADER]"])[uids[0]]
                return bytes(next(v for k, v in data.items() if k.startswith(b"BODY")))
        time.sleep(0.2)
    raise AssertionError(f"{postfix_id} not delivered to {user}")


def fields(header: bytes, name: str) -> list[str]:
    """The raw (still folded) values of every field `name`, in order."""
    pattern = re.compile(rb"^" + name.encode() + rb":(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)
    return [m.group(1).decode("ascii") for m in pattern.finditer(header)]


def ours(header: bytes) -> str:
    (line,) = [unfold(v) for v in fields(header, "Received") if "(mailsec)" in v]
    return line


def unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value).strip()


def send(gw: Gateway, raw: bytes, rcpts: list[str], tls: bool = False, ehlo: bool = True) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
        if ehlo:
            client.ehlo("client.example")
        else:
            client.helo("old.client.example")
        if tls:
            assert client.starttls(context=ctx)[0] == 220
            client.ehlo("client.example")
        client.mail("alice@sender.example")
        for r in rcpts:
            assert client.rcpt(r)[0] == 250
        code, msg = client.data(raw)
        assert code == 250, msg
    return queued_ids(msg)[0]


@pytest.fixture(scope="module")
def deliver_all(gateway: Gateway) -> Gateway:
    QueueRepo(gateway.services.engine).set_quarantine_dispositions(gateway.account, [])
    return gateway


def test_received_line_over_starttls_for_one_recipient(deliver_all: Gateway, dovecot: Dovecot) -> None:
    gw = deliver_all
    pid = send(gw, make_eml(subject="tls received"), ["bob@corp.example"], tls=True)
    header = delivered_header(dovecot, "bob@corp.example", pid)
    line = ours(header)
    assert line.startswith("from client.example ([127.0.0.1])"), line
    assert re.search(r"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+ \(\d+/\d+ bits\)\)", line), line
    assert f"by mx.mailsec.test (mailsec) with ESMTPS id {pid} for <bob@corp.example>;" in line, line
    assert email.utils.parsedate_to_datetime(line.rsplit(";", 1)[1].strip()).tzinfo is not None
    assert header.index(b"Received: from client.example") < header.index(b"X-MailSec-Disposition"), (
        "trace fields go on top"
    )
    assert all(len(x) <= 78 for x in header.split(b"\r\n") if x.startswith((b"Received: from client", b" ")))


def test_received_line_without_tls_and_for_two_recipients(deliver_all: Gateway, dovecot: Dovecot) -> None:
    gw = deliver_all
    pid = send(gw, make_eml(subject="two"), ["bob@corp.example", "ann@corp.example"])
    line = ours(delivered_header(dovecot, "ann@corp.example", pid))
    assert f"with ESMTP id {pid};" in line and "using" not in line and " for <" not in line, line
    pid = send(gw, make_eml(subject="helo"), ["bob@corp.example"], ehlo=False)
    line = ours(delivered_header(dovecot, "bob@corp.example", pid))
    assert line.startswith("from old.client.example ([127.0.0.1])")
    assert f"with SMTP id {pid} for <bob@corp.example>;" in line, line


def test_long_and_non_ascii_reasons_are_folded_encoded_and_said_once(deliver_all: Gateway, dovecot: Dovecot) -> None:
    gw = deliver_all
    html = (
        '<p>Your account is suspended. <a href="http://203.0.113.9/paypal.com/login">https://www.paypal.com/verify'
        '</a> <a href="http://bit.ly/x">Verify now</a></p><form action="http://203.0.113.9/x">'
        '<input type="password" name="p"></form>'
    )
    raw = make_eml(
        sender="PayPal <service@paypa1-secure.example>",
        subject="Urgent: verify your account",
        body="Your account is suspended, verify your password now at the link.",
        html=html,
        attachments=[("facture_été.pdf.exe", "application/octet-stream", b"MZ" + b"\x00" * 100)],
    )
    pid = send(gw, raw, ["bob@corp.example"])
    header = delivered_header(dovecot, "bob@corp.example", pid)
    stored = gw.services.messages.get(gw.account, pid)
    assert stored is not None
    reasons = list(stored.verdict.detection_reasons)
    assert len("; ".join(reasons)) > 400, "a message whose reasons are long"
    assert any(not r.isascii() for r in reasons), reasons
    (value,) = fields(header, "X-MailSec-Reasons")
    lines = ("X-MailSec-Reasons:" + value).split("\r\n")
    assert len(lines) > 5 and all(len(x) <= 78 for x in lines), lines
    assert value.isascii() and "=?utf-8?q?" in value
    decoded = str(make_header(decode_header(unfold(value))))
    said = decoded.split("; ")
    for reason in reasons:  # said once on its own, or only inside the reasons that quote it
        assert said.count(reason) == 1 or (reason not in said and reason in decoded), (reason, decoded)
    quoted = [r for r in reasons if any(r != o and r in o for o in reasons)]
    assert quoted, "the corroboration reason quotes its evidence"
    assert all(r not in decoded.split("; ") for r in quoted), "said once, inside the reason that quotes it"
    parsed = email.message_from_bytes(header, policy=email_policy.default)
    assert str(parsed["X-MailSec-Reasons"]) == decoded, "a standard parser reads the same text"
    assert len(decoded.split("; ")) == len(set(decoded.split("; ")))
    assert all(len(x) <= 998 for x in header.split(b"\r\n"))
    wait_status(gw, gw.account, pid, {"delivered"})


def test_a_released_message_carries_the_received_line_of_its_arrival(deliver_all: Gateway, dovecot: Dovecot) -> None:
    gw = deliver_all
    pid = send(gw, make_eml(subject="held, then released", to="carol@hold.example"), ["carol@hold.example"], tls=True)
    row = wait_status(gw, gw.hold_account, pid, {"quarantined"})
    reply = httpx.post(
        f"{gw.server.base_url}/accounts/{gw.hold_account}/email-security/investigate/release",
        json=[row.id],
        headers={"Authorization": f"Bearer {gw.hold_token}"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    header = delivered_header(dovecot, "carol@hold.example", pid)
    line = ours(header)
    assert f"with ESMTPS id {pid} for <carol@hold.example>;" in line and "(using TLSv1." in line, line
    arrived = email.utils.parsedate_to_datetime(line.rsplit(";", 1)[1].strip())
    assert abs(arrived.timestamp() - row.scanned_at.timestamp()) < 60, "dated when mailsec accepted it"
    assert fields(header, "X-MailSec-Released")
