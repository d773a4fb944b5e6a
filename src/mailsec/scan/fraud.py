"""Advance-fee fraud (419 letters, inheritance, "compensation", ATM card, lottery) recognised by what it is made of.

Fraud asks for money or details through a story, so it belongs with phishing and not with spam: training puts
spam-labelled messages that read this way in the phishing class, and a content phishing finding on such a message
carries the category Fraud. A letter counts when it names a large sum and at least two other of the genre's
ingredients (a dead benefactor, a transfer to a stranger's account, secrecy or "no risk", a West African place, an
official title or a windfall)."""

from __future__ import annotations

import re

MAX_CHARS = 20_000
MIN_KINDS = 3

_KINDS = {
    "sum": r"(?:us\s?\$|usd|\$|€|£|eur|gbp)\s?\d[\d,. ]*\s?(?:m\b|million|mil\b)|\d[\d,.]*\s?million\b"
    r"|million\s+(?:united\s+states\s+|us\s+)?dollars",
    "benefactor": r"next\s+of\s+kin|late\s+(?:husband|wife|father|client|mother)|deceased|inheritance"
    r"|beneficiar(?:y|ies)|\bwill\s+and\s+testament",
    "transfer": r"transfer\s+(?:of\s+)?(?:this|the|these)\s+(?:funds?|sum|money)|funds?\s+transfer"
    r"|foreign\s+(?:partner|account)|(?:\d+\s?%|percent)\s+of\s+the\s+(?:total\s+)?(?:funds?|sum|money)|bank\s+account|investment\s+partner",
    "secrecy": r"strictly\s+confidential|risk[\s-]?free|utmost\s+(?:confidentiality|secrecy)|\bconfidential\s+business",
    "place": r"\b(?:nigeria|lagos|abuja|abidjan|cote\s+d.ivoire|ivory\s+coast|sierra\s+leone|ghana|accra|togo|lome"
    r"|benin|burkina\s+faso|ouagadougou|dakar|senegal)\b",
    "title": r"\b(?:barrister|diplomat|consignment|atm\s+(?:visa\s+)?card|compensation|lottery|imf|united\s+nations"
    r"|federal\s+ministry|central\s+bank|claims?\s+(?:notification|agent)|winning|award\s+(?:notification|letter))\b",
}  # fmt: skip
_KIND_RES = {kind: re.compile(pattern, re.I) for kind, pattern in _KINDS.items()}


def fraud_ingredients(text: str) -> frozenset[str]:
    """Which of the genre's ingredients the text has."""
    text = text[:MAX_CHARS]
    return frozenset(kind for kind, regex in _KIND_RES.items() if regex.search(text))


def reads_like_advance_fee(text: str) -> bool:
    """A large sum and at least two other ingredients."""
    kinds = fraud_ingredients(text)
    return "sum" in kinds and len(kinds) >= MIN_KINDS
