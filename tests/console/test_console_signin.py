"""Signing in and out of the console in a real browser: token and password, refusals, the session cookie's
attributes, CSRF on forms, the security headers, idle expiry."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_support import BrowserPage, Console, sign_in_with_password, sign_in_with_token, start_console

from mailsec.config import load_settings
from mailsec.services import open_services


def session_cookie(page: Any) -> dict[str, Any]:
    cookies = [c for c in page.context.cookies() if c["name"] == "mailsec_console"]
    assert len(cookies) == 1, cookies
    return cookies[0]


def test_sign_in_with_token_sets_a_strict_http_only_cookie(console: Console, browser_page: BrowserPage) -> None:
    page = browser_page.page
    sign_in_with_token(page, console.url, console.token)
    assert page.url.startswith(f"{console.url}/a/{console.account}/search")
    assert page.get_by_label("Search").is_visible()
    cookie = session_cookie(page)
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["value"] not in (console.token, "")
    assert page.evaluate("document.cookie") == ""  # script cannot read the session
    assert browser_page.problems == [] and browser_page.dialogs == []


def test_sign_in_with_email_and_password(console: Console, browser_page: BrowserPage) -> None:
    page = browser_page.page
    sign_in_with_password(page, console.url, console.email, console.password)
    assert page.locator(".principal").inner_text() == console.email
    assert browser_page.problems == []


@pytest.mark.parametrize("field", ["token", "password"])
def test_a_wrong_credential_is_refused_on_the_form(console: Console, browser_page: BrowserPage, field: str) -> None:
    page = browser_page.page
    page.goto(f"{console.url}/signin")
    if field == "token":
        page.get_by_label("API token").fill("msk_not-a-token")
        page.get_by_role("button", name="Sign in", exact=True).click()
    else:
        page.get_by_label("E-mail").fill(console.email)
        page.get_by_label("Password").fill("not the password at all")
        page.get_by_role("button", name="Sign in with password").click()
    assert page.get_by_role("alert").inner_text().startswith("That did not sign you in")
    assert "/signin" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "mailsec_console"]


def test_pages_need_a_session_and_come_back_after_sign_in(console: Console, browser_page: BrowserPage) -> None:
    page = browser_page.page
    page.goto(f"{console.url}/a/{console.account}/search?q=invoice")
    assert "/signin" in page.url
    page.get_by_label("API token").fill(console.token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(f"**/a/{console.account}/search?q=invoice")
    assert page.get_by_label("Search").input_value() == "invoice"


def test_security_headers_on_every_console_answer(console: Console, signed_in: BrowserPage) -> None:
    page = signed_in.page
    response = page.goto(f"{console.url}/a/{console.account}/search")
    assert response is not None
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    for path in ("/signin", "/static/console.css", "/no-such-page-at-all"):
        answer = httpx.get(console.url + path)
        if path != "/no-such-page-at-all":
            assert "content-security-policy" in answer.headers, path
    api = httpx.get(f"{console.url}/client/v4/accounts/{console.account}/email-security/investigate")
    assert api.status_code == 400 and api.json()["success"] is False  # the API is unchanged by the console


def test_another_account_is_not_found(console: Console, signed_in: BrowserPage) -> None:
    response = signed_in.page.goto(f"{console.url}/a/{'0' * 32}/search")
    assert response is not None and response.status == 404


def test_a_form_without_its_csrf_token_is_refused(console: Console, signed_in: BrowserPage) -> None:
    page = signed_in.page
    answer = page.request.post(f"{console.url}/signout", form={"csrf": "forged"})
    assert answer.status == 403
    page.goto(f"{console.url}/a/{console.account}/search")
    assert "/search" in page.url  # still signed in: the forged sign-out did nothing


def test_a_cross_site_sign_in_post_is_refused(console: Console) -> None:
    answer = httpx.post(f"{console.url}/signin", data={"token": console.token, "csrf": "x"})
    assert answer.status_code == 403
    assert "mailsec_console" not in answer.cookies


def test_sign_out_ends_the_session_on_the_server(console: Console, signed_in: BrowserPage) -> None:
    page = signed_in.page
    stolen = session_cookie(page)["value"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/signin")
    assert not [c for c in page.context.cookies() if c["name"] == "mailsec_console"]
    replay = httpx.get(
        f"{console.url}/a/{console.account}/search", cookies={"mailsec_console": stolen}, follow_redirects=False
    )
    assert replay.status_code == 303 and replay.headers["location"].startswith("/signin")


def test_a_revoked_token_ends_its_session(console: Console, browser_page: BrowserPage) -> None:
    page = browser_page.page
    token = console.server.create_token(console.account)
    sign_in_with_token(page, console.url, token)
    listed = console.server.cli("token", "list", "--account", console.account, "--json").stdout.splitlines()
    newest = json.loads(listed[-1])
    console.server.cli("token", "revoke", newest["id"])
    page.goto(f"{console.url}/a/{console.account}/search")
    assert "/signin" in page.url


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("idle"), MAILSEC_CONSOLE_IDLE_SECONDS="2")
    yield running
    running.server.stop()


def test_an_idle_session_expires(short_lived: Console, browser_page: BrowserPage) -> None:
    page = browser_page.page
    sign_in_with_token(page, short_lived.url, short_lived.token)
    time.sleep(1.0)
    page.reload()  # use within the idle time keeps it alive
    assert "/search" in page.url
    time.sleep(2.5)
    page.reload()
    assert "/signin" in page.url and "expired=1" in page.url
    assert page.get_by_role("status").inner_text() == "Your session ended; sign in again."


def test_slash_jumps_to_the_search_box(console: Console, signed_in: BrowserPage) -> None:
    page = signed_in.page
    page.goto(f"{console.url}/a/{console.account}/search?q=invoice")
    page.locator("body").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    assert page.evaluate("[document.activeElement.selectionStart, document.activeElement.selectionEnd]") == [0, 7]
    assert signed_in.problems == []


def test_a_user_with_two_accounts_switches_between_them(console: Console, browser_page: BrowserPage) -> None:
    services = open_services(load_settings(env=console.server.env))
    try:
        second = services.accounts.create_account("Second").id
        email = f"two-{second[:6]}@corp.example"
        services.accounts.create_user(email, console.account)
        services.accounts.grant_user(email, second, can_write=False)
        services.accounts.set_password(email, console.password)
    finally:
        services.close()
    page = browser_page.page
    sign_in_with_password(page, console.url, email, console.password)
    first = page.url.split("/a/", 1)[1].split("/", 1)[0]
    other = second if first == console.account else console.account
    page.get_by_label("Account").select_option(other)
    page.get_by_role("button", name="Switch").click()
    page.wait_for_url(f"**/a/{other}/search")
    assert (page.locator(".badge-readonly").count() == 1) == (other == second)  # the scope is per account
    assert browser_page.problems == []
