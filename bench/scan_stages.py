"""Where a scan's CPU goes, per stage and per analyzer, over the corpora `bench/scan.py` reads: parse (and within it
the HTML tree), each guarded analyzer (within content: the tokens and the classifier), and the guard itself (the
time budget around each analyzer: the time of `_guarded` not spent in its analyzer).

Each stage is timed with `time.thread_time` around the function (a wrapper costs ~1 µs a call, small against the
stages). The machine is shared: `--runs` passes, the median of each stage, and the whole pass timed without the
wrappers in the same run, as the peer the stages should add up to.

    nice -n 10 .venv/bin/python bench/scan_stages.py [--runs 3] [--limit N] [--write]

`--write` puts the table in its section of docs/benchmarks.md."""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from docsection import write_section  # noqa: E402

import mailsec.scan as scanner  # noqa: E402
import scan as scan_bench  # noqa: E402
from mailsec import htmltree  # noqa: E402
from mailsec.mime import parse as mime_parse  # noqa: E402
from mailsec.scan import content, features  # noqa: E402

Totals = dict[str, float]


def _timed(totals: Totals, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.thread_time() - t0

    return wrapper


def instrument(totals: Totals) -> Callable[[], None]:
    """Wrap the stages in timers; returns the function that unwraps them."""
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, attr: str, replacement: Any) -> None:
        patches.append((owner, attr, getattr(owner, attr)))
        setattr(owner, attr, replacement)

    original_guarded = scanner._guarded

    def guarded(name: str, errors: list[Any], default: Any, fn: Callable[[], Any]) -> Any:
        t0 = time.thread_time()
        try:
            return original_guarded(name, errors, default, _timed(totals, f"analyzer: {name}", fn))
        finally:
            totals["guards (analyzers' time budget)"] += time.thread_time() - t0

    patch(scanner, "_guarded", guarded)
    patch(mime_parse, "parse_html", _timed(totals, "parse: HTML tree", htmltree.parse_html))
    patch(features, "parse_html", _timed(totals, "text: HTML tree (not from mime)", htmltree.parse_html))
    patch(content, "model_tokens", _timed(totals, "content: tokens", features.model_tokens))
    patch(
        content.ContentModel,
        "probabilities_of_tokens",
        _timed(totals, "content: classifier", content.ContentModel.probabilities_of_tokens),
    )

    def undo() -> None:
        for owner, attr, value in reversed(patches):
            setattr(owner, attr, value)

    return undo


def stage_pass(messages: list[bytes], dns: scan_bench.LocalDns) -> Totals:
    totals: Totals = defaultdict(float)
    undo = instrument(totals)
    try:
        envelope = scan_bench.Envelope()
        resolvers = dns.resolvers()
        for raw in messages:
            t0 = time.thread_time()
            parsed = mime_parse.parse_message(raw)
            totals["parse"] += time.thread_time() - t0
            t1 = time.thread_time()
            scanner.scan_message(parsed, envelope, resolvers=resolvers)
            totals["scan"] += time.thread_time() - t1
    finally:
        undo()
    guarded = sum(v for k, v in totals.items() if k.startswith("analyzer: "))
    totals["guards (analyzers' time budget)"] -= guarded
    totals["scan outside analyzers"] = totals["scan"] - totals["guards (analyzers' time budget)"] - guarded
    return totals


def table(runs: list[Totals], plain: list[float], count: int) -> str:
    names = sorted({k for r in runs for k in r}, key=lambda k: -statistics.median(r.get(k, 0.0) for r in runs))
    lines = [
        f"{count} corpus messages (as `bench/scan.py`: local DNS, shipped model), median of {len(runs)} instrumented "
        f"passes; the same pass without the timers took {statistics.median(plain) / count * 1e6:.0f} µs/msg "
        f"({count / statistics.median(plain):.0f} msg/s) in this run. Nested stages (parse: HTML tree, content: …) are "
        "inside their parent's figure; the guards' figure includes the timers' own cost (four clock reads a call).",
        "",
        "| stage | µs/msg | share of parse + scan |",
        "|---|---:|---:|",
    ]
    whole = statistics.median(r["parse"] + r["scan"] for r in runs)
    for name in names:
        value = statistics.median(r.get(name, 0.0) for r in runs)
        lines.append(f"| {name} | {value / count * 1e6:.0f} | {value / whole:.1%} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="at most this many messages per folder")
    ap.add_argument("--write", action="store_true", help="write the table to docs/benchmarks.md")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    messages = scan_bench.load_corpus(args.limit)
    scan_bench.shipped_model()
    with scan_bench.LocalDns() as dns:
        scan_bench.measure(messages[:200], dns)
        runs, plain = [], []
        for _ in range(args.runs):
            runs.append(stage_pass(messages, dns))
            plain.append(sum(scan_bench.measure(messages, dns)))
    text = table(runs, plain, len(messages))
    print(text)
    if args.write:
        write_section("scan-stages", "Where the scan's time goes (`bench/scan_stages.py`)", text)


if __name__ == "__main__":
    main()
