"""Impersonation (BEC) analysis. Stub until it lands."""

from __future__ import annotations

from mailsec.model import Envelope, Finding, ParsedMessage
from mailsec.scan.policy import Policy


def analyze_impersonation(parsed: ParsedMessage, envelope: Envelope, policy: Policy) -> list[Finding]:
    return []
