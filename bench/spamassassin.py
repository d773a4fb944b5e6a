"""SpamAssassin as the peer for detection quality and speed: `spamd -L` (local tests only, shipped rules, no Bayes,
no auto-learning) on a free loopback port with ONE child, fed by `spamc -c`. Local use only; never in CI.

Run alone to score the dev corpora and cache the results (used by `bench/detection_eval.py`):
    nice -n 10 .venv/bin/python bench/spamassassin.py [--limit N] [--out bench/.cache/spamassassin.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT.parent / "shared" / "corpora"
CACHE = ROOT / "bench" / ".cache" / "spamassassin.json"
LOCAL_CF = "use_bayes 0\nbayes_auto_learn 0\nskip_rbl_checks 1\nuse_auto_whitelist 0\nuse_txrep 0\n"


def available() -> bool:
    return bool(shutil.which("spamd") and shutil.which("spamc") and Path("/usr/share/spamassassin").is_dir())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def version() -> str:
    out = subprocess.run(["spamassassin", "-V"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "SpamAssassin"


@contextmanager
def spamd() -> Iterator[int]:
    """A `spamd -L` with one child on a free port; yields the port."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="mailsec-sa-") as tmp:
        site = Path(tmp) / "site"
        shutil.copytree("/etc/spamassassin", site, ignore=shutil.ignore_patterns("local.cf", "*.d"))
        (site / "zz_mailsec_bench.cf").write_text(LOCAL_CF)
        for path in (Path(tmp), site, *site.iterdir()):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        cmd = [
            "spamd", "-L", "-x", "--max-children=1", "--min-children=1", "--min-spare=1", "--max-spare=1",
            f"--listen=127.0.0.1:{port}", f"--siteconfigpath={site}", "--syslog=stderr",
            f"--pidfile={tmp}/spamd.pid",
        ]  # fmt: skip
        if os.geteuid() == 0:
            cmd.append("--username=nobody")
        log = open(Path(tmp) / "spamd.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if proc.poll() is not None:
                        raise RuntimeError(f"spamd exited: {(Path(tmp) / 'spamd.log').read_text()[-2000:]}") from None
                    time.sleep(0.2)
            score(port, b"Subject: warm-up\n\nhello\n")
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()


def score(port: int, raw: bytes) -> tuple[float, bool]:
    """(score, is_spam) for one message, through `spamc -c`."""
    out = subprocess.run(
        ["spamc", "-c", "-d", "127.0.0.1", "-p", str(port), "-s", "20000000", "-t", "120"],
        input=raw,
        capture_output=True,
        check=False,
    )
    text = out.stdout.decode(errors="replace").strip()
    value, _, threshold = text.partition("/")
    try:
        s, t = float(value), float(threshold)
    except ValueError:
        return float("nan"), False
    return s, s >= t


CORPUS_FOLDERS = {
    "phishing_pot": CORPORA / "phishing_pot",
    "spam-1": CORPORA / "spamassassin" / "spam-1",
    "easy-ham-1": CORPORA / "spamassassin" / "easy-ham-1",
    "hard-ham-1": CORPORA / "spamassassin" / "hard-ham-1",
    "modern-ham": CORPORA / "modern-ham",
    "phish-other": CORPORA / "phish-other",
}


def corpus_files(limit: int | None = None, only: list[str] | None = None) -> dict[str, dict[str, Path]]:
    """Per corpus: its messages by path relative to the corpus folder (the key of the cache)."""
    from mailsec.evaluate import list_messages

    out = {}
    for name, folder in CORPUS_FOLDERS.items():
        if only and name not in only:
            continue
        files = list_messages(folder)
        out[name] = {p.relative_to(folder).as_posix(): p for p in (files[:limit] if limit else files)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--limit", type=int, default=None, help="at most N messages per group")
    ap.add_argument("--out", type=Path, default=CACHE)
    ap.add_argument("--corpus", action="append", choices=sorted(CORPUS_FOLDERS), help="only these (repeatable)")
    args = ap.parse_args()
    if not available():
        raise SystemExit("SpamAssassin not installed (apt-get install spamassassin spamc)")
    results: dict[str, dict[str, list[float]]] = {}
    if args.out.exists():
        results = json.loads(args.out.read_text()).get("scores", {})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = 0
    with spamd() as port:
        for group, files in corpus_files(args.limit, args.corpus).items():
            scores = results.setdefault(group, {})
            for key, path in files.items():
                if key in scores:
                    continue
                s, _ = score(port, path.read_bytes())
                scores[key] = [s]
                done += 1
                if done % 100 == 0:
                    args.out.write_text(json.dumps({"version": version(), "scores": results}))
                    print(f"{done} scored, {done / (time.perf_counter() - started):.1f} msg/s", flush=True)
    args.out.write_text(json.dumps({"version": version(), "scores": results}))
    print(f"done: {done} messages in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
