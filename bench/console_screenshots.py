"""Screenshots of the console's main pages for docs/console.md (PNG files in docs/console/), taken from a real run:
`mailsec serve --smtp` in front of a private Dovecot (the test helpers of tests/console/admin_support.py), a week
of corpus mail stored at spread-out times, a few messages held over SMTP, then the system Chromium signs in and
photographs each page. Run it by hand when the pages change (it is not part of the test suite):

    .venv/bin/python bench/console_screenshots.py [--out docs/console] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "console"), str(ROOT / "tests" / "gateway")]

from admin_support import PAT, SAM, HeldMail, start_held_mail  # noqa: E402

from learn.learn_helpers import PROMO, near_copy  # noqa: E402
from mailsec.pipeline import process_message  # noqa: E402
from mailsec.store.records import MessageRecord  # noqa: E402
from support import CORPORA, make_eml  # noqa: E402

CHROMIUM = os.environ.get("MAILSEC_CHROMIUM_PATH", "/usr/bin/chromium")
PAGES = [  # file name, path under /a/{account}, what it shows
    ("dashboard", "dashboard", "Dashboard: a week of mail by disposition, top senders, domains and categories"),
    ("search", "search?q=is:detection", "Search with operators"),
    ("quarantine", "quarantine", "Quarantine: held mail, release or delete the ticked messages"),
    ("bulk-new", "bulk/new?q=is:quarantined", "Bulk action: tick messages of a search, or act on all of them"),
    ("settings-block-senders", "settings/policies/block_senders", "Settings: blocked senders"),
    ("settings-quarantine", "settings/quarantine", "Settings: the quarantine policy"),
    ("settings-tokens", "settings/tokens", "Settings: API tokens"),
]


def fill(held: HeldMail, count: int) -> None:
    """Corpus mail of the last seven days (scan times chosen, verdicts real), and a few messages held now."""
    rng = random.Random(15)
    files = sorted((CORPORA / "phishing_pot").glob("*.eml"))[: count // 2]
    files += sorted((CORPORA / "spamassassin" / "easy-ham-1").glob("*.eml"))[: count // 2]
    now = datetime.now(UTC)
    for path in files:
        when = now - timedelta(minutes=rng.randrange(7 * 24 * 60))

        def at(record: MessageRecord, when: datetime = when) -> None:
            record.scanned_at = when

        process_message(held.gw.services, path.read_bytes(), held.account, before_save=at)
    for subject in ("Invoice 4471 overdue", "Your parcel is waiting", "Password expires today"):
        held.hold(subject, (PAT, SAM))


def campaign(held: HeldMail) -> str:
    """A promotion and three near copies of it (the blast radius once an analyst calls the first SPAM); its id."""
    first = process_message(held.gw.services, make_eml(subject="Garden furniture offer", body=PROMO), held.account)
    for i, kind in enumerate(("garden", "terrace", "patio")):
        raw = make_eml(subject=f"{kind.title()} furniture offer", sender=f"sales{i}@shop{i}.example",
                       body=near_copy(PROMO).replace("garden", kind))  # fmt: skip
        process_message(held.gw.services, raw, held.account)
    return first.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--messages", type=int, default=240)
    parser.add_argument("--only", nargs="*", help="take only these screenshots (file names without .png)")
    args = parser.parse_args()
    wanted = set(args.only or [*(name for name, _, _ in PAGES), "similar"])
    from playwright.sync_api import sync_playwright

    from mailsec.preview.renderer import unprivileged_wrapper

    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="mailsec-shots-"))
    held = start_held_mail(tmp)
    wrapper = None
    try:
        if wanted - {"similar"}:
            fill(held, args.messages)
        first = campaign(held) if "similar" in wanted else ""
        executable = CHROMIUM
        if os.geteuid() == 0:
            wrapper, _ = unprivileged_wrapper(CHROMIUM, "nobody")
            executable = str(wrapper)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, headless=True, chromium_sandbox=False)
            page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC")
            page.goto(f"{held.url}/signin")
            page.get_by_label("API token").fill(held.gw.hold_token)
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_url("**/search**")
            for name, path, _ in PAGES:
                if name not in wanted:
                    continue
                page.goto(f"{held.url}/a/{held.account}/{path}")
                page.screenshot(path=str(args.out / f"{name}.png"), full_page=False)
                print(f"wrote {args.out / f'{name}.png'}")
            if first:  # the message page after a reclassification: its similar messages, the apply form open
                page.goto(f"{held.url}/a/{held.account}/messages/{first}")
                page.get_by_text("Reclassify…").click()
                page.get_by_label("Disposition").select_option("SPAM")
                page.get_by_role("button", name="Confirm reclassify").click()
                page.get_by_text("Apply SPAM to similar…").click()
                page.locator("section[aria-labelledby=similar-title]").scroll_into_view_if_needed()
                page.screenshot(path=str(args.out / "similar.png"), full_page=False)
                print(f"wrote {args.out / 'similar.png'}")
            browser.close()
    finally:
        held.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if wrapper is not None:
            shutil.rmtree(wrapper.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
