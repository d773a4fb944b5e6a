"""A time bound for each analyzer on each message, so one message (or one account's policy) cannot hold a queue
worker. Where the scan runs on a process's main thread (queue worker processes, the CLI) an interval timer
interrupts an analyzer past its budget; elsewhere (threads) the overrun is measured and reported the same way.

One timer serves a whole scan (`Deadlines`): starting an analyzer only records its deadline, and the alarm, when it
rings, compares the clock with the deadline of the analyzer running then. Arming a timer and swapping the signal
handler around each of a scan's ~18 analyzer calls was its largest single waste (~12% of a scan in a profile)."""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, ParamSpec, TypeVar

ANALYZER_SECONDS = 5.0
# Authentication waits on DNS (SPF may take ten lookups, each up to the DNS timeout), not on the CPU.
WAITING_ANALYZERS = {"authentication": 3.0}  # multiples of ANALYZER_SECONDS
# The first scan in a process imports and loads what analyzers use (the classifier's scikit-learn takes seconds on
# a busy machine, and an interrupted import is worse than a slow one): budgets apply from the second scan on.
armed = False
P = ParamSpec("P")
R = TypeVar("R")
_running = threading.local()


class AnalyzerTimeout(BaseException):
    """An analyzer ran past its budget on this message. Not an Exception: an analyzer's own `except Exception`
    (around one link, one attachment) must not swallow it and carry on unbounded."""


def seconds_for(analyzer: str) -> float:
    return ANALYZER_SECONDS * WAITING_ANALYZERS.get(analyzer, 1.0)


def _shortest() -> float:
    return ANALYZER_SECONDS * min([1.0, *WAITING_ANALYZERS.values()])


def _can_interrupt() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class Deadlines:
    """The deadline of the analyzer running now, enforced by one interval timer for the whole block (main thread
    only, and only when no other timer is running; elsewhere `interrupting` is False and overruns are only measured).

    The timer never rings later than the running analyzer's deadline: it is set to the shortest budget when armed
    and re-armed at most that far ahead each time it rings, and every analyzer's budget is at least the shortest. A
    ring before the deadline (or between analyzers) re-arms it and changes nothing."""

    def __init__(self) -> None:
        self.deadline = math.inf
        self.interrupting = False
        self._previous: Callable[[int, FrameType | None], Any] | int | signal.Handlers | None = None
        self._outer: Deadlines | None = None

    def __enter__(self) -> Deadlines:
        self._outer, _running.deadlines = current(), self
        if armed and _can_interrupt() and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
            self.interrupting = True
            signal.setitimer(signal.ITIMER_REAL, _shortest())
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        _running.deadlines = self._outer
        if self.interrupting:
            self.interrupting = False  # first: a ring handled from here on must not arm the timer again
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._previous)

    def _on_alarm(self, _signum: int, _frame: FrameType | None) -> None:
        remaining = self.deadline - time.perf_counter()
        if remaining <= 0:
            self.deadline = math.inf
            raise AnalyzerTimeout("past its budget")
        if self.interrupting:  # not once the block is left: a timer armed then would ring in someone else's code
            signal.setitimer(signal.ITIMER_REAL, max(min(remaining, _shortest()), 1e-4))


def current() -> Deadlines | None:
    """The deadlines of the scan running in this thread, if any."""
    return getattr(_running, "deadlines", None)


def one_timer(scan: Callable[P, R]) -> Callable[P, R]:
    """Run `scan` under one `Deadlines`, which every guarded analyzer inside it shares."""

    @functools.wraps(scan)
    def timed(*args: P.args, **kwargs: P.kwargs) -> R:
        with Deadlines():
            return scan(*args, **kwargs)

    return timed
