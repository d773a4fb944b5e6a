"""Safe-preview speed with a warm browser: 200 corpus messages (50 from each dev folder, evenly spaced), rendered
end to end as the API does on a cache miss (parse, inert document, Chromium, PNG). Prints and writes its section of
docs/benchmarks.md: cold start, p50/p95 latency one at a time, and renders per second with 1 and 2 callers.

    .venv/bin/python bench/preview.py [--count 200] [--pages 2]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from mailsec.evaluate import list_messages  # noqa: E402
from mailsec.mime import parse_message  # noqa: E402
from mailsec.preview import Renderer  # noqa: E402
from mailsec.preview.document import build_document  # noqa: E402
from mailsec.preview.service import render_message  # noqa: E402
from support import CORPORA  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:preview -->", "<!-- /bench:preview -->"
FOLDERS = ["phishing_pot", "spamassassin/hard-ham-1", "spamassassin/easy-ham-1", "spamassassin/spam-1"]
MAX_BYTES = 20 * 1024 * 1024


def sample(count: int) -> list[bytes]:
    per = max(1, count // len(FOLDERS))
    out: list[bytes] = []
    for folder in FOLDERS:
        files = sorted(list_messages(CORPORA / folder))
        step = max(1, len(files) // per)
        out += [p.read_bytes() for p in files[::step][:per]]
    return out[:count]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--pages", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = ap.parse_args()
    if not CORPORA.is_dir():
        sys.exit(f"corpora not found at {CORPORA}")
    messages = sample(args.count)
    renderer = Renderer(pages=args.pages, timeout=30.0)
    t0 = time.perf_counter()
    renderer.start()
    cold_start = time.perf_counter() - t0
    try:
        for raw in messages[:10]:  # warm-up: fonts, caches, one page per slot
            render_message(renderer, raw, MAX_BYTES)

        latencies, browser_ms, heights, failures = [], [], [], 0
        for raw in messages:
            t = time.perf_counter()
            doc = build_document(parse_message(raw))
            try:
                shot = renderer.render(doc.html)
            except Exception as exc:
                failures += 1
                print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            latencies.append((time.perf_counter() - t) * 1000)
            browser_ms.append(shot.elapsed_ms)
            heights.append(shot.height)
        sequential_rate = len(latencies) / (sum(latencies) / 1000)

        def worker(chunk: list[bytes]) -> None:
            for raw in chunk:
                render_message(renderer, raw, MAX_BYTES)

        t = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(messages[i :: args.pages],)) for i in range(args.pages)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        parallel_rate = len(messages) / (time.perf_counter() - t)
    finally:
        renderer.close()

    load = os.getloadavg()[0]
    p50, p95 = pct(latencies, 0.5), pct(latencies, 0.95)
    short = [lat for lat, h in zip(latencies, heights, strict=True) if h <= 1200]
    rows = [
        ("messages rendered", f"{len(latencies)} of {len(messages)} ({failures} failed)"),
        ("browser cold start", f"{cold_start * 1000:.0f} ms (Chromium {renderer.browser_version})"),
        ("latency p50 / p95, end to end", f"{p50:.0f} ms / {p95:.0f} ms"),
        ("latency p50 / p95, browser only", f"{pct(browser_ms, 0.5):.0f} ms / {pct(browser_ms, 0.95):.0f} ms"),
        ("latency p50, pictures up to 1200 px tall", f"{statistics.median(short):.0f} ms ({len(short)} messages)"),
        ("renders per second, 1 caller", f"{sequential_rate:.1f}"),
        (f"renders per second, {args.pages} callers ({args.pages} pages)", f"{parallel_rate:.1f}"),
        ("picture height p50 / max", f"{pct([float(h) for h in heights], 0.5):.0f} px / {max(heights)} px"),
        ("load average during the run", f"{load:.1f} (2 cores, shared machine)"),
    ]
    goal = "met" if p50 < 250 else "NOT met"
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    note = (
        f"Goal p50 < 250 ms: {goal}. {len(messages)} corpus messages ({', '.join(FOLDERS)}; evenly spaced), warm "
        "browser, no preview cache; end to end = parse + inert document + render + PNG, as the API on a cache miss. "
        "Width 800 px, height cap 4000 px; tall pictures dominate the tail (PNG encoding grows with area)."
    )
    text_out = f"{table}\n\n{note}"
    print(text_out)
    if args.no_write:
        return
    section = f"## Safe preview (`bench/preview.py`)\n\n{START}\n{text_out}\n{END}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text:
        text = re.sub(
            r"## Safe preview \(`bench/preview.py`\)\n\n" + re.escape(START) + r".*?" + re.escape(END),
            lambda _: section,
            text,
            flags=re.S,
        )
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
