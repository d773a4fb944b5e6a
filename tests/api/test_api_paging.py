"""More than 2,500 stored messages: the SDK auto-pager (page=2,3,... until an empty page) and cursor paging yield
each message exactly once and stop. SQLite only, for time; test_api_sdk.py pages 130 messages on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_helpers import fill, run_sdk4

from support import LiveServer, make_live_server, sdk_client

COUNT = 2_550


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str, str, list[str]]]:
    tmp: Path = tmp_path_factory.mktemp("paging")
    live = make_live_server(tmp / "live", f"sqlite:///{tmp / 'mailsec.db'}")
    account = live.create_account("paging")
    token = live.create_token(account, read_only=True)
    ids = fill(live, account, COUNT)
    live.start()
    yield live, account, token, ids
    live.stop()


def test_sdk5_auto_paging_yields_each_once(big: tuple[LiveServer, str, str, list[str]]) -> None:
    live, account, token, ids = big
    cf = sdk_client(live.base_url, token)
    pager = cf.email_security.investigate.list(account_id=account, detections_only=False, per_page=100)
    seen = [m.id for m in pager]
    assert len(seen) == COUNT
    assert seen == list(reversed(ids))


def test_sdk4_auto_paging_yields_each_once(big: tuple[LiveServer, str, str, list[str]]) -> None:
    live, account, token, ids = big
    out = run_sdk4({"mode": "page", "base_url": live.base_url, "account": account, "token": token, "per_page": 250})
    assert out["version"].startswith("4.3")
    assert out["ids"] == list(reversed(ids))


def test_cursor_paging_forward_then_back(big: tuple[LiveServer, str, str, list[str]]) -> None:
    live, account, token, ids = big
    url = f"{live.base_url}/accounts/{account}/email-security/investigate"
    params: dict[str, Any] = {"detections_only": "false", "per_page": 300}
    pages: list[list[str]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        body = http.get(url, params=params).json()
        assert body["result_info"]["previous"] is None
        pages.append([m["id"] for m in body["result"]])
        while body["result_info"]["next"]:
            body = http.get(url, params={**params, "cursor": body["result_info"]["next"]}).json()
            pages.append([m["id"] for m in body["result"]])
        assert [i for p in pages for i in p] == list(reversed(ids))
        assert [len(p) for p in pages] == [300] * 8 + [150]
        for expected in reversed(pages[:-1]):
            body = http.get(url, params={**params, "cursor": body["result_info"]["previous"]}).json()
            assert [m["id"] for m in body["result"]] == expected
        assert body["result_info"]["previous"] is None
        # page-number paging agrees with the cursor, and a page past the end is empty.
        by_page = http.get(url, params={**params, "page": 3}).json()
        assert [m["id"] for m in by_page["result"]] == pages[2]
        assert http.get(url, params={**params, "page": 10}).json()["result"] == []
        top = http.get(url, params={"detections_only": "false", "per_page": 1000}).json()
        assert top["result_info"]["count"] == 1000
