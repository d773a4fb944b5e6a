"""Scan throughput on ONE core: parse + every analyzer + verdict over the dev corpora, next to SpamAssassin
(`spamd -L`, shipped rules, one child, fed by `spamc`) measured in the same run on a sample of the same messages.

Figures are CPU seconds per message of the scanning thread (the machine is shared, so wall time would measure the
neighbours), with the process pinned to one core. DNS: a loopback dnslib server (`tests/scan/dns_zone.py`) answers
every lookup (NXDOMAIN for the corpus's domains); each pass gets a fresh resolver, so its lookups are paid for.

    nice -n 10 .venv/bin/python bench/scan.py [--runs 3] [--sa-sample 300] [--no-sa] [--limit N] [--profile]
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
START, END = "<!-- bench:scan -->", "<!-- /bench:scan -->"
FOLDERS = ["phishing_pot", "spamassassin/spam-1", "spamassassin/easy-ham-1", "spamassassin/hard-ham-1"]


def load_corpus(limit: int = 0) -> list[bytes]:
    return [p.read_bytes() for f in FOLDERS for p in list_messages(spamassassin.CORPORA / f)[: limit or None]]


class LocalDns:
    """The loopback dnslib server of `tests/scan/dns_zone.py` (UDP+TCP, in this process, answering NXDOMAIN with an
    SOA for the corpus's domains, as an authoritative server would for names it does not hold), and a fresh
    `DnspythonResolver` per pass, so every pass pays for its own lookups (one per distinct name, then its cache)."""

    def __init__(self) -> None:
        self.note = ""
        self._ctx: Any = None
        self.addr: tuple[str, int] | None = None

    def __enter__(self) -> LocalDns:
        try:
            from dns_zone import Zones, dns_server
        except ImportError as exc:
            self.note = f"no DNS resolver (tests/scan/dns_zone.py not importable: {exc}): authentication says none"
            return self
        zones = Zones()
        zones.a("test", "127.0.0.1")
        self._ctx = dns_server(zones)
        self.addr = self._ctx.__enter__()
        self.note = (
            "DNS answered by a local dnslib server (tests/scan/dns_zone.py), fresh resolver cache per pass; it holds "
            "no records for the corpus's domains, so every lookup is a real query answered NXDOMAIN: SPF and DMARC "
            "find no policy and DKIM stops at the missing key without hashing the body (with real DNS, auth costs more)"
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)

    def resolvers(self) -> Any:
        if self.addr is None:
            return None
        from mailsec.scan.resolvers import DnspythonResolver, Resolvers

        host, port = self.addr
        return Resolvers(dns=DnspythonResolver([host], port=port, timeout=2.0))


def measure(messages: list[bytes], dns: LocalDns, parse_only: bool = False) -> list[float]:
    env = Envelope()
    resolvers = dns.resolvers()
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
            # utime + stime, plus cutime + cstime: the children spamd already recycled and reaped
            total += sum(int(f) for f in fields[11:15]) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, ValueError, IndexError):
            continue
    return total


def _spamd_root(pid: int) -> int:
    """The spamd parent: its children share the listening socket, and one of them may be the pid `ss` names; a
    child that spamd recycles would take its CPU time out of the tree."""
    try:
        while True:  # the child renames itself "spamd child"
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid <= 1 or not Path(f"/proc/{ppid}/comm").read_text().startswith("spamd"):
                return pid
            pid = ppid
    except (OSError, ValueError, IndexError):
        return pid


def measure_spamassassin(sample: list[bytes]) -> tuple[float, float] | None:
    """(CPU seconds per message in spamd, wall seconds per message) over the sample, or None without SpamAssassin."""
    if not spamassassin.available():
        return None
    with spamassassin.spamd() as port:
        spamd_pid = _spamd_root(
            int(
                subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True, check=False)
                .stdout.split("pid=")[1]
                .split(",")[0]
            )
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
    ap.add_argument("--limit", type=int, default=0, help="at most this many messages per folder (quick runs)")
    ap.add_argument("--no-sa", action="store_true", help="skip SpamAssassin")
    ap.add_argument("--profile", action="store_true", help="print the top of a cProfile of one pass and stop")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    messages = load_corpus(args.limit)
    shipped_model()
    with LocalDns() as dns:
        measure(messages[:200], dns)  # warm caches and imports
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            measure(messages, dns)
            prof.disable()
            stats = pstats.Stats(prof)
            stats.sort_stats("cumulative").print_stats(45)
            stats.sort_stats("tottime").print_stats(30)
            return
        runs = [measure(messages, dns) for _ in range(args.runs)]
        parse_runs = [measure(messages, dns, parse_only=True) for _ in range(args.runs)]
        sample = messages[:: max(1, len(messages) // args.sa_sample)][: args.sa_sample]
        sa = None if args.no_sa else measure_spamassassin(sample)
        ours_sample = len(sample) / sum(measure(sample, dns))
    totals = [sum(r) for r in runs]
    median_run = sorted(runs, key=sum)[len(runs) // 2]
    rate = len(messages) / statistics.median(totals)
    parse_rate = len(messages) / statistics.median(sum(r) for r in parse_runs)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} by `bench/scan.py` on {platform.machine()} "
        f"({os.cpu_count()} cores shared with other work, process pinned to one core; CPU time of the scanning "
        f"thread, not wall time). {len(messages)} corpus messages (phishing_pot, spam-1, easy-ham-1, hard-ham-1), "
        f"median of {args.runs} runs (all runs: {', '.join(f'{len(messages) / t:.0f}' for t in totals)} msg/s). "
        f"Every analyzer on, shipped content model; {dns.note}. Goal: >= 300 messages/s per core.",
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
        lines += ["", "SpamAssassin not measured in this run (not installed, or --no-sa)."]
    table = "\n".join(lines)
    print(table)
    if not args.no_write and not args.limit and DOC.exists():
        text = DOC.read_text()  # re-read: other benchmarks write their own sections of this file
        section = f"## Scan throughput (`bench/scan.py`)\n\n{START}\n{table}\n{END}"
        if START in text:
            text = re.sub(r"## Scan throughput.*?" + re.escape(END), lambda _: section, text, flags=re.S)
        else:
            text = text.rstrip() + "\n\n" + section + "\n"
        DOC.write_text(text)


if __name__ == "__main__":
    main()
