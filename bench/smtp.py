"""SMTP gateway throughput: `mailsec serve --smtp` with full scanning, delivering over LMTP to a private Dovecot.

Reports messages/s accepted with durable commit (blob fsync + queue row with synchronous=FULL), the time from the end
of DATA to `250` and from `250` to delivery (p50/p95), and writes its section of docs/benchmarks.md.
Usage: .venv/bin/python bench/smtp.py [N] [CONNECTIONS]"""

from __future__ import annotations

import shutil
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "gateway")]

from gw_support import Dovecot, start_gateway  # noqa: E402

from mailsec.store.queue import QueueRepo  # noqa: E402
from support import CORPORA  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


class Sink:
    """An SMTP client that notes when DATA ended and when 250 came back."""

    def __init__(self) -> None:
        self.latency: list[float] = []
        self.accepted: dict[str, float] = {}
        self.lock = threading.Lock()


def run_client(port: int, messages: list[bytes], sink: Sink) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo("bench.example")
        for raw in messages:
            s.mail("bench@sender.example")
            s.rcpt("kim@kill.example")
            s.putcmd("data")
            code, _ = s.getreply()
            assert code == 354
            body = smtplib._quote_periods(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))  # type: ignore[attr-defined]
            s.send(body + (b"" if body.endswith(b"\r\n") else b"\r\n"))
            start = time.perf_counter()
            s.send(b".\r\n")  # the end of DATA
            code, msg = s.getreply()
            now = time.perf_counter()
            if code == 250:
                pid = msg.decode().split("queued as", 1)[1].split()[0]
                with sink.lock:
                    sink.latency.append(now - start)
                    sink.accepted[pid] = time.time()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    files = sorted(p for p in (CORPORA / "spamassassin" / "easy-ham-1").iterdir() if p.suffix == ".eml")
    messages = [files[i % len(files)].read_bytes() for i in range(n)]
    tmp = Path(tempfile.mkdtemp(prefix="mailsec-bench-smtp-"))
    tmp.chmod(0o755)
    dovecot = Dovecot(tmp / "dovecot", ["kim@kill.example"])
    dovecot.root.mkdir()
    dovecot.root.chmod(0o755)
    dovecot.write_config()
    dovecot.start()
    gw = start_gateway(tmp / "data", dovecot, None, MAILSEC_QUEUE_WORKERS="2")
    try:
        sink = Sink()
        chunks = [messages[i::conns] for i in range(conns)]
        t0 = time.perf_counter()
        threads = [threading.Thread(target=run_client, args=(gw.smtp_port, c, sink)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accept_s = time.perf_counter() - t0
        repo = QueueRepo(gw.services.engine)
        while repo.counts().get("queued") or repo.counts().get("deferred"):
            time.sleep(0.1)
        drain_s = time.perf_counter() - t0
        to_delivery: list[float] = []
        for pid, t250 in sink.accepted.items():
            m = gw.services.messages.get(gw.account, pid)
            if m is None:
                continue
            for r in gw.services.messages.recipient_states(m.pk):
                if r["status"] == "delivered":
                    to_delivery.append(r["updated_us"] / 1e6 - t250)
        rate = len(sink.accepted) / accept_s
        lines = [
            f"- {len(sink.accepted)} corpus messages (easy-ham-1) over {conns} SMTP connections to `mailsec serve "
            f"--smtp` (SQLite, full scanning, 2 queue worker threads), delivered over LMTP to Dovecot.",
            f"- accepted with durable commit: **{rate:.0f} messages/s** ({accept_s:.1f} s)",
            f"- end of DATA → 250: p50 {pct(sink.latency, 50) * 1000:.1f} ms, "
            f"p95 {pct(sink.latency, 95) * 1000:.1f} ms",
            f"- 250 → delivered (Dovecot's 250 recorded): p50 {pct(to_delivery, 50):.2f} s, "
            f"p95 {pct(to_delivery, 95):.2f} s; queue drained in {drain_s:.1f} s "
            f"({len(sink.accepted) / drain_s:.0f} messages/s scanned, stored and delivered)",
            "- Postfix side by side: not measured (the Debian `postfix` package is not installed on this machine).",
        ]
        print("\n".join(lines))
        write_section("\n".join(lines))
    finally:
        gw.server.stop()
        gw.services.close()
        dovecot.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def write_section(body: str) -> None:
    start, end = "<!-- bench:smtp -->", "<!-- /bench:smtp -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    section = f"{start}\n## SMTP gateway (`bench/smtp.py`)\n\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)


if __name__ == "__main__":
    main()
