"""Stopping `mailsec serve` with SIGTERM while mail is coming in, as `systemctl stop` does: to the parent alone, or to
the whole process group at once (KillMode=control-group). Either way it exits within seconds, and every message
that got 250 is delivered after the restart."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gw_support import Dovecot, Gateway, start_gateway

from mailsec.store.queue import QueueRepo
from support import make_eml, wait_port

STOP_SECONDS = 15.0  # systemd's TimeoutStopSec in contrib/mailsec.service is 30
TARGET = "kim@kill.example"


@pytest.fixture
def stop_gateway(tmp_path: Path, dovecot: Dovecot) -> Iterator[Gateway]:
    # Two worker processes: a signal to the group reaches several children holding claims.
    gw = start_gateway(tmp_path / "data", dovecot, None, new_session=True, MAILSEC_QUEUE_WORKERS="2")
    yield gw
    gw.server.stop()
    gw.services.close()


def _send_one(gw: Gateway, subject: str) -> str:
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=20) as s:
        s.ehlo("client.example")
        s.mail("alice@sender.example")
        s.rcpt(TARGET)
        code, reply = s.data(make_eml(subject=subject, to=TARGET, body="hello\n"))
    assert code == 250, reply
    return reply.decode().split("queued as", 1)[1].strip()


def _client(gw: Gateway, stop: threading.Event, accepted: list[str], lock: threading.Lock, w: int) -> None:
    n = 0
    try:
        with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=20) as s:
            s.ehlo("client.example")
            while not stop.is_set():
                s.mail("alice@sender.example")
                s.rcpt(TARGET)
                code, reply = s.data(make_eml(subject=f"stop run {w}.{n}", to=TARGET, body=f"message {w}.{n}\n"))
                if code == 250:
                    with lock:
                        accepted.append(reply.decode().split("queued as", 1)[1].strip())
                n += 1
    except (OSError, smtplib.SMTPException):
        return  # the server went away under us: whatever got no 250 is the client's to retry


@pytest.mark.parametrize("target", ["parent", "group"])
def test_sigterm_exits_in_seconds_and_loses_nothing(stop_gateway: Gateway, dovecot: Dovecot, target: str) -> None:
    gw = stop_gateway
    proc = gw.server.proc
    assert proc is not None
    before = set(dovecot.queue_ids(TARGET))
    accepted = [_send_one(gw, "warm-up")]  # the workers are up and have delivered once
    gw.wait_idle()
    # A preview starts Chromium and Playwright's driver: they are part of what has to stop.
    preview = httpx.get(
        f"{gw.server.base_url}/accounts/{gw.account}/email-security/investigate/{accepted[0]}/preview",
        headers={"Authorization": f"Bearer {gw.token}"},
        timeout=120,
    )
    assert preview.status_code == 200, preview.text
    lock, stop = threading.Lock(), threading.Event()
    clients = [threading.Thread(target=_client, args=(gw, stop, accepted, lock, w)) for w in range(3)]
    for t in clients:
        t.start()
    deadline = time.monotonic() + 60
    while len(accepted) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(accepted) >= 20, "the gateway accepted too little mail to test anything"
    took = _stop(proc.pid, proc, target)
    print(f"SIGTERM to the {target}: exited in {took:.2f} s, {len(accepted)} message(s) accepted")
    stop.set()
    for t in clients:
        t.join(30)
    got_250 = list(accepted)

    gw.server.start("--smtp", f"127.0.0.1:{gw.smtp_port}", new_session=True)
    wait_port("127.0.0.1", gw.smtp_port)
    repo = QueueRepo(gw.services.engine)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (repo.counts().get("queued") or repo.counts().get("deferred")):
        time.sleep(0.2)
    assert not repo.counts().get("queued") and not repo.counts().get("failed"), repo.counts()
    inbox = [q for q in dovecot.queue_ids(TARGET) if q not in before]
    for pid in got_250:
        stored = gw.services.messages.get(gw.account, pid)
        assert stored is not None, f"{pid} got 250 and was lost"
        assert stored.delivery_status == "delivered", (pid, stored.delivery_status)
        assert pid in inbox, f"{pid} delivered but not in the mailbox"
    # And once more, idle, after the restart: the fork server and the workers go with serve.
    restarted = gw.server.proc
    assert restarted is not None
    _stop(restarted.pid, restarted, target)


def _stop(pgid: int, proc: subprocess.Popen[bytes], target: str) -> float:
    """SIGTERM as systemd sends it; the seconds serve took to exit, once no process of its group is left."""
    signalled = time.monotonic()
    if target == "group":
        os.killpg(pgid, signal.SIGTERM)
    else:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"serve did not exit within {STOP_SECONDS} s of SIGTERM to the {target}")
    took = time.monotonic() - signalled
    # No worker (nor the fork server) outlives serve: a live one would keep its claims from the restart.
    deadline = time.monotonic() + 5
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _group_members(pgid) == [], "processes left in the group"
    return took


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
