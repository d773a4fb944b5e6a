"""Search and the message page in a real browser, on mail that went through the real gateway (SMTP in, held in
quarantine, released to Dovecot over LMTP) or was ingested: operators, paging, the URL holding the search, the
detections, preview, trace and action log, release with its per-recipient outcome, read-only sign-ins, hostile
text shown as text with no script run."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from console_support import (
    HELD_RECIPIENT,
    BrowserPage,
    Console,
    ingest,
    send,
    sign_in_with_token,
    wait_stored,
)

from gateway.gw_support import Dovecot
from support import make_eml

PROVOKED = re.compile(r"Failed to load resource: the server responded with a status of (400|403|404)")
HOSTILE_SUBJECT = "<script>alert('subject')</script><img src=x onerror=\"alert('img')\"> Quarterly"
HOSTILE_NAME = "<img src=x onerror=alert(1)>Payroll"


@dataclass(frozen=True)
class Mail:
    tag: str  # a word only these test messages carry, to search for
    held_id: str
    held_postfix_id: str
    invoices: list[str]
    hostile_id: str


@pytest.fixture(scope="module")
def mail(console: Console) -> Mail:
    tag = "zq" + uuid.uuid4().hex[:8]
    held_pid = send(
        console,
        make_eml(subject=f"{tag} held for review", to=HELD_RECIPIENT, body=f"Please review {tag}.\n"),
        [HELD_RECIPIENT],
    )
    held_id = wait_stored(console, held_pid, "quarantined")
    invoices = ingest(
        console,
        [
            make_eml(
                subject=f"{tag} invoice {n}",
                sender=f"billing{n}@vendor.example",
                to="bob@corp.example",
                body=f"Invoice {n} attached. {tag}\n",
                attachments=[("invoice.pdf", "application/pdf", b"%PDF-1.4 " + bytes([n]))] if n % 2 else None,
            )
            for n in range(1, 6)
        ],
    )
    [hostile_id] = ingest(
        console,
        [
            make_eml(
                subject=f"{HOSTILE_SUBJECT} {tag}",
                sender=f'"{HOSTILE_NAME}" <payroll@attacker.example>',
                body=f"{tag}\n",
                html=f"<p>{tag}</p><script>alert('body')</script><img src=x onerror=alert(3)>",
            )
        ],
    )
    return Mail(tag, held_id, held_pid, invoices, hostile_id)


@pytest.fixture()
def analyst(console: Console, browser_page: BrowserPage) -> Iterator[Any]:
    """A page signed in with the read-write token; no browser console error and no dialog may happen (but the
    error statuses a test provokes on purpose, which Chromium reports as console errors too)."""
    sign_in_with_token(browser_page.page, console.url, console.token)
    yield browser_page.page
    assert [p for p in browser_page.problems if not PROVOKED.search(p)] == []
    assert browser_page.dialogs == []


def search(page: Any, text: str) -> list[str]:
    box = page.get_by_label("Search")
    box.fill(text)
    box.press("Enter")
    page.wait_for_load_state()
    return page.locator("table.results tbody tr td:nth-child(5)").all_inner_texts()


def test_search_with_operators(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    everything = search(page, mail.tag)
    assert len(everything) == 7
    invoices = search(page, f"subject:invoice {mail.tag}")
    assert sorted(invoices) == sorted(f"{mail.tag} invoice {n}" for n in range(1, 6))
    assert search(page, f"from:billing3@vendor.example {mail.tag}") == [f"{mail.tag} invoice 3"]
    assert len(search(page, f"from:vendor.example has:attachment {mail.tag}")) == 3
    assert search(page, f"is:quarantined {mail.tag}") == [f"{mail.tag} held for review"]
    assert page.locator("table.results .badge-quarantined").count() == 1
    assert search(page, f"to:{HELD_RECIPIENT.split('@')[1]} after:2020-01-01 {mail.tag}") == [
        f"{mail.tag} held for review"
    ]
    assert search(page, f"before:2020-01-01 {mail.tag}") == []
    assert page.get_by_role("status").inner_text() == "No message matches this search."
    # The URL holds the search: opening it elsewhere gives the same page.
    shared = search(page, f"domain:vendor.example {mail.tag}")
    query = parse_qs(urlsplit(page.url).query)
    assert query["q"] == [f"domain:vendor.example {mail.tag}"]
    page.goto(page.url)
    assert page.locator("table.results tbody tr td:nth-child(5)").all_inner_texts() == shared


def test_a_bad_operator_value_is_explained(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    search(page, "disposition:dreadful")
    assert page.get_by_role("alert").inner_text().startswith("disposition:dreadful is not one of")
    response = page.goto(f"{console.url}/a/{console.account}/search?q=after:soon")
    assert response is not None and response.status == 400


def test_cursor_paging_walks_the_results(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    page.goto(f"{console.url}/a/{console.account}/search?q=subject:invoice+{mail.tag}&per_page=2")
    seen: list[str] = []
    for _ in range(5):
        seen += page.locator("table.results tbody tr td:nth-child(5)").all_inner_texts()
        older = page.get_by_role("link", name="Older")
        if older.count() == 0:
            break
        older.click()
        page.wait_for_load_state()
    assert sorted(seen) == sorted(f"{mail.tag} invoice {n}" for n in range(1, 6))
    assert page.get_by_role("link", name="Newer").count() == 1


def test_the_message_page(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    search(page, f"is:quarantined {mail.tag}")
    page.get_by_role("link", name=f"{mail.tag} held for review").click()
    page.wait_for_url(f"**/messages/{mail.held_id}")
    assert page.locator("h1").inner_text() == f"{mail.tag} held for review"
    trace = page.locator("ol.timeline li").all_inner_texts()
    assert any("EHLO client.example" in line for line in trace), trace
    assert any(f"queued as {mail.held_postfix_id}" in line for line in trace), trace
    assert page.get_by_role("heading", name="Detections").is_visible()
    assert page.get_by_role("cell", name=HELD_RECIPIENT).first.is_visible()
    picture = page.get_by_alt_text("Preview of the message")
    picture.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=picture.element_handle())
    assert picture.evaluate("img => img.naturalWidth") > 100
    page.reload()  # the preview was action-logged under this sign-in
    assert "PREVIEW" in page.locator("section[aria-labelledby=log-title]").inner_text()
    link = page.get_by_role("link", name="Download raw .eml")
    raw = page.request.get(console.url + (link.get_attribute("href") or ""))  # as the browser's download would
    assert raw.headers["content-disposition"] == f'attachment; filename="{mail.held_postfix_id}.eml"'
    assert raw.headers["content-type"] == "message/rfc822"
    assert f"Subject: {mail.tag} held for review".encode() in raw.body()


def test_findings_show_reason_and_evidence(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    page.goto(f"{console.url}/a/{console.account}/messages/{mail.hostile_id}")
    findings = page.locator("ul.findings > li")
    assert findings.count() >= 1
    first = findings.first
    assert first.locator("strong").inner_text()
    assert first.locator(".reason").inner_text()


def test_release_from_quarantine_shows_the_outcome(
    console: Console, mail: Mail, analyst: Any, dovecot: Dovecot
) -> None:
    page = analyst
    page.goto(f"{console.url}/a/{console.account}/messages/{mail.held_id}")
    assert mail.held_postfix_id not in dovecot.queue_ids(HELD_RECIPIENT)
    page.get_by_text("Release…").click()
    page.get_by_role("button", name="Confirm release").click()
    page.wait_for_load_state()
    outcome = page.locator("section[aria-labelledby=outcome-title]")
    assert outcome.get_by_role("heading").inner_text() == "Release: outcome"
    assert outcome.locator("tbody tr").all_inner_texts() == [f"{HELD_RECIPIENT}\tdelivered\t"]
    assert dovecot.queue_ids(HELD_RECIPIENT).count(mail.held_postfix_id) == 1
    assert "QUARANTINE_RELEASE" in page.locator("section[aria-labelledby=log-title]").inner_text()
    page.goto(f"{console.url}/a/{console.account}/messages/{mail.held_id}")
    assert page.get_by_text("Release…").count() == 0  # nothing is held any more


def folders_holding(dovecot: Dovecot, user: str, message_id: str) -> list[str]:
    with dovecot.imap(user) as client:
        found = []
        for _, _, name in client.list_folders():
            client.select_folder(name, readonly=True)
            found += [name] * len(client.search(["HEADER", "Message-ID", message_id]))
        return sorted(found)


def test_move_in_the_mailbox_shows_each_recipient(console: Console, mail: Mail, analyst: Any, dovecot: Dovecot) -> None:
    page = analyst
    raw = make_eml(subject=f"{mail.tag} to move", to=HELD_RECIPIENT)
    message_id = raw.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0].decode()
    target = wait_stored(console, send(console, raw, [HELD_RECIPIENT]), "quarantined")
    page.goto(f"{console.url}/a/{console.account}/messages/{target}")
    page.get_by_text("Release…").click()
    page.get_by_role("button", name="Confirm release").click()
    page.wait_for_load_state()
    assert folders_holding(dovecot, HELD_RECIPIENT, message_id) == ["INBOX"]
    page.get_by_text("Move…").click()
    page.get_by_label("Destination").select_option("JunkEmail")
    page.get_by_role("button", name="Confirm move").click()
    page.wait_for_load_state()
    outcome = page.locator("section[aria-labelledby=outcome-title]")
    assert outcome.get_by_role("heading").inner_text() == "Move to JunkEmail: outcome"
    assert outcome.locator("tbody tr").all_inner_texts() == [f"{HELD_RECIPIENT}\tmoved\t"]
    assert folders_holding(dovecot, HELD_RECIPIENT, message_id) == ["Junk"]
    page.get_by_text("Move…").click()
    page.get_by_label("Destination").select_option("JunkEmail")
    page.get_by_role("button", name="Confirm move").click()  # asking twice moves once
    page.wait_for_load_state()
    assert "already in destination" in page.locator("section[aria-labelledby=outcome-title]").inner_text()


def test_reclassify_changes_the_disposition(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    target = mail.invoices[0]
    page.goto(f"{console.url}/a/{console.account}/messages/{target}")
    page.get_by_text("Reclassify…").click()
    page.get_by_label("Disposition").select_option("SPAM")
    page.get_by_role("button", name="Confirm reclassify").click()
    page.wait_for_load_state()
    outcome = page.locator("section[aria-labelledby=outcome-title]")
    assert outcome.get_by_role("heading").inner_text() == "Reclassify: outcome"
    assert "now SPAM" in outcome.inner_text()
    page.goto(f"{console.url}/a/{console.account}/messages/{target}")
    assert page.locator("h1 + p .badge").first.inner_text() == "SPAM"
    assert "RECLASSIFY" in page.locator("section[aria-labelledby=log-title]").inner_text()
    page.goto(f"{console.url}/a/{console.account}/search")
    assert search(page, f"disposition:spam subject:invoice {mail.tag}") == [f"{mail.tag} invoice 1"]


def test_hostile_subject_and_sender_are_text(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    search(page, f"from:attacker.example {mail.tag}")
    link = page.get_by_role("link", name=f"{HOSTILE_SUBJECT} {mail.tag}")
    assert link.count() == 1
    assert HOSTILE_NAME in page.locator("table.results tbody tr td:nth-child(3)").inner_text()
    link.click()
    page.wait_for_url(f"**/messages/{mail.hostile_id}")
    assert page.locator("h1").inner_text() == f"{HOSTILE_SUBJECT} {mail.tag}"
    assert HOSTILE_NAME in page.locator("dd.from").inner_text()
    assert page.locator("main script, main img[src=x], main iframe").count() == 0
    assert "alert('body')" not in page.content()  # the message's HTML is never put in the page
    page.get_by_alt_text("Preview of the message").scroll_into_view_if_needed()
    page.wait_for_timeout(300)


def test_read_only_sees_no_write_action_and_is_refused_on_post(
    console: Console, mail: Mail, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    [fresh] = ingest(console, [make_eml(subject=f"{mail.tag} read-only view", to=HELD_RECIPIENT)])
    sign_in_with_token(page, console.url, console.read_token)
    assert page.locator(".badge-readonly").inner_text() == "read-only"
    page.goto(f"{console.url}/a/{console.account}/messages/{mail.held_id}")
    assert page.get_by_role("heading", name="Actions").count() == 0
    assert page.get_by_role("button", name="Confirm release").count() == 0
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(f"{console.url}/a/{console.account}/messages/{fresh}/release", form={"csrf": csrf or ""})
    assert answer.status == 403
    assert "read-only" in answer.text()
    assert browser_page.problems == [] and browser_page.dialogs == []


def test_a_write_without_csrf_is_refused(console: Console, mail: Mail, analyst: Any) -> None:
    page = analyst
    page.goto(f"{console.url}/a/{console.account}/messages/{mail.hostile_id}")
    answer = page.request.post(f"{console.url}/a/{console.account}/messages/{mail.hostile_id}/release", form={})
    assert answer.status == 403
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}
    forged = httpx.post(
        f"{console.url}/a/{console.account}/messages/{mail.hostile_id}/release",
        data={"csrf": "0" * 64},
        cookies=cookie,
        headers={"origin": "http://evil.example"},
    )
    assert forged.status_code == 403


def test_a_message_of_no_account_of_the_sign_in_is_not_found(console: Console, mail: Mail, analyst: Any) -> None:
    response = analyst.goto(f"{console.url}/a/{console.account}/messages/not-a-message")
    assert response is not None and response.status == 404
    response = analyst.goto(f"{console.url}/a/{'f' * 32}/messages/{mail.held_id}")
    assert response is not None and response.status == 404
