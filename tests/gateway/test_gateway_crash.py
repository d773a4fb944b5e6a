"""SIGKILL of `mailsec serve` in the middle of an SMTP run, then a restart: every message that got 250 is stored
once and delivered (or quarantined); none is lost. The issue asks for 1,000 messages: `MAILSEC_CRASH_N=1000`."""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_support import Dovecot, Gateway, start_gateway

from mailsec.store.queue import QueueRepo
from support import make_eml, wait_port

N = int(os.environ.get("MAILSEC_CRASH_N", "200"))


@pytest.fixture
def crash_gateway(tmp_path: Path, dovecot: Dovecot) -> Iterator[Gateway]:
    gw = start_gateway(tmp_path / "data", dovecot, None)
    yield gw
    gw.server.stop()
    gw.services.close()


def test_sigkill_mid_run_loses_nothing(crash_gateway: Gateway, dovecot: Dovecot) -> None:
    gw = crash_gateway
    before = set(dovecot.queue_ids("kim@kill.example"))
    accepted: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[Exception] = []

    def client(worker: int) -> None:
        n = worker
        while n < N and not stop.is_set():
            try:
                with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=20) as s:
                    s.ehlo("client.example")
                    while n < N and not stop.is_set():
                        raw = make_eml(subject=f"crash run {n}", to="kim@kill.example", body=f"message {n}\n")
                        s.mail("alice@sender.example")
                        s.rcpt("kim@kill.example")
                        code, msg = s.data(raw)
                        if code == 250:
                            with lock:
                                accepted.append(msg.decode().split("queued as", 1)[1].strip())
                        n += 4
            except (OSError, smtplib.SMTPException) as exc:
                errors.append(exc)
                return  # the server died under us: whatever got no 250 is the client's to retry

    threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while len(accepted) < N // 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert gw.server.proc is not None
    os.kill(gw.server.proc.pid, signal.SIGKILL)
    gw.server.proc.wait()
    stop.set()
    for t in threads:
        t.join(30)
    got_250 = list(accepted)
    assert len(got_250) >= N // 2, errors[:3]
    gw.server.start("--smtp", f"127.0.0.1:{gw.smtp_port}")
    wait_port("127.0.0.1", gw.smtp_port)
    repo = QueueRepo(gw.services.engine)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        counts = repo.counts()
        if not counts.get("queued") and not counts.get("deferred"):
            break
        time.sleep(0.2)
    assert not repo.counts().get("queued") and not repo.counts().get("failed"), repo.counts()
    inbox = [q for q in dovecot.queue_ids("kim@kill.example") if q not in before]
    duplicates = {q for q in inbox if inbox.count(q) > 1}
    for pid in got_250:
        stored = gw.services.messages.get(gw.account, pid)
        assert stored is not None, f"{pid} got 250 and was lost"
        status = stored.delivery_status
        assert status in ("delivered", "quarantined"), (pid, status)
        if status == "delivered":
            assert pid in inbox, f"{pid} delivered but not in the mailbox"
        else:
            assert pid not in inbox
    # Delivery is at-least-once, as with any MTA: only a message whose LMTP 250 came in the instant before the
    # kill (before its state was committed) may be handed over twice. One worker thread: at most one such message.
    assert len(duplicates) <= 1, duplicates
