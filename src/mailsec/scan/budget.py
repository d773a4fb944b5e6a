"""A time bound for each analyzer on each message, so one message (or one account's policy) cannot hold a queue
worker. Where the scan runs on a process's main thread (queue worker processes, the CLI) an interval timer
interrupts an analyzer past its budget; elsewhere (threads) the overrun is measured and reported the same way."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ANALYZER_SECONDS = 5.0
# Authentication waits on DNS (SPF may take ten lookups, each up to the DNS timeout), not on the CPU.
WAITING_ANALYZERS = {"authentication": 3.0}  # multiples of ANALYZER_SECONDS
# The first scan in a process imports and loads what analyzers use (the classifier's scikit-learn takes seconds on
# a busy machine, and an interrupted import is worse than a slow one): budgets apply from the second scan on.
armed = False


class AnalyzerTimeout(BaseException):
    """An analyzer ran past its budget on this message. Not an Exception: an analyzer's own `except Exception`
    (around one link, one attachment) must not swallow it and carry on unbounded."""


def seconds_for(analyzer: str) -> float:
    return ANALYZER_SECONDS * WAITING_ANALYZERS.get(analyzer, 1.0)


def _can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: float) -> Iterator[Callable[[], float]]:
    """Raise AnalyzerTimeout in the block once `seconds` have passed (main thread only); yields a function
    answering the seconds used so far."""
    started = time.perf_counter()
    if not armed:
        yield lambda: 0.0
        return
    if seconds <= 0 or not _can_interrupt() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield lambda: time.perf_counter() - started
        return

    def on_alarm(_signum: int, _frame: Any) -> None:
        raise AnalyzerTimeout(f"over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield lambda: time.perf_counter() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
