"""One Lexbor parse of an HTML body serves both readers: mime takes its links, scan its visible text and tag names.
A leaf module (it imports only the nesting guard) so that mime and scan share the code without importing each other;
`text_and_tags` is the scan's reading, kept here so that mime can carry it on `ParsedMessage` (`HtmlView`)."""

from __future__ import annotations

from selectolax.lexbor import LexborHTMLParser

from mailsec.htmldepth import limit_html_nesting

TEXT_MAX_CHARS = 400_000  # the scan reads the visible text of the first 400,000 characters of HTML
MAX_TAGS = 4000


def parse_html(html: str) -> LexborHTMLParser:
    """A Lexbor tree of `html`, hostile nesting flattened first."""
    return LexborHTMLParser(limit_html_nesting(html))


def text_and_tags(tree: LexborHTMLParser) -> tuple[str, tuple[str, ...]]:
    """The visible text (script, style and head removed: this edits `tree`) and the first MAX_TAGS tag names."""
    try:
        tags = []
        root = tree.root
        if root is not None:
            for node in root.traverse():
                tags.append(node.tag or "")
                if len(tags) >= MAX_TAGS:
                    break
        for node in tree.css("script, style, head"):
            node.decompose()
        body = tree.body or tree.root
        text = body.text(separator=" ") if body is not None else ""
        return text or "", tuple(tags)
    except Exception:
        return "", ()
