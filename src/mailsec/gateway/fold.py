"""Header fields mailsec writes into relayed mail, in RFC 5322 form: folded at whitespace to lines of at most 78
characters where the words allow (never over 998), text that is not ASCII as RFC 2047 encoded-words, and nothing
from the message (CR, LF, controls) able to end the field early or start another."""

from __future__ import annotations

import re

MAX_LINE = 78
HARD_LIMIT = 998
_MAX_WORD = 900  # a longer run without whitespace (hostile) is cut into pieces this long
_EW_PAYLOAD = 63  # encoded characters per encoded-word: "=?utf-8?q?...?=" stays within RFC 2047's 75
_CONTROLS = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
_Q_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!*+-/")


def clean(value: str) -> str:
    """One line of text: controls (CR and LF included) become spaces, runs of whitespace one space."""
    return " ".join(_CONTROLS.sub(" ", value).split())


def _q(text: str) -> str:
    data = text.encode("utf-8")
    return "".join("_" if b == 0x20 else chr(b) if b in _Q_SAFE else f"={b:02X}" for b in data)


def encoded_words(text: str) -> list[str]:
    """`text` as RFC 2047 Q encoded-words, each at most 75 characters, split between characters (never inside
    one). Whitespace between two encoded-words is dropped when decoding, so spaces travel inside the words."""
    words: list[str] = []
    chunk = ""
    for ch in text:
        piece = _q(ch)
        if chunk and len(chunk) + len(piece) > _EW_PAYLOAD:
            words.append(f"=?utf-8?q?{chunk}?=")
            chunk = ""
        chunk += piece
    if chunk:
        words.append(f"=?utf-8?q?{chunk}?=")
    return words


def _needs_encoding(word: str) -> bool:
    return not word.isascii() or (word.startswith("=?") and word.endswith("?="))


def _tokens(value: str) -> list[str]:
    """The words of `value` as they will be written: plain ASCII words as they are (long ones cut), each run of
    words that need encoding as encoded-words."""
    out: list[str] = []
    run: list[str] = []
    for word in value.split(" "):
        if not word:
            continue
        if _needs_encoding(word):
            run.append(word)
            continue
        if run:
            out += encoded_words(" ".join(run))
            run = []
        out += [word[i : i + _MAX_WORD] for i in range(0, len(word), _MAX_WORD)]
    if run:
        out += encoded_words(" ".join(run))
    return out


def fold_header(name: str, value: str, limit: int = 4000) -> bytes:
    """`Name: value` folded, CRLF-terminated. `limit` caps the text kept (a hostile value cannot grow a header
    without bound); what is cut is marked with "...". The field name must be printable ASCII without a colon."""
    if not name or not name.isascii() or ":" in name or not all(33 <= ord(c) <= 126 for c in name):
        raise ValueError(f"not a header field name: {name!r}")
    text = clean(value)
    if len(text) > limit:
        text = text[: max(0, limit - 3)].rstrip() + "..."
    lines: list[str] = []
    line = f"{name}:"
    first = True
    for token in _tokens(text):
        if not first and len(line) + 1 + len(token) > MAX_LINE:
            lines.append(line)
            line = ""
        line += " " + token
        first = False
    lines.append(line)
    return ("\r\n".join(lines) + "\r\n").encode("ascii")
