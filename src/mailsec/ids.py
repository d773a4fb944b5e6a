"""Identifiers in the shapes the real service uses: postfix_id, alert_id, investigate id."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import UTC, datetime
from urllib.parse import unquote

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
POSTFIX_ID_LEN = 15
_TIME_DIGITS = 10

POSTFIX_ID_RE = re.compile(r"^[0-9A-Za-z]{15,16}$")
INVESTIGATE_ID_RE = re.compile(
    r"^(?P<postfix_id>[0-9A-Za-z]{15,16})-(?P<ts>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})-(?P<hash>[0-9a-f]{8})$"
)
ACCOUNT_ID_RE = re.compile(r"^[0-9a-f]{32}$")
# A numeric id (settings entries, domains) in its one spelling: ASCII digits, no sign, no leading zero.
NUMERIC_ID_RE = re.compile(r"[1-9][0-9]{0,17}")


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(BASE62[r])
    return "".join(reversed(out))


def new_postfix_id(now_us: int | None = None) -> str:
    """15 base62 characters: 10 of microsecond time (so ids sort by time) and 5 random."""
    if now_us is None:
        now_us = time.time_ns() // 1000
    return _base62(now_us, _TIME_DIGITS) + "".join(secrets.choice(BASE62) for _ in range(POSTFIX_ID_LEN - _TIME_DIGITS))


def format_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def alert_id(postfix_id: str, scanned_at: datetime) -> str:
    return f"{postfix_id}-{format_ts(scanned_at)}"


def investigate_id(postfix_id: str, scanned_at: datetime, raw: bytes) -> str:
    return f"{alert_id(postfix_id, scanned_at)}-{hashlib.sha256(raw).hexdigest()[:8]}"


def new_account_id() -> str:
    return secrets.token_hex(16)


def is_account_id(value: str) -> bool:
    return ACCOUNT_ID_RE.fullmatch(value) is not None


def parse_numeric_id(value: object) -> int | None:
    """The entry a settings or domain id names, or None. Only the plain ASCII spelling counts: `str.isdigit` and
    `int` also take other scripts' digits (`²`, `١٢`), which must never reach an entry, nor crash a handler."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 10**18 else None
    if isinstance(value, str) and NUMERIC_ID_RE.fullmatch(value):
        return int(value)
    return None


def normalize_message_ref(value: str) -> str:
    """The API accepts an investigate id or a postfix_id, raw or percent-encoded."""
    return unquote(value).strip()


def postfix_id_of(ref: str) -> str | None:
    """The postfix_id a reference names, or None when it is neither shape."""
    ref = normalize_message_ref(ref)
    if POSTFIX_ID_RE.match(ref):
        return ref
    m = INVESTIGATE_ID_RE.match(ref)
    return m.group("postfix_id") if m else None
