"""Raw bytes to `ParsedMessage`, never raising. Structure with `compat32` (it splits real-world messages that
`policy.default` mis-splits, and is ~3x faster); headers are decoded explicitly."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from datetime import UTC, datetime
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from itertools import islice

from mailsec.htmltree import TEXT_MAX_CHARS, parse_html, text_and_tags
from mailsec.mime.headers import decode_bytes, decode_header_value, parse_addresses, unescape_surrogates
from mailsec.mime.structure import MAX_DEPTH, NestingTooDeepDefect, parse_structure
from mailsec.model import Attachment, HtmlView, Link, ParsedMessage

MAX_TEXT_CHARS = 2_000_000
MAX_LINKS = 500
MAX_PARTS = 1000

# `(?i)\b(?:https?://|www\.)[^\s<>"'()\[\]{}]+` spelled case by case (U+017F, long s, is what (?i) also takes for
# `s`) and starting with a character class, so the regex engine skips ahead instead of trying every position: 4x faster
_URL_RE = re.compile(
    r"""[hHwW](?<!\w[hHwW])(?:(?<=[hH])[tT][tT][pP][sS\u017f]?://|(?<=[wW])[wW][wW]\.)[^\s<>"'()\[\]{}]+"""
)
_BRACKET_IP_RE = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]")
_PAREN_IP_RE = re.compile(r"\(([^()]*)\)")
_BARE_IP_RE = re.compile(r"\b(\d{1,3}(?:\.\d{1,3}){3})\b")
_BY_RE = re.compile(r"\bby\b", re.I)


_DOTTED_QUAD_RE = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")


def _valid_ip(text: str) -> str | None:
    text = text.strip()
    if _DOTTED_QUAD_RE.fullmatch(text):  # what ip_address decides for a dotted quad, without building the object
        octets = text.split(".")
        if all(int(o) <= 255 and (len(o) == 1 or o[0] != "0") for o in octets):
            return text
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def received_from_ip(received: str) -> str | None:
    """The connecting IP a Received header names in its `from` clause."""
    head = _BY_RE.split(received, maxsplit=1)[0]
    for m in _BRACKET_IP_RE.finditer(head):
        ip = _valid_ip(m.group(1))
        if ip:
            return ip
    for paren in _PAREN_IP_RE.findall(head):
        for m in _BARE_IP_RE.finditer(paren):
            ip = _valid_ip(m.group(1))
            if ip:
                return ip
    return None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _html_links_and_view(html: str) -> tuple[list[Link], HtmlView | None]:
    """The links of an HTML body and, from the same parse, what the scan reads of it (when the scan would read that
    very text: bodies up to TEXT_MAX_CHARS; longer ones it parses itself)."""
    links: list[Link] = []
    try:
        tree = parse_html(html[:MAX_TEXT_CHARS])
        for node in tree.css("a[href], area[href]"):
            href = (node.attributes.get("href") or "").strip()
            if not href or href.startswith("#"):
                continue
            text = " ".join((node.text(deep=True, separator=" ") or "").split())
            links.append(Link(href=href, text=text[:500], source="html"))
            if len(links) >= MAX_LINKS:
                break
    except Exception:
        return links, None
    if len(html) > TEXT_MAX_CHARS:
        return links, None
    return links, HtmlView(html, *text_and_tags(tree))


def extract_text_links(text: str) -> list[Link]:
    links: list[Link] = []
    for m in _URL_RE.finditer(text[:MAX_TEXT_CHARS]):
        href = m.group(0).rstrip(".,;:!?")
        links.append(Link(href=href, text="", source="text"))
        if len(links) >= MAX_LINKS:
            break
    return links


def _payload_bytes(part: Message, defects: list[str]) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        defects.append(f"undecodable part payload: {type(exc).__name__}")
        return b""
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if name is None:
        try:
            param = part.get_param("name")
        except Exception:
            param = None
        name = param[2] if isinstance(param, tuple) else param
    return decode_header_value(unescape_surrogates(str(name))) if name else None


def _attachment(part: Message, name: str, ctype: str, data: bytes, disposition: str | None) -> Attachment:
    cid = part.get("Content-ID")
    return Attachment(
        name=name,
        content_type=ctype,
        size=len(data),
        md5=hashlib.md5(data).hexdigest(),
        sha1=hashlib.sha1(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        content=data,
        content_id=str(cid).strip().strip("<>") if cid else None,
        disposition=disposition,
    )


def _attached_message(part: Message) -> Attachment | None:
    """A message/rfc822 part sent as an attachment (a forwarded .eml) is an attachment itself; its own parts are
    still walked for bodies, links and attachments."""
    try:
        if part.get_content_type() != "message/rfc822":
            return None
        filename = _filename(part)
        disposition = part.get_content_disposition()
        if not filename and disposition != "attachment":
            return None
        inner = part.get_payload(0)
        data = inner.as_bytes() if isinstance(inner, Message) else b""
    except Exception:
        return None
    return _attachment(part, filename or "", "message/rfc822", data, disposition)


def _dedupe_links(links: list[Link]) -> list[Link]:
    seen: set[tuple[str, str]] = set()
    out = []
    for link in links:
        key = (link.href, link.text)
        if key not in seen:
            seen.add(key)
            out.append(link)
    return out


def _headers_only(text: str) -> Message:
    """The top-level headers of a message whose structure defeated both parsers (reading headers never recurses)."""
    try:
        return HeaderParser(policy=compat32).parsestr(text, headersonly=True)
    except Exception:
        return Message()


def parse_message(raw: bytes) -> ParsedMessage:
    """Parse hostile bytes into the shared model. Problems become `defects`, never exceptions."""
    defects: list[str] = []
    unread: list[str] = []
    text = raw.decode("ascii", "surrogateescape")
    try:
        # The tree message_from_bytes(policy=compat32) builds, without the stdlib's line-by-line feed machinery
        msg = parse_structure(text)
    except Exception as exc:  # the stdlib parser is lenient, but a defect beats a crash
        defects.append(f"unparseable message: {type(exc).__name__}")
        unread.append(f"the MIME structure could not be parsed ({type(exc).__name__}); only the headers were read")
        msg = _headers_only(text)

    # raw_items, not get_all: compat32's get_all turns 8-bit header bytes into U+FFFD. Each value is unescaped
    # once and indexed by lower-case name, so looking up a header does not walk all of them.
    headers: list[tuple[str, str]] = []
    by_name: dict[str, list[str]] = {}
    decoded_by_name: dict[str, list[str]] = {}
    for name, value in msg.raw_items():
        # unescape_surrogates and decode_header_value, their shortcuts inlined: some 40 headers a message
        text = value if type(value) is str and value.isascii() else unescape_surrogates(str(value))
        if "=?" in text:
            decoded = decode_header_value(text)
        else:
            decoded = " ".join(text.replace("\r", "").replace("\n", "").split())
        name = str(name)
        headers.append((name, decoded))
        lname = name.lower()
        if lname in by_name:
            by_name[lname].append(text)
            decoded_by_name[lname].append(decoded)
        else:
            by_name[lname] = [text]
            decoded_by_name[lname] = [decoded]

    def all_raw(name: str) -> list[str]:
        return by_name.get(name.lower(), [])

    def first(name: str) -> str:
        values = decoded_by_name.get(name.lower())
        return values[0] if values else ""

    from_list = parse_addresses(all_raw("From"))
    if not from_list:
        defects.append("missing or unparseable From header")
    to = parse_addresses(all_raw("To"))
    cc = parse_addresses(all_raw("Cc"))
    reply_to = parse_addresses(all_raw("Reply-To"))

    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    inline_parts: dict[str, tuple[str, bytes]] = {}
    count = 0
    try:
        parts = list(msg.walk())
    except Exception as exc:
        defects.append(f"broken MIME structure: {type(exc).__name__}")
        unread.append(f"the MIME parts could not be walked ({type(exc).__name__}); only the top part was read")
        parts = [msg]
    for part in parts:
        count += 1
        if count > MAX_PARTS:
            defects.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
            unread.append(f"more than {MAX_PARTS} MIME parts; the rest were not read")
            break
        for defect in getattr(part, "defects", []) or []:
            defects.append(type(defect).__name__)
            if isinstance(defect, NestingTooDeepDefect):
                unread.append(f"MIME parts nested deeper than {MAX_DEPTH} levels; the parts below were read flattened")
        if part.is_multipart():
            attached = _attached_message(part)
            if attached is not None:
                attachments.append(attached)
            continue
        try:
            ctype = part.get_content_type()
        except Exception:
            ctype = "application/octet-stream"
        disposition: str | None = part.get_content_disposition() or None
        filename = _filename(part)
        data = _payload_bytes(part, defects)
        cid = part.get("Content-ID")
        if cid:
            inline_parts[str(cid).strip().strip("<>")] = (ctype, data)
        is_body_text = ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename
        if is_body_text:
            text = decode_bytes(data, part.get_content_charset())[:MAX_TEXT_CHARS]
            (html_parts if ctype == "text/html" else text_parts).append(text)
        elif ctype == "message/rfc822" and not filename:
            continue
        else:
            attachments.append(_attachment(part, filename or "", ctype, data, disposition))

    text_body = "\n".join(text_parts)
    html_body = "\n".join(html_parts)
    links, html_view = _html_links_and_view(html_body) if html_body else ([], None)
    links += extract_text_links(text_body)

    received = list(decoded_by_name.get("received", ()))
    hop_ips = list(islice((ip for ip in map(received_from_ip, received) if ip), 2))  # only the first two are kept
    x_orig = first("X-Originating-IP").strip("[] ") or None
    return ParsedMessage(
        raw=raw,
        headers=headers,
        from_=next((a for a in from_list if "@" in a.email), from_list[0] if from_list else None),
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=first("Subject"),
        message_id=first("Message-ID").strip(),
        sent_at=_parse_date(first("Date")),
        text_body=text_body,
        html_body=html_body,
        links=_dedupe_links(links),
        attachments=attachments,
        received=received,
        smtp_helo_server_ip=hop_ips[0] if hop_ips else None,
        smtp_previous_hop_ip=hop_ips[1] if len(hop_ips) > 1 else None,
        x_originating_ip=_valid_ip(x_orig) if x_orig else None,
        defects=defects,
        unread=unread,
        inline_parts=inline_parts,
        html_view=html_view,
    )
