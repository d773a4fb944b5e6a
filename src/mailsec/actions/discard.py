"""Delete from quarantine: the held recipients never get the message. The stored copy stays (search, raw download
and an administrator's later release still work, as for a hard delete in the design's folder table); each held
recipient becomes `rejected` with who deleted it, the message leaves quarantine, and the action log records a move
to RecoverableItemsPurges."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailsec import ids
from mailsec.gateway import decide, dispatch
from mailsec.model import DeliveryStatus, Destination, Operation, RecipientState, TraceDirection
from mailsec.services import Services
from mailsec.store.messages import DeliveryWrites


@dataclass
class DiscardResult:
    id: str
    postfix_id: str | None
    deleted: list[str] = field(default_factory=list)  # recipients whose held copy was deleted
    untouched: list[str] = field(default_factory=list)  # recipients that were not held (delivered, bounced, ...)
    found: bool = True


def discard_one(services: Services, account_id: str, ref: str, requested_by: str | None) -> DiscardResult:
    message = services.messages.get(account_id, ref)
    if message is None:
        return DiscardResult(ids.normalize_message_ref(ref), ids.postfix_id_of(ref), found=False)
    result = DiscardResult(message.id, message.postfix_id)
    states = dispatch.known_states(services.messages.recipient_states(message.pk))
    if not message.is_quarantined:
        result.untouched = list(states)
        return result
    who = requested_by or "unknown"
    writes = DeliveryWrites(is_quarantined=False)
    final: dict[str, RecipientState] = {}
    for address, state in states.items():
        if state is RecipientState.QUARANTINED:
            writes.add_state(address, RecipientState.REJECTED.value, f"deleted from quarantine by {who}")
            final[address] = RecipientState.REJECTED
            result.deleted.append(address)
        else:
            final[address] = state
            result.untouched.append(address)
    all_deleted = all(s is RecipientState.REJECTED for s in final.values())
    writes.delivery_status = DeliveryStatus.REJECTED.value if all_deleted else decide.message_status(final.values())
    writes.add_trace(TraceDirection.INBOUND, f"deleted from quarantine by {who}: {len(result.deleted)} recipient(s)")
    services.messages.write_delivery(message.pk, writes)
    services.messages.add_action(
        message.pk,
        Operation.MOVE,
        status="completed",
        folder=Destination.RECOVERABLE_PURGES.value,
        requested_by=requested_by,
    )
    return result


def discard(services: Services, account_id: str, refs: list[str], requested_by: str | None) -> list[DiscardResult]:
    return [discard_one(services, account_id, ref, requested_by) for ref in refs]
