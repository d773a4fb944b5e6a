"""Link analysis. Stub until it lands."""

from __future__ import annotations

from mailsec.model import Finding, ParsedMessage
from mailsec.scan.policy import Policy


def analyze_links(parsed: ParsedMessage, policy: Policy) -> list[Finding]:
    return []
