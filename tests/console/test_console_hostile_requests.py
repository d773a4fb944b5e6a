"""Hostile and malformed requests to the console: each gets a clear 4xx page (or a sensible default), never a
crash, and nothing from the request is echoed unescaped."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from console_support import Console, http_session, ingest, start_console

from support import make_eml


@pytest.fixture(scope="module")
def client(console: Console) -> Iterator[httpx.Client]:
    signed_in = http_session(console, console.token)
    yield signed_in
    signed_in.close()


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ({"q": "from:"}, 400, "from: needs a value"),
        ({"q": "after:yesterday"}, 400, "is not a date"),
        ({"q": " ".join(f"w{n}" for n in range(40))}, 400, "at most 16"),
        ({"q": "x" * 5000}, 400, "characters"),
        ({"cursor": "not-a-cursor"}, 400, "cursor is not a cursor this server issued"),
        ({"per_page": "lots"}, 200, "Search"),
        ({"per_page": "-5"}, 200, "Search"),
        ({"per_page": "99999999999999999999"}, 200, "Search"),
        ({"job": "no-such-job"}, 404, "no longer known"),
        ({"q": "<script>alert(1)</script>"}, 200, "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ],
)
def test_bad_search_input_gets_a_clear_answer(
    console: Console, client: httpx.Client, query: dict[str, str], status: int, says: str
) -> None:
    answer = client.get(f"/a/{console.account}/search", params=query)
    assert answer.status_code == status, answer.text[:500]
    assert says in answer.text
    assert "<script>alert(1)</script>" not in answer.text
    assert answer.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize(
    "path",
    [
        "/a/{account}/messages/%3Cscript%3E",
        "/a/{account}/messages/" + "x" * 3000,
        "/a/{account}/messages/..%2F..%2Fetc%2Fpasswd",
        "/a/{account}/messages/nothing/preview.png",
        "/a/{account}/messages/nothing/raw.eml",
        "/a/%3Cscript%3E/search",
        "/a/{other}/search",
    ],
)
def test_unknown_messages_and_accounts_are_404_pages(console: Console, client: httpx.Client, path: str) -> None:
    answer = client.get(path.format(account=console.account, other="e" * 32))
    assert answer.status_code == 404, answer.text[:300]
    assert "<script>" not in answer.text
    assert "content-security-policy" in answer.headers


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/no/such/page", "GET", 404),
        ("/a/{account}/no-such-page", "GET", 404),
        ("/static/no-such-file.js", "GET", 404),
        ("/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "GET", 404),
        ("/a/{account}/messages/anything/release", "GET", 405),
    ],
)
def test_console_paths_without_a_route_get_an_html_page(
    console: Console, client: httpx.Client, path: str, method: str, status: int
) -> None:
    """Signed in or not, an unknown console path is a page in the console's layout, with its security headers."""
    for who in (client, httpx.Client(base_url=console.url, timeout=30)):
        answer = who.request(method, path.format(account=console.account))
        assert answer.status_code == status, answer.text[:300]
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
        assert f"<h1>{status}</h1>" in answer.text and 'href="/static/console.css"' in answer.text
        assert "<script>alert(1)" not in answer.text
    if status == 405:
        assert "POST" in answer.headers["allow"]


@pytest.mark.parametrize(
    ("path", "method", "status", "code"),
    [
        ("/client/v4/no/such/route", "GET", 404, 7000),
        ("/client/v4", "GET", 404, 7000),
        ("/client/v4/accounts/{account}/email-security/no-such-thing", "GET", 404, 7000),
        ("/client/v4/accounts/{account}/email-security/investigate", "DELETE", 405, 10405),
    ],
)
def test_api_paths_without_a_route_keep_the_json_envelope(
    console: Console, path: str, method: str, status: int, code: int
) -> None:
    headers = {"authorization": f"Bearer {console.token}"}
    answer = httpx.request(method, console.url + path.format(account=console.account), headers=headers, timeout=30)
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"].startswith("application/json")
    body = answer.json()
    assert body["success"] is False and body["errors"][0]["code"] == code
    assert "content-security-policy" not in answer.headers


def test_writes_on_unknown_messages_and_bad_choices(console: Console, client: httpx.Client) -> None:
    page = client.get(f"/a/{console.account}/search")
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    base = f"/a/{console.account}/messages"
    assert client.post(f"{base}/nothing/release", data={"csrf": csrf}).status_code == 404
    assert client.post(f"{base}/nothing/reclassify", data={"csrf": csrf, "disposition": "SPAM"}).status_code == 404
    moved = client.post(f"{base}/nothing/move", data={"csrf": csrf, "destination": "Attic"})
    assert moved.status_code == 400 and "destination" in moved.text
    too_big = client.post(f"{base}/nothing/release", content=b"csrf=" + b"a" * (5 * 1024 * 1024),
                          headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert too_big.status_code == 413


def test_sign_in_input_is_bounded_and_open_redirects_are_refused(console: Console) -> None:
    with httpx.Client(base_url=console.url, timeout=30) as anonymous:
        anonymous.get("/signin")
        nonce = anonymous.cookies["mailsec_signin"]
        refused = anonymous.post("/signin", data={"csrf": nonce, "token": "t" * 100_000})
        assert refused.status_code == 403 and "did not sign you in" in refused.text
        empty = anonymous.post("/signin", data={"csrf": nonce})
        assert empty.status_code == 400
        for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
            anonymous.get("/signin")  # each sign-in uses up its form's nonce
            nonce = anonymous.cookies["mailsec_signin"]
            answer = anonymous.post("/signin", data={"csrf": nonce, "token": console.token, "next": target})
            assert answer.status_code == 303 and answer.headers["location"] == "/", target


def test_a_search_past_its_budget_continues_as_a_job(tmp_path_factory: pytest.TempPathFactory) -> None:
    """With no time budget every search is a background job: the page says so and links to the result."""
    running = start_console(tmp_path_factory.mktemp("budget"), MAILSEC_SEARCH_BUDGET_SECONDS="0")
    try:
        ingest(running, [make_eml(subject="budgeted search result")])
        client = http_session(running, running.token)
        first = client.get(f"/a/{running.account}/search", params={"q": "subject:budgeted"})
        assert first.status_code == 200 and "goes on in the background" in first.text
        link = first.text.split('background. <a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        assert "job=" in link and "q=subject%3Abudgeted" in link
        for _ in range(100):
            answer = client.get(link)
            if "goes on in the background" not in answer.text:
                break
            time.sleep(0.1)
        assert answer.status_code == 200 and "budgeted search result" in answer.text
        other = client.get(f"/a/{running.account}/search", params={"job": "0" * 36})
        assert other.status_code == 404
        client.close()
    finally:
        running.server.stop()


def test_password_guessing_is_throttled(tmp_path_factory: pytest.TempPathFactory) -> None:
    running = start_console(
        tmp_path_factory.mktemp("throttle"), MAILSEC_AUTH_FAILURES_PER_MINUTE="1", MAILSEC_AUTH_FAILURES_BURST="2"
    )
    try:
        with httpx.Client(base_url=running.url, timeout=30) as guesser:
            guesser.get("/signin")
            nonce = guesser.cookies["mailsec_signin"]
            statuses = [
                guesser.post("/signin", data={"csrf": nonce, "email": running.email, "password": f"guess {n}"})
                for n in range(3)
            ]
            assert [s.status_code for s in statuses] == [403, 403, 429]
            assert "Too many failed sign-ins" in statuses[-1].text
            right = guesser.post("/signin", data={"csrf": nonce, "email": running.email, "password": running.password})
            assert right.status_code == 429  # while throttled, even the right password waits
            api = httpx.get(
                f"{running.url}/client/v4/accounts/{running.account}/email-security/investigate",
                headers={"Authorization": "Bearer msk_wrong"},
            )
            assert api.status_code == 429  # one budget for the console and the API, per client address
    finally:
        running.server.stop()
