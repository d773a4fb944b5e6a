"""The console's search box: free text plus operators in the style of Gmail and Mailpit, parsed into the seed's
`SearchParams`, so the console searches exactly as the API does. Pure: no I/O, table-tested.

    from:alice@example.com to:corp.example subject:"wire transfer" domain:example.net disposition:malicious
    is:quarantined has:attachment after:2026-11-01 before:2026-12-01 invoice

Every seed filter has an operator (see OPERATORS); words without one are the free-text `query`. A value with spaces
goes in double quotes. An operator with a value it cannot honour is a QueryError that names it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailsec.model import DeliveryStatus, Disposition, MessageAction
from mailsec.store.search import SearchParams

TOKEN = re.compile(r'(?:(?P<key>[A-Za-z_]+):)?(?:"(?P<quoted>[^"]*)"?|(?P<bare>\S+))?')
RELATIVE = re.compile(r"^(\d{1,5})([hdwm])$")
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1), "m": timedelta(days=30)}

# operator -> (SearchParams field, what it means); aliases map to the same field
OPERATORS: dict[str, tuple[str, str]] = {
    "from": ("sender", "sender address, or domain and its subdomains"),
    "to": ("recipient", "recipient address, or domain and its subdomains"),
    "subject": ("subject", "words of the subject"),
    "exact_subject": ("exact_subject", "the whole subject, exactly"),
    "domain": ("domain", "any domain of the message (sender, recipients, links)"),
    "disposition": ("final_disposition", "MALICIOUS, SUSPICIOUS, SPOOF, SPAM, BULK, NONE, ..."),
    "status": ("delivery_status", "delivered, quarantined, moved, rejected, deferred, ..."),
    "action": ("message_action", "PREVIEW, QUARANTINE_RELEASED, MOVED, SUBMITTED"),
    "alert_id": ("alert_id", "the alert id"),
    "message_id": ("message_id", "the Message-ID header"),
    "helo": ("smtp_helo_ip", "the connecting server's IP"),
    "after": ("start", "scanned on or after (date, date-time, or 7d / 12h / 2w ago)"),
    "before": ("end", "scanned before (date, date-time, or 7d / 12h / 2w ago)"),
    "is": ("", "quarantined, detection, submission"),
    "has": ("", "attachment"),
}
ALIASES = {
    "sender": "from",
    "recipient": "to",
    "rcpt": "to",
    "msgid": "message_id",
    "since": "after",
    "until": "before",
    "newer_than": "after",
    "older_than": "before",
}
IS_FLAGS = ("quarantined", "detection", "submission")
HAS_FLAGS = ("attachment",)


class QueryError(ValueError):
    """The search box holds something that cannot be searched for; the message says what and why."""


@dataclass(frozen=True)
class Term:
    key: str | None  # the operator as typed (lower case), None for free text
    value: str


def tokenize(text: str) -> list[Term]:
    """Words and `key:value` pairs; a `key:` the console does not know stays free text (as `re:` or a URL would)."""
    terms: list[Term] = []
    for match in TOKEN.finditer(text):
        if not match.group(0):
            continue
        key = (match.group("key") or "").lower()
        value = match.group("quoted") if match.group("quoted") is not None else match.group("bare") or ""
        if key and key not in OPERATORS and key not in ALIASES:
            terms.append(Term(None, match.group(0).replace('"', "")))
        elif key:
            terms.append(Term(ALIASES.get(key, key), value.strip()))
        elif value.strip():
            terms.append(Term(None, value.strip()))
    return terms


def parse_when(value: str, now: datetime) -> datetime:
    """`2026-11-01` (UTC midnight), an ISO 8601 date-time (UTC unless it says otherwise), or `7d`, `12h`, `2w`,
    `3m` before `now`."""
    relative = RELATIVE.match(value.lower())
    if relative:
        return now - int(relative.group(1)) * UNITS[relative.group(2)]
    text = value.strip().replace(" ", "T")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as exc:
        raise QueryError(f"{value!r} is not a date (2026-11-30), a date-time or an age (7d, 12h)") from exc
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _choice(operator: str, value: str, allowed: list[str], upper: bool) -> str:
    wanted = value.upper() if upper else value.lower()
    if wanted not in allowed:
        raise QueryError(f"{operator}:{value} is not one of " + ", ".join(allowed))
    return wanted


def parse(text: str, now: datetime | None = None) -> SearchParams:
    """The search box to SearchParams (paging left at its defaults). Without `is:detection` every message is
    searched, not only detections: an analyst looks for mail, clean or not."""
    now = now or datetime.now(UTC)
    params = SearchParams(detections_only=False)
    free: list[str] = []
    for term in tokenize(text):
        if term.key is None:
            free.append(term.value)
            continue
        key, value = term.key, term.value
        if not value:
            raise QueryError(f"{key}: needs a value")
        if key == "is":
            flag = _choice("is", value, list(IS_FLAGS), upper=False)
            if flag == "quarantined":
                params.delivery_status = DeliveryStatus.QUARANTINED.value
            elif flag == "detection":
                params.detections_only = True
            else:
                params.submissions = True
        elif key == "has":
            _choice("has", value, list(HAS_FLAGS), upper=False)
            params.has_attachment = True
        elif key == "disposition":
            params.final_disposition = _choice(key, value, [d.value for d in Disposition], upper=True)
        elif key == "status":
            params.delivery_status = _choice(key, value, [s.value for s in DeliveryStatus], upper=False)
        elif key == "action":
            params.message_action = _choice(key, value, [a.value for a in MessageAction], upper=True)
        elif key in ("after", "before"):
            moment = parse_when(value, now)
            if key == "after":
                params.start = moment
            else:
                params.end = moment
        else:
            field_name = OPERATORS[key][0]
            if getattr(params, field_name):
                raise QueryError(f"{key}: is given twice; a search holds one {key}:")
            setattr(params, field_name, value)
    if free:
        params.query = " ".join(free)
    if params.start and params.end and params.start > params.end:
        raise QueryError("after: is later than before:")
    return params
