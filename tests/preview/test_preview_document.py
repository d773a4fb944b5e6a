"""Building the inert document, without a browser: what is removed, what is recorded, cid: inlining, charsets."""

from __future__ import annotations

import time

from preview_helpers import cid_eml

from mailsec.mime import parse_message
from mailsec.preview.document import MAX_DOCUMENT_CHARS, build_document, fix_c1, inline_cids, limit_nesting
from mailsec.preview.service import merge_resources
from support import make_eml


def test_dangerous_elements_are_removed_and_recorded() -> None:
    html = (
        "<html><head><base href='https://evil.example/'><meta http-equiv='Refresh' content='1;URL=https://go.example/x'>"
        "<link rel='dns-prefetch preconnect' href='https://hint.example'><script src='https://js.example/a.js'></script>"
        "</head><body><iframe src='//frame.example/f'></iframe><embed src='https://embed.example/e'>"
        "<img src='logo.png'><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='><a href='https://link.example'>x</a>"
        "<img src='javascript:alert(1)'><img src='mailto:a@b.example'></body></html>"
    )
    doc = build_document(parse_message(make_eml(html=html)))
    lowered = doc.html.lower()
    for gone in ("<script", "<iframe", "<embed", "<base", "http-equiv", "preconnect"):
        assert gone not in lowered
    kinds = {r.url: r.kind for r in doc.remote}
    assert kinds == {
        "https://evil.example/logo.png": "image",
        "https://go.example/x": "refresh",
        "https://hint.example": "prefetch",
        "https://js.example/a.js": "script",
        "http://frame.example/f": "frame",
        "https://embed.example/e": "frame",
    }  # links are not loads; data:, javascript: and mailto: are not remote


def test_cid_inlining_only_for_the_message_parts() -> None:
    parsed = parse_message(cid_eml())
    doc = build_document(parsed)
    assert doc.inlined_cids == 1 and "data:image/png;base64," in doc.html and "cid:" not in doc.html
    text, count = inline_cids(
        "<img src='cid:unknown@x'><img src='CID:%3Clogo-1@sender.example%3E'>", parsed.inline_parts
    )
    assert count == 1 and "cid:unknown@x" in text and "data:image/png" in text
    # A non-image part is not turned into a data: URL (no HTML or script smuggled through cid:).
    _, count = inline_cids("<iframe src='cid:page'>", {"page": ("text/html", b"<script>x</script>")})
    assert count == 0


def test_plain_text_is_escaped_and_c1_is_windows_1252() -> None:
    doc = build_document(parse_message(make_eml(body="<script>alert(1)</script> \x93quoted\x94")))
    assert not doc.is_html and "&lt;script&gt;" in doc.html and "<script>" not in doc.html
    assert fix_c1("a\x96b \x81") == "a\u2013b \x81"  # undefined in windows-1252: left as is
    assert build_document(parse_message(make_eml(body=" "))).html.count("no text body") == 1


def test_nesting_is_limited_linearly() -> None:
    assert limit_nesting("<div><b>x</b><div>y<div>z</div></div></div><p>q", 1) == "<div>xyz</div><p>q"
    normal = "<table><tr><td><p>a<p>b<br><img src=x></td></tr></table>" * 100
    assert limit_nesting(normal, 3) == normal  # unclosed p/td and void elements do not count as depth
    deep = "<div>" * 200_000 + "x" + "</div>" * 200_000
    started = time.monotonic()
    out = limit_nesting(deep)
    assert time.monotonic() - started < 5
    assert out.count("<div>") == 512 and out.count("</div>") == 512


def test_document_is_capped() -> None:
    html = "<p>" + "y" * (MAX_DOCUMENT_CHARS + 500_000) + "</p>"
    doc = build_document(parse_message(make_eml(html=html)))
    assert len(doc.html) < MAX_DOCUMENT_CHARS + 1000


def test_merge_marks_what_chromium_tried() -> None:
    merged = merge_resources(
        [("http://A.example", "prefetch"), ("https://b.example/x.png", "image")],
        [("http://a.example/", "other"), ("https://c.example/font.woff", "font")],
    )
    assert merged == [
        {"url": "http://A.example", "kind": "prefetch", "requested": True},
        {"url": "https://b.example/x.png", "kind": "image", "requested": False},
        {"url": "https://c.example/font.woff", "kind": "font", "requested": True},
    ]
