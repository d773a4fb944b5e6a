"""What a user's report says about the message it reports: the attached original (message/rfc822 sent 7bit or, as
some clients do, base64; an .eml file), or an inline forward's header block and text, whose fingerprint is the
original's; and what the user asks for, from the report's subject. Hostile reports give no match, never a crash."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from mailsec.actions.user_reports import reported_message, requested_disposition
from mailsec.model import Disposition
from mailsec.report_address import validate_report_address
from support import make_eml

ORIGINAL = make_eml(subject="Your invoice is overdue", sender="billing@vendor.example", body="Pay the invoice now.\n")


def _report(part: EmailMessage) -> bytes:
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "bob@corp.example", "report@corp.example", "Phish"
    outer.set_content("See attached.\n")
    outer.make_mixed()
    outer.attach(part)
    return outer.as_bytes()


def _original_message_id() -> str:
    return next(line for line in ORIGINAL.decode().splitlines() if line.startswith("Message-ID:")).split(": ", 1)[1]


@pytest.mark.parametrize("encoding", ["7bit", "base64"])
def test_attached_rfc822(encoding: str) -> None:
    part = EmailMessage()
    if encoding == "base64":
        part.set_content(ORIGINAL, maintype="message", subtype="rfc822", filename="x.eml")
    else:
        from email import message_from_bytes, policy

        part.set_content(message_from_bytes(ORIGINAL, policy=policy.default), subtype="rfc822")
    found = reported_message(_report(part))
    assert (found.how, found.message_id, found.subject) == (
        "attached",
        _original_message_id(),
        "Your invoice is overdue",
    )


def test_attached_eml_file() -> None:
    part = EmailMessage()
    part.set_content(ORIGINAL, maintype="application", subtype="octet-stream", filename="suspicious.eml")
    found = reported_message(_report(part))
    assert (found.how, found.message_id) == ("attached", _original_message_id())


def test_inline_forward_with_message_id_and_fingerprint() -> None:
    body = (
        "-----Original Message-----\nFrom: billing@vendor.example\nSubject: Your invoice is overdue\n"
        "Message-ID: <abc@vendor.example>\n\nPay the invoice now.\n"
    )
    found = reported_message(make_eml(subject="Fwd: Your invoice is overdue", body=body))
    attached = reported_message(_report_with(ORIGINAL))
    assert (found.how, found.message_id, found.subject) == ("inline", "<abc@vendor.example>", "Your invoice is overdue")
    assert found.edf_hash == attached.edf_hash


def _report_with(raw: bytes) -> bytes:
    part = EmailMessage()
    part.set_content(raw, maintype="application", subtype="octet-stream", filename="o.eml")
    return _report(part)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff" * 100,
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n--x--\r\n",
        make_eml(subject="No forward here", body="Just text.\n"),
    ],
)
def test_hostile_or_plain_reports_match_nothing_reliable(raw: bytes) -> None:
    found = reported_message(raw)
    assert found.message_id is None


def test_requested_disposition_and_address_rules() -> None:
    assert requested_disposition("Phishing? please check") is Disposition.MALICIOUS
    assert requested_disposition("Fwd: cheap pills - SPAM") is Disposition.SPAM
    assert requested_disposition("Not spam: our payroll mail") is Disposition.NONE
    assert requested_disposition("False positive") is Disposition.NONE
    assert validate_report_address(" Report@Corp.Example ", "corp.example") == "report@corp.example"
    for bad in ("report@other.example", "report@sub.corp.example", "@corp.example", "a b@corp.example", "x"):
        with pytest.raises(ValueError):
            validate_report_address(bad, "corp.example")
