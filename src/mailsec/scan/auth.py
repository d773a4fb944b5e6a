"""Sender authentication: SPF, DKIM, DMARC (with organizational alignment) and ARC. Stub until it lands."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsec.model import Envelope, Finding, ParsedMessage, SenderInfo, Validation
from mailsec.scan.resolvers import Resolvers


@dataclass(frozen=True)
class AuthOutcome:
    validation: Validation = field(default_factory=Validation)
    findings: tuple[Finding, ...] = ()
    sender_info: SenderInfo = field(default_factory=SenderInfo)


def check_authentication(parsed: ParsedMessage, envelope: Envelope, resolvers: Resolvers) -> AuthOutcome:
    return AuthOutcome()
