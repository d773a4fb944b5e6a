"""Header fields mailsec adds: folded per RFC 5322, non-ASCII per RFC 2047, hostile text kept inside its field."""

from __future__ import annotations

import email
from email import policy as email_policy
from email.header import decode_header, make_header

import pytest

from mailsec.gateway.fold import fold_header


def read_back(field: bytes, name: str) -> str:
    msg = email.message_from_bytes(field + b"\r\nbody\r\n", policy=email_policy.default)
    assert list(msg.keys()) == [name], msg.keys()
    return str(msg[name])


def lines(field: bytes) -> list[bytes]:
    assert field.endswith(b"\r\n")
    return field[:-2].split(b"\r\n")


def test_long_reasons_fold_at_78_and_read_back_unchanged() -> None:
    text = "; ".join(f"Reason number {i} says something about the link to host{i}.example" for i in range(20))
    field = fold_header("X-MailSec-Reasons", text)
    assert all(len(x) <= 78 for x in lines(field)) and len(lines(field)) > 10
    assert all(x.startswith(b" ") for x in lines(field)[1:])
    assert read_back(field, "X-MailSec-Reasons") == text


def test_non_ascii_is_encoded_words_and_decodes_to_the_same_text() -> None:
    text = "The attachment facture_été.pdf.exe is a program; Ünïcödé ünd ÄSCII mixed; 日本語のテキスト" * 3
    field = fold_header("X-MailSec-Reasons", text)
    assert field.isascii() and b"=?utf-8?q?" in field
    assert all(len(x) <= 78 for x in lines(field))
    assert all(len(w) <= 75 for x in lines(field) for w in x.split() if w.startswith(b"=?"))
    assert str(make_header(decode_header(field.decode()[len("X-MailSec-Reasons:") :]))) == text
    assert read_back(field, "X-MailSec-Reasons") == text


@pytest.mark.parametrize(
    "hostile",
    [
        "ok\r\nBcc: victim@example.org",
        "ok\nX-Spam: no\r\n\r\nbody",
        "nul\x00 and \x1b[31m escape \u2028 line separator",
        "=?utf-8?q?looks_encoded?= but is not",
    ],
)
def test_hostile_text_stays_in_its_field(hostile: str) -> None:
    field = fold_header("X-MailSec-Reasons", hostile)
    assert b"\r\n" not in field[:-2].replace(b"\r\n ", b"")
    read = read_back(field, "X-MailSec-Reasons")
    assert "\n" not in read and "\x00" not in read


def test_a_word_too_long_to_fold_is_cut_below_998_and_the_total_is_capped() -> None:
    field = fold_header("X-MailSec-Reasons", "see http://x.example/" + "a" * 5000, limit=10_000)
    assert all(len(x) <= 998 for x in lines(field))
    capped = fold_header("X-MailSec-Reasons", "word " * 5000)
    assert len(capped) < 4200 and capped.rstrip().endswith(b"...")


def test_field_names_are_checked() -> None:
    for bad in ("", "X Bad", "X:Bad", "Ünï"):
        with pytest.raises(ValueError):
            fold_header(bad, "x")
    assert fold_header("X-Empty", "") == b"X-Empty:\r\n"


def test_reasons_are_said_once() -> None:
    from mailsec.gateway.dispatch import distinct_reasons

    form = "The message body holds a form asking for a password"
    reasons = [
        form,
        "A link goes to 203.0.113.9",
        f"Phishing text and evidence agree: {form}",
        " A link goes to\r\n203.0.113.9 ",
    ]
    assert distinct_reasons(reasons) == ["A link goes to 203.0.113.9", f"Phishing text and evidence agree: {form}"]
