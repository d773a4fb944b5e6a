"""Move a delivered message inside its recipients' mailboxes, through the mailbox backend of each recipient's
domain. One result per recipient mailbox: moved, already in the destination, not found (never delivered there, or
deleted by the user), or failed with the reason (server down, credentials refused; the recipient becomes
`move_failed` and the next move of the message tries it again). A purged message is restored by appending
mailsec's stored copy. Idempotent: asking twice moves once. The action log records who asked."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mailsec import ids
from mailsec.gateway import decide, dispatch
from mailsec.mailbox import registry
from mailsec.mailbox.base import MailboxAuthError, MailboxBackend, MailboxError
from mailsec.mailbox.secrets import SecretError
from mailsec.model import DeliveryMode, DeliveryStatus, Destination, Operation, RecipientState, TraceDirection
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


def _recipients(services: Services, message: StoredMessage) -> list[tuple[str, RecipientState, str | None]]:
    rows = services.messages.recipient_states(message.pk)
    return [(str(r["address"]), decide.parse_state(r["status"]), r.get("folder")) for r in rows]


def move_message(
    services: Services,
    message: StoredMessage,
    destination: Destination,
    requested_by: str | None,
    backend_for: BackendFor | None = None,
) -> list[MoveItem]:
    backend_for = backend_for or (lambda i: registry.backend_for(i, services.settings.data_dir))
    repo = IntegrationRepo(services.engine)
    inline = message.delivery_mode is DeliveryMode.DIRECT
    message_id = message.internet_message_id
    delivery_id = dispatch.delivery_id(message, services.settings.smtp_hostname)
    items: list[MoveItem] = []
    for address, state, folder in _recipients(services, message):
        item = MoveItem(message.id, message.postfix_id, address, destination.value, FAILED)
        items.append(item)
        if inline and state not in IN_MAILBOX:
            item.status, item.reason = NOT_FOUND, f"not delivered to this mailbox ({state.value})"
            continue
        integration = repo.for_address(message.account_id, address)
        if integration is None:
            item.reason = f"no mailbox integration for {address.rpartition('@')[2]}"
            continue
        try:
            _move_one(services, message, backend_for(integration), item, destination, folder, message_id, delivery_id)
        except MailboxAuthError as exc:
            item.status, item.reason = FAILED, f"admin credentials refused: {exc}"
        except (MailboxError, SecretError) as exc:
            item.status, item.reason = FAILED, str(exc)
        item.completed_at = datetime.now(UTC)
    services.messages.write_delivery(message.pk, move_writes(items, destination, requested_by))
    services.messages.add_action(
        message.pk, Operation.MOVE, status=action_status(items), folder=destination.value, requested_by=requested_by
    )
    return items


def _move_one(
    services: Services,
    message: StoredMessage,
    backend: MailboxBackend,
    item: MoveItem,
    destination: Destination,
    folder: str | None,
    message_id: str,
    delivery_id: str,
) -> None:
    assert item.recipient is not None
    hint = next((d for d in Destination if d.value == folder), None)
    refs = backend.locate(item.recipient, message_id, delivery_id, hint)
    if not refs:
        if destination is Destination.RECOVERABLE_PURGES and folder == destination.value:
            item.status = ALREADY
        elif folder == Destination.RECOVERABLE_PURGES.value:  # purged by us: restore mailsec's stored copy
            backend.append(item.recipient, dispatch.outgoing_bytes(services, message), destination)
            item.status, item.item_count = MOVED, 1
        else:
            item.status, item.reason = NOT_FOUND, "not in any folder of the mailbox (deleted by the user?)"
        return
    to_move = [r for r in refs if r.destination is not destination]
    for ref in to_move:
        backend.move(ref, destination)
    item.status, item.item_count = (MOVED, len(to_move)) if to_move else (ALREADY, 0)


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


PARALLEL_MESSAGES = 8


def move(
    services: Services,
    account_id: str,
    refs: list[str],
    destination: Destination,
    requested_by: str | None,
    backend_for: BackendFor | None = None,
    parallel: int = PARALLEL_MESSAGES,
) -> list[MoveItem]:
    """Every message named (investigate id or postfix_id), in the order given; an unknown one is one `not_found`
    item. Up to `parallel` messages are worked on at once: most of a move is waiting for mailbox servers."""

    found: dict[int, StoredMessage] = {}
    plan: list[StoredMessage | MoveItem] = []
    for ref in dict.fromkeys(refs):
        message = services.messages.get(account_id, ref)
        if message is None:
            norm = ids.normalize_message_ref(ref)
            plan.append(
                MoveItem(norm, ids.postfix_id_of(norm), None, destination.value, NOT_FOUND, reason="no such message")
            )
        elif message.pk not in found:  # an id and its postfix_id name one message: moved once
            found[message.pk] = message
            plan.append(message)

    def one(message: StoredMessage) -> list[MoveItem]:
        return move_message(services, message, destination, requested_by, backend_for)

    messages = list(found.values())
    if parallel <= 1 or len(messages) <= 1:
        results = [one(m) for m in messages]
    else:
        with ThreadPoolExecutor(max_workers=min(parallel, len(messages)), thread_name_prefix="move") as pool:
            results = list(pool.map(one, messages))
    by_pk = {m.pk: items for m, items in zip(messages, results, strict=True)}
    return [item for step in plan for item in ([step] if isinstance(step, MoveItem) else by_pk[step.pk])]
