"""Memory footprint of `mailsec serve --smtp`: the parent, its queue worker processes and the rest of its process
tree (the multiprocessing helpers, the Playwright driver, Chromium), idle, then after one preview started Chromium,
then after the preview idle period closed it. RSS, PSS and USS from /proc/PID/smaps_rollup (PSS splits shared pages
between the processes sharing them, USS is what a process alone holds: the sum of PSS is what the tree costs).

    .venv/bin/python bench/footprint.py [--before OLD_SRC] [--workers N] [--idle-close 5]

`--before` measures another source tree (e.g. `git archive <commit> src | tar -x -C /tmp/old`) in the same run, for a
before/after table. Prints the tables and writes the "Footprint" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support import free_port, make_eml  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:footprint -->", "<!-- /bench:footprint -->"
TITLE = "## Footprint (`bench/footprint.py`)"


@dataclass
class Proc:
    pid: int
    ppid: int
    role: str
    rss: int  # kB
    pss: int
    uss: int


def _rollup(pid: int) -> tuple[int, int, int]:
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        fields[name.strip()] = int(rest.split()[0])
    return fields["Rss"], fields["Pss"], fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)


def _tree(root: int) -> list[tuple[int, int, str]]:
    procs: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        procs[int(entry.name)] = (ppid, cmd)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in procs:
            out.append((pid, procs[pid][0], procs[pid][1]))
            todo.extend(p for p, (pp, _) in procs.items() if pp == pid)
    return out


def _role(pid: int, root: int, cmd: str, forkservers: set[int], ppid: int) -> str:
    if pid == root:
        return "serve (parent)"
    if "chrom" in cmd:
        return "Chromium"
    if "playwright" in cmd or cmd.startswith("node") or "/node " in cmd:
        return "Playwright driver"
    if "resource_tracker" in cmd:
        return "multiprocessing helpers"
    if pid in forkservers:
        return "multiprocessing helpers"
    if "spawn_main" in cmd or ppid in forkservers:
        return "queue worker"
    return "other"


def measure(root: int) -> list[Proc]:
    tree = _tree(root)
    # Workers forked from the fork server carry its command line: the server is the one whose parent is not one.
    fork_cmd = {pid for pid, _, cmd in tree if "forkserver" in cmd}
    forkservers = {pid for pid, ppid, _ in tree if pid in fork_cmd and ppid not in fork_cmd}
    out = []
    for pid, ppid, cmd in tree:
        try:
            rss, pss, uss = _rollup(pid)
        except (OSError, KeyError, ValueError):
            continue
        out.append(Proc(pid, ppid, _role(pid, root, cmd, forkservers, ppid), rss, pss, uss))
    return out


def wait_settled(root: int, workers: int, timeout: float = 180.0) -> None:
    """Until the workers are up and their memory has stopped growing (warm-up done) for 3 s."""
    deadline = time.monotonic() + timeout
    last: dict[int, int] = {}
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        procs = measure(root)
        now = {p.pid: p.rss for p in procs}
        if now != last or sum(p.role == "queue worker" for p in procs) < workers:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 3.0:
            return
        time.sleep(0.5)
    raise TimeoutError("serve did not settle")


def summarize(procs: list[Proc]) -> dict[str, tuple[int, int, int, int]]:
    """role -> (count, rss, pss, uss) in kB."""
    out: dict[str, tuple[int, int, int, int]] = {}
    for p in procs:
        n, r, s, u = out.get(p.role, (0, 0, 0, 0))
        out[p.role] = (n + 1, r + p.rss, s + p.pss, u + p.uss)
    return out


def run(src: Path, workers: int, idle_close: float) -> dict[str, list[Proc]]:
    data = Path(tempfile.mkdtemp(prefix="mailsec-footprint-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(src),
        "MAILSEC_DATA_DIR": str(data),
        "MAILSEC_QUEUE_WORKERS": str(workers),
        "MAILSEC_PREVIEW_IDLE_SECONDS": str(idle_close),
    }
    cli = [sys.executable, "-m", "mailsec.cli"]

    def last_line(*args: str) -> str:
        return subprocess.run([*cli, *args], env=env, check=True, capture_output=True, text=True).stdout.split()[-1]

    account = last_line("account", "create", "Footprint")
    token = last_line("token", "create", "--account", account)
    eml = data / "one.eml"
    eml.write_bytes(make_eml(subject="Footprint", html="<h1>Hello</h1><img src='https://cdn.example/x.png'>"))
    subprocess.run([*cli, "ingest", "--account", account, str(eml)], env=env, check=True, capture_output=True)
    api, smtp = free_port(), free_port()
    proc = subprocess.Popen(
        [*cli, "serve", "--api", f"127.0.0.1:{api}", "--smtp", f"127.0.0.1:{smtp}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{api}/client/v4/accounts/{account}/email-security/investigate"
    headers = {"Authorization": f"Bearer {token}"}
    phases: dict[str, list[Proc]] = {}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{api}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("serve did not start")
            time.sleep(0.2)
        wait_settled(proc.pid, workers)
        phases["idle"] = measure(proc.pid)
        listing = httpx.get(f"{base}?detections_only=false", headers=headers, timeout=30).json()
        message_id = listing["result"][0]["id"]
        resp = httpx.get(f"{base}/{message_id}/preview", headers=headers, timeout=120)
        resp.raise_for_status()
        time.sleep(2.0)
        phases["after one preview"] = measure(proc.pid)
        time.sleep(idle_close + 5.0)
        phases[f"{idle_close:g} s after it"] = measure(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)
    return phases


ROLES = ["serve (parent)", "queue worker", "multiprocessing helpers", "Playwright driver", "Chromium", "other"]


def table(label: str, phases: dict[str, list[Proc]]) -> list[str]:
    lines = [
        f"**{label}**",
        "",
        "| phase | process | count | RSS MB | PSS MB | USS MB |",
        "|---|---|---|---|---|---|",
    ]
    for phase, procs in phases.items():
        summary = summarize(procs)
        for role in ROLES:
            if role in summary:
                n, r, s, u = summary[role]
                per = f" (each ~{r / n / 1024:.0f})" if n > 1 else ""
                lines.append(f"| {phase} | {role} | {n} | {r / 1024:.0f}{per} | {s / 1024:.0f} | {u / 1024:.0f} |")
        total = [sum(p.rss for p in procs), sum(p.pss for p in procs), sum(p.uss for p in procs)]
        lines.append(
            f"| {phase} | **all** | {len(procs)} | {total[0] / 1024:.0f} | **{total[1] / 1024:.0f}** | "
            f"{total[2] / 1024:.0f} |"
        )
    return lines


def write_section(text_out: str) -> None:
    section = f"{TITLE}\n\n{START}\n{text_out}\n{END}"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text:
        text = re.sub(re.escape(TITLE) + r"\n\n" + re.escape(START) + r".*?" + re.escape(END), section, text,
                      flags=re.S)  # fmt: skip
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another source tree to measure first (its src directory)")
    parser.add_argument("--workers", type=int, default=3, help="queue worker processes (default 3: 2 cores + 1)")
    parser.add_argument("--idle-close", type=float, default=5.0, help="MAILSEC_PREVIEW_IDLE_SECONDS for the run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    runs: list[tuple[str, dict[str, list[Proc]]]] = []
    if args.before:
        runs.append((f"before ({args.before})", run(args.before, args.workers, args.idle_close)))
    runs.append(("now", run(ROOT / "src", args.workers, args.idle_close)))
    lines: list[str] = []
    for label, phases in runs:
        lines += [*table(label, phases), ""]
    load = os.getloadavg()[0]
    lines.append(
        f"`mailsec serve --smtp` with {args.workers} queue worker processes on SQLite, one stored message; "
        f"'idle' once every process's memory stopped changing for 3 s (workers warmed up), then one preview through "
        f"the API (starts Playwright's driver and Chromium), then {args.idle_close:g} s of no preview "
        f"(`MAILSEC_PREVIEW_IDLE_SECONDS={args.idle_close:g}` for the run; default 300). Sizes from "
        f"/proc/PID/smaps_rollup; the sum of PSS is what the whole tree costs. Running as "
        f"{'root' if os.geteuid() == 0 else 'a normal user'}; load average {load:.1f} on a shared 2-core machine."
    )
    text_out = "\n".join(lines)
    print(text_out)
    if not args.no_write:
        write_section(text_out)


if __name__ == "__main__":
    main()
