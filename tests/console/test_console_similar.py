"""The blast radius in a real browser: after a reclassification the message page lists the similar messages (what
`GET /investigate/{id}/similar` returns) with links, and a confirmed form applies the analyst's verdict to them
through the API's own code path; read-only sign-ins see the table but no button and are refused on POST; the form
needs its CSRF token and a sane window."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from console_support import BrowserPage, Console, http_session, ingest, sign_in_with_token, violations

from learn.learn_helpers import CLUB, PROMO, near_copy
from support import make_eml

HOSTILE = "<img src=x onerror=alert(1)>Patio offer"


@dataclass(frozen=True)
class Campaign:
    first: str
    copies: list[str]
    unrelated: str


@pytest.fixture(scope="module")
def campaign(console: Console) -> Campaign:
    """A promotion that scans as NONE, three near copies (one with a hostile subject) and an unrelated message."""
    copies = [("Garden offer", "garden"), ("Terrace offer", "terrace"), (HOSTILE, "patio")]
    ids = ingest(
        console,
        [make_eml(subject="First offer", sender="sales@shop.example", body=PROMO)]
        + [
            make_eml(subject=subject, sender=f"s{i}@x.example", body=near_copy(PROMO).replace("garden", kind))
            for i, (subject, kind) in enumerate(copies)
        ]
        + [make_eml(subject="Club news", sender="club@garden.example", body=CLUB)],
    )
    return Campaign(ids[0], ids[1:4], ids[4])


@pytest.fixture()
def analyst(console: Console, browser_page: BrowserPage) -> Iterator[Any]:
    sign_in_with_token(browser_page.page, console.url, console.token)
    yield browser_page.page
    assert browser_page.problems == [] and browser_page.dialogs == []


def _similar_rows(page: Any) -> dict[str, list[str]]:
    """Message id → the row's cells, from the "Similar messages" table."""
    rows: dict[str, list[str]] = {}
    for row in page.locator("table.similar-messages tbody tr").all():
        href = row.locator("a").get_attribute("href") or ""
        rows[href.rsplit("/", 1)[-1]] = row.locator("td").all_inner_texts()
    return rows


def test_blast_radius_after_reclassify_and_apply(console: Console, campaign: Campaign, analyst: Any, axe: Any) -> None:
    page = analyst
    message_url = f"{console.url}/a/{console.account}/messages/{campaign.first}"
    page.goto(message_url)
    assert page.get_by_role("heading", name="Similar messages").count() == 0  # nothing reclassified yet

    page.get_by_text("Reclassify…").click()
    page.get_by_label("Disposition").select_option("SPAM")
    page.get_by_role("button", name="Confirm reclassify").click()
    page.wait_for_load_state()
    section = page.locator("section[aria-labelledby=similar-title]")
    assert section.get_by_role("heading", name="Similar messages").is_visible()
    assert "3 stored message(s) of the last 30 days look like this one; 3 do not carry SPAM" in section.inner_text()
    rows = _similar_rows(page)
    assert sorted(rows) == sorted(campaign.copies) and campaign.unrelated not in rows
    assert all(cells[3] != "SPAM" and cells[4] == "yes" for cells in rows.values()), rows
    hostile = section.get_by_role("link", name=HOSTILE, exact=False)
    assert hostile.count() == 1 and page.locator("main img[src=x]").count() == 0

    section.locator(f"a[href$='/messages/{campaign.copies[0]}']").click()
    page.wait_for_url(f"**/messages/{campaign.copies[0]}")
    assert page.locator("h1 + p .badge").first.inner_text() == rows[campaign.copies[0]][3]
    page.goto(message_url)  # the radius stays on the message page, not only on the reclassify answer

    section = page.locator("section[aria-labelledby=similar-title]")
    section.get_by_text("Apply SPAM to similar…").click()
    assert "Re-scan 3 similar message(s) so they carry SPAM?" in section.locator("form.confirm").inner_text()
    found = violations(axe, page)
    section.get_by_role("button", name="Confirm apply to similar").click()
    page.wait_for_load_state()
    outcome = page.locator("section[aria-labelledby=applied-title]")
    assert outcome.get_by_role("heading").inner_text() == "Apply SPAM to similar messages: outcome"
    assert "Re-scanned 3 message(s); 3 now carry a new verdict." in outcome.inner_text()
    changed = outcome.locator("tbody tr").all_inner_texts()
    assert len(changed) == 3 and all(r.count("SPAM") == 1 for r in changed)
    assert all(cells[3] == "SPAM" and cells[4] == "no" for cells in _similar_rows(page).values())
    assert page.get_by_role("button", name="Confirm apply to similar").count() == 0  # nothing left to change
    assert found + violations(axe, page) == []

    page.goto(f"{console.url}/a/{console.account}/messages/{campaign.copies[1]}")
    assert page.locator("h1 + p .badge").first.inner_text() == "SPAM"
    page.goto(f"{console.url}/a/{console.account}/messages/{campaign.unrelated}")
    assert page.locator("h1 + p .badge").first.inner_text() == "NONE"

    api = f"{console.url}/client/v4/accounts/{console.account}/email-security/investigate/{campaign.first}/similar"
    result = httpx.get(api, headers={"authorization": f"Bearer {console.read_token}"}, timeout=60).json()["result"]
    assert result["similar_count"] == 3 and result["would_change_count"] == 0


def test_read_only_sees_the_table_but_no_button(
    console: Console, campaign: Campaign, browser_page: BrowserPage
) -> None:
    analyst = http_session(console, console.token)
    page_url = f"/a/{console.account}/messages/{campaign.first}"
    csrf = analyst.get(page_url).text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    reclassified = analyst.post(f"{page_url}/reclassify", data={"csrf": csrf, "disposition": "BULK"})
    assert reclassified.status_code == 200 and "Confirm apply to similar" in reclassified.text

    page = browser_page.page
    sign_in_with_token(page, console.url, console.read_token)
    page.goto(console.url + page_url)
    rows = _similar_rows(page)
    assert sorted(rows) == sorted(campaign.copies) and all(cells[4] == "yes" for cells in rows.values())
    assert page.get_by_text("Apply BULK to similar…").count() == 0
    assert page.get_by_role("button", name="Confirm apply to similar").count() == 0
    token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    answer = page.request.post(console.url + page_url + "/similar", form={"csrf": token, "days": "30"})
    assert answer.status == 403 and "read-only" in answer.text()
    assert browser_page.dialogs == []


def test_the_apply_form_needs_its_token_and_a_sane_window(console: Console, campaign: Campaign) -> None:
    analyst = http_session(console, console.token)
    page_url = f"/a/{console.account}/messages/{campaign.first}"
    csrf = analyst.get(page_url).text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert analyst.post(f"{page_url}/similar", data={"days": "30"}).status_code == 403
    assert analyst.post(f"{page_url}/similar", data={"csrf": "0" * 64, "days": "30"}).status_code == 403
    for days in ("0", "367", "-1", "30.5", "٣٠", "9" * 40, ""):
        answer = analyst.post(f"{page_url}/similar", data={"csrf": csrf, "days": days})
        assert answer.status_code == 400, days
        assert "days must be a whole number from 1 to 366" in answer.text
        assert answer.headers["content-type"].startswith("text/html")
    missing = analyst.post(f"/a/{console.account}/messages/no-such-message/similar", data={"csrf": csrf, "days": "30"})
    assert missing.status_code == 404
    foreign = analyst.post(f"/a/{'f' * 32}/messages/{campaign.first}/similar", data={"csrf": csrf, "days": "30"})
    assert foreign.status_code == 404
