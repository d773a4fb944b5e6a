"""Hostile MIME structure never hides content: nesting deeper than the recursive parser goes is read flattened with
every leaf part kept, and a message read only in part (flattened, too many parts, no parser survives it) carries the
MIME_UNREADABLE finding, which the default quarantine policy holds."""

from __future__ import annotations

import base64
import time

import pytest

import mailsec.mime.parse as parse_module
import mailsec.scan as scan_module
from mailsec.mime import parse_message
from mailsec.mime.structure import MAX_DEPTH, NestingTooDeepDefect, parse_structure
from mailsec.model import Disposition, Envelope
from mailsec.scan import scan_message
from support import make_eml

# A DOS/PE stub libmagic recognises as a program
PE = b"MZ" + b"\x90\x00" * 29 + b"\x40\x00\x00\x00" + b"PE\x00\x00\x4c\x01\x03\x00" + b"\x00" * 400
EXE_PART = (
    b"Content-Type: application/octet-stream; name=invoice.exe\n"
    b"Content-Disposition: attachment; filename=invoice.exe\n"
    b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(PE)
)
HEAD = b"From: billing@vendor.example\nTo: ap@corp.example\nSubject: invoice\n"
ENVELOPE = Envelope(mail_from="billing@vendor.example", rcpt_to=("ap@corp.example",))


def nested_multipart(depth: int, leaf: bytes = EXE_PART) -> bytes:
    opens = [b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in reversed(range(depth))]
    closes = [b"\n--b%d--\n" % i for i in range(depth)]
    return HEAD + b"".join(opens) + leaf + b"".join(closes)


def nested_rfc822(depth: int, leaf: bytes = EXE_PART) -> bytes:
    return HEAD + b"Content-Type: message/rfc822\n\n" * depth + leaf


@pytest.mark.parametrize("depth", [MAX_DEPTH - 1, 1_000, 5_000])
@pytest.mark.parametrize("build", [nested_multipart, nested_rfc822])
def test_an_attachment_at_any_depth_is_seen_and_the_message_held(depth: int, build) -> None:  # type: ignore[no-untyped-def]
    parsed = parse_message(build(depth))
    assert [a.name for a in parsed.attachments] == ["invoice.exe"]
    assert parsed.attachments[0].content == PE
    assert parsed.from_ is not None and parsed.from_.email == "billing@vendor.example"
    verdict = scan_message(parsed, ENVELOPE, model=False)
    names = {f.name for f in verdict.findings}
    assert "EXECUTABLE_ATTACHMENT" in names
    assert verdict.disposition is Disposition.MALICIOUS
    assert ("MIME_UNREADABLE" in names) == (depth > MAX_DEPTH)


def test_flattening_keeps_every_leaf_in_order_and_the_boundaries_of_enclosing_parts() -> None:
    # Leaves before and after the deep branch, an inner part cut short by an enclosing boundary, a digest's default
    # type, and text after an inner close boundary (an epilogue, dropped)
    deep = b"Content-Type: text/plain\n\nbottom\n"
    for i in range(MAX_DEPTH + 20):
        b = b"d%d" % i
        sibling = b"--%s\nContent-Type: text/plain; name=s%d.txt\n\nsibling\n" % (b, i) if i % 50 == 0 else b""
        deep = b"Content-Type: multipart/mixed; boundary=%s\n\npreamble\n--%s\n" % (b, b) + deep + b"\n" + sibling
        deep += b"--" + b + b"--\nepilogue %d\n" % i
    cut = b"Content-Type: multipart/mixed; boundary=cut\n\n--cut\nContent-Type: text/plain; name=cut.txt\n\ncut\n"
    digest = b"Content-Type: multipart/digest; boundary=dg\n\n--dg\n\nSubject: digested\n\ndigest body\n--dg--\n"
    bottom = b"Content-Type: multipart/mixed; boundary=x\n\n--x\n" + cut + b"--x\n" + digest + b"--x--\n"
    raw = HEAD + (
        b"Content-Type: multipart/mixed; boundary=top\n\n--top\nContent-Type: text/plain; name=first.txt\n\nfirst\n"
        b"--top\n"
        + deep
        + b"--top\n"
        + deep.replace(b"Content-Type: text/plain\n\nbottom\n", bottom)
        + b"--top\nContent-Type: text/plain; name=last.txt\n\nlast\n--top--\n"
    )
    parsed = parse_message(raw)
    names = [a.name for a in parsed.attachments]
    assert names[0] == "first.txt" and names[-1] == "last.txt" and "cut.txt" in names
    assert sum(n.startswith("s") for n in names) == 2 * len(range(0, MAX_DEPTH + 20, 50))
    assert "bottom" in parsed.text_body and "digest body" in parsed.text_body
    assert next(a for a in parsed.attachments if a.name == "cut.txt").content == b"cut"  # ended by --x
    assert not any("epilogue" in a.content.decode() for a in parsed.attachments)
    msg = parse_structure(raw.decode())
    flattened = [p for p in msg.walk() if any(isinstance(d, NestingTooDeepDefect) for d in p.defects)]
    assert len(flattened) == 2
    # the digest's part is a message by default: its headers were read as headers
    assert any(p.get("Subject") == "digested" for p in flattened[1].walk())


def test_deep_nesting_costs_linear_time() -> None:
    raw = nested_multipart(30_000)  # 2 MB, 30,000 open boundaries at the bottom
    start = time.perf_counter()
    parsed = parse_message(raw)
    elapsed = time.perf_counter() - start
    assert [a.name for a in parsed.attachments] == ["invoice.exe"]
    assert elapsed < 20, elapsed  # quadratic matching took minutes; linear is about a second


def test_more_parts_than_are_read_is_a_finding() -> None:
    parts = b"".join(b"--B\nContent-Type: text/plain\n\npart %d\n" % i for i in range(1_200))
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=B\n\n" + parts + b"--B\n" + EXE_PART + b"--B--\n"
    verdict = scan_message(parse_message(raw), ENVELOPE, model=False)
    finding = next(f for f in verdict.findings if f.name == "MIME_UNREADABLE")
    assert "MIME parts" in finding.reason
    assert verdict.disposition is Disposition.MALICIOUS


def test_a_message_no_parser_survives_keeps_its_headers_and_is_held(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parser_survives(text: str) -> object:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(parse_module, "parse_structure", no_parser_survives)  # fault injection: both parsers fail
    parsed = parse_message(nested_multipart(3))
    assert parsed.subject == "invoice" and parsed.from_ is not None
    assert parsed.unread and "RecursionError" in parsed.unread[0]
    verdict = scan_message(parsed, ENVELOPE, model=False)
    assert verdict.disposition is Disposition.MALICIOUS
    assert [f.name for f in verdict.findings if f.detection is Disposition.MALICIOUS] == ["MIME_UNREADABLE"]


def test_ordinary_mail_is_not_unread() -> None:
    parsed = parse_message(nested_multipart(5, b"Content-Type: text/plain\n\nhello\n"))
    assert parsed.unread == [] and "hello" in parsed.text_body
    assert "MIME_UNREADABLE" not in {f.name for f in scan_message(parsed, ENVELOPE, model=False).findings}


@pytest.mark.parametrize("name", ["invoice.exe", "invoice.pdf"])
def test_a_program_behind_fifty_harmless_attachments_is_seen(name: str) -> None:
    harmless = [(f"note{i}.txt", "text/plain", b"note %d" % i) for i in range(60)]
    raw = make_eml(attachments=[*harmless, (name, "application/pdf", PE)])
    verdict = scan_message(parse_message(raw), ENVELOPE, model=False)
    assert "EXECUTABLE_ATTACHMENT" in {f.name for f in verdict.findings}
    assert verdict.disposition is Disposition.MALICIOUS


def test_attachments_the_analyzer_failed_on_are_not_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    def analyzer_bug(parsed: object) -> object:
        raise MemoryError("fault injection: the attachment analyzer fails")

    monkeypatch.setattr(scan_module, "analyze_attachments", analyzer_bug)
    with_attachment = parse_message(nested_multipart(2))
    verdict = scan_message(with_attachment, ENVELOPE, model=False)
    assert {"ANALYZER_ERROR", "ATTACHMENTS_UNCHECKED"} <= {f.name for f in verdict.findings}
    assert verdict.disposition is Disposition.MALICIOUS
    plain = parse_message(nested_multipart(2, b"Content-Type: text/plain\n\nhello\n"))
    assert "ATTACHMENTS_UNCHECKED" not in {f.name for f in scan_message(plain, ENVELOPE, model=False).findings}
