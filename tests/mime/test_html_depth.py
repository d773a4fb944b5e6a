"""Hostile nesting depth: HTML parsing is quadratic in depth, so tags deeper than the cap are dropped before parsing
(in mime and in the scan's text extraction); their text, the links and ordinary HTML stay exactly as they were."""

from __future__ import annotations

import re

from mailsec.htmldepth import MAX_HTML_DEPTH, limit_html_nesting
from mailsec.mime import parse_message
from mailsec.scan.features import extract_text
from support import make_eml

DEPTH = 20_000


def _deep(depth: int = DEPTH) -> str:
    return "<html><body>" + "<div class=d>" * depth + "deep text" + "</div>" * depth + "</body></html>"


def _max_depth(html: str) -> int:
    depth = peak = 0
    for m in re.finditer(r"<(/?)div\b", html):
        depth += -1 if m.group(1) else 1
        peak = max(peak, depth)
    return peak


def test_deep_html_is_capped_and_keeps_its_text() -> None:
    capped = limit_html_nesting(_deep())
    assert _max_depth(capped) == MAX_HTML_DEPTH - 2  # <html> and <body> count too
    assert "deep text" in capped and capped.count("</div>") == MAX_HTML_DEPTH - 2


def test_ordinary_html_is_untouched() -> None:
    shallow = _deep(300) + "<p>para" * 3000  # many tags, but nothing deep: returned as is
    assert limit_html_nesting(shallow) is shallow
    small = "<div><a href='https://x.example/'>x</a></div>"
    assert limit_html_nesting(small) is small


def test_deeply_nested_message_parses_with_its_link_and_text() -> None:
    html = _deep() + "<p><a href='https://bank.example/login'>log in</a></p>"
    parsed = parse_message(make_eml(html=html))
    assert [link.href for link in parsed.links if link.source == "html"] == ["https://bank.example/login"]
    assert "deep text" in extract_text(parsed).body
