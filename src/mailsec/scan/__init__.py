"""Detection: analyzers that return explained findings, and the verdict they add up to.

`scan_message` is a pure function of its inputs: the parsed message, the envelope, the account's policy and the
injected resolvers. No database, no network except through the resolvers."""

from __future__ import annotations

from typing import Any

from mailsec.model import Envelope, ParsedMessage, Verdict


def scan_message(parsed: ParsedMessage, envelope: Envelope, policy: Any = None, resolvers: Any = None) -> Verdict:
    """Until the detection engine lands every message is NONE with no findings."""
    return Verdict()
