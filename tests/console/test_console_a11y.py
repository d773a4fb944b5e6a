"""Accessibility of every console page: axe-core (shipped inside the `axe-playwright-python` wheel, so no Node
toolchain) run in the system Chromium on each page as a signed-in analyst sees it, with data on it. No serious or
critical violation is allowed; the report names the rule, the element and the page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from admin_support import HOSTILE_NAME, HOSTILE_SUBJECT, PAT, HeldMail, marker, start_held_mail
from console_support import BrowserPage, sign_in_with_token, violations

POLICY_KINDS = (
    "allow_policies",
    "block_senders",
    "trusted_domains",
    "impersonation_registry",
    "url_ignore_patterns",
    "content_policies",
    "sending_domain_restrictions",
)


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HeldMail]:
    running = start_held_mail(tmp_path_factory.mktemp("console-a11y"))
    running.hold(f"Quarterly report {marker()}", (PAT,))
    running.hold(HOSTILE_SUBJECT, (PAT,), sender=HOSTILE_NAME)
    yield running
    running.stop()


def _pages(held: HeldMail) -> list[str]:
    a = f"/a/{held.account}"
    services = held.gw.services
    entry = services.policies.create(held.account, "block_sender", {"pattern": "x.example", "pattern_type": "DOMAIN"})
    domain = services.domains.list(held.account)[0]
    return [
        f"{a}/search",
        f"{a}/search?q=is:quarantined",
        f"{a}/dashboard",
        f"{a}/dashboard?period=24h",
        f"{a}/quarantine",
        f"{a}/bulk",
        f"{a}/bulk/new?q=is:quarantined",
        f"{a}/settings",
        *(f"{a}/settings/policies/{kind}" for kind in POLICY_KINDS),
        f"{a}/settings/policies/block_senders/{entry.id}",
        f"{a}/settings/policies/block_senders/{entry.id}/delete",
        f"{a}/settings/domains",
        f"{a}/settings/domains/{domain.id}",
        f"{a}/settings/quarantine",
        f"{a}/settings/tokens",
        f"{a}/settings/policies/no_such_kind",  # the error page
    ]


def test_signin_page_has_no_serious_violation(held: HeldMail, axe: Any, browser_page: BrowserPage) -> None:
    browser_page.page.goto(f"{held.url}/signin")
    assert violations(axe, browser_page.page) == []


def test_every_page_has_no_serious_violation(held: HeldMail, axe: Any, browser_page: BrowserPage) -> None:
    page = browser_page.page
    sign_in_with_token(page, held.url, held.gw.hold_token)
    found: list[str] = []
    for path in _pages(held):
        page.goto(held.url + path)
        found += violations(axe, page)
    # pages reached through forms: a confirmation, an outcome, a bulk job, a new token's secret
    page.goto(f"{held.url}/a/{held.account}/quarantine")
    page.locator("table.results tbody input[type=checkbox]").first.check()
    page.get_by_role("button", name="Release selected").click()
    found += violations(axe, page)
    page.get_by_role("button", name="Release", exact=True).click()
    page.locator("table.outcomes").wait_for()
    found += violations(axe, page)
    page.goto(f"{held.url}/a/{held.account}/quarantine")
    page.get_by_role("button", name="Release everything held (bulk job)").click()
    page.locator("#job-live").wait_for()
    found += violations(axe, page)
    page.goto(f"{held.url}/a/{held.account}/settings/tokens")
    page.get_by_label("Name").fill("a11y")
    page.get_by_role("button", name="Create token").click()
    found += violations(axe, page)
    assert found == [], "\n".join(found)


def test_read_only_pages_have_no_serious_violation(held: HeldMail, axe: Any, browser_page: BrowserPage) -> None:
    page = browser_page.page
    token = held.gw.services.accounts.create_token(held.account, can_write=False, name="a11y read")
    sign_in_with_token(page, held.url, token)
    found: list[str] = []
    for path in ("quarantine", "settings/quarantine", "settings/policies/block_senders", "settings/tokens"):
        page.goto(f"{held.url}/a/{held.account}/{path}")
        found += violations(axe, page)
    assert found == [], "\n".join(found)


def test_the_check_finds_a_serious_violation_when_there_is_one(axe: Any, browser_page: BrowserPage) -> None:
    """The harness itself: a page with an unlabelled field and an image without text fails it."""
    page = browser_page.page
    page.set_content('<html lang="en"><body><main><img src="x.png"><input type="text"></main></body></html>')
    found = violations(axe, page)
    assert any("image-alt (critical)" in f for f in found) and any("label (critical)" in f for f in found), found
