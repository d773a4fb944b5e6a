"""Text dressed up to slip past filters and readers, in the subject and the sender's name: invisible format characters
inside words, letters borrowed from other scripts inside a Latin word (`Ledger` spelt with a Cyrillic e), mathematical
bold and small-capital letters standing in for plain ones, and a brand's name with a capital I standing in for an l
(`PayPaI`, `Iedger`), which most fonts draw alike. Legitimate senders write their own name and subject in plain
letters; apart from the brand names the check reads no vocabulary, so it holds in any language."""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

from mailsec.model import Finding, ParsedMessage
from mailsec.scan.lookalike import brand_names
from mailsec.scan.registry import spec

MAX_TEXT = 500
_ALLOWED_FORMAT = frozenset("\u200d\ufeff\u200e\u200f")  # emoji joiner, BOM, direction marks of RTL names
_WORD_RE = re.compile(r"\w{3,}", re.UNICODE)
_CAPITAL_I_RE = re.compile(r"\b[A-Za-z]*(?:[a-z]I|\bI[a-z])[A-Za-z]*\b")  # an I after a small letter or before one


@cache
def _brand_words() -> frozenset[str]:
    """Brand names of one word, lower-cased (`paypal`, `ledger`, `coinbase`)."""
    return frozenset(name for name, _ in brand_names() if name.isalpha() and len(name) >= 4)


def _capital_i_for_l(text: str) -> str | None:
    """A word that is a brand's name once each capital I is read as an l, and is not that name as written."""
    if "I" not in text:
        return None
    for m in _CAPITAL_I_RE.finditer(text):
        word = m.group(0)
        read = word.replace("I", "l").lower()
        if read != word.lower() and read in _brand_words():
            return f"{word!r} spells {read} with a capital I in place of an l"
    return None


@lru_cache(maxsize=4096)
def _script(ch: str) -> str:
    try:
        name = unicodedata.name(ch)
    except ValueError:
        return ""
    for script in ("LATIN", "CYRILLIC", "GREEK"):
        if name.startswith(script):
            return script
    return ""


def _disguise(text: str) -> str | None:
    """What gives the text away, or None. Plain ASCII can only spell a brand with I for l: it has no format
    characters, no letters in the ranges below and no script but Latin (most subjects and names: the per-character
    checks are skipped)."""
    if text.isascii():
        return _capital_i_for_l(text)
    for ch in text:
        cp = ord(ch)
        if unicodedata.category(ch) == "Cf" and ch not in _ALLOWED_FORMAT:
            return f"an invisible character (U+{cp:04X})"
        if 0x1D400 <= cp <= 0x1D7FF:
            return f"mathematical letters ({ch}) in place of plain ones"
        if 0x1D00 <= cp <= 0x1D2B:
            return f"small-capital letters ({ch}) in place of plain ones"
        if 0xFE00 <= cp <= 0xFE0D:
            return f"a variation selector (U+{cp:04X}) inside the text"
    for word in _WORD_RE.findall(text):
        scripts = {s for s in map(_script, word) if s}
        if "LATIN" in scripts and len(scripts) > 1:
            return f"the word {word!r} mixes Latin with {' and '.join(sorted(scripts - {'LATIN'})).title()} letters"
    return _capital_i_for_l(text)


def analyze_disguise(parsed: ParsedMessage) -> list[Finding]:
    name = parsed.from_.name if parsed.from_ is not None else ""
    for where, text in (("from", name or ""), ("subject", parsed.subject or "")):
        why = _disguise(text[:MAX_TEXT])
        if why:
            return [
                spec("TEXT_DISGUISED").make(
                    f"The {'sender name' if where == 'from' else 'subject'} is disguised: {why}",
                    field=where,
                    value=text[:200],
                )
            ]
    return []
