"""The console's search box, table-tested: every operator lands on its seed filter, and bad values are refused
with a sentence that names them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mailsec.console.query import OPERATORS, QueryError, parse, tokenize
from mailsec.store.search import SearchParams

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("invoice", {"query": "invoice"}),
        ("wire  transfer", {"query": "wire transfer"}),
        ('"wire transfer" urgent', {"query": "wire transfer urgent"}),
        ("from:alice@example.com", {"sender": "alice@example.com"}),
        ("from:example.com", {"sender": "example.com"}),
        ("sender:example.com", {"sender": "example.com"}),
        ("to:bob@corp.example", {"recipient": "bob@corp.example"}),
        ("rcpt:corp.example", {"recipient": "corp.example"}),
        ('subject:"wire transfer"', {"subject": "wire transfer"}),
        ("subject:invoice", {"subject": "invoice"}),
        ('exact_subject:"Your invoice #12"', {"exact_subject": "Your invoice #12"}),
        ("domain:evil.example", {"domain": "evil.example"}),
        ("disposition:malicious", {"final_disposition": "MALICIOUS"}),
        ("disposition:malicious-bec", {"final_disposition": "MALICIOUS-BEC"}),
        ("status:delivered", {"delivery_status": "delivered"}),
        ("is:quarantined", {"delivery_status": "quarantined"}),
        ("is:detection", {"detections_only": True}),
        ("is:submission", {"submissions": True}),
        ("has:attachment", {"has_attachment": True}),
        ("action:moved", {"message_action": "MOVED"}),
        ("alert_id:4Q1abc-2026-11-24T10:00:00", {"alert_id": "4Q1abc-2026-11-24T10:00:00"}),
        ("message_id:<a@b.example>", {"message_id": "<a@b.example>"}),
        ("msgid:a@b.example", {"message_id": "a@b.example"}),
        ("helo:192.0.2.7", {"smtp_helo_ip": "192.0.2.7"}),
        ("after:2026-11-01", {"start": datetime(2026, 11, 1, tzinfo=UTC)}),
        ("before:2026-11-30T08:15:00Z", {"end": datetime(2026, 11, 30, 8, 15, tzinfo=UTC)}),
        ("after:2026-11-30T10:00:00+02:00", {"start": datetime(2026, 11, 30, 8, tzinfo=UTC)}),
        ("after:7d", {"start": datetime(2026, 11, 26, 12, tzinfo=UTC)}),
        ("newer_than:12h", {"start": datetime(2026, 12, 3, 0, tzinfo=UTC)}),
        ("older_than:2w", {"end": datetime(2026, 11, 19, 12, tzinfo=UTC)}),
        ("FROM:Alice@Example.com", {"sender": "Alice@Example.com"}),
        ("re:meeting", {"query": "re:meeting"}),
        ("https://evil.example/login", {"query": "https://evil.example/login"}),
        (
            "from:alice@example.com is:quarantined has:attachment after:2026-11-01 invoice payment",
            {
                "sender": "alice@example.com",
                "delivery_status": "quarantined",
                "has_attachment": True,
                "start": datetime(2026, 11, 1, tzinfo=UTC),
                "query": "invoice payment",
            },
        ),
    ],
)
def test_operators_become_seed_filters(text: str, expected: dict[str, Any]) -> None:
    wanted = SearchParams(detections_only=False)
    for name, value in expected.items():
        setattr(wanted, name, value)
    assert parse(text, NOW) == wanted


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("disposition:evil", "disposition:evil is not one of MALICIOUS-BEC, MALICIOUS"),
        ("is:read", "is:read is not one of quarantined, detection, submission"),
        ("has:link", "has:link is not one of attachment"),
        ("status:lost", "status:lost is not one of delivered"),
        ("action:deleted", "action:deleted is not one of PREVIEW"),
        ("after:yesterday", "'yesterday' is not a date"),
        ("before:2026-13-01", "'2026-13-01' is not a date"),
        ("from:", "from: needs a value"),
        ('subject:""', "subject: needs a value"),
        ("from:a@x.example from:b@y.example", "from: is given twice"),
        ("after:2026-12-01 before:2026-11-01", "after: is later than before:"),
    ],
)
def test_bad_values_are_refused_with_a_reason(text: str, complaint: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse(text, NOW)
    assert str(caught.value).startswith(complaint)


def test_every_seed_filter_has_an_operator() -> None:
    """Each SearchParams filter is reachable from the search box (paging and API-only extras aside)."""
    not_filters = {"cursor", "page", "per_page", "extra", "query", "detections_only", "submissions", "has_attachment"}
    filters = set(SearchParams.__dataclass_fields__) - not_filters
    reachable = {field for field, _ in OPERATORS.values() if field}
    assert filters <= reachable, filters - reachable
    flags = parse("is:detection is:submission has:attachment", NOW)
    assert flags.detections_only and flags.submissions and flags.has_attachment


def test_an_unclosed_quote_runs_to_the_end() -> None:
    assert parse('subject:"wire transfer', NOW).subject == "wire transfer"


def test_hostile_text_is_only_text() -> None:
    params = parse('<script>alert(1)</script> from:"<img src=x onerror=alert(1)>"', NOW)
    assert params.query == "<script>alert(1)</script>"
    assert params.sender == "<img src=x onerror=alert(1)>"
    assert [t.key for t in tokenize("a:b from:c")] == [None, "from"]
