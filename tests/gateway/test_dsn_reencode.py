"""The pure parts of what the gateway sends on: the RFC 3464 notice (gateway/dsn.py) and the relay form of a message
(gateway/reencode.py). The whole path, with real next hops, is tests/gateway/test_gateway_hostile_mail.py."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy

import pytest

from mailsec.gateway.dsn import Failure, build_dsn, wants_dsn
from mailsec.gateway.reencode import MAX_LINE, has_long_line, reencode_long_lines, relay_form, strip_own_headers
from mailsec.mime import parse_message
from support import make_eml

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("mail_from", "headers", "wanted"),
    [
        ("alice@sender.example", {}, True),
        ("", {}, False),
        ("<>", {}, False),
        ("MAILER-DAEMON@far.example", {}, False),
        ("alice@sender.example", {"Auto-Submitted": "auto-replied"}, False),
        ("alice@sender.example", {"Auto-Submitted": "no"}, True),
        ("alice@sender.example", {"Precedence": "list"}, False),
        ("alice@sender.example", {"Content-Type": "multipart/report; report-type=delivery-status"}, False),
    ],
)
def test_who_is_told(mail_from: str, headers: dict[str, str], wanted: bool) -> None:
    raw = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + make_eml(sender=mail_from or "x@y.example")
    assert wants_dsn(mail_from, raw) is wanted


def test_the_notice_is_rfc_3464_and_hostile_reply_text_stays_in_its_field() -> None:
    original = make_eml(subject="numbers", sender="alice@sender.example", body="secret body\n")
    failures = [
        Failure("bob@corp.example", 550, "5.1.1 <bob@corp.example>: user unknown\r\nBcc: victim@x.example", "mx1"),
        Failure("eve@corp.example", 451, "4.3.0 try later " + "y" * 5000, None, expired=True),
        Failure("kim@corp.example", 554, "no enhanced code, ümlaut", "mx1"),
    ]
    data = build_dsn(reporting_mta="mx.corp.example", queue_id="ABC", mail_from="alice@sender.example",
                     failures=failures, original=original, arrival=NOW, now=NOW)  # fmt: skip
    assert data.isascii() and max(len(line) for line in data.split(b"\r\n")) <= MAX_LINE
    msg = message_from_bytes(data, policy=email_policy.default)
    assert str(msg["To"]) == "alice@sender.example" and msg["Auto-Submitted"] == "auto-replied"
    assert msg["Bcc"] is None
    assert [p.get_content_type() for p in msg.iter_parts()] == [
        "text/plain", "message/delivery-status", "text/rfc822-headers",
    ]  # fmt: skip
    report = data.decode()
    assert re.findall(r"Status: (\S+)", report) == ["5.1.1", "4.4.7", "5.0.0"]
    assert "Remote-MTA: dns; mx1" in report and report.count("Action: failed") == 3
    assert "Subject: numbers" in report and "secret body" not in report  # headers returned, not the body


def test_a_message_without_long_lines_or_foreign_headers_is_relayed_byte_for_byte() -> None:
    raw = make_eml(html="<p>hi</p>", attachments=[("a.bin", "application/octet-stream", bytes(range(256)) * 40)])
    assert relay_form(raw) is raw


def test_foreign_mailsec_headers_are_removed_from_the_header_block_only() -> None:
    raw = (
        b"From: a@b.example\r\nx-mailsec-disposition: NONE\r\nX-MailSec-Reasons: none,\r\n\tnothing\r\n"
        b"Subject: s\r\n\r\nX-MailSec-Disposition: quoted in the body\r\n"
    )
    out = strip_own_headers(raw)
    assert out == b"From: a@b.example\r\nSubject: s\r\n\r\nX-MailSec-Disposition: quoted in the body\r\n"
    assert strip_own_headers(b"X-MailSec-Queue-ID: 1\nSubject: s") == b"Subject: s"


@pytest.mark.parametrize("ctype", ["text/plain; charset=utf-8", "application/octet-stream"])
def test_long_lines_are_reencoded_and_decode_to_the_same_bytes(ctype: str) -> None:
    body = ("ä" * 700 + "\n" + "b" * 2500 + "\n").encode()
    raw = (
        b"From: a@b.example\r\nSubject: " + b"word " * 400 + b"\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nshort\r\n"
        b"--q\r\nContent-Type: " + ctype.encode() + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body + b"--q--\r\n"
    )
    out = reencode_long_lines(raw)
    assert has_long_line(raw) and not has_long_line(out)
    msg = message_from_bytes(out, policy=email_policy.compat32)
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert parts[0].get_payload() == "short"  # untouched
    assert parts[1]["Content-Transfer-Encoding"] == ("quoted-printable" if ctype.startswith("text") else "base64")
    before = [p for p in message_from_bytes(raw, policy=email_policy.compat32).walk() if not p.is_multipart()]
    assert parts[1].get_payload(decode=True) == before[1].get_payload(decode=True) == body.rstrip(b"\n")
    assert parse_message(out).subject == parse_message(raw).subject
