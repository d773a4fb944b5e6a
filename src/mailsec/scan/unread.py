"""A message mailsec could not read in full is never clean: a structure built to defeat the parser (nesting a
thousand levels deep, more parts than are read, bytes no parser survives) is how an attachment hides from every other
analyzer. One finding, held by the default quarantine policy, names what was not read. The same holds when the
attachment analyzer itself failed on a message that has attachments: they were not checked."""

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


def unchecked_attachments(parsed: ParsedMessage, errors: list[Finding]) -> list[Finding]:
    """ATTACHMENTS_UNCHECKED when the attachment analyzer failed or ran out of time (an ANALYZER_ERROR or
    ANALYZER_TIMEOUT naming it) and there were attachments to check: a bug or a resource limit there must not
    deliver what it could not see."""
    cut_short = ("ANALYZER_ERROR", "ANALYZER_TIMEOUT")
    failed = [f for f in errors if f.name in cut_short and (f.detail or "").startswith("attachments:")]
    if not failed or not parsed.attachments:
        return []
    return [
        Finding(
            name="ATTACHMENTS_UNCHECKED",
            detection=Disposition.MALICIOUS,
            score=UNREAD_SCORE,
            reason=f"The attachment checks failed on this message, so its {len(parsed.attachments)} attachment(s) "
            "were not checked",
            field="attachments",
            detail=(failed[0].detail or "")[:500],
            category="Malware",
        )
    ]
