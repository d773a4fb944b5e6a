"""How many reclassifications of a campaign it takes before the campaign memory catches the rest of it.

phishing_pot is grouped into campaigns the way the evaluation groups it (`evaluate.campaign_groups`: the same
normalised subject, From address, text simhash or rich HTML skeleton), independently of the memory's own keys. Each
campaign of at least --min-size messages arrives in file order into an account of its own (a real SQLite store,
`learn.campaigns.CampaignRepo`: the index lookups the pipeline makes); a message the memory does not catch is
reclassified by the analyst (remembered), one it catches is counted. The same memory, holding every reclassified
phishing message, is then asked about the ham corpora: each match there would be a false positive.

    nice -n 10 .venv/bin/python bench/learn_campaigns.py [--min-size 3] [--no-write]

Figures go to docs/detection.md (section "learn-campaigns")."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from docsection import write_section

from mailsec.config import load_settings
from mailsec.evaluate import campaign_groups, list_messages
from mailsec.learn.campaigns import CampaignRepo
from mailsec.mime import parse_message
from mailsec.model import Disposition
from mailsec.scan.campaign import CampaignKeys, campaign_keys
from mailsec.services import open_services

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
DETECTION = ROOT / "docs" / "detection.md"
HAM = ("spamassassin/easy-ham-1", "spamassassin/hard-ham-1", "modern-ham")


def _how(lesson_how: str) -> str:
    if "edf_hash" in lesson_how:
        return "edf_hash"
    if "structure" in lesson_how:
        return "structure + similar text"
    return "MinHash near-duplicate"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-size", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    started = time.perf_counter()
    files = list_messages(CORPORA / "phishing_pot")
    parsed = [parse_message(p.read_bytes()) for p in files]
    keys = [campaign_keys(p) for p in parsed]
    groups = campaign_groups(parsed, ["phishing"] * len(parsed))
    members: dict[int, list[int]] = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    campaigns = [m for m in members.values() if len(m) >= args.min_size]

    data = Path(tempfile.mkdtemp(prefix="mailsec-bench-learn-"))
    services = open_services(load_settings(env={}, data_dir=data))
    repo = CampaignRepo(services.engine)
    needed: list[int] = []
    after_first_total = after_first_caught = 0
    rest_caught_after: Counter[int] = Counter()  # k -> campaigns whose rest is caught after k reclassifications
    how: Counter[str] = Counter()
    everything = services.accounts.create_account("all phishing").id
    for n, campaign in enumerate(campaigns):
        account = services.accounts.create_account(f"campaign {n}").id
        reclassified = 0
        for position, i in enumerate(campaign):
            lesson = repo.lesson_for(account, keys[i])
            if reclassified:
                after_first_total += 1
            if lesson is not None:
                after_first_caught += 1
                how[_how(lesson.how)] += 1
                continue
            reclassified += 1
            repo.remember(account, f"sub-{n}-{position}", None, Disposition.MALICIOUS, Disposition.NONE, keys[i])
            repo.remember(everything, f"sub-{n}-{position}", None, Disposition.MALICIOUS, Disposition.NONE, keys[i])
        needed.append(reclassified)
        rest_caught_after[reclassified] += 1

    ham_files = [p for rel in HAM for p in list_messages(CORPORA / rel)]
    false_matches = 0
    for path in ham_files:
        k: CampaignKeys = campaign_keys(parse_message(path.read_bytes()))
        if repo.lesson_for(everything, k) is not None:
            false_matches += 1
    services.close()
    seconds = time.perf_counter() - started

    sizes = [len(c) for c in campaigns]
    messages = sum(sizes)
    one = rest_caught_after[1]
    ratio = [r / s for r, s in zip(needed, sizes, strict=True)]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} by `bench/learn_campaigns.py` ({seconds:.0f} s): phishing_pot, "
        f"{len(files)} messages in {len(members)} campaigns (`evaluate.campaign_groups`); the {len(campaigns)} "
        f"campaigns of {args.min_size} messages or more ({messages} messages, largest {max(sizes)}) arrive in file "
        "order, each into its own account; every message the memory does not catch is reclassified.",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| campaigns whose rest is caught after 1 reclassification | {one} of {len(campaigns)} "
        f"({one / len(campaigns):.0%}) |",
        f"| campaigns needing 2 / 3 / more | {rest_caught_after[2]} / {rest_caught_after[3]} / "
        f"{sum(v for k, v in rest_caught_after.items() if k > 3)} |",
        f"| reclassifications per campaign: median / mean / 90th percentile / max | "
        f"{statistics.median(needed):g} / {statistics.mean(needed):.2f} / "
        f"{sorted(needed)[int(0.9 * (len(needed) - 1))]} / {max(needed)} |",
        f"| reclassifications per message of a campaign (mean) | {statistics.mean(ratio):.2f} |",
        f"| messages after a campaign's first reclassification caught by the memory | {after_first_caught} of "
        f"{after_first_total} ({after_first_caught / max(1, after_first_total):.0%}) |",
        f"| caught by: {', '.join(f'{k} {v}' for k, v in how.most_common())} | |",
        f"| ham messages (easy-ham-1, hard-ham-1, modern-ham: {len(ham_files)}) matching any of the "
        f"{sum(needed)} remembered phishing messages | {false_matches} |",
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("learn-campaigns", "Campaign memory: reclassifications until it catches", body, DETECTION)


if __name__ == "__main__":
    main()
