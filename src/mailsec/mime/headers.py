"""Header decoding that never raises: RFC 2047 words, broken charsets and 8-bit junk all become text."""

from __future__ import annotations

import binascii
import codecs
import re
from email.header import decode_header
from email.quoprimime import header_decode as _q_decode
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
    if value.isascii():  # O(1) for a str: nothing to unescape
        return value
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return decode_bytes(value.encode("utf-8", "surrogateescape"), "utf-8")


# An encoded word within one line, its text printable ASCII without "?" (so it ends where `ecre`'s lazy match ends)
_ENCODED_WORD_RE = re.compile(r"=\?([^?\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]*)\?([bBqQ])\?([!->@-~]*)\?=")


def _decode_encoded_words(value: str) -> str | None:
    """What `decode_header_value` makes of a header that is nothing but encoded words and white space (Exchange puts
    some 60 lines of them in X-Microsoft-Antispam-Message-Info): `decode_header` drops the white space between
    encoded words and joins the bytes of a run of one charset, so this is one decode per word and one per run.
    None for any other header, and whenever a word does not decode."""
    words = _ENCODED_WORD_RE.findall(value)
    if not words or _ENCODED_WORD_RE.sub("", value).strip(" \t\r\n"):
        return None
    out: list[str] = []
    run: list[bytes] = []
    run_charset = ""
    for charset, encoding, encoded in words:
        charset = charset.lower()
        if run and charset != run_charset:
            out.append(decode_bytes(b"".join(run), run_charset))
            run = []
        run_charset = charset
        if encoding in "qQ":
            run.append(bytes(_q_decode(encoded), "raw-unicode-escape"))
            continue
        paderr = len(encoded) % 4
        if paderr:
            encoded += "==="[: 4 - paderr]
        try:
            run.append(binascii.a2b_base64(encoded))
        except (binascii.Error, ValueError):
            return None
    out.append(decode_bytes(b"".join(run), run_charset))
    return " ".join("".join(out).replace("\r", "").replace("\n", "").split())


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as readable text, whatever the sender did to it."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    if "=?" not in value:  # split/join collapses and strips exactly the characters `\s` matches, faster
        return " ".join(value.replace("\r", "").replace("\n", "").split())
    if value.isascii():
        fast = _decode_encoded_words(value)
        if fast is not None:
            return fast
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


_ATOM = r'[^()<>@,:;."\[\] \t\r\n]++'  # what email._parseaddr's getatom reads: up to a special or white space
_PHRASE_TOKEN = r'"[^"\\\r\n]*+"|[^()<>@,:;"\[\] \t\r\n]++'  # "plain" or a phrase atom
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_SIMPLE_ADDRESS_RE = re.compile(
    rf"[ \t\r\n]*+(?:(?P<bare>{_ADDR_SPEC})|(?P<phrase>(?:(?:{_PHRASE_TOKEN})[ \t\r\n]*+)*+)"
    rf"<[ \t\r\n]*+(?P<route>{_ADDR_SPEC})[ \t]*+>)[ \t\r\n]*+(?:,|\Z)"
)
_PHRASE_TOKEN_RE = re.compile(_PHRASE_TOKEN)


def _simple_getaddresses(field: str) -> list[tuple[str, str]] | None:
    """`getaddresses` for lists of the everyday forms `a@b`, `Name <a@b>` and `"Name" <a@b>`, with the very same
    result; None when anything else appears (comments, groups, escapes, empty entries, stray text)."""
    out: list[tuple[str, str]] = []
    pos, end = 0, len(field)
    while pos < end:
        m = _SIMPLE_ADDRESS_RE.match(field, pos)
        if m is None:
            return None
        pos = m.end()
        if pos == end and field[pos - 1] == ",":
            return None  # a trailing comma: leave that to the full parser
        bare = m.group("bare")
        if bare is not None:
            out.append(("", bare))
        else:
            tokens = _PHRASE_TOKEN_RE.findall(m.group("phrase"))
            name = " ".join(t[1:-1] if t[0] == '"' else t for t in tokens)
            out.append((name, m.group("route")))
    return out


def _getaddresses(values: list[str]) -> list[tuple[str, str]]:
    field = ", ".join(values)
    simple = _simple_getaddresses(field)
    return simple if simple is not None else getaddresses([field])


def parse_addresses(values: list[str]) -> list[Address]:
    result = []
    try:
        pairs = _rejoin_unquoted_names(_getaddresses([v for v in values if v]))
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
