"""`GET /investigate` parameters over HTTP (in-process app, SQLite and PostgreSQL): a representative subset of the
filters, paging bounds, and every bad value answering 400 in the standard envelope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mailsec.api.app import create_app
from mailsec.model import Operation
from mailsec.pipeline import process_message
from mailsec.services import Services
from support import make_eml


@dataclass
class Api:
    client: TestClient
    url: str
    headers: dict[str, str]
    ids: dict[str, str]

    def get(self, **params: Any) -> Any:
        params.setdefault("detections_only", "false")
        r = self.client.get(self.url, params=params, headers=self.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True and body["errors"] == []
        return body

    def found(self, **params: Any) -> set[str]:
        params.setdefault("per_page", 1000)
        return {m["id"] for m in self.get(**params)["result"]}

    def bad(self, **params: Any) -> dict[str, Any]:
        r = self.client.get(self.url, params=params, headers=self.headers)
        assert r.status_code == 400, (params, r.status_code, r.text)
        body = r.json()
        assert body["success"] is False and body["result"] is None and body["messages"] == []
        assert len(body["errors"]) == 1 and body["errors"][0]["code"] >= 1000 and body["errors"][0]["message"]
        return body


@pytest.fixture
def api(services: Services) -> Iterator[Api]:
    account = services.accounts.create_account("A").id
    token = services.accounts.create_token(account, can_write=False)
    mails = {
        "alice": make_eml(subject="Quarterly report Q3", sender="alice@finance.example", to="bob@corp.example"),
        "mallory": make_eml(
            subject="Urgent: verify your account",
            sender="Mallory <mallory@phish.example>",
            to="carol@corp.example",
            html='<a href="https://login.evil-host.example/x">Verify</a>',
        ),
        "dave": make_eml(subject="report for the board", sender="dave@sub.finance.example", to="erin@other.example"),
    }
    ids = {k: process_message(services, raw, account).id for k, raw in mails.items()}
    stored = services.messages.get(account, ids["mallory"])
    assert stored is not None
    services.messages.add_action(stored.pk, Operation.MOVE, folder="JunkEmail")
    services.messages.set_state(stored.pk, delivery_status="moved")
    with TestClient(create_app(services), raise_server_exceptions=False) as client:
        yield Api(
            client,
            f"/client/v4/accounts/{account}/email-security/investigate",
            {"Authorization": f"Bearer {token}"},
            ids,
        )


def test_filters_over_http(api: Api) -> None:
    ids = api.ids
    everyone = set(ids.values())
    assert api.found() == everyone
    assert api.found(sender="finance.example") == {ids["alice"], ids["dave"]}
    assert api.found(sender="alice@finance.example") == {ids["alice"]}
    assert api.found(recipient="corp.example") == {ids["alice"], ids["mallory"]}
    assert api.found(recipient="ERIN@other.example") == {ids["dave"]}
    assert api.found(domain="evil-host.example") == {ids["mallory"]}
    assert api.found(domain="finance.example") == {ids["alice"], ids["dave"]}
    assert api.found(subject="REPORT") == {ids["alice"], ids["dave"]}
    assert api.found(subject="report quarterly") == {ids["alice"]}
    assert api.found(exact_subject="quarterly report q3") == {ids["alice"]}
    assert api.found(exact_subject="Quarterly report") == set()
    assert api.found(query="report finance") == {ids["alice"], ids["dave"]}
    assert api.found(query="mallory verify") == {ids["mallory"]}
    assert api.found(message_action="MOVED") == {ids["mallory"]}
    assert api.found(delivery_status="moved") == {ids["mallory"]}
    assert api.found(final_disposition="NONE") <= everyone
    alert = ids["alice"].rsplit("-", 1)[0]
    assert api.found(alert_id=alert) == {ids["alice"]}
    embedded = api.get(message_action="MOVED", action_log="true")["result"][0]["action_log"]
    assert [e["operation"] for e in embedded] == ["MOVE"]
    assert api.get(message_action="MOVED")["result"][0]["action_log"] == []


def test_time_formats(api: Api) -> None:
    everyone = set(api.ids.values())
    past = datetime.now(UTC) - timedelta(hours=1)
    for start in (
        past.strftime("%Y-%m-%dT%H:%M:%SZ"),
        past.isoformat(),
        past.strftime("%Y-%m-%dT%H:%M:%S") + " 00:00",  # an unencoded '+' arrives as a space
        past.strftime("%Y-%m-%dT%H:%M:%S.%f"),
        (past - timedelta(days=1)).strftime("%Y-%m-%d"),
    ):
        assert api.found(start=start) == everyone, start
    assert api.found(end=past.isoformat()) == set()
    assert api.found(start=past.isoformat(), end=(past + timedelta(hours=2)).isoformat()) == everyone


def test_paging_bounds_over_http(api: Api) -> None:
    body = api.get(per_page=1000)
    assert body["result_info"]["per_page"] == 1000 and body["result_info"]["count"] == 3
    assert api.get(per_page=1, page=3)["result_info"]["count"] == 1
    past_end = api.get(per_page=1, page=4)
    assert past_end["result"] == [] and past_end["result_info"]["count"] == 0
    assert api.get(page=1_000_000)["result"] == []
    assert api.get(per_page=2, unknown_param="x", another="y")["result_info"]["count"] == 2
    info = api.get(per_page=2)["result_info"]
    assert set(info) >= {"count", "per_page", "page", "total_count", "next", "previous"}


@pytest.mark.parametrize(
    "params",
    [
        {"per_page": 1001},
        {"per_page": 0},
        {"per_page": "ten"},
        {"page": 0},
        {"page": -1},
        {"page": "x"},
        {"detections_only": "maybe"},
        {"action_log": "perhaps"},
        {"final_disposition": "EVIL"},
        {"message_action": "DELETED"},
        {"delivery_status": "lost"},
        {"start": "yesterday"},
        {"start": "string"},
        {"end": "2026-13-45T99:00:00Z"},
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},
    ],
)
def test_bad_values_answer_400(api: Api, params: dict[str, Any]) -> None:
    api.bad(**params)


def test_start_in_the_future_and_inverted_range(api: Api) -> None:
    future = datetime.now(UTC) + timedelta(days=2)
    body = api.bad(start=future.isoformat())
    assert "future" in body["errors"][0]["message"]
    api.bad(start=(future - timedelta(days=4)).isoformat(), end=(future - timedelta(days=5)).isoformat())
