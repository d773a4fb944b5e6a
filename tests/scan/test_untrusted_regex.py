"""Tenants' regular expressions run in linear time (RE2) and every analyzer has a time budget: one account's
pathological pattern `(a+)+b` does not slow the scan of any message, its own or anyone else's."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Finding
from mailsec.scan import _guarded, budget, scan_message
from mailsec.scan.policy import AllowPolicy, BlockPolicy, ImpersonationEntry, Policy, pattern_matches
from mailsec.scan.saferegex import check_pattern, compile_untrusted
from support import make_eml

EVIL = "(a+)+b"
VICTIM = "a" * 60 + "@x.example"  # 2**60 steps for a backtracking engine


@pytest.fixture(scope="module", autouse=True)
def warm_scanner() -> None:
    """The first scan loads the content model (seconds); the timings below are of scans, not of that."""
    scan_message(parse_message(make_eml()), Envelope())


def timed_scan(raw: bytes, policy: Policy) -> tuple[float, object]:
    started = time.perf_counter()
    verdict = scan_message(parse_message(raw), Envelope(mail_from=VICTIM), policy)
    return time.perf_counter() - started, verdict


def test_pathological_policy_regexes_do_not_stall_a_scan() -> None:
    policy = Policy(
        allow=(AllowPolicy(EVIL, "EMAIL", is_regex=True, is_trusted_sender=True, verify_sender=False),),
        block=(BlockPolicy(EVIL, "EMAIL", is_regex=True), BlockPolicy("(x+x+)+y", "DOMAIN", is_regex=True)),
        impersonation=(ImpersonationEntry("Alice Boss", EVIL, is_email_regex=True),),
        url_ignore_patterns=(EVIL, "(.*a){20}"),
    )
    hostile = make_eml(
        sender=f"Alice Boss <{VICTIM}>",
        html=f'<a href="https://{"a" * 60}.example/{"a" * 3000}">x</a>',
    )
    took, _ = timed_scan(hostile, policy)
    assert took < 1.0
    unrelated = make_eml(sender="carol@unrelated.example", subject="Quarterly numbers")
    took, verdict = timed_scan(unrelated, policy)
    assert took < 1.0
    assert not any(f.name == "ANALYZER_TIMEOUT" for f in verdict.findings)  # type: ignore[attr-defined]


def test_regex_policies_still_match_what_they_say() -> None:
    assert pattern_matches(r"(a+)+@x\.example", "EMAIL", True, [VICTIM], [])
    assert pattern_matches(r"ALICE@.*", "EMAIL", True, ["alice@sender.example"], [])  # case-insensitive
    assert not pattern_matches(r"sender\.example", "DOMAIN", True, ["x@sender.example.evil.example"], [])
    assert compile_untrusted("é+").search("xÉÉy") is not None  # type: ignore[union-attr]


@pytest.mark.parametrize("pattern", [r"(a)\1", r"foo(?=bar)", r"(?<!x)y", "x" * 2000, "a\x00b"])
def test_patterns_re2_cannot_run_are_refused_and_match_nothing(pattern: str) -> None:
    with pytest.raises(ValueError):
        check_pattern(pattern)
    assert compile_untrusted(pattern) is None
    assert not pattern_matches(pattern, "EMAIL", True, ["a@x.example"], [])


def test_an_analyzer_past_its_budget_is_stopped_and_the_message_is_not_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "ANALYZER_SECONDS", 0.2)
    assert budget.armed  # armed by the first scan (warm_scanner)
    errors: list[Finding] = []

    def spin() -> list[Finding]:
        while True:
            try:  # an analyzer that guards each item with `except Exception` is still stopped
                sum(range(1000))
            except Exception:
                continue

    started = time.perf_counter()
    assert _guarded("links", errors, [], spin) == []
    assert time.perf_counter() - started < 1.5
    assert [(f.name, f.detection) for f in errors] == [("ANALYZER_TIMEOUT", Disposition.SUSPICIOUS)]
    assert "links" in errors[0].reason


def test_an_overrun_in_a_thread_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "ANALYZER_SECONDS", 0.05)
    errors: list[Finding] = []
    out: list[str] = []
    thread = threading.Thread(
        target=lambda: out.append(_guarded("content", errors, "", lambda: time.sleep(0.2) or "x"))
    )
    thread.start()
    thread.join()
    assert out == ["x"] and [f.name for f in errors] == ["ANALYZER_TIMEOUT"]


COLD_SCAN = """
from mailsec.mime import parse_message
from mailsec.model import Envelope
from mailsec.scan import budget, scan_message
budget.ANALYZER_SECONDS = 0.01
raw = b"From: a@sender.example\\r\\nTo: b@corp.example\\r\\nSubject: hello\\r\\n\\r\\nsee you at ten\\r\\n"
first = scan_message(parse_message(raw), Envelope())
print(sorted(f.name for f in first.findings if f.name.startswith("ANALYZER")), budget.armed)
"""


def test_the_first_scan_of_a_process_loads_its_analyzers_without_a_budget() -> None:
    """Importing the classifier takes seconds on a busy machine: it must not make the first message SUSPICIOUS."""
    out = subprocess.run([sys.executable, "-c", COLD_SCAN], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["[]", "True"], out.stderr[-2000:]
