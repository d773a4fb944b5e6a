"""A snapshot of every verdict the scanner gives on the corpora, and a comparison of two snapshots: the proof that a
speed change changed no verdict. Each line holds a message's disposition, its findings (every field), categories,
reasons, validation, sender info and fingerprints, so anything a user or the store could see is compared.

    .venv/bin/python bench/scan_verdicts.py --save /tmp/before.jsonl   # on the old code
    .venv/bin/python bench/scan_verdicts.py --compare /tmp/before.jsonl  # on the new code: exit 1 on any difference

Scanned as `bench/scan.py` scans (the local dnslib server answering NXDOMAIN, shipped content model), every n-th
message of each corpus group (`--every`, default 1: all of them). The time an ANALYZER_TIMEOUT reports is dropped."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from mailsec.evaluate import list_messages  # noqa: E402
from mailsec.mime import parse_message  # noqa: E402
from mailsec.model import Envelope, Verdict  # noqa: E402
from mailsec.scan import scan_message  # noqa: E402
from scan import LocalDns  # noqa: E402

CORPORA = ROOT.parent / "shared" / "corpora"
GROUPS = [
    "phishing_pot",
    "phish-other",
    "modern-ham",
    "spamassassin/spam-1",
    "spamassassin/easy-ham-1",
    "spamassassin/hard-ham-1",
]


def sample(every: int) -> Iterator[Path]:
    for group in GROUPS:
        yield from list_messages(CORPORA / group)[::every]


def snapshot(verdict: Verdict) -> dict[str, Any]:
    """The verdict as plain data, with the one field that measures time (a timeout's seconds) removed."""
    data = dataclasses.asdict(verdict)
    for finding in data["findings"]:
        if finding["name"] == "ANALYZER_TIMEOUT":
            finding["detail"] = None
    return json.loads(json.dumps(data, default=str, sort_keys=True))


def scan_all(every: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with LocalDns() as dns:
        resolvers = dns.resolvers()
        for path in sample(every):
            verdict = scan_message(parse_message(path.read_bytes()), Envelope(), resolvers=resolvers)
            out[str(path.relative_to(CORPORA))] = snapshot(verdict)
    return out


def differences(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is None or new is None:
            lines.append(f"{key}: only in {'after' if old is None else 'before'}")
            continue
        fields = sorted(f for f in old.keys() | new.keys() if old.get(f) != new.get(f))
        names = (
            f" findings {sorted(f['name'] for f in old['findings'])} -> {sorted(f['name'] for f in new['findings'])}"
        )
        lines.append(f"{key}: {old['disposition']} -> {new['disposition']}; fields {fields};{names}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--save", type=Path, help="write the snapshot here")
    what.add_argument("--compare", type=Path, help="compare against this snapshot")
    ap.add_argument("--every", type=int, default=1, help="scan every n-th message of each group")
    args = ap.parse_args()
    current = scan_all(args.every)
    if args.save:
        with args.save.open("w") as out:
            for key, data in current.items():
                out.write(json.dumps({"message": key, "verdict": data}, sort_keys=True) + "\n")
        print(f"{len(current)} verdicts written to {args.save}")
        return
    before = {}
    for line in args.compare.read_text().splitlines():
        row = json.loads(line)
        before[row["message"]] = row["verdict"]
    diff = differences(before, current)
    print("\n".join(diff[:50]))
    print(f"{len(current)} messages scanned, {len(before)} in the snapshot, {len(diff)} differ")
    sys.exit(1 if diff else 0)


if __name__ == "__main__":
    main()
