"""Header decoding that never raises: RFC 2047 words, broken charsets and 8-bit junk all become text."""

from __future__ import annotations

import codecs
import re
from email.header import decode_header
from email.utils import getaddresses

from mailsec.model import Address

_WS = re.compile(r"\s+")
_CHARSET_ALIASES = {"unknown-8bit": "utf-8", "x-unknown": "utf-8", "ks_c_5601-1987": "cp949", "gb2312": "gb18030"}


def safe_charset(charset: str | None, default: str = "utf-8") -> str:
    """A codec name Python knows for `charset`, or `default`."""
    if not charset:
        return default
    name = str(charset).strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):
        return default
    return name


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, then UTF-8, then Latin-1 (which never fails)."""
    for name in (safe_charset(charset), "utf-8"):
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1")


def unescape_surrogates(value: str) -> str:
    """Headers parsed from bytes carry 8-bit junk as surrogate escapes; turn them back into text."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return decode_bytes(value.encode("utf-8", "surrogateescape"), "utf-8")


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as readable text, whatever the sender did to it."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    if "=?" not in value:  # split/join collapses and strips exactly the characters `\s` matches, faster
        return " ".join(value.replace("\r", "").replace("\n", "").split())
    try:
        parts = decode_header(value)
    except Exception:
        return _WS.sub(" ", value).strip()
    out = []
    for chunk, charset in parts:
        text = decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
        out.append(text)
    return " ".join("".join(out).replace("\r", "").replace("\n", "").split())


def _rejoin_unquoted_names(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`Doe, John <j@x>` (a display name with an unquoted comma) splits into a bare `Doe` and `John <j@x>`:
    glue such fragments back onto the named address that follows them."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for name, email in pairs:
        if email and "@" not in email and not name:
            pending.append(email)
            continue
        if pending and name and "@" in email:
            name = ", ".join([*pending, name])
        else:
            out.extend(("", p) for p in pending)
        pending = []
        out.append((name, email))
    out.extend(("", p) for p in pending)
    return out


def parse_addresses(values: list[str]) -> list[Address]:
    result = []
    try:
        pairs = _rejoin_unquoted_names(getaddresses([v for v in values if v]))
    except Exception:
        pairs = []
    for name, email in pairs:
        email = email.strip().strip("<>").strip()
        if "@" in email:
            email = email.rstrip(".")
        name = decode_header_value(name)
        if not email and not name:
            continue
        if "@" not in email and not email:
            continue
        result.append(Address(name=name, email=email))
    return result
