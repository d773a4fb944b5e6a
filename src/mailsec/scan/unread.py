"""A message mailsec could not read in full is never clean: a structure built to defeat the parser (nesting a
thousand levels deep, more parts than are read, bytes no parser survives) is how an attachment hides from every other
analyzer. One finding, held by the default quarantine policy, names what was not read."""

from __future__ import annotations

from mailsec.model import Disposition, Finding, ParsedMessage

UNREAD_SCORE = 8.0


def analyze_unread(parsed: ParsedMessage) -> list[Finding]:
    if not parsed.unread:
        return []
    what = "; ".join(dict.fromkeys(parsed.unread))
    return [
        Finding(
            name="MIME_UNREADABLE",
            detection=Disposition.MALICIOUS,
            score=UNREAD_SCORE,
            reason=f"The message could not be read in full, so its content was not all checked: {what}",
            field="body",
            detail=what[:500],
            category="Malware",
        )
    ]
