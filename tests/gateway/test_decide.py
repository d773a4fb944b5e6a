"""The delivery decisions as tables: for every transition (hold, deliver, interrupted hand-off, deferral, lifetime
over, bounce, release retry), the states and replies that go in and the writes and outcome that come out."""

from __future__ import annotations

import pytest

from mailsec.gateway import decide
from mailsec.gateway.deliver import NextHop, Reply
from mailsec.model import RecipientState as S

HOP = NextHop("lmtp", "127.0.0.1", 24)
OTHER = NextHop("smtp", "127.0.0.1", 25)
OK, TEMP, PERM = Reply(250, "2.0.0 ok"), Reply(451, "4.3.0 later"), Reply(550, "5.1.1 unknown")
A, B, C = "a@corp.example", "b@corp.example", "c@other.example"
RETRY = (10.0, 60.0)
YOUNG = decide.Attempt(number=1, age_us=5_000_000, max_age_us=86_400_000_000, retry_seconds=RETRY)
OLD = decide.Attempt(number=7, age_us=90_000_000_000, max_age_us=86_400_000_000, retry_seconds=RETRY)


def test_first_step_holds_or_begins_the_hand_off() -> None:
    held = decide.first_step("MALICIOUS", True, {A: HOP, B: "5.1.2 no protected domain"})
    assert held.held and held.states == {A: (S.QUARANTINED, decide.HELD), B: (S.QUARANTINED, decide.HELD)}
    assert held.trace == decide.quarantine_note("MALICIOUS")
    sent = decide.first_step("NONE", False, {A: HOP, B: "5.1.2 no protected domain"})
    assert not sent.held and sent.trace is None
    assert sent.states == {A: (S.SENDING, f"hand-off to {HOP} started")}  # B has no hop: nothing begins


def test_hold_writes_every_recipient_and_the_message() -> None:
    writes = decide.hold("SPOOF", [A, B])
    assert [(a, s) for a, s, _, _ in writes.states] == [(A, "quarantined"), (B, "quarantined")]
    assert (writes.delivery_status, writes.is_quarantined) == ("quarantined", True)
    assert writes.trace == [("inbound", decide.quarantine_note("SPOOF"))]


@pytest.mark.parametrize(
    ("states", "wanted"),
    [
        ({A: S.QUEUED, B: S.DELIVERED}, [A]),
        ({A: S.QUARANTINED}, [A]),  # a release retry hands off held recipients
        ({A: S.SENDING, B: S.DEFERRED, C: S.BOUNCED}, [A, B]),
        ({A: S.MOVED, B: S.REJECTED, C: S.MOVE_FAILED}, []),
    ],
)
def test_to_hand_off(states: dict[str, S], wanted: list[str]) -> None:
    assert decide.to_hand_off(states) == wanted


@pytest.mark.parametrize(
    ("states", "sending_written", "expected"),
    [
        # fresh delivery: one transaction per hop, every recipient marked `sending` before the hop is contacted
        ({A: S.QUEUED, B: S.QUEUED, C: S.QUEUED}, False, [(HOP, (A, B), False, (A, B)), (OTHER, (C,), False, (C,))]),
        # `sending` written with the message by this very attempt: no interruption, no second marking
        ({A: S.SENDING, B: S.SENDING, C: S.QUEUED}, True, [(HOP, (A, B), False, ()), (OTHER, (C,), False, (C,))]),
        # `sending` found by a rerun: that copy goes alone, flagged as possibly a duplicate
        ({A: S.SENDING, B: S.DEFERRED, C: S.QUEUED}, False, [(HOP, (A,), True, (A,)), (HOP, (B,), False, (B,)),
                                                             (OTHER, (C,), False, (C,))]),
    ],
)  # fmt: skip
def test_plan_hand_off(states: dict[str, S], sending_written: bool, expected: list[tuple]) -> None:
    plan = decide.plan_hand_off([A, B, C], states, {A: HOP, B: HOP, C: OTHER}, sending_written)
    assert plan.unroutable == {}
    assert sorted((h.hop.port, h.recipients, h.interrupted, h.mark) for h in plan.hand_offs) == sorted(
        (h.port, r, i, m) for h, r, i, m in expected
    )


def test_plan_hand_off_unroutable_is_a_554() -> None:
    plan = decide.plan_hand_off([A, A, B], {A: S.QUEUED, B: S.QUEUED}, {A: "5.1.2 no protected domain", B: HOP})
    assert plan.unroutable == {A: Reply(554, "5.1.2 no protected domain")}
    assert [h.recipients for h in plan.hand_offs] == [(B,)]


@pytest.mark.parametrize(
    ("before", "replies", "attempt", "status", "requeue", "bounced", "states"),
    [
        # deliver
        ({A: S.SENDING}, {A: OK}, YOUNG, "delivered", None, [], []),
        # bounce (5xx): final at once, reported for the DSN
        ({A: S.SENDING, B: S.SENDING}, {A: OK, B: PERM}, YOUNG, "delivered", None, [B], []),
        ({A: S.SENDING}, {A: PERM}, YOUNG, "bounced", None, [A], []),
        # deferral: the row waits by the schedule (attempt 1: first step), the message is deferred
        ({A: S.SENDING, B: S.SENDING}, {A: OK, B: TEMP}, YOUNG, "deferred", 10_000_000, [], []),
        # lifetime over: the temporary failure becomes a bounce
        ({A: S.DEFERRED}, {A: TEMP}, OLD, "bounced", None, [A], [(A, "bounced", decide.LIFETIME_OVER)]),
        ({A: S.DELIVERED, B: S.DEFERRED}, {B: TEMP}, OLD, "delivered", None, [B],
         [(B, "bounced", decide.LIFETIME_OVER)]),
        # a release made now (no queue attempt): the undelivered stay deferred for the caller's retry
        ({A: S.QUARANTINED, B: S.QUARANTINED}, {A: OK, B: TEMP}, None, "deferred", None, [], []),
        ({A: S.QUARANTINED}, {A: OK}, None, "delivered", None, [], []),
    ],
)  # fmt: skip
def test_conclude(
    before: dict[str, S],
    replies: dict[str, Reply],
    attempt: decide.Attempt | None,
    status: str,
    requeue: int | None,
    bounced: list[str],
    states: list[tuple[str, str, str]],
) -> None:
    out = decide.conclude(before, replies, attempt)
    assert out.writes.delivery_status == status
    assert out.requeue_in_us == requeue
    assert sorted(out.bounced) == bounced
    assert [(a, s, d) for a, s, d, _ in out.writes.states] == states
    if requeue is not None:
        assert out.writes.is_quarantined is None  # a deferral leaves the held flag as it was
        assert out.writes.trace == [("outbound", "deferred: 1 recipient(s), next attempt in 10s")]
    else:
        assert out.writes.is_quarantined is False


def test_deferral_follows_the_schedule_then_stays_on_its_last_step() -> None:
    waits = [decide.backoff_us(RETRY, n) for n in (1, 2, 3, 9)]
    assert waits == [10_000_000, 60_000_000, 60_000_000, 60_000_000]
    assert decide.backoff_us((), 1) == 60_000_000


@pytest.mark.parametrize(
    ("states", "status"),
    [
        ([], "delivered"),
        (["delivered", "bounced"], "delivered"),
        (["delivered", "sending"], "deferred"),
        (["queued"], "deferred"),
        (["bounced", "rejected"], "bounced"),
        (["quarantined", "bounced"], "quarantined"),
        (["moved"], "delivered"),
        (["no-such-state"], "deferred"),  # unknown: treated as still queued, never as done
    ],
)
def test_message_status(states: list[str], status: str) -> None:
    assert decide.message_status(states) == status


def test_record_reply_states() -> None:
    writes = decide.conclude({}, {}, None).writes
    for rcpt, reply in ((A, OK), (B, TEMP), (C, PERM)):
        decide.record_reply(writes, rcpt, reply)
    assert [(a, s, f) for a, s, _, f in writes.states] == [
        (A, "delivered", "Inbox"),
        (B, "deferred", None),
        (C, "bounced", None),
    ]


@pytest.mark.parametrize(
    ("replies", "status", "retry"),
    [
        ({A: OK, B: OK}, "completed", None),
        ({A: OK, B: PERM}, "failed", None),
        ({A: OK, B: TEMP}, "pending", 10_000_000),  # release retry: the queue tries again after the first step
        ({A: PERM, B: TEMP}, "pending", 10_000_000),
    ],
)
def test_release_retry(replies: dict[str, Reply], status: str, retry: int | None) -> None:
    assert decide.conclude_release(replies, RETRY) == decide.ReleaseConclusion(status, retry)


def test_releasable() -> None:
    assert decide.releasable({A: S.QUARANTINED, B: S.DELIVERED, C: S.SENDING}) == [A, C]
    assert decide.releasable({A: S.DELIVERED, B: S.BOUNCED}) == [A, B]
    assert decide.parse_state("bogus") is S.QUEUED
