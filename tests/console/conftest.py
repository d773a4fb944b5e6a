"""The console under a real browser: one live `mailsec serve` (SQLite) for the session, the system Chromium driven
by Playwright (one browser per test module), a fresh page per test, signed in through the form when asked.

Every page a test opens records the browser's console errors, page errors and dialogs (`BrowserPage.problems`,
`.dialogs`): a hostile message that ran script, or a CSP violation, shows up there."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_support import HELD_RECIPIENT, BrowserPage, Console, sign_in_with_token, start_console

from gateway.gw_support import Dovecot, make_dovecot

CHROMIUM = os.environ.get("MAILSEC_CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """The recipients' mail server (LMTP next hop of the held domain); its root readable by Dovecot's users."""
    root = Path(tempfile.mkdtemp(prefix="mailsec-console-dovecot-"))
    root.chmod(0o755)
    server = make_dovecot(root, [HELD_RECIPIENT])
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot) -> Iterator[Console]:
    running = start_console(tmp_path_factory.mktemp("console"), next_hop=dovecot.lmtp_url, imap_port=dovecot.imap_port)
    yield running
    running.server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """The system Chromium, run unprivileged when the tests run as root (as the preview does)."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian package `chromium`)")
    from playwright.sync_api import sync_playwright

    from mailsec.preview.renderer import unprivileged_wrapper

    executable, wrapper = CHROMIUM, None
    if os.geteuid() == 0:
        wrapper, _ = unprivileged_wrapper(CHROMIUM, "nobody")
        executable = str(wrapper)
    with sync_playwright() as pw:
        try:
            launched = pw.chromium.launch(executable_path=executable, headless=True, chromium_sandbox=False)
        except Exception as exc:  # a browser that cannot start here is a skip, said plainly
            pytest.skip(f"Chromium did not start: {exc}")
        yield launched
        launched.close()
    if wrapper is not None:
        shutil.rmtree(wrapper.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def axe() -> Any:
    """axe-core, shipped inside the `axe-playwright-python` wheel (no Node toolchain)."""
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


@pytest.fixture()
def browser_page(browser: Any) -> Iterator[BrowserPage]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(15_000)
    watched = BrowserPage(page)
    page.on("console", lambda m: watched.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.problems.append(f"page error: {e}"))

    def on_dialog(dialog: Any) -> None:
        watched.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield watched
    context.close()


@pytest.fixture()
def signed_in(console: Console, browser_page: BrowserPage) -> BrowserPage:
    """A page signed in with the account's read-write token."""
    sign_in_with_token(browser_page.page, console.url, console.token)
    return browser_page
