"""Building the inert document, without a browser: what is removed, what is recorded, cid: inlining, charsets."""

from __future__ import annotations

import base64
import re
import time
import xml.etree.ElementTree as ET

from preview_helpers import cid_eml

from mailsec.mime import parse_message
from mailsec.preview.document import (
    MAX_DOCUMENT_CHARS,
    PLACEHOLDER_DEFAULT,
    PLACEHOLDER_MAX,
    build_document,
    declared_size,
    fix_c1,
    inline_cids,
    limit_nesting,
    placeholder_size,
)
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


def _svg_of(html: str, index: int = 0) -> ET.Element:
    """The placeholder SVG of the index-th <img> of a built document, parsed (so it must be well-formed XML)."""
    srcs = re.findall(r'<img[^>]* src="data:image/svg\+xml;base64,([^"]+)"', html)
    return ET.fromstring(base64.b64decode(srcs[index]))


def test_remote_images_become_labelled_placeholders_of_their_declared_size() -> None:
    html = (
        "<img src='https://cdn.phish.example/banner.png' width='570' height='400' alt='Verify <now> & win'>"
        "<img src='//img.other.example/a.jpg' style='width: 320px; height:90px' width='999' height='999'>"
        "<img src='https://nosize.example/x.png' width='100%'>"
        "<img srcset='https://srcset.example/hi.png 2x'>"
        "<img src='https://huge.example/x.png' width='90000' height='90000'>"
        "<img src='https://pixel.example/o.gif' width='1' height='1'>"
        "<picture><source srcset='https://source.example/s.webp'><img src='https://pic.example/p.png'></picture>"
        "<img src='relative.png'><img src='data:image/gif;base64,R0lGODlhAQABAAAAACw='>"
    )
    doc = build_document(parse_message(make_eml(html=html)))
    assert "cdn.phish.example/banner.png" not in doc.html.split("<body", 1)[1]
    assert "source.example" not in doc.html and "srcset=" not in doc.html
    assert doc.placeholders == {
        "https://cdn.phish.example/banner.png",
        "http://img.other.example/a.jpg",
        "https://nosize.example/x.png",
        "https://srcset.example/hi.png",
        "https://huge.example/x.png",
        "https://pixel.example/o.gif",
        "https://pic.example/p.png",
    }
    sizes = [(svg.get("width"), svg.get("height")) for svg in (_svg_of(doc.html, i) for i in range(7))]
    assert sizes == [
        ("570", "400"),  # attributes
        ("320", "90"),  # inline CSS wins over attributes, as in a browser
        (str(PLACEHOLDER_DEFAULT[0]), str(PLACEHOLDER_DEFAULT[1])),  # a percentage is no size: the default
        (str(PLACEHOLDER_DEFAULT[0]), str(PLACEHOLDER_DEFAULT[1])),
        (str(PLACEHOLDER_MAX[0]), str(PLACEHOLDER_MAX[1])),  # capped, attributes too
        ("1", "1"),
        (str(PLACEHOLDER_DEFAULT[0]), str(PLACEHOLDER_DEFAULT[1])),
    ]
    assert f'width="{PLACEHOLDER_MAX[0]}" height="{PLACEHOLDER_MAX[1]}"' in doc.html
    labels = [" | ".join(t.text or "" for t in _svg_of(doc.html, i).iter("{http://www.w3.org/2000/svg}text"))
              for i in range(7)]  # fmt: skip
    assert labels[0] == "remote image: cdn.phish.example | alt: Verify <now> & win"
    assert labels[1] == "remote image: img.other.example"
    assert labels[5] == ""  # a tracking pixel gets no box and no label
    # Not remote: left as they are (a relative URL without <base> loads nothing; data: is the message's own).
    assert 'src="relative.png"' in doc.html and "data:image/gif;base64,R0lGODlhAQABAAAAACw=" in doc.html
    # Reported as requested (refused before the browser) and marked as placeholders.
    resources = merge_resources([(r.url, r.kind) for r in doc.remote], [], doc.placeholders)
    banner = next(r for r in resources if r["url"] == "https://cdn.phish.example/banner.png")
    assert banner == {"url": "https://cdn.phish.example/banner.png", "kind": "image", "requested": True,
                      "placeholder": True}  # fmt: skip


def test_placeholder_label_cannot_break_out_of_the_svg() -> None:
    alt = '"/><script>alert(1)</script><text>'
    doc = build_document(parse_message(make_eml(html=f"<img src='https://x.example/{'a' * 50}' alt='{alt}'>")))
    svg = _svg_of(doc.html)
    assert [e.tag.rsplit("}", 1)[-1] for e in svg.iter()] == ["svg", "rect", "g", "text", "text"]
    assert svg.findall(".//{http://www.w3.org/2000/svg}text")[1].text == f"alt: {alt}"
    assert declared_size({"width": "12.5px", "style": "height: 40px !important; max-width: 3px"}) == (12, 40)
    assert declared_size({"width": "auto", "height": "-3"}) == (None, None)
    assert placeholder_size(None, 5) == (PLACEHOLDER_DEFAULT[0], 5)
