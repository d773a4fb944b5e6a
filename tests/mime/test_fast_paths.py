"""The parser's fast paths say exactly what the stdlib paths they replace say: the in-memory MIME structure parser
against `FeedParser(policy=compat32)`, the simple-address and encoded-word shortcuts against `getaddresses` and
`decode_header`, and the HTML view carried from mime against the scan's own reading of the body."""

from __future__ import annotations

import dataclasses
import random
from email.header import decode_header
from email.message import Message
from email.utils import getaddresses

import pytest

from mailsec.mime import parse_message
from mailsec.mime.headers import _simple_getaddresses, decode_bytes, decode_header_value
from mailsec.mime.structure import MAX_DEPTH, IndexedMessage, NestingTooDeepDefect, parse_structure, stdlib_parse
from mailsec.scan.features import extract_text
from support import make_eml


def _tree(msg: object) -> object:
    """Everything the stdlib parser puts in a Message, recursively, without the class."""
    if not isinstance(msg, Message):
        return repr(msg)
    payload = msg._payload  # type: ignore[attr-defined]
    if isinstance(payload, list):
        payload = [_tree(part) for part in payload]
    defects = [(type(d).__name__, d.args) for d in msg.defects]
    return (msg._headers, msg._unixfrom, payload, msg.preamble, msg.epilogue, msg._default_type, defects)  # type: ignore[attr-defined]


_HOSTILE = [
    b"From: a@b.c\nContent-Type: multipart/digest; boundary=X\n\n--X\n\nFrom: x@y.z\nSubject: in\n\nbody\n--X--\n",
    b"From: a@b.c\nContent-Type: multipart/report; boundary=X\n\n--X\nContent-Type: message/delivery-status\n\n"
    b"Reporting-MTA: dns; x\n\nFinal-Recipient: rfc822; a@b\nAction: failed\n\n--X--\n",
    b"From MAILER-DAEMON Mon\nFrom: a@b.c\nFrom x y\nSubject: s\n\nbody\n",
    b"Subject: s\nFrom x y\n\nbody\n",
    b"Subject: s\nFrom x y\nbody without colon\n",
    b" cont\nSubject: s\n:noname\n\nbody\n",
    b"From: a@b.c\rSubject: s\r\n\rContent-Type: multipart/mixed; boundary=q\n\n--q\r\n\r\nx\r--q--\r",
    b"Content-Type: multipart/mixed; boundary=q\n\npreamble only, no boundary\n",
    b"Content-Type: multipart/mixed\n\nno boundary parameter\n",
    b"Content-Type: multipart/mixed; boundary=q\nContent-Transfer-Encoding: base64\n\n--q\n\nx\n--q \t\n\ny\n",
    b"Content-Type: multipart/mixed; boundary=q\n\n--q\n--q\n--q--\n\nepilogue\n--q\n",
    b'Content-Type: message/rfc822\n\nContent-Type: multipart/alternative; boundary="a b"\n\n--a b\n\nz\n--a b--',
    b"",
    b"\n\n",
    b"no headers at all",
]


def _mutants(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    seeds = [
        *_HOSTILE,
        make_eml(html="<p><a href='https://x.example/a'>x</a></p>", attachments=[("a.txt", "text/plain", b"abc")]),
        make_eml(body="plain\r\n-- \r\nsig\r\n"),
    ]
    out = []
    for _ in range(count):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            if op == 0 and data:
                for _ in range(rng.randint(1, 10)):
                    data[rng.randrange(len(data))] = rng.choice(b'\r\n -:\t=?"<>x\xff')
            elif op == 1 and data:
                del data[rng.randrange(len(data)) :]
            elif op == 2:
                at = rng.randrange(len(data) + 1)
                data[at:at] = rng.choice([b"\r\n", b"\r", b"\n\n", b"--q\n", b"--X--\n", b"From x\n", b" \t", b":"])
            else:
                data = bytearray(bytes(data).replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n"])))
        out.append(bytes(data))
    return out


@pytest.mark.parametrize("raw", _HOSTILE + _mutants(400, 20261126))
def test_structure_matches_the_stdlib_parser(raw: bytes) -> None:
    text = raw.decode("ascii", "surrogateescape")
    assert _tree(parse_structure(text)) == _tree(stdlib_parse(text))


def test_nesting_up_to_the_cap_is_the_stdlib_tree_and_deeper_is_flattened() -> None:
    raw = b"Subject: bottom\n\nbody\n"
    for _ in range(MAX_DEPTH - 1):
        raw = b"Content-Type: message/rfc822\n\n" + raw
    text = raw.decode()
    assert _tree(parse_structure(text)) == _tree(stdlib_parse(text))
    text = "Content-Type: message/rfc822\n\n" * 6 + text
    msg = parse_structure(text)
    assert isinstance(msg, IndexedMessage)  # not handed to the stdlib parser, which dies of recursion further down
    flattened = [p for p in msg.walk() if any(isinstance(d, NestingTooDeepDefect) for d in p.defects)]
    assert len(flattened) == 1
    assert [(p["Subject"], p.get_payload()) for p in flattened[0].get_payload()] == [("bottom", "body\n")]


def test_indexed_message_forgets_changed_headers() -> None:
    msg = parse_structure("Content-Type: text/plain; charset=latin-1\nX-A: 1\n\nbody\n")
    assert isinstance(msg, IndexedMessage)
    assert msg.get_content_charset() == "latin-1" and msg["x-a"] == "1"
    msg.replace_header("X-A", "2")
    msg.set_param("charset", "utf-8")
    msg["X-B"] = "3"
    assert (msg["X-A"], msg.get_content_charset(), msg["x-b"], "x-b" in msg) == ("2", "utf-8", "3", True)
    del msg["X-B"]
    assert msg["X-B"] is None and "x-b" not in msg


@pytest.mark.parametrize(
    "field",
    [
        "a@b.c",
        " a@b.c , c@d.e",
        "Name <a@b.c>",
        '"Doe, John" <j@x.y>, Mary Q. Public <m@x.y>',
        '"" <a@b>',
        'A"B" <a@b>',
        "<a@b>,\r\n\t<c@d>",
        "iCloud <x@y.z >",
        "Doe, John <j@x>",
        "a@b,",
        "a@b, ",
        "a..b@c",
        "a@b@c",
        "x (comment) <a@b>",
        "undisclosed-recipients:;",
        '"a\\"b" <x@y>',
    ],
)
def test_simple_addresses_match_getaddresses(field: str) -> None:
    simple = _simple_getaddresses(field)
    if simple is not None:
        assert simple == getaddresses([field])


def _stdlib_decode(value: str) -> str:
    parts = decode_header(value)
    text = "".join(decode_bytes(c, cs) if isinstance(c, bytes) else c for c, cs in parts)
    return " ".join(text.replace("\r", "").replace("\n", "").split())


@pytest.mark.parametrize(
    "value",
    [
        "\r\n\t=?utf-8?B?w6k=?=\r\n =?utf-8?B?w6k=?=",
        "=?utf-8?q?a_b=3D?= =?UTF-8?Q?=C3=A9?=",
        "=?utf-8?b?YQ?= =?iso-8859-1?q?=E9t=E9?=  =?utf-8?b?Yg?= ",
        "=?gb2312?b?xOO6ww==?==?x-unknown?b?/w==?=",
        "=?utf-8?q? ?= =?utf-8?q? ?= =?utf-8?q?x?=",
    ],
)
def test_encoded_word_shortcut_matches_decode_header(value: str) -> None:
    assert decode_header_value(value) == _stdlib_decode(value)


def test_html_view_is_what_the_scan_reads_itself() -> None:
    html = "<html><head><title>t</title><style>p{}</style></head><body><!-- c --><p>Pay <a href='https://x.example'>"
    html += "here</a></p><script>x()</script></body></html>"
    parsed = parse_message(make_eml(body="", html=html))
    assert parsed.html_view is not None and parsed.html_view.source is parsed.html_body
    assert "-comment" in parsed.html_view.tags and "Pay" in parsed.html_view.text
    assert extract_text(parsed) == extract_text(dataclasses.replace(parsed, html_view=None))
    assert repr(parsed) == repr(dataclasses.replace(parsed, html_view=None))  # not part of the repr
