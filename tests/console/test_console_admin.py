"""The dashboard, quarantine, bulk jobs and settings pages in a real browser, in front of a real gateway: mail held
over SMTP is released into Dovecot (or deleted) from the quarantine page and every recipient's outcome is shown;
a bulk job releases everything held, with progress; settings are created, edited and deleted through the forms
and checked through the API; a read-only token sees no write action and cannot post one."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from admin_support import HOSTILE_NAME, HOSTILE_SUBJECT, PAT, SAM, HeldMail, marker, start_held_mail
from console_support import BrowserPage, sign_in_with_token


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeldMail]:
    running = start_held_mail(tmp_path_factory.mktemp("console-admin"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def read_token(held: HeldMail) -> str:
    return held.gw.services.accounts.create_token(held.account, can_write=False, name="analyst (read)")


@pytest.fixture()
def writer(held: HeldMail, browser_page: BrowserPage) -> BrowserPage:
    sign_in_with_token(browser_page.page, held.url, held.gw.hold_token)
    return browser_page


def api(held: HeldMail) -> httpx.Client:
    return httpx.Client(
        base_url=f"{held.gw.server.base_url}/accounts/{held.account}/email-security",
        headers={"Authorization": f"Bearer {held.gw.hold_token}"},
        timeout=30,
    )


def row_of(page: Any, text: str) -> Any:
    return page.locator("table.results tbody tr", has_text=text)


# -- quarantine ------------------------------------------------------------------------------------------------------


def test_release_from_quarantine_shows_each_recipients_outcome(held: HeldMail, writer: BrowserPage) -> None:
    page, tag = writer.page, marker()
    postfix_id = held.hold(f"Held for review {tag}")
    page.get_by_role("link", name="Quarantine", exact=True).click()
    row = row_of(page, tag)
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Release selected").click()
    assert page.get_by_role("heading", level=1).inner_text() == "Release 1 message?", page.locator("main").inner_text()
    assert held.in_inbox(PAT, tag) == 0, "nothing is delivered before the confirmation"
    page.get_by_role("button", name="Release", exact=True).click()
    outcome = page.locator("table.outcomes tbody")
    assert outcome.locator("tr", has_text=PAT).locator("td").nth(2).inner_text() == "delivered"
    assert outcome.locator("tr", has_text=SAM).locator("td").nth(2).inner_text() == "delivered"
    assert held.in_inbox(PAT, tag) == 1 and held.in_inbox(SAM, tag) == 1
    stored = held.gw.services.messages.get(held.account, postfix_id)
    assert stored is not None and stored.delivery_status == "delivered" and not stored.is_quarantined
    page.get_by_role("link", name="Back to the quarantine").click()
    page.wait_for_url("**/quarantine")
    page.get_by_role("heading", level=1).wait_for()
    assert row_of(page, tag).count() == 0
    assert writer.problems == [] and writer.dialogs == []


def test_delete_from_quarantine_after_confirmation(held: HeldMail, writer: BrowserPage) -> None:
    page, tag = writer.page, marker()
    postfix_id = held.hold(f"Unwanted {tag}")
    page.goto(f"{held.url}/a/{held.account}/quarantine")
    row_of(page, tag).get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete selected").click()
    page.get_by_role("link", name="Cancel").click()  # changing one's mind leaves it held
    page.wait_for_url("**/quarantine")
    assert row_of(page, tag).count() == 1
    row_of(page, tag).get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete selected").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    cells = page.locator("table.outcomes tbody tr", has_text=PAT).locator("td")
    assert cells.nth(2).inner_text() == "deleted"
    stored = held.gw.services.messages.get(held.account, postfix_id)
    assert stored is not None and stored.delivery_status == "rejected" and not stored.is_quarantined
    assert held.in_inbox(PAT, tag) == 0 and held.in_inbox(SAM, tag) == 0
    assert writer.problems == []


def test_hostile_subject_and_sender_name_are_text(held: HeldMail, writer: BrowserPage) -> None:
    page = writer.page
    held.hold(HOSTILE_SUBJECT, (PAT,), sender=HOSTILE_NAME)
    page.goto(f"{held.url}/a/{held.account}/quarantine")
    row = row_of(page, "Invoice").first
    assert "<script>alert(2)</script>" in row.inner_text()
    assert "<script>alert(3)</script>" in row.inner_text()
    assert page.locator("table.results img").count() == 0 and page.locator("main script").count() == 0
    assert writer.dialogs == [] and writer.problems == []


# -- bulk ------------------------------------------------------------------------------------------------------------


def test_bulk_release_of_everything_held_shows_progress_and_outcomes(held: HeldMail, writer: BrowserPage) -> None:
    page, tag = writer.page, marker()
    for n in range(3):
        held.hold(f"Wave {tag} {n}", (SAM,))
    page.goto(f"{held.url}/a/{held.account}/quarantine")
    page.get_by_role("button", name="Release everything held (bulk job)").click()
    page.wait_for_url(re.compile(r".*/bulk/[0-9a-f-]{36}$"))
    progress = page.get_by_role("status")
    page.locator('#job-live[data-running="false"]').wait_for(timeout=60_000)  # bulk.js swaps it in while it runs
    assert re.match(r"(\d+) of \1 message", progress.inner_text()), progress.inner_text()
    assert page.get_by_role("heading", level=1).inner_text() == "Release: completed"
    assert held.in_inbox(SAM, tag) == 3
    outcomes = page.locator("table.outcomes tbody tr", has_text=tag)
    assert outcomes.count() == 3 and all("delivered" in t for t in outcomes.all_inner_texts())
    page.get_by_role("link", name="Bulk jobs", exact=True).first.click()
    assert page.locator("table.results tbody tr").first.inner_text().count("COMPLETED") == 1
    assert writer.problems == []


def test_bulk_release_of_ticked_messages_only(held: HeldMail, writer: BrowserPage) -> None:
    page, tag = writer.page, marker()
    for n in range(3):
        held.hold(f"Ticked {tag} {n}", (PAT,))
    page.get_by_label("Search").fill(f"subject:{tag} is:quarantined")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_role("link", name="Bulk action on this search").click()  # from the search page, search kept
    page.wait_for_url(re.compile(r".*/bulk/new\?q=.*"))
    row_of(page, tag).first.wait_for()  # a click returns once the navigation commits, before the rows are in
    assert row_of(page, tag).count() == 3
    for n in (0, 2):
        row_of(page, f"{tag} {n}").get_by_role("checkbox").check()
    page.get_by_label("Action").select_option("release")
    page.get_by_role("button", name="Act on the ticked messages").click()
    page.locator('#job-live[data-running="false"]').wait_for(timeout=60_000)
    assert page.get_by_role("status").inner_text().startswith("2 of 2 messages")
    assert held.in_inbox(PAT, f"{tag} 0") == 1 and held.in_inbox(PAT, f"{tag} 2") == 1
    assert held.in_inbox(PAT, f"{tag} 1") == 0, "a message that was not ticked stays held"
    assert writer.problems == []


# -- dashboard -------------------------------------------------------------------------------------------------------


def test_dashboard_counts_what_the_api_finds(held: HeldMail, writer: BrowserPage) -> None:
    held.hold(f"Counted {marker()}", (PAT,))
    page = writer.page
    page.get_by_role("link", name="Dashboard").click()
    page.get_by_role("link", name="Last 24 hours").click()
    with api(held) as client:
        listed = client.get("/investigate", params={"detections_only": "false", "per_page": 1000}).json()
    total = len(listed["result"])
    summary = page.locator(".summary").inner_text()
    assert summary.startswith(f"{total:,} messages"), (summary, total)
    chart = page.get_by_role("img", name=re.compile("Messages per hour by disposition"))
    assert chart.count() == 1 and chart.locator("rect").count() >= 1
    page.get_by_text("The figures as a table").click()
    cells = page.locator("table.figures tbody tr td:last-child").all_inner_texts()
    assert sum(int(c) for c in cells) == total
    assert writer.problems == []


# -- settings --------------------------------------------------------------------------------------------------------


def test_block_sender_create_edit_delete(held: HeldMail, writer: BrowserPage) -> None:
    page = writer.page
    page.get_by_role("link", name="Settings").click()
    page.get_by_role("link", name="Blocked senders").first.click()
    page.get_by_label("Pattern", exact=True).fill("not a domain!")
    page.get_by_label("Pattern type").select_option("DOMAIN")
    page.get_by_role("button", name="Add").click()
    assert "is not a domain name" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Pattern", exact=True).input_value() == "not a domain!"  # kept for fixing
    page.get_by_label("Pattern", exact=True).fill("bad-sender.example")
    page.get_by_label("Comments").fill("phish wave <b>42</b>")
    page.get_by_role("button", name="Add").click()
    assert page.get_by_role("status").inner_text() == "Created."
    with api(held) as client:
        (entry,) = [
            e for e in client.get("/settings/block_senders").json()["result"] if e["pattern"] == "bad-sender.example"
        ]
    assert entry["pattern_type"] == "DOMAIN" and entry["comments"] == "phish wave <b>42</b>"
    row_of(page, "bad-sender.example").get_by_role("link", name=re.compile("^Edit")).click()
    page.get_by_label("Comments").fill("second wave")
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    with api(held) as client:
        assert client.get(f"/settings/block_senders/{entry['id']}").json()["result"]["comments"] == "second wave"
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete").click()
    assert page.get_by_role("status").inner_text() == "Deleted."
    with api(held) as client:
        assert client.get(f"/settings/block_senders/{entry['id']}").status_code == 404
    assert writer.problems == []


@pytest.mark.parametrize(
    ("segment", "fill", "check"),
    [
        ("allow_policies", {"Pattern": "partner.example"}, "pattern"),
        ("trusted_domains", {"Pattern": "trusted.example"}, "pattern"),
        ("impersonation_registry", {"Display name": "Dana CEO", "Email": "dana@hold.example"}, "email"),
        ("url_ignore_patterns", {"Pattern": r"^https://cdn\.example/"}, "pattern"),
        ("content_policies", {"Display name": "Wire fraud", "Pattern": "wire (now|today)"}, "pattern"),
        ("sending_domain_restrictions", {"Domain": "hold.example"}, "domain"),
    ],
)
def test_every_policy_kind_can_be_added_and_deleted(
    held: HeldMail, writer: BrowserPage, segment: str, fill: dict[str, str], check: str
) -> None:
    page = writer.page
    page.goto(f"{held.url}/a/{held.account}/settings/policies/{segment}")
    for label, value in fill.items():
        page.get_by_label(label, exact=True).fill(value)
    if page.get_by_label("Pattern type").count():
        page.get_by_label("Pattern type").select_option("DOMAIN")
    if page.get_by_label("SUBJECT").count():
        page.get_by_label("SUBJECT").check()
    page.get_by_role("button", name="Add").click()
    assert page.get_by_role("status").inner_text() == "Created.", page.locator("main").inner_text()
    expected = next(iter(v for k, v in fill.items() if k.lower() == check or check in k.lower()), None)
    with api(held) as client:
        entries = client.get(f"/settings/{segment}").json()["result"]
    assert [e for e in entries if e[check] == expected], entries
    row_of(page, str(expected)).get_by_role("link", name=re.compile("^Delete")).click()
    page.get_by_role("button", name="Delete").click()
    with api(held) as client:
        assert not [e for e in client.get(f"/settings/{segment}").json()["result"] if e[check] == expected]
    assert writer.problems == []


def test_domain_quarantine_policy_and_tokens(held: HeldMail, writer: BrowserPage) -> None:
    page = writer.page
    page.goto(f"{held.url}/a/{held.account}/settings/domains")
    page.get_by_label("Domain", exact=True).fill("new-branch.example")
    page.get_by_label("Next hop (smtp://host:port or lmtp://host:port)").fill("smtp://127.0.0.1:2526")
    page.get_by_role("button", name="Add").click()
    assert page.get_by_role("status").inner_text() == "Created."
    assert "PENDING" in row_of(page, "new-branch.example").inner_text()
    row_of(page, "new-branch.example").get_by_role("link", name=re.compile("^Edit")).click()
    page.get_by_label("Require TLS outbound").check()
    page.get_by_role("button", name="Save").click()
    assert page.get_by_role("status").inner_text() == "Saved."
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Stop protecting").click()
    assert row_of(page, "new-branch.example").count() == 0

    page.goto(f"{held.url}/a/{held.account}/settings/quarantine")
    page.get_by_label("Hold NONE").uncheck()
    page.get_by_label("Subject tag for NONE").fill("[checked]")
    page.get_by_role("button", name="Save").click()
    with api(held) as client:
        policy = client.get("/settings/quarantine_policy").json()["result"]
        assert "NONE" not in policy["dispositions"] and policy["subject_tag"] == {"NONE": "[checked]"}
        page.get_by_label("Hold NONE").check()
        page.get_by_label("Subject tag for NONE").fill("")
        page.get_by_role("button", name="Save").click()
        assert "NONE" in client.get("/settings/quarantine_policy").json()["result"]["dispositions"]

    page.goto(f"{held.url}/a/{held.account}/settings/tokens")
    page.get_by_label("Name").fill("automation")
    page.get_by_label("Read-only").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_label("New API token").input_value()
    assert secret.startswith("msk_")
    answer = httpx.get(
        f"{held.gw.server.base_url}/accounts/{held.account}/email-security/investigate",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert answer.status_code == 200
    page.goto(f"{held.url}/a/{held.account}/settings/tokens")  # the secret is shown once
    assert page.get_by_label("New API token").count() == 0 and secret not in page.content()
    row_of(page, "automation").get_by_role("link", name=re.compile("^Revoke")).click()
    page.get_by_role("button", name="Revoke").click()
    assert "revoked" in row_of(page, "automation").inner_text()
    refused = httpx.get(
        f"{held.gw.server.base_url}/accounts/{held.account}/email-security/investigate",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert refused.status_code == 403
    assert writer.problems == []


# -- read-only -------------------------------------------------------------------------------------------------------

READ_PAGES = [
    "quarantine",
    "dashboard",
    "bulk",
    "settings",
    "settings/policies/block_senders",
    "settings/domains",
    "settings/quarantine",
    "settings/tokens",
]


def test_read_only_token_sees_no_write_action_and_cannot_post(
    held: HeldMail, read_token: str, browser_page: BrowserPage
) -> None:
    held.hold(f"Seen read-only {marker()}", (PAT,))
    page = browser_page.page
    sign_in_with_token(page, held.url, read_token)
    for path in READ_PAGES:
        page.goto(f"{held.url}/a/{held.account}/{path}")
        main = page.locator("main")
        assert main.locator("form[method=post]").count() == 0, path
        assert main.locator("input[type=checkbox]:not([disabled])").count() == 0, path
        for name in ("Release", "Delete", "Add", "Save", "Revoke", "Create token"):
            assert main.get_by_role("button", name=re.compile(name)).count() == 0, (path, name)
    csrf = page.locator("header form input[name=csrf]").input_value()
    for path in ("quarantine/release", "settings/policies/block_senders", "settings/tokens", "bulk"):
        answer = page.request.post(
            f"{held.url}/a/{held.account}/{path}",
            form={"csrf": csrf, "pattern": "x.example", "pattern_type": "DOMAIN", "name": "x", "action": "release"},
            headers={"origin": held.url},
        )
        assert answer.status == 403 and "read-only" in answer.text(), path
    assert browser_page.problems == []


# -- keyboard --------------------------------------------------------------------------------------------------------


def test_keyboard_alone_releases_a_held_message(held: HeldMail, writer: BrowserPage) -> None:
    page, tag = writer.page, marker()
    held.hold(f"Keyboard {tag}", (PAT,))
    page.goto(f"{held.url}/a/{held.account}/quarantine")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    box = row_of(page, tag).get_by_role("checkbox")
    box.focus()
    page.keyboard.press("Space")
    assert box.is_checked()
    for _ in range(60):  # Shift+Tab back to the toolbar, as a keyboard user would
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.textContent") == "Release selected":
            break
    page.keyboard.press("Enter")
    page.wait_for_url("**/quarantine/confirm")
    assert page.evaluate("document.activeElement.textContent") == "Release"  # the confirmation has focus
    page.keyboard.press("Enter")
    page.locator("table.outcomes").wait_for()
    assert held.in_inbox(PAT, tag) == 1
    assert writer.problems == []


FOREIGN_PATHS = ["dashboard", "quarantine", "bulk", "bulk/new", "settings", "settings/domains", "settings/tokens"]
FOREIGN_POSTS = ["quarantine/release", "quarantine/delete", "settings/policies/block_senders", "settings/tokens"]
FOREIGN_POSTS += ["bulk"]


def test_another_accounts_pages_and_forms_are_not_found(held: HeldMail, browser_page: BrowserPage) -> None:
    """The gateway's other account (`gw.account`) exists, but this sign-in does not reach it."""
    page = browser_page.page
    sign_in_with_token(page, held.url, held.gw.hold_token)
    csrf = page.locator("header form input[name=csrf]").input_value()
    foreign = held.gw.account
    for path in FOREIGN_PATHS:
        assert page.request.get(f"{held.url}/a/{foreign}/{path}").status == 404, path
    for path in FOREIGN_POSTS:
        answer = page.request.post(
            f"{held.url}/a/{foreign}/{path}",
            form={"csrf": csrf, "id": "x", "action": "release", "name": "x"},
            headers={"origin": held.url},
        )
        assert answer.status == 404, path
    own_job = page.request.get(f"{held.url}/a/{held.account}/bulk/00000000-0000-0000-0000-000000000000")
    assert own_job.status == 404
