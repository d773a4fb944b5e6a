"""A parsed message to the one HTML document the browser renders, plus the remote resources it would have loaded.

The document is made inert before Chromium sees it: scripts, frames, plugins, `<base>`, meta refresh and resource
hints (prefetch/preconnect bypass request interception) are removed; `cid:` references become `data:` URLs from the
message's own parts. Every remote URL found on the way is recorded, never fetched. A remote image is drawn as a
labelled placeholder of its declared size (an inline SVG `data:` image naming its host), so a message whose content
is pictures still shows its layout instead of a blank page."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urljoin, urlsplit
from xml.sax.saxutils import escape as xml_escape

from selectolax.lexbor import LexborHTMLParser, LexborNode

from mailsec.htmldepth import limit_html_nesting
from mailsec.model import ParsedMessage

MAX_RESOURCES = 500
# Enough HTML for any picture under the height cap; beyond it Chromium spends seconds laying out what is never shown.
MAX_DOCUMENT_CHARS = 1_000_000
# Chromium's own parser stops nesting at 512; selectolax has no limit and slows down quadratically with depth.
MAX_DEPTH = 512
REMOTE_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss", "gopher"})

# Elements removed with everything inside them: they run code, embed other documents or hint the network stack.
_DROP = "script, noscript, iframe, frame, frameset, object, embed, applet, portal, fencedframe, base, template"
_ICON_RELS = frozenset({"icon", "apple-touch-icon", "shortcut", "mask-icon"})
_HINT_RELS = frozenset({"prefetch", "preconnect", "dns-prefetch", "preload", "prerender", "modulepreload"})
# (selector, attribute, kind) for every attribute that loads something.
_URL_ATTRS: tuple[tuple[str, str, str], ...] = (
    ("img[src]", "src", "image"),
    ("input[src]", "src", "image"),
    ("video[poster]", "poster", "media"),
    ("video[src]", "src", "media"),
    ("audio[src]", "src", "media"),
    ("source[src]", "src", "media"),
    ("track[src]", "src", "media"),
    ("[background]", "background", "background"),
    ("[lowsrc]", "lowsrc", "image"),
    ("[dynsrc]", "dynsrc", "image"),
)
_SRCSET = re.compile(r"\s*([^\s,][^\s]*)(?:\s+[^,]*)?(?:,|$)")
_CSS_URL = re.compile(r"""url\(\s*(?:"([^"]*)"|'([^']*)'|([^)'"\s]*))\s*\)""", re.I)
_CSS_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?(?:"([^"]*)"|'([^']*)'|([^)'"\s;]+))""", re.I)
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)
_CID = re.compile(r"""cid:([^\s"'()<>\\]+)""", re.I)
_META_URL = re.compile(r"url\s*=\s*['\"]?([^'\";\s]+)", re.I)
_C1 = re.compile("[\x80-\x9f]")
_CSS_SIZE = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*([0-9.]+)\s*px\s*(?:!important\s*)?(?=;|$)", re.I)
_NUMBER = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(?:px)?\s*$", re.I)
# Placeholder sizes: what an image with no declared size is drawn as, the largest drawn, and the smallest that gets
# a box and a label (a tracking pixel stays an invisible pixel).
PLACEHOLDER_DEFAULT = (600, 300)
PLACEHOLDER_MAX = (1600, 2000)
PLACEHOLDER_MIN_LABELLED = (24, 12)
MAX_PLACEHOLDERS = 200
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"), (b"\xff\xd8\xff", "image/jpeg"))

_TEXT_TEMPLATE = (
    "<!doctype html><html><head><meta charset='utf-8'><style>"
    "html,body{{margin:0;background:#fff;color:#111}}"
    "pre{{margin:0;padding:16px;white-space:pre-wrap;overflow-wrap:anywhere;"
    "font:14px/1.45 'DejaVu Sans Mono','Liberation Mono',monospace}}"
    "</style></head><body><pre>{body}</pre></body></html>"
)


@dataclass(frozen=True)
class RemoteResource:
    url: str
    kind: str


@dataclass
class PreviewDocument:
    html: str
    is_html: bool
    remote: list[RemoteResource] = field(default_factory=list)
    inlined_cids: int = 0
    placeholders: set[str] = field(default_factory=set)  # remote image URLs drawn as placeholders


def _declared(value: str | None) -> int | None:
    m = _NUMBER.match(value or "")
    return int(float(m.group(1))) if m else None


def declared_size(attrs: dict[str, str | None]) -> tuple[int | None, int | None]:
    """Width and height in pixels from the element's inline style (wins, as in a browser) or its attributes;
    None where nothing usable is declared (a percentage, `auto`, nothing)."""
    size: dict[str, int | None] = {"width": _declared(attrs.get("width")), "height": _declared(attrs.get("height"))}
    for m in _CSS_SIZE.finditer(attrs.get("style") or ""):
        size[m.group(1).lower()] = int(float(m.group(2))) if m.group(2).count(".") <= 1 else None
    return size["width"], size["height"]


def placeholder_size(width: int | None, height: int | None) -> tuple[int, int]:
    w = PLACEHOLDER_DEFAULT[0] if width is None else width
    h = PLACEHOLDER_DEFAULT[1] if height is None else height
    return max(0, min(w, PLACEHOLDER_MAX[0])), max(0, min(h, PLACEHOLDER_MAX[1]))


def placeholder_svg(url: str, width: int, height: int, alt: str = "") -> str:
    """A grey dashed box of the image's size naming the host it would have come from (and its alt text): a
    `data:` image, which the renderer lets through and which can neither run script nor load anything."""
    try:
        host = urlsplit(url).hostname or url
    except ValueError:
        host = url
    lines = [f"remote image: {host[:80]}"]
    if alt.strip():
        lines.append(f"alt: {' '.join(alt.split())[:80]}")
    labelled = width >= PLACEHOLDER_MIN_LABELLED[0] and height >= PLACEHOLDER_MIN_LABELLED[1]
    text = "".join(
        f'<text x="50%" y="50%" dy="{0.35 + 1.5 * (i - (len(lines) - 1) / 2):.2f}em">{xml_escape(line)}</text>'
        for i, line in enumerate(lines)
    )
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{max(width, 1)}" height="{max(height, 1)}">'
        + (
            '<rect width="100%" height="100%" fill="#eef1f5" stroke="#8a94a6" stroke-width="2" '
            'stroke-dasharray="6 4"/>'
            '<g font-family="DejaVu Sans, sans-serif" font-size="13" fill="#3d4759" text-anchor="middle">'
            f"{text}</g>"
            if labelled
            else ""
        )
        + "</svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _draw_placeholders(tree: LexborHTMLParser, rec: _Recorder) -> set[str]:
    """Every remote `<img>` (and image `<input>`) becomes a placeholder of its declared size; its srcset and any
    `<picture>` sources go, so that Chromium has nothing remote left to choose for it."""
    drawn: set[str] = set()
    for node in tree.css("picture source"):
        node.decompose()
    for node in tree.css("img, input[src]"):
        if len(drawn) >= MAX_PLACEHOLDERS:
            break
        attrs = node.attributes
        if node.tag == "input" and (attrs.get("type") or "").strip().lower() != "image":
            continue
        candidates = [attrs.get("src") or ""] + [m.group(1) for m in _SRCSET.finditer(attrs.get("srcset") or "")]
        url = next((u for u in (rec.resolve(c) for c in candidates) if u), None)
        if url is None:
            continue
        width, height = declared_size(attrs)
        w, h = placeholder_size(width, height)
        node.attrs["src"] = placeholder_svg(url, w, h, attrs.get("alt") or "")
        for name in ("srcset", "sizes", "lowsrc", "dynsrc"):
            if name in node.attrs:
                del node.attrs[name]
        if width is not None:
            node.attrs["width"] = str(w)
        if height is not None:
            node.attrs["height"] = str(h)
        drawn.add(url)
    return drawn


class _Recorder:
    def __init__(self, base: str | None) -> None:
        self.base = base
        self.items: dict[str, RemoteResource] = {}

    def resolve(self, raw_url: str) -> str | None:
        """The absolute URL a browser would load for this reference, when it is remote."""
        url = html.unescape(raw_url).strip()
        if not url:
            return None
        if url.startswith("//"):
            url = "http:" + url
        elif self.base and ":" not in url.split("/", 1)[0]:
            url = urljoin(self.base, url)
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            return None
        return url if scheme in REMOTE_SCHEMES else None

    def add(self, raw_url: str, kind: str) -> None:
        if len(self.items) >= MAX_RESOURCES:
            return
        url = self.resolve(raw_url)
        if url is not None:
            self.items.setdefault(url, RemoteResource(url[:2000], kind))

    def css(self, text: str) -> None:
        fonts = {m.span() for m in _FONT_FACE.finditer(text)}
        for m in _CSS_IMPORT.finditer(text):
            self.add(next(g for g in m.groups() if g is not None), "import")
        for m in _CSS_URL.finditer(text):
            in_font = any(a <= m.start() < b for a, b in fonts)
            self.add(next(g for g in m.groups() if g is not None), "font" if in_font else "css")


def fix_c1(text: str) -> str:
    """C1 control characters in a body almost always mean windows-1252 bytes labelled ISO-8859-1; browsers and mail
    clients read that label as windows-1252 (WHATWG Encoding), so the preview does too: curly quotes and dashes
    instead of empty boxes."""
    if not _C1.search(text):
        return text
    return _C1.sub(lambda m: m.group(0).encode("latin-1").decode("cp1252", "ignore") or m.group(0), text)


def _data_url(ctype: str, data: bytes) -> str | None:
    ctype = ctype.lower()
    if not (ctype.startswith("image/") or ctype.startswith("font/")):
        ctype = next((t for magic, t in _IMAGE_MAGIC if data.startswith(magic)), "")
        if not ctype:
            return None
    return f"data:{ctype};base64,{base64.b64encode(data).decode('ascii')}"


def inline_cids(text: str, parts: dict[str, tuple[str, bytes]]) -> tuple[str, int]:
    """Replace `cid:` references to the message's own image parts by `data:` URLs."""
    if not parts or "cid:" not in text.lower():
        return text, 0
    lookup = {cid.lower(): value for cid, value in parts.items()}
    cache: dict[str, str | None] = {}
    count = 0

    def repl(m: re.Match[str]) -> str:
        nonlocal count
        ref = unquote(html.unescape(m.group(1))).strip("<>").lower()
        if ref not in cache:
            part = lookup.get(ref)
            cache[ref] = _data_url(*part) if part else None
        url = cache[ref]
        if url is None:
            return m.group(0)
        count += 1
        return url

    return _CID.sub(repl, text), count


def _rels(node: LexborNode) -> set[str]:
    return {r.lower() for r in (node.attributes.get("rel") or "").split()}


def _sanitize_and_record(source: str) -> tuple[str, list[RemoteResource], set[str]]:
    tree = LexborHTMLParser(source)
    base_node = tree.css_first("base[href]")
    rec = _Recorder((base_node.attributes.get("href") or "").strip() or None if base_node else None)

    for node in tree.css("script[src]"):
        rec.add(node.attributes.get("src") or "", "script")
    for node in tree.css("iframe[src], frame[src], embed[src], portal[src]"):
        rec.add(node.attributes.get("src") or "", "frame")
    for node in tree.css("object[data]"):
        rec.add(node.attributes.get("data") or "", "object")
    for node in tree.css("meta[http-equiv]"):
        if (node.attributes.get("http-equiv") or "").strip().lower() == "refresh":
            m = _META_URL.search(node.attributes.get("content") or "")
            if m:
                rec.add(m.group(1), "refresh")
            node.decompose()
    for node in tree.css("link[href]"):
        rels = _rels(node)
        href = node.attributes.get("href") or ""
        if "stylesheet" in rels and not rels & _HINT_RELS:
            rec.add(href, "stylesheet")
            continue  # stylesheet loads go through request interception: refused there
        # Anything else a <link> may fetch (hints, icons, manifests) can bypass interception: record and remove it.
        rec.add(href, "prefetch" if rels & _HINT_RELS else "icon" if rels & _ICON_RELS else "link")
        node.decompose()
    for selector, attr, kind in _URL_ATTRS:
        for node in tree.css(selector):
            rec.add(node.attributes.get(attr) or "", kind)
    for node in tree.css("image, use, feimage"):  # SVG: href or xlink:href (a selector cannot name the latter)
        for name in ("href", "xlink:href"):
            rec.add(node.attributes.get(name) or "", "image")
    for node in tree.css("img[srcset], source[srcset]"):
        for m in _SRCSET.finditer(node.attributes.get("srcset") or ""):
            rec.add(m.group(1), "image")
    for node in tree.css("style"):
        rec.css(node.text(deep=True) or "")
    for node in tree.css("[style]"):
        rec.css(node.attributes.get("style") or "")

    for node in tree.css(_DROP):
        node.decompose()
    drawn = _draw_placeholders(tree, rec)
    return tree.html or "", list(rec.items.values()), {u[:2000] for u in drawn}


def limit_nesting(source: str, max_depth: int = MAX_DEPTH) -> str:
    """Every document is checked, whatever its size: the browser is the slowest parser of all."""
    return limit_html_nesting(source, max_depth, check_above=0)


def text_document(text: str) -> str:
    return _TEXT_TEMPLATE.format(body=html.escape(text, quote=False))


def build_document(parsed: ParsedMessage) -> PreviewDocument:
    """The HTML body when there is one (inert, cid: inlined), else the text body as wrapped preformatted text."""
    if parsed.html_body.strip():
        try:
            source = limit_nesting(fix_c1(parsed.html_body[:MAX_DOCUMENT_CHARS]))
            sanitized, remote, drawn = _sanitize_and_record(source)
        except Exception:  # selectolax does not raise on bad HTML, but a preview must never crash on content
            return PreviewDocument(text_document(parsed.text_body or "(unreadable HTML body)"), is_html=False)
        doc, count = inline_cids(sanitized, parsed.inline_parts)
        return PreviewDocument(doc, is_html=True, remote=remote, inlined_cids=count, placeholders=drawn)
    body = (
        fix_c1(parsed.text_body[:MAX_DOCUMENT_CHARS]) if parsed.text_body.strip() else "(this message has no text body)"
    )
    return PreviewDocument(text_document(fix_c1(body)), is_html=False)
