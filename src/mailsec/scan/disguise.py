"""Text dressed up to slip past filters and readers, in the subject and the sender's name: invisible format characters
inside words, letters borrowed from other scripts inside a Latin word (`Ledger` spelt with a Cyrillic e), mathematical
bold and small-capital letters standing in for plain ones. Legitimate senders write their own name and subject in
plain letters; the check reads no vocabulary, so it holds in any language."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from mailsec.model import Finding, ParsedMessage
from mailsec.scan.registry import spec

MAX_TEXT = 500
_ALLOWED_FORMAT = frozenset("\u200d\ufeff\u200e\u200f")  # emoji joiner, BOM, direction marks of RTL names
_WORD_RE = re.compile(r"\w{3,}", re.UNICODE)


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
    """What gives the text away, or None. Plain ASCII never does: it has no format characters, no letters in the
    ranges below and no script but Latin (most subjects and names: the per-character checks are skipped)."""
    if text.isascii():
        return None
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
    return None


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
