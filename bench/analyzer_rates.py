"""How often each finding fires, per corpus group: recall on phishing (phishing_pot, phish-other) and false positives on
legitimate mail (modern-ham, the 2002 ham), so an analyzer that only catches what the classifier already catches, or
that fires on newsletters, is visible. Offline as `mailsec eval` runs (no DNS), shipped content model.

    .venv/bin/python bench/analyzer_rates.py [--limit N] [--no-model] [--jsonl FILE] [--write-doc]

`--no-model` scans without the content classifier: what the structural analyzers catch on their own. `--write-doc`
replaces the table between the analyzer-rates markers of docs/detection.md (analyzer-rates-rules for `--no-model`)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
DOC = ROOT / "docs" / "detection.md"
MARKERS = {
    True: ("<!-- analyzer-rates:start -->", "<!-- analyzer-rates:end -->"),
    False: ("<!-- analyzer-rates-rules:start -->", "<!-- analyzer-rates-rules:end -->"),
}

from mailsec.evaluate import caught, list_messages  # noqa: E402
from mailsec.mime import parse_message  # noqa: E402
from mailsec.model import Disposition, Envelope  # noqa: E402
from mailsec.scan import scan_message  # noqa: E402
from mailsec.scan.registry import REGISTRY  # noqa: E402

GROUPS: list[tuple[str, str, str]] = [
    ("phishing_pot", "phishing", "phishing_pot"),
    ("phish-other", "phishing", "phish-other"),
    ("modern-ham", "ham", "modern-ham"),
    ("spam-1", "spam", "spamassassin/spam-1"),
    ("easy-ham-1", "ham", "spamassassin/easy-ham-1"),
    ("hard-ham-1", "ham", "spamassassin/hard-ham-1"),
]
HELD = frozenset({Disposition.MALICIOUS, Disposition.MALICIOUS_BEC, Disposition.SPOOF})


def scan_groups(limit: int, use_model: bool, jsonl: Path | None) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    sink = jsonl.open("w") if jsonl else None
    for name, label, folder in GROUPS:
        fires: Counter[str] = Counter()
        dispositions: Counter[str] = Counter()
        paths = [p for p in list_messages(CORPORA / folder) if p.suffix != ".jsonl"][: limit or None]
        flagged = held = 0
        for path in paths:
            verdict = scan_message(parse_message(path.read_bytes()), Envelope(), model=None if use_model else False)
            names = {f.name for f in verdict.findings if f.score != 0}
            fires.update(names)
            dispositions[verdict.disposition.value] += 1
            flagged += caught(label, verdict.disposition)
            held += verdict.disposition in HELD
            if sink:
                sink.write(json.dumps({
                    "group": name, "file": str(path.relative_to(CORPORA)), "disposition": verdict.disposition.value,
                    "findings": sorted(names), "reasons": list(verdict.detection_reasons[:3]),
                }) + "\n")  # fmt: skip
        out[name] = {"label": label, "n": len(paths), "fires": fires, "dispositions": dispositions,
                     "flagged": flagged, "held": held}  # fmt: skip
    if sink:
        sink.close()
    return out


def table(results: dict[str, dict[str, object]]) -> str:
    names = [g[0] for g in GROUPS if g[0] in results]
    head = "| finding | disposition | " + " | ".join(f"{n} ({results[n]['label']})" for n in names) + " |"
    lines = [head, "|---|---|" + "---:|" * len(names)]
    fired = sorted({f for r in results.values() for f in r["fires"]})  # type: ignore[attr-defined]
    for finding in fired:
        spec = REGISTRY.get(finding)
        cells = []
        for n in names:
            r = results[n]
            k = r["fires"][finding]  # type: ignore[index]
            cells.append(f"{100 * k / r['n']:.1f}%" if k else "")  # type: ignore[operator]
        lines.append(f"| `{finding}` | {spec.disposition.value if spec else '?'} | " + " | ".join(cells) + " |")
    for what in ("flagged", "held"):
        cells = [f"**{100 * results[n][what] / results[n]['n']:.1f}%**" for n in names]  # type: ignore[operator]
        lines.append(f"| {what} | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--jsonl", type=Path)
    ap.add_argument("--write-doc", action="store_true")
    args = ap.parse_args()
    if not CORPORA.is_dir():
        sys.exit(f"no corpora at {CORPORA}")
    t0 = time.process_time()
    results = scan_groups(args.limit, not args.no_model, args.jsonl)
    n = sum(int(r["n"]) for r in results.values())  # type: ignore[call-overload]
    spent = time.process_time() - t0
    md = table(results)
    sizes = ", ".join(f"{k} {r['n']}" for k, r in results.items())
    model = "without the content model" if args.no_model else "with the shipped content model"
    intro = (
        f"Measured {time.strftime('%Y-%m-%d')} by `bench/analyzer_rates.py` {model}, offline (no DNS): {sizes} "
        f"messages ({n / spent:.0f} msg/s CPU). A cell is the share of the group's messages on which the finding "
        "fired (score ≠ 0); 'flagged' is SPOOF or worse for phishing, BULK or worse for spam, SPAM or worse for ham; "
        "'held' is MALICIOUS, MALICIOUS-BEC or SPOOF (what the default policy quarantines)."
    )
    print(intro + "\n\n" + md)
    if args.write_doc:
        text = DOC.read_text("utf-8")
        start, end = MARKERS[not args.no_model]
        a, b = text.index(start) + len(start), text.index(end)
        DOC.write_text(text[:a] + "\n" + intro + "\n\n" + md + "\n" + text[b:], "utf-8")


if __name__ == "__main__":
    main()
