"""Hostile and broken messages parse without an exception, keep their raw bytes, and give the right fields."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsec.mime import parse_message
from mailsec.model import ParsedMessage
from support import make_eml


def parse(raw: bytes) -> ParsedMessage:
    parsed = parse_message(raw)
    assert parsed.raw is raw or parsed.raw == raw
    return parsed


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("latin-1")


def test_encoded_words() -> None:
    raw = crlf(
        "From: =?utf-8?q?Jos=C3=A9_Garc=C3=ADa?= <jose@example.com>\n"
        "To: =?iso-8859-1?b?" + base64.b64encode("Zoë".encode("latin-1")).decode() + "?= <zoe@example.com>, "
        '"Plain, Name" <plain@example.com>\n'
        "Subject: =?utf-8?b?" + base64.b64encode("Ünïcödé ".encode()).decode() + "?=\n"
        " =?utf-8?q?and_more?= plain tail\n"
        "Message-ID: <enc@example.com>\n"
        "\n"
        "body\n"
    )
    p = parse(raw)
    assert p.from_ is not None and (p.from_.name, p.from_.email) == ("José García", "jose@example.com")
    assert [(a.name, a.email) for a in p.to] == [("Zoë", "zoe@example.com"), ("Plain, Name", "plain@example.com")]
    assert p.subject == "Ünïcödé and more plain tail"
    assert p.message_id == "<enc@example.com>"


def test_broken_and_unknown_charsets() -> None:
    raw = crlf(
        "From: =?x-no-such-charset?q?caf=E9?= <cafe@example.com>\n"
        "Subject: =?utf-8?q?caf=E9_broken_utf8?=\n"
        'Content-Type: text/plain; charset="bogus-charset-9"\n'
        "\n"
        "caf\xe9 au lait\n"
    )
    p = parse(raw)
    assert p.from_ is not None and p.from_.email == "cafe@example.com"
    assert p.subject.startswith("caf") and p.subject.endswith("broken utf8")
    assert "au lait" in p.text_body and "caf" in p.text_body
    # UTF-8 declared, Latin-1 sent.
    p = parse(crlf("From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\nna\xefve \xa9\n"))
    assert "na" in p.text_body and "ve" in p.text_body


def test_missing_headers() -> None:
    p = parse(b"\r\njust a body, no headers at all\r\n")
    assert p.from_ is None and p.subject == "" and p.message_id == "" and p.sent_at is None
    assert any("From" in d for d in p.defects)
    p = parse(b"Subject: only a subject\r\n\r\n")
    assert p.subject == "only a subject" and p.to == [] and p.text_body == ""
    p = parse(b"X-Nothing: here")
    assert p.from_ is None
    p = parse(b"")
    assert p.raw == b"" and p.attachments == []
    p = parse(b"From: a@example.com\r\nDate: not a date at all\r\n\r\nx")
    assert p.sent_at is None
    p = parse(b"From: a@example.com\r\nDate: Tue, 24 Nov 2026 10:00:00 +0100\r\n\r\nx")
    assert p.sent_at == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_eight_bit_junk_in_headers_and_body() -> None:
    raw = (
        b"From: Jos\xe9 \xff\xfe <jose@example.com>\r\n"
        b"To: bob@example.com\r\n"
        b"Subject: Ol\xe1 \x00 caf\xc3\xa9 \x81\x8d\r\n"
        b"X-Junk: \xff\xff\xff\r\n"
        b"\r\n"
        b"body \x00\xff\xfe with nul and junk \xe9\r\n"
    )
    p = parse(raw)
    assert p.from_ is not None and p.from_.email == "jose@example.com"
    assert p.from_.name.startswith("Jos")
    assert "\ufffd" not in p.from_.name[:4] and p.from_.name[:4] == "Jos\u00e9"
    assert p.subject.startswith("Ol")
    assert "with nul and junk" in p.text_body
    assert any(name == "X-Junk" for name, _ in p.headers)


def test_utf8_headers_are_text_not_replacement_characters() -> None:
    raw = "From: Zoë Bäcker <zoe@example.com>\r\nSubject: Grüße aus Köln\r\n\r\nhallo\r\n".encode()
    p = parse(raw)
    assert p.subject == "Grüße aus Köln"
    assert p.from_ is not None and p.from_.name == "Zoë Bäcker"
    assert dict(p.headers)["Subject"] == "Grüße aus Köln"


def test_truncated_mime() -> None:
    full = make_eml(
        subject="Truncated",
        html="<p><a href='https://example.com/a'>a</a></p>",
        attachments=[("data.bin", "application/octet-stream", bytes(range(256)) * 40)],
    )
    for cut in (len(full) // 4, len(full) // 2, len(full) - 120, len(full) - 3):
        p = parse(full[:cut])
        assert p.subject == "Truncated"
        assert p.from_ is not None and p.from_.email == "alice@sender.example"
    # A multipart whose closing boundary never comes and whose base64 stops mid-line.
    raw = crlf(
        "From: a@example.com\nSubject: open\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="XYZ"\n\n--XYZ\nContent-Type: text/plain\n\nhello\n'
        '--XYZ\nContent-Type: application/pdf; name="x.pdf"\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQKJ'
    )
    p = parse(raw)
    assert "hello" in p.text_body
    assert [a.name for a in p.attachments] == ["x.pdf"]
    # Headers cut in the middle of a line.
    p = parse(b"From: a@example.com\r\nSubject: half a sub")
    assert p.subject == "half a sub"


def test_unquoted_boundary_containing_equals() -> None:
    pdf = b"%PDF-1.4 fake"
    raw = crlf(
        "From: a@example.com\nSubject: boundary\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=----=_Part_1_2=3.4\n\n"
        "------=_Part_1_2=3.4\nContent-Type: text/plain\n\nthe text body\n"
        "------=_Part_1_2=3.4\nContent-Type: application/pdf; name=doc.pdf\n"
        "Content-Disposition: attachment; filename=doc.pdf\nContent-Transfer-Encoding: base64\n\n"
        + base64.b64encode(pdf).decode()
        + "\n------=_Part_1_2=3.4--\n"
    )
    p = parse(raw)
    assert p.text_body.strip() == "the text body"
    assert [(a.name, a.sha256) for a in p.attachments] == [("doc.pdf", hashlib.sha256(pdf).hexdigest())]


def test_nested_message_rfc822() -> None:
    inner = make_eml(
        subject="Inner subject",
        sender="inner@inner.example",
        html='<a href="https://inner-link.example/p">inner</a>',
        attachments=[("inner.txt", "text/plain", b"inner attachment")],
    )
    outer = (
        crlf(
            "From: outer@outer.example\nTo: bob@example.com\nSubject: Fwd: something\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="OUT"\n\n--OUT\nContent-Type: text/plain\n\nsee attached\n'
            '--OUT\nContent-Type: message/rfc822\nContent-Disposition: attachment; filename="fwd.eml"\n\n'
        )
        + inner.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        + b"\r\n--OUT--\r\n"
    )
    p = parse(outer)
    assert p.subject == "Fwd: something"
    assert p.from_ is not None and p.from_.email == "outer@outer.example"
    assert "see attached" in p.text_body
    names = [a.name for a in p.attachments]
    assert "inner.txt" in names
    assert "fwd.eml" in names  # the attached message itself is an attachment too
    assert any(link.href == "https://inner-link.example/p" for link in p.links)
    # Deep nesting is bounded and does not blow the stack.
    deep = b"From: d@example.com\r\nSubject: deep\r\n\r\nbottom\r\n"
    for i in range(200):
        deep = f"From: l{i}@example.com\r\nSubject: level {i}\r\nContent-Type: message/rfc822\r\n\r\n".encode() + deep
    p = parse(deep)
    assert p.subject == "level 199"


def test_huge_header_line_and_many_parts() -> None:
    raw = b"From: a@example.com\r\nSubject: " + b"x" * 2_000_000 + b"\r\nTo: " + b"b@example.com, " * 20_000
    raw += b"\r\n\r\nbody\r\n"
    p = parse(raw)
    assert p.subject == "x" * 2_000_000
    assert len(p.to) == 20_000 and p.to[0].email == "b@example.com"
    parts = "".join(f"--B\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(1500))
    p = parse(f"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n{parts}--B--\r\n".encode())
    assert any("parts" in d for d in p.defects)


def test_attachment_hashes_names_and_links() -> None:
    data = b"\x00\x01binary\xff" * 100
    raw = make_eml(
        html='<p><a href="https://example.com/one">One</a> <a href="#frag">skip</a></p>',
        body="plain www.example.org/two and https://example.net/three.",
        attachments=[("r\u00e9sum\u00e9.docx", "application/octet-stream", data)],
    )
    p = parse(raw)
    (att,) = p.attachments
    assert att.name == "r\u00e9sum\u00e9.docx" and att.size == len(data)
    assert (att.md5, att.sha1, att.sha256) == (
        hashlib.md5(data).hexdigest(),
        hashlib.sha1(data).hexdigest(),
        hashlib.sha256(data).hexdigest(),
    )
    hrefs = [link.href for link in p.links]
    assert (
        "https://example.com/one" in hrefs and "www.example.org/two" in hrefs and "https://example.net/three" in hrefs
    )
    assert "#frag" not in hrefs


def test_received_chain_ips() -> None:
    raw = crlf(
        "Received: from mx.a.example (mx.a.example [192.0.2.10]) by mx.b.example\n"
        "Received: from client (host [IPv6:2001:db8::1]) by mx.a.example\n"
        "Received: from localhost by nowhere\n"
        "X-Originating-IP: [198.51.100.23]\nFrom: a@example.com\n\nx\n"
    )
    p = parse(raw)
    assert (p.smtp_helo_server_ip, p.smtp_previous_hop_ip, p.x_originating_ip) == (
        "192.0.2.10",
        "2001:db8::1",
        "198.51.100.23",
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(
            [
                b"From: a@example.com\r\n",
                b"Subject: =?utf-8?q?x=FF?=\r\n",
                b"Content-Type: multipart/mixed; boundary=b=1\r\n",
                b"Content-Type: message/rfc822\r\n",
                b"Content-Transfer-Encoding: base64\r\n",
                b"Content-Transfer-Encoding: quoted-printable\r\n",
                b"\r\n",
                b"--b=1\r\n",
                b"--b=1--\r\n",
                b"=?\xff?=\r\n",
                b"\xff\xfe\x00\r\n",
                b"<a href='http://[::1'>x</a>\r\n",
                b'To: ,,,<>,@,"\r\n',
                b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n",
            ]
        ),
        max_size=30,
    ),
    st.binary(max_size=200),
)
def test_never_raises_on_junk(chunks: list[bytes], tail: bytes) -> None:
    raw = b"".join(chunks) + tail
    assert parse_message(raw).raw == raw
