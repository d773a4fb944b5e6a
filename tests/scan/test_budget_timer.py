"""One interval timer per scan (scan/budget.py `Deadlines`): every analyzer still has its own budget, counted from
its own start, and a scan leaves the process's alarm as it found it."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest

import mailsec.scan as scanner
from mailsec.mime import parse_message
from mailsec.model import Envelope, Finding
from mailsec.scan import budget, scan_message
from support import make_eml

RAW = make_eml(subject="Quarterly report", body="Please find the figures for the third quarter attached to the wiki.")


@pytest.fixture(autouse=True)
def warm_scanner() -> Iterator[None]:
    """The first scan of a process runs unbudgeted (it loads the classifier); these tests are about the others."""
    scan_message(parse_message(RAW), Envelope())
    assert budget.armed
    yield


def spin(seconds: float = 60.0) -> list[Finding]:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        try:  # an analyzer that guards its own work with `except Exception` is still stopped
            sum(range(1000))
        except Exception:
            continue
    return []


def test_a_spinning_analyzer_inside_a_scan_is_stopped_and_the_others_still_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "ANALYZER_SECONDS", 0.2)
    monkeypatch.setattr(scanner, "analyze_disguise", lambda parsed: spin())
    started = time.perf_counter()
    verdict = scan_message(parse_message(RAW), Envelope())
    assert time.perf_counter() - started < 2.0
    timeouts = [f for f in verdict.findings if f.name == "ANALYZER_TIMEOUT"]
    assert len(timeouts) == 1 and "disguise" in timeouts[0].reason
    assert verdict.edf_hash, "the analyzers after the stopped one ran"


def test_each_analyzer_gets_its_own_budget_after_a_long_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Authentication may take three budgets (DNS); the links analyzer after it is stopped one budget after its own
    start, not when authentication's budget or the scan's first alarm would end."""
    monkeypatch.setattr(budget, "ANALYZER_SECONDS", 1.0)
    links_started: list[float] = []

    def slow_auth(*args: Any) -> Any:
        spin(1.2)  # past one budget (the alarm rings inside it), within authentication's three
        return scanner.AuthOutcome()

    def spinning_links(*args: Any) -> list[Finding]:
        links_started.append(time.perf_counter())
        return spin()

    monkeypatch.setattr(scanner, "check_authentication", slow_auth)
    monkeypatch.setattr(scanner, "analyze_links", spinning_links)
    verdict = scan_message(parse_message(RAW), Envelope())
    stopped = [f for f in verdict.findings if f.name == "ANALYZER_TIMEOUT"]
    assert [("links" in f.reason) for f in stopped] == [True], [f.reason for f in stopped]
    assert time.perf_counter() - links_started[0] < 1.0 + 0.5  # not at authentication's deadline, 1.8 s later


def test_a_scan_arms_the_timer_once_and_restores_the_alarm(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[float] = []
    real = signal.setitimer

    def counting(which: int, seconds: float, interval: float = 0.0) -> tuple[float, float]:
        calls.append(seconds)
        return real(which, seconds, interval)

    def mine(_signum: int, _frame: object) -> None:
        return None

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        monkeypatch.setattr(signal, "setitimer", counting)
        scan_message(parse_message(RAW), Envelope())
        assert calls == [budget.ANALYZER_SECONDS, 0]  # armed, disarmed: not once per analyzer
        assert signal.getsignal(signal.SIGALRM) is mine
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_scan_inside_someone_elses_alarm_leaves_it_running() -> None:
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        scan_message(parse_message(RAW), Envelope())
        assert signal.getitimer(signal.ITIMER_REAL)[0] > 25.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_ring_handled_after_the_scan_left_its_block_arms_nothing() -> None:
    """A SIGALRM delivered just before the timer is cleared is handled at the next bytecode, possibly after it:
    it must not arm the timer again once the handler it would ring into is gone."""
    deadlines = budget.Deadlines()
    with deadlines:
        assert deadlines.interrupting
    deadlines._on_alarm(signal.SIGALRM, None)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
