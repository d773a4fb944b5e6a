"""The worker processes' wake-up and stop signals hold no lock a worker could take down with it: waking and
stopping never block, whether a worker is stopped in its tracks (SIGSTOP: its pipe fills up), killed (SIGKILL),
or healthy (it finishes and exits by itself, not killed)."""

from __future__ import annotations

import os
import signal
import time

from mailsec.gateway.worker import WorkerProcesses
from mailsec.services import Services


def _started(workers: WorkerProcesses, count: int, timeout: float = 180.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = workers.running()
        if len(procs) == count and all(p.is_alive() for p in procs):
            return [int(p.pid) for p in procs]
        time.sleep(0.1)
    raise TimeoutError("the worker processes did not start")


def test_wake_and_stop_never_block_on_stopped_or_killed_workers(sqlite_services: Services) -> None:
    workers = WorkerProcesses(sqlite_services, processes=3)
    workers.start()
    try:
        frozen, killed, healthy = _started(workers, 3)
        os.kill(frozen, signal.SIGSTOP)  # alive, never reads its pipe again
        os.kill(killed, signal.SIGKILL)
        time.sleep(0.2)
        began = time.monotonic()
        for _ in range(200_000):  # far more wake-ups than a pipe holds
            workers.wake()
        assert time.monotonic() - began < 10, "wake() blocked"
        os.kill(frozen, signal.SIGCONT)
        began = time.monotonic()
        workers.stop(timeout=8)
        assert time.monotonic() - began < 10, "stop() blocked"
    finally:
        workers.stop(timeout=1)
    codes = {int(p.pid): p.exitcode for p in workers.running()}
    assert codes[killed] == -signal.SIGKILL
    assert codes[healthy] == 0 and codes[frozen] == 0  # each finished and exited by itself
