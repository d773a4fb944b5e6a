"""Hostile HTML nesting, flattened before any HTML parser sees it. Lexbor's tree building is quadratic in nesting depth
(20,000 nested <div> take seconds), so tags nested deeper than MAX_HTML_DEPTH are dropped, their text kept, in one
linear pass. A leaf module (it imports nothing of ours) so that mime, scan and preview share the one guard."""

from __future__ import annotations

import re

MAX_HTML_DEPTH = 512
DEPTH_CHECK_TAGS = 2000  # with fewer tags nesting stays cheap to parse: ordinary mail skips even the scan
# group 3 is the rest of the tag: it ends in "/" for a self-closing tag (a greedy run: the lazy `[^<>]*?(/?)>` that
# says the same backtracks at every character)
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]{0,15})\b([^<>]*)>")
_NON_NESTING = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    | {"p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "thead", "tbody", "tfoot", "colgroup", "rt", "rp"}
)


def _too_deep(source: str, max_depth: int) -> bool:
    """Whether the pass below would drop a tag: the same walk over the same tags, on the tuples `findall` builds in
    one call, until the first tag that would open beyond `max_depth`."""
    depth = 0
    non_nesting = _NON_NESTING
    for closing, name, rest in _TAG_RE.findall(source):
        if rest.endswith("/") or name.lower() in non_nesting:
            continue
        if closing:
            if depth:
                depth -= 1
        elif depth >= max_depth:
            return True
        else:
            depth += 1
    return False


def limit_html_nesting(source: str, max_depth: int = MAX_HTML_DEPTH, check_above: int = DEPTH_CHECK_TAGS) -> str:
    """`source` with the tags nested deeper than `max_depth` dropped (their text stays); the very same object when no
    element is that deep, or when it has no more than `check_above` tags (0: always check)."""
    tags = source.count("<")
    if tags <= max(max_depth, check_above) or tags - source.count("</") <= max_depth:
        return source  # too few tags, or too few opening ones, to nest that deep
    if not _too_deep(source, max_depth):
        return source
    out: list[str] = []
    depth = excess = last = 0
    for m in _TAG_RE.finditer(source):
        if m.group(3).endswith("/") or m.group(2).lower() in _NON_NESTING:
            continue
        drop = False
        if m.group(1):
            if excess:
                excess -= 1
                drop = True
            else:
                depth = max(depth - 1, 0)
        elif depth >= max_depth:
            excess += 1
            drop = True
        else:
            depth += 1
        if drop:
            out.append(source[last : m.start()])
            last = m.end()
    if not out:
        return source
    out.append(source[last:])
    return "".join(out)
