"""Scan throughput on ONE core: parse + every analyzer + verdict over the dev corpora, next to SpamAssassin
(`spamd -L`, shipped rules, one child, fed by `spamc`) measured in the same run on a sample of the same messages.

Figures are CPU seconds per message (the machine is shared, so wall time would measure the neighbours), with the
process pinned to one core. DNS: answered by the local dnslib test server (`tests/scan/dnszone.py`) when it exists,
else no resolver at all (authentication then says none).

    nice -n 10 .venv/bin/python bench/scan.py [--runs 3] [--sa-sample 300] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "scan"))

import spamassassin  # noqa: E402

from mailsec.evaluate import list_messages  # noqa: E402
from mailsec.mime import parse_message  # noqa: E402
from mailsec.model import Envelope  # noqa: E402
from mailsec.scan import scan_message, shipped_model  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench-scan:start -->", "<!-- bench-scan:end -->"
FOLDERS = ["phishing_pot", "spamassassin/spam-1", "spamassassin/easy-ham-1", "spamassassin/hard-ham-1"]


def load_corpus() -> list[bytes]:
    return [p.read_bytes() for f in FOLDERS for p in list_messages(spamassassin.CORPORA / f)]


def local_resolvers() -> tuple[Any, str]:
    """Resolvers backed by the auth engineer's loopback DNS server, if that helper exists yet."""
    try:
        import dnszone  # type: ignore[import-not-found]
    except ImportError:
        return None, "no DNS resolver (tests/scan/dnszone.py not available): authentication answers none"
    starter = getattr(dnszone, "start_test_dns", None) or getattr(dnszone, "serve", None)
    if starter is None:
        return None, "no DNS resolver (tests/scan/dnszone.py has no start function this script knows)"
    try:
        server = starter()
        resolvers = getattr(server, "resolvers", None)
        if callable(resolvers):
            resolvers = resolvers()
        return resolvers, "DNS answered by the local dnslib server of tests/scan/dnszone.py"
    except Exception as exc:
        return None, f"no DNS resolver (starting tests/scan/dnszone.py failed: {exc})"


def measure(messages: list[bytes], resolvers: Any, parse_only: bool = False) -> list[float]:
    env = Envelope()
    per_message = []
    for raw in messages:
        t0 = time.thread_time()
        parsed = parse_message(raw)
        if not parse_only:
            scan_message(parsed, env, resolvers=resolvers)
        per_message.append(time.thread_time() - t0)
    return per_message


def _cpu_of_tree(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def measure_spamassassin(sample: list[bytes]) -> tuple[float, float] | None:
    """(CPU seconds per message in spamd, wall seconds per message) over the sample, or None without SpamAssassin."""
    if not spamassassin.available():
        return None
    with spamassassin.spamd() as port:
        spamd_pid = int(
            subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False)
            .stdout.split("pid=")[1]
            .split(",")[0]
        )
        cpu0, wall0 = _cpu_of_tree(spamd_pid), time.perf_counter()
        for raw in sample:
            spamassassin.score(port, raw)
        return (_cpu_of_tree(spamd_pid) - cpu0) / len(sample), (time.perf_counter() - wall0) / len(sample)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sa-sample", type=int, default=300, help="messages fed to SpamAssassin (every n-th)")
    ap.add_argument("--profile", action="store_true", help="print the top of a cProfile of one pass and stop")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    messages = load_corpus()
    resolvers, dns_note = local_resolvers()
    shipped_model()
    measure(messages[:200], resolvers)  # warm caches and imports
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        measure(messages, resolvers)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        return
    runs = [measure(messages, resolvers) for _ in range(args.runs)]
    parse_runs = [measure(messages, resolvers, parse_only=True) for _ in range(args.runs)]
    totals = [sum(r) for r in runs]
    median_run = runs[totals.index(statistics.median(totals))] if len(runs) % 2 else runs[0]
    rate = len(messages) / statistics.median(totals)
    parse_rate = len(messages) / statistics.median(sum(r) for r in parse_runs)
    sample = messages[:: max(1, len(messages) // args.sa_sample)][: args.sa_sample]
    sa = measure_spamassassin(sample)
    ours_sample = len(sample) / sum(measure(sample, resolvers))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `bench/scan.py` on {platform.machine()} "
        f"({os.cpu_count()} cores shared with other work, process pinned to one core; CPU time, not wall time). "
        f"{len(messages)} corpus messages (phishing_pot, spam-1, easy-ham-1, hard-ham-1), median of {args.runs} "
        f"runs. Every analyzer on, shipped content model; {dns_note}.",
        "",
        "| what | messages/s per core | p50 ms/msg | p95 ms/msg | p99 ms/msg |",
        "|---|---:|---:|---:|---:|",
        f"| mailsec parse + scan | **{rate:.0f}** | {pct(median_run, 0.5) * 1000:.2f} | "
        f"{pct(median_run, 0.95) * 1000:.2f} | {pct(median_run, 0.99) * 1000:.2f} |",
        f"| mailsec parse only (`mime/parse.py`) | {parse_rate:.0f} | | | |",
    ]
    if sa:
        sa_rate = 1 / sa[0]
        lines += [
            f"| mailsec parse + scan, on the SpamAssassin sample ({len(sample)} msgs) | {ours_sample:.0f} | | | |",
            f"| {spamassassin.version()} `spamd -L`, 1 child, via `spamc` (same sample; spamd CPU) | {sa_rate:.1f} "
            f"| {sa[0] * 1000:.0f} (mean) | | |",
            "",
            f"mailsec / SpamAssassin per core: **{ours_sample / sa_rate:.0f}x** on the same messages "
            f"(SpamAssassin wall {sa[1] * 1000:.0f} ms/msg including spamc).",
        ]
    else:
        lines += ["", "SpamAssassin not installed: no peer figure in this run."]
    table = "\n".join(lines)
    print(table)
    if not args.no_write and DOC.exists():
        text = DOC.read_text()
        section = f"## Scan throughput (`bench/scan.py`)\n\n{START}\n{table}\n{END}"
        if START in text:
            text = re.sub(r"## Scan throughput.*?" + re.escape(END), lambda _: section, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        DOC.write_text(text)


if __name__ == "__main__":
    main()
