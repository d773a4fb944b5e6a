"""The delivery decisions, as pure functions: recipient states, the account's policy and the next hops' replies go
in; the writes to commit and the outcome (the queue row's next step, who bounced) come out. No database, no
network: `dispatch` (the shell) reads, hands off and commits around them, and the table tests in
tests/gateway/test_decide.py cover every transition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from mailsec.gateway.deliver import NextHop, Reply
from mailsec.model import DeliveryStatus, RecipientState, TraceDirection
from mailsec.store.messages import DeliveryWrites

OUTBOUND = TraceDirection.OUTBOUND
INBOUND = TraceDirection.INBOUND
LIFETIME_OVER = "gave up: queue lifetime over"
HELD = "held by quarantine policy"
NO_REPLY = Reply(451, "4.3.0 no reply")


def parse_state(value: str | None) -> RecipientState:
    """A stored status; one this version does not know counts as still queued (delivered again rather than lost)."""
    try:
        return RecipientState(str(value))
    except ValueError:
        return RecipientState.QUEUED


def state_of(reply: Reply) -> RecipientState:
    if reply.ok:
        return RecipientState.DELIVERED
    return RecipientState.BOUNCED if reply.permanent else RecipientState.DEFERRED


def record_reply(writes: DeliveryWrites, rcpt: str, reply: Reply) -> None:
    writes.add_state(rcpt, state_of(reply).value, str(reply)[:1000], "Inbox" if reply.ok else None)


def backoff_us(retry_seconds: tuple[float, ...], attempts: int) -> int:
    """The wait before attempt `attempts + 1`: the n-th step of the schedule, its last step from then on."""
    steps = [float(s) for s in retry_seconds] or [60.0]
    return int(steps[min(max(attempts, 1), len(steps)) - 1] * 1_000_000)


def message_status(states: Iterable[RecipientState | str]) -> str:
    """The message's delivery_status from its recipients: deferred while any is pending, else delivered or bounced."""
    known = [parse_state(s) for s in states]
    if any(s in (RecipientState.DEFERRED, RecipientState.QUEUED, RecipientState.SENDING) for s in known):
        return DeliveryStatus.DEFERRED.value
    if any(s is RecipientState.DELIVERED for s in known):
        return DeliveryStatus.DELIVERED.value
    if known and all(s in (RecipientState.BOUNCED, RecipientState.REJECTED) for s in known):
        return DeliveryStatus.BOUNCED.value
    if any(s is RecipientState.QUARANTINED for s in known):
        return DeliveryStatus.QUARANTINED.value
    return DeliveryStatus.DELIVERED.value


def quarantine_note(disposition: str) -> str:
    return f"quarantined: disposition {disposition} is held by the account's quarantine policy"


def sending_note(hop: NextHop) -> str:
    return f"hand-off to {hop} started"


# -- first step: hold, or begin the hand-off ----------------------------------------------------------------------


@dataclass(frozen=True)
class FirstStep:
    """What a new message's save carries besides the message: held (quarantined, with its trace line), or its
    routable recipients already `sending` (the write dispatch would otherwise commit on its own)."""

    held: bool
    states: dict[str, tuple[RecipientState, str]]
    trace: str | None = None


def first_step(disposition: str, holds: bool, routes: Mapping[str, NextHop | str]) -> FirstStep:
    """`routes`: every recipient's next hop, or why it has none."""
    if holds:
        states = {a: (RecipientState.QUARANTINED, HELD) for a in routes}
        return FirstStep(True, states, quarantine_note(disposition))
    return FirstStep(
        False, {a: (RecipientState.SENDING, sending_note(h)) for a, h in routes.items() if isinstance(h, NextHop)}
    )


def hold(disposition: str, addresses: Iterable[str]) -> DeliveryWrites:
    """Quarantine a stored message: every recipient held, the message marked, one trace line."""
    writes = DeliveryWrites(delivery_status=DeliveryStatus.QUARANTINED.value, is_quarantined=True)
    for address in addresses:
        writes.add_state(address, RecipientState.QUARANTINED.value, HELD)
    writes.add_trace(INBOUND, quarantine_note(disposition))
    return writes


def to_hand_off(states: Mapping[str, RecipientState]) -> list[str]:
    """The recipients the queue still has to hand off (held ones too: a release retry delivers them)."""
    return [a for a, s in states.items() if not s.final]


# -- the hand-off plan --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HandOff:
    """One transaction to one next hop. `interrupted`: an earlier hand-off of these recipients began and its reply
    was never recorded, so this copy may be the second and goes alone, marked. `mark`: the recipients whose
    `sending` state must be committed before the hop is contacted."""

    hop: NextHop
    recipients: tuple[str, ...]
    interrupted: bool
    mark: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    unroutable: dict[str, Reply]
    hand_offs: tuple[HandOff, ...]


def plan_hand_off(
    wanted: Iterable[str],
    states: Mapping[str, RecipientState],
    routes: Mapping[str, NextHop | str],
    sending_written: bool = False,
) -> Plan:
    """Group the recipients by next hop. A recipient found `sending` was being handed off when the process died,
    unless `sending_written` (this very attempt wrote it, with the message)."""
    unroutable: dict[str, Reply] = {}
    groups: dict[tuple[NextHop, bool], list[str]] = {}
    for rcpt in dict.fromkeys(wanted):
        hop = routes[rcpt]
        if isinstance(hop, str):
            unroutable[rcpt] = Reply(554, hop)
            continue
        was_sending = states.get(rcpt) is RecipientState.SENDING
        groups.setdefault((hop, was_sending and not sending_written), []).append(rcpt)
    hand_offs = tuple(
        HandOff(
            hop,
            tuple(rcpts),
            again,
            tuple(r for r in rcpts if not (sending_written and states.get(r) is RecipientState.SENDING)),
        )
        for (hop, again), rcpts in groups.items()
    )
    return Plan(unroutable, hand_offs)


def interrupted_note(hop: NextHop) -> str:
    return f"an earlier hand-off to {hop} was interrupted before its reply was recorded"


# -- after the replies --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What the queue knows of this delivery attempt: its number, the message's age and the retry schedule."""

    number: int
    age_us: int
    max_age_us: int
    retry_seconds: tuple[float, ...]


@dataclass
class Conclusion:
    """The message's state once every reply is known. `requeue_in_us`: the queue row waits that long for the next
    attempt (None: the row is done). `bounced`: recipients this attempt gave up on, with the reason (for a DSN)."""

    writes: DeliveryWrites = field(default_factory=DeliveryWrites)
    requeue_in_us: int | None = None
    bounced: dict[str, str] = field(default_factory=dict)


def conclude(
    before: Mapping[str, RecipientState], replies: Mapping[str, Reply], attempt: Attempt | None = None
) -> Conclusion:
    """Replies over the recipients' states `before` this attempt. With an `attempt` (the queue's), a temporary
    failure defers the row by the retry schedule, or bounces when the queue lifetime is over; without one (a
    release made now), it leaves the recipients deferred for a retry scheduled by the caller."""
    known = dict(before)
    known.update({rcpt: state_of(reply) for rcpt, reply in replies.items()})
    out = Conclusion(bounced={r: str(rep) for r, rep in replies.items() if rep.permanent})
    undelivered = [r for r, rep in replies.items() if not rep.ok and not rep.permanent]
    if undelivered and attempt is not None:
        if attempt.age_us > attempt.max_age_us:
            for rcpt in undelivered:
                out.writes.add_state(rcpt, RecipientState.BOUNCED.value, LIFETIME_OVER)
                known[rcpt] = RecipientState.BOUNCED
                out.bounced[rcpt] = f"{LIFETIME_OVER} (last reply: {replies[rcpt]})"
            out.writes.add_trace(OUTBOUND, LIFETIME_OVER)
        else:
            delay = backoff_us(attempt.retry_seconds, attempt.number)
            out.writes.delivery_status = DeliveryStatus.DEFERRED.value
            out.writes.add_trace(
                OUTBOUND, f"deferred: {len(undelivered)} recipient(s), next attempt in {delay / 1e6:g}s"
            )
            out.requeue_in_us = delay
            return out
    out.writes.delivery_status = message_status(known.values())
    out.writes.is_quarantined = False
    return out


# -- release from quarantine --------------------------------------------------------------------------------------

RELEASABLE = frozenset(
    {RecipientState.QUARANTINED, RecipientState.DEFERRED, RecipientState.QUEUED, RecipientState.SENDING}
)


def releasable(states: Mapping[str, RecipientState]) -> list[str]:
    """The held or pending recipients; all of them when none is (an old row with final states)."""
    return [a for a, s in states.items() if s in RELEASABLE] or list(states)


@dataclass(frozen=True)
class ReleaseConclusion:
    """The action log status and, when some recipients could not be reached now, the wait before the queue's
    retry (a release retry: the queue delivers them without asking the quarantine policy again)."""

    status: str
    retry_in_us: int | None


def conclude_release(replies: Mapping[str, Reply], retry_seconds: tuple[float, ...]) -> ReleaseConclusion:
    undelivered = any(not r.ok and not r.permanent for r in replies.values())
    failed = any(r.permanent for r in replies.values())
    if undelivered:
        return ReleaseConclusion("pending", backoff_us(retry_seconds, 1))
    return ReleaseConclusion("failed" if failed else "completed", None)
