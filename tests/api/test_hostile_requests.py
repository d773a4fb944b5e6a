"""Hostile or odd requests against a live `mailsec serve` (SQLite and PostgreSQL) get a clear 4xx in the envelope
on a connection that stays usable: NUL bytes, year-1 dates, overflowing cursors, huge or countless query terms,
trailing slashes, wrong methods, oversized bodies, values the database cannot store, and password guessing."""

from __future__ import annotations

import base64
import http.client
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from api_helpers import fill, server_services

from support import LiveServer, database_url, make_live_server

MAX_BODY = 64 * 1024
LONG_WORD = "supercalifragilistic-quarterly-forecast-reconciliation"


@dataclass
class Site:
    live: LiveServer
    account: str
    token: str

    @property
    def prefix(self) -> str:
        return f"/client/v4/accounts/{self.account}/email-security"

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.live.port, timeout=30)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"hostile-{request.param}")
    url = database_url(request, tmp)
    live = make_live_server(tmp / "live", url, MAILSEC_API_MAX_BODY_BYTES=str(MAX_BODY))
    services = server_services(live)
    account = services.accounts.create_account("Hostile").id
    token = services.accounts.create_token(account)
    services.close()
    fill(live, account, 30)
    fill(live, account, 2, prefix=LONG_WORD)
    live.start()
    yield Site(live, account, token)
    live.stop()


def request(
    conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, str], Any]:
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None


def cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


BAD_SEARCHES = [
    ({"query": "invoice\x00"}, "NUL"),
    ({"subject": "bulk\x00message"}, "NUL"),
    ({"sender": "a\x00@x.example"}, "NUL"),
    ({"end": "0001-01-01T00:00:00Z"}, None),
    ({"start": "0001-01-01T00:00:00+05:00"}, "start"),
    ({"cursor": cursor(10**30, 1, "next")}, "cursor"),
    ({"cursor": cursor(1, -(10**25), "prev")}, "cursor"),
    ({"cursor": cursor(1.5e300, 1, "next")}, "cursor"),
    ({"query": "x" * 60_000}, "query"),
    ({"query": " ".join(["ab"] * 5000)}, "query"),
    ({"query": " ".join(f"t{i}" for i in range(40))}, "terms"),
    ({"query": "y" * 500}, "term"),
    ({"message_id": "m" * 5000}, "message_id"),
]


def test_bad_search_parameters_are_400s_on_a_connection_that_stays_open(site: Site) -> None:
    conn = site.connect()
    status, _, _ = request(conn, "GET", f"{site.prefix}/investigate?detections_only=false", site.headers())
    assert status == 200
    sock = conn.sock
    for params, words in BAD_SEARCHES:
        path = f"{site.prefix}/investigate?{urlencode({'detections_only': 'false', **params})}"
        status, headers, body = request(conn, "GET", path, site.headers())
        if params.get("end", "").startswith("0001"):  # a window entirely in year 1 is valid: nothing there
            assert status == 200 and body["result"] == [], body
        else:
            assert status == 400, (params, body)
            assert body["success"] is False and body["errors"][0]["code"] >= 1000
            assert words is None or words in body["errors"][0]["message"], body
        assert headers.get("connection", "").lower() != "close"
        assert conn.sock is sock  # the same keep-alive connection answered every request
    status, _, body = request(
        conn, "GET", f"{site.prefix}/investigate?detections_only=false&per_page=5", site.headers()
    )
    assert status == 200 and len(body["result"]) == 5
    conn.close()


def test_a_long_term_still_finds_its_messages(site: Site) -> None:
    """Only a prefix of a long word goes to the text index; the whole word is still required."""
    with httpx.Client(headers=site.headers()) as client:
        base = f"{site.live.base_url}/accounts/{site.account}/email-security/investigate"

        def subjects(query: str) -> list[str]:
            found = client.get(base, params={"detections_only": "false", "query": query, "per_page": 50})
            assert found.status_code == 200, found.text
            return sorted(m["subject"] for m in found.json()["result"])

        assert subjects(LONG_WORD) == [f"{LONG_WORD} message 0", f"{LONG_WORD} message 1"]
        assert subjects(LONG_WORD[:30] + "-something-else") == []  # same indexed prefix, different word
        assert subjects(f"{LONG_WORD} message") == [f"{LONG_WORD} message 0", f"{LONG_WORD} message 1"]


def test_trailing_slash_answers_like_the_route_and_405_says_allow(site: Site) -> None:
    conn = site.connect()
    plain = request(conn, "GET", f"{site.prefix}/investigate?detections_only=false&per_page=3", site.headers())
    slashed = request(conn, "GET", f"{site.prefix}/investigate/?detections_only=false&per_page=3", site.headers())
    assert slashed[0] == 200 and slashed[2]["result"] == plain[2]["result"]
    status, _, body = request(conn, "GET", f"{site.prefix}/no/such/route/", site.headers())
    assert status == 404 and body["success"] is False
    status, headers, body = request(conn, "DELETE", f"{site.prefix}/investigate", site.headers())
    assert status == 405 and body["errors"][0]["code"] == 10405
    assert {m.strip() for m in headers["allow"].split(",")} >= {"GET", "HEAD"}
    status, headers, _ = request(conn, "POST", f"{site.prefix}/settings/domains/1", site.headers(), body="{}")
    assert status == 405 and {"GET", "PATCH", "PUT", "DELETE"} <= {m.strip() for m in headers["allow"].split(",")}
    conn.close()


def test_bodies_over_the_limit_are_413_before_they_are_read(site: Site) -> None:
    path = f"{site.prefix}/settings/block_senders"
    declared = site.connect()
    declared.putrequest("POST", path)
    for k, v in {**site.headers(), "Content-Type": "application/json", "Content-Length": str(100 * 2**20)}.items():
        declared.putheader(k, v)
    declared.endheaders()  # and not one byte of the 100 MB
    started = time.monotonic()
    response = declared.getresponse()
    body = json.loads(response.read())
    assert response.status == 413 and body["errors"][0]["code"] == 1413 and time.monotonic() - started < 5
    declared.close()

    def chunks() -> Iterator[bytes]:
        yield b'{"pattern": "'
        for _ in range(64):
            yield b"a" * 4096
        yield b'", "pattern_type": "DOMAIN", "is_regex": false}'

    streamed = httpx.post(
        f"{site.live.base_url}/accounts/{site.account}/email-security/settings/block_senders",
        content=chunks(),
        headers={**site.headers(), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413 and streamed.json()["success"] is False
    small = httpx.post(
        f"{site.live.base_url}/accounts/{site.account}/email-security/settings/block_senders",
        json={"pattern": "small.example", "pattern_type": "DOMAIN", "is_regex": False},
        headers=site.headers(),
    )
    assert small.status_code == 200, small.text


def test_values_the_database_cannot_store_are_400s(site: Site) -> None:
    with httpx.Client(headers=site.headers()) as client:
        url = f"{site.live.base_url}/accounts/{site.account}/email-security/settings/block_senders"
        nul = client.post(url, json={"pattern": "evil\x00.example", "pattern_type": "EMAIL", "is_regex": True})
        assert nul.status_code == 400 and nul.json()["success"] is False
        pathological = client.post(url, json={"pattern": r"(a)\1", "pattern_type": "EMAIL", "is_regex": True})
        assert pathological.status_code == 400 and "RE2" in pathological.text
        linear = client.post(url, json={"pattern": "(a+)+b", "pattern_type": "EMAIL", "is_regex": True})
        assert linear.status_code == 200  # RE2 runs it in linear time: nothing to refuse


def test_the_log_holds_no_search_terms(site: Site) -> None:
    marker = "secretterm" + "q" * 40
    with httpx.Client(headers=site.headers()) as client:
        base = f"{site.live.base_url}/accounts/{site.account}/email-security/investigate"
        for params in ({"query": marker * 1000}, {"query": marker, "cursor": cursor(10**30, 1, "next")}):
            assert client.get(base, params=params).status_code == 400
    log = (site.live.data_dir / "serve.log").read_text()
    assert marker not in log


def test_failed_authentication_is_throttled(tmp_path: Path) -> None:
    live = make_live_server(
        tmp_path / "live",
        f"sqlite:///{tmp_path / 'mailsec.db'}",
        MAILSEC_AUTH_FAILURES_PER_MINUTE="6",
        MAILSEC_AUTH_FAILURES_BURST="3",
    )
    services = server_services(live)
    account = services.accounts.create_account("Throttled").id
    token = services.accounts.create_token(account)
    key = services.accounts.create_user("soc@throttled.example", account)
    services.close()
    live.start()
    url = f"{live.base_url}/accounts/{account}/email-security/investigate"

    def client(address: str) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(local_address=address))

    try:
        with client("127.0.0.2") as guesser:
            codes = [guesser.get(url, headers={"Authorization": f"Bearer msk_guess{i}"}).status_code for i in range(4)]
            assert codes == [403, 403, 403, 429]
            limited = guesser.get(url, headers={"Authorization": f"Bearer {token}"})  # this address waits, even
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
            assert limited.json()["errors"][0]["code"] == 10429
        with client("127.0.0.3") as other_address:
            assert other_address.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
            email = {"X-Auth-Email": "soc@throttled.example"}
            codes = [other_address.get(url, headers={**email, "X-Auth-Key": f"k{i}"}).status_code for i in range(3)]
            assert codes == [403, 403, 403]
        with client("127.0.0.4") as third:  # the credential itself is throttled, from any address
            assert third.get(url, headers={**email, "X-Auth-Key": key}).status_code == 429
            assert third.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        live.stop()
