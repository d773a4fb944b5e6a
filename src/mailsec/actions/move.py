"""Move a delivered message inside its recipients' mailboxes, through the mailbox backend of each recipient's
domain. One result per recipient mailbox: moved, already in the destination, not found (never delivered there, or
deleted by the user), or failed with the reason (server down, credentials refused; the recipient becomes
`move_failed` and the next move of the message tries it again). A purged message is restored by appending
mailsec's stored copy. Idempotent: asking twice moves once. The action log records who asked."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailsec import ids
from mailsec.gateway import decide, dispatch
from mailsec.mailbox import registry
from mailsec.mailbox.base import MailboxAuthError, MailboxBackend, MailboxError, MailRef, Wanted
from mailsec.mailbox.secrets import SecretError
from mailsec.model import (
    ActionEntry,
    DeliveryMode,
    DeliveryStatus,
    Destination,
    Operation,
    RecipientState,
    TraceDirection,
)
from mailsec.services import Services
from mailsec.store.integrations import Integration, IntegrationRepo
from mailsec.store.messages import DeliveryWrites, StoredMessage

MOVED, ALREADY, NOT_FOUND, FAILED = "moved", "already_in_destination", "not_found", "failed"
# Recipients of an inline (DIRECT) message whose mailbox has it: delivered by us, and moved since
IN_MAILBOX = frozenset({RecipientState.DELIVERED, RecipientState.MOVED, RecipientState.MOVE_FAILED})


@dataclass
class MoveItem:
    """One recipient mailbox's outcome."""

    id: str
    postfix_id: str | None
    recipient: str | None
    destination: str
    status: str
    item_count: int = 0
    reason: str | None = None
    completed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def success(self) -> bool:
        return self.status in (MOVED, ALREADY)

    def as_dict(self) -> dict[str, Any]:
        at = self.completed_at.isoformat().replace("+00:00", "Z")
        return {
            "success": self.success,
            "status": self.status,
            "reason": self.reason,
            "recipient": self.recipient or "",
            "destination": self.destination,
            "item_count": self.item_count,
            "completed_at": at,
            "completed_timestamp": at,
            "message_id": self.id,
            "id": self.id,
            "postfix_id": self.postfix_id,
            "operation": Operation.MOVE.value,
        }


BackendFor = Callable[[Integration], MailboxBackend]
PARALLEL_MAILBOXES = 8


@dataclass
class _Task:
    """One recipient mailbox of one message that the mailbox backend has to look in."""

    message: StoredMessage
    item: MoveItem
    integration: Integration
    folder: str | None  # where mailsec last put it (a `Destination` value), if it did
    wanted: Wanted


def _recipients(rows: list[dict[str, Any]]) -> list[tuple[str, RecipientState, str | None]]:
    return [(str(r["address"]), decide.parse_state(r["status"]), r.get("folder")) for r in rows]


def _plan(
    services: Services,
    message: StoredMessage,
    recipient_rows: list[dict[str, Any]],
    destination: Destination,
    integration_of: Callable[[str], Integration | None],
) -> tuple[list[MoveItem], list[_Task]]:
    """One item per recipient; the ones that need a mailbox lookup get a task, the others are decided here."""
    inline = message.delivery_mode is DeliveryMode.DIRECT
    delivery_id = dispatch.delivery_id(message, services.settings.smtp_hostname)
    items: list[MoveItem] = []
    tasks: list[_Task] = []
    for address, state, folder in _recipients(recipient_rows):
        item = MoveItem(message.id, message.postfix_id, address, destination.value, FAILED)
        items.append(item)
        if inline and state not in IN_MAILBOX:
            item.status, item.reason = NOT_FOUND, f"not delivered to this mailbox ({state.value})"
            continue
        integration = integration_of(address)
        if integration is None:
            item.reason = f"no mailbox integration for {address.rpartition('@')[2]}"
            continue
        hint = next((d for d in Destination if d.value == folder), None)
        if hint is None and state is RecipientState.DELIVERED:  # handed to the mailbox by us, never moved since
            hint = Destination.INBOX
        if destination is Destination.RECOVERABLE_PURGES:  # a hard delete removes every copy, wherever it is
            hint = None
        tasks.append(_Task(message, item, integration, folder, Wanted(message.internet_message_id, delivery_id, hint)))
    return items, tasks


def _integrations(services: Services, account_id: str) -> Callable[[str], Integration | None]:
    """`IntegrationRepo.for_address`, asked once per domain in a request."""
    repo = IntegrationRepo(services.engine)
    cache: dict[str, Integration | None] = {}

    def of(address: str) -> Integration | None:
        domain = address.rpartition("@")[2].strip().lower()
        if domain not in cache:
            cache[domain] = repo.for_address(account_id, address)
        return cache[domain]

    return of


def _work_mailbox(
    services: Services, backend: MailboxBackend, recipient: str, tasks: list[_Task], destination: Destination
) -> None:
    """Find every task's message in one mailbox and move what is not in the destination yet: one lookup and one
    move for all of them (the backend's batch forms), one at a time only for a lone message."""
    try:
        if len(tasks) == 1:
            w = tasks[0].wanted
            located = [backend.locate(recipient, w.message_id, w.delivery_id, w.hint)]
        else:
            located = backend.locate_many(recipient, [t.wanted for t in tasks])
    except (MailboxError, SecretError) as exc:
        _failed(tasks, exc)
        return
    moving: list[_Task] = []
    refs: dict[tuple[str, str], MailRef] = {}
    for task, found in zip(tasks, located, strict=True):
        if not found:
            _not_found(services, backend, task, destination)
            continue
        mine = [r for r in found if r.destination is not destination]
        task.item.status, task.item.item_count = (MOVED, len(mine)) if mine else (ALREADY, 0)
        if mine:
            moving.append(task)
            refs.update({(r.folder, r.key): r for r in mine})  # two messages can name one copy: moved once
    try:
        if len(refs) == 1:
            backend.move(next(iter(refs.values())), destination)
        elif refs:
            backend.move_many(list(refs.values()), destination)
    except (MailboxError, SecretError) as exc:
        _failed(moving, exc)


def _not_found(services: Services, backend: MailboxBackend, task: _Task, destination: Destination) -> None:
    item, purges = task.item, Destination.RECOVERABLE_PURGES.value
    assert item.recipient is not None
    if destination is Destination.RECOVERABLE_PURGES and task.folder == purges:
        item.status = ALREADY
    elif task.folder == purges:  # purged by us: restore mailsec's stored copy
        try:
            backend.append(item.recipient, dispatch.outgoing_bytes(services, task.message), destination)
        except (MailboxError, SecretError) as exc:
            _failed([task], exc)
            return
        item.status, item.item_count = MOVED, 1
    else:
        item.status, item.reason = NOT_FOUND, "not in any folder of the mailbox (deleted by the user?)"


def _failed(tasks: list[_Task], exc: Exception) -> None:
    reason = f"admin credentials refused: {exc}" if isinstance(exc, MailboxAuthError) else str(exc)
    for task in tasks:
        task.item.status, task.item.reason, task.item.item_count = FAILED, reason, 0


def _execute(
    services: Services, tasks: list[_Task], destination: Destination, backend_for: BackendFor, parallel: int
) -> None:
    """The tasks grouped per mailbox (integration and recipient); mailboxes worked on `parallel` at a time."""
    groups: dict[tuple[str, str], list[_Task]] = {}
    for task in tasks:
        assert task.item.recipient is not None
        groups.setdefault((task.integration.id, task.item.recipient.lower()), []).append(task)

    def one(group: list[_Task]) -> None:
        recipient = group[0].item.recipient
        assert recipient is not None
        try:
            backend = backend_for(group[0].integration)
        except (MailboxError, SecretError) as exc:
            _failed(group, exc)
            return
        _work_mailbox(services, backend, recipient, group, destination)
        done = datetime.now(UTC)
        for task in group:
            task.item.completed_at = done

    work = list(groups.values())
    if parallel <= 1 or len(work) <= 1:
        for group in work:
            one(group)
    else:
        with ThreadPoolExecutor(max_workers=min(parallel, len(work)), thread_name_prefix="move") as pool:
            list(pool.map(one, work))


def _record(
    services: Services,
    outcomes: list[tuple[StoredMessage, list[MoveItem]]],
    destination: Destination,
    requested_by: str | None,
) -> None:
    """Recipient states, trace lines, delivery status and the action log entry of every message: one commit."""
    now = datetime.now(UTC)
    services.messages.write_deliveries(
        [
            (
                message.pk,
                move_writes(items, destination, requested_by),
                ActionEntry(Operation.MOVE, now, action_status(items), destination.value, requested_by),
            )
            for message, items in outcomes
        ]
    )


def move_message(
    services: Services,
    message: StoredMessage,
    destination: Destination,
    requested_by: str | None,
    backend_for: BackendFor | None = None,
) -> list[MoveItem]:
    return move_stored(services, [message], destination, requested_by, backend_for, parallel=1)[0]


def move_stored(
    services: Services,
    stored: Sequence[StoredMessage],
    destination: Destination,
    requested_by: str | None,
    backend_for: BackendFor | None = None,
    parallel: int = PARALLEL_MAILBOXES,
) -> list[list[MoveItem]]:
    """Messages already read (a bulk job's batch, the auto-moves of a queue batch; any accounts), moved the way a
    request moves them: grouped per mailbox, one lookup and one move per mailbox and folder, one commit for the
    record. The items of each message, in `stored`'s order (a message named twice is moved once)."""
    backend_for = backend_for or (lambda i: registry.backend_for(i, services.settings.data_dir))
    unique = list({m.pk: m for m in stored}.values())
    rows = services.messages.recipient_states_of([m.pk for m in unique])
    by_account: dict[str, Callable[[str], Integration | None]] = {}
    planned: dict[int, list[MoveItem]] = {}
    tasks: list[_Task] = []
    for message in unique:
        if message.account_id not in by_account:
            by_account[message.account_id] = _integrations(services, message.account_id)
        items, more = _plan(services, message, rows[message.pk], destination, by_account[message.account_id])
        planned[message.pk] = items
        tasks += more
    _execute(services, tasks, destination, backend_for, parallel)
    _record(services, [(m, planned[m.pk]) for m in unique], destination, requested_by)
    return [planned[m.pk] for m in stored]


def move_writes(items: list[MoveItem], destination: Destination, requested_by: str | None) -> DeliveryWrites:
    """Recipient states, trace lines and the message's delivery status after a move (one commit)."""
    writes = DeliveryWrites()
    for item in items:
        if item.recipient is None:
            continue
        if item.success:
            writes.add_state(item.recipient, RecipientState.MOVED.value, f"{item.status} {destination}", destination)
        elif item.status == FAILED:
            writes.add_state(item.recipient, RecipientState.MOVE_FAILED.value, (item.reason or "")[:1000])
        note = f" ({item.reason})" if item.reason else ""
        writes.add_trace(
            TraceDirection.OUTBOUND,
            f"move to {destination} by {requested_by or 'unknown'}: <{item.recipient}> {item.status}"
            f"{f', {item.item_count} item(s)' if item.item_count else ''}{note}",
        )
    if any(i.status == FAILED for i in items):
        writes.delivery_status = DeliveryStatus.MOVE_FAILED.value
    elif any(i.success for i in items):
        writes.delivery_status = DeliveryStatus.MOVED.value
    return writes


def action_status(items: list[MoveItem]) -> str:
    if items and all(i.success for i in items):
        return "completed"
    if any(i.status == FAILED for i in items):
        return "failed" if not any(i.success for i in items) else "partial"
    return "not_found" if not any(i.success for i in items) else "partial"


def move(
    services: Services,
    account_id: str,
    refs: list[str],
    destination: Destination,
    requested_by: str | None,
    backend_for: BackendFor | None = None,
    parallel: int = PARALLEL_MAILBOXES,
) -> list[MoveItem]:
    """Every message named (investigate id or postfix_id), in the order given; an unknown one is one `not_found`
    item. The request's copies are grouped per mailbox: one lookup and one move per mailbox and folder, up to
    `parallel` mailboxes at once (most of a move is waiting for mailbox servers), then one commit for the record."""
    unique = list(dict.fromkeys(refs))
    stored = services.messages.get_refs(account_id, unique)
    messages = list({m.pk: m for m in stored.values()}.values())  # an id and its postfix_id name one message
    moved = move_stored(services, messages, destination, requested_by, backend_for, parallel)
    items = {m.pk: found for m, found in zip(messages, moved, strict=True)}
    out: list[MoveItem] = []
    done: set[int] = set()
    for ref in unique:
        message = stored.get(ref)
        if message is None:
            norm = ids.normalize_message_ref(ref)
            out.append(
                MoveItem(norm, ids.postfix_id_of(norm), None, destination.value, NOT_FOUND, reason="no such message")
            )
        elif message.pk not in done:
            done.add(message.pk)
            out += items[message.pk]
    return out
