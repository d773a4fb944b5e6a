"""Auto-move: per account, which dispositions are moved to which folder once the message is in the recipients'
mailboxes — for BCC, JOURNAL and API modes, where mailsec sees a copy and the mail reached the mailbox without it.
The rule is a `policies` row of kind `auto_move`: `{"SPAM": "JunkEmail", "MALICIOUS": "RecoverableItemsDeletions"}`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

from sqlalchemy import Engine, delete, insert, select

from mailsec.actions.move import FAILED, NOT_FOUND, BackendFor, MoveItem, move_message
from mailsec.model import Destination, Disposition
from mailsec.services import Services
from mailsec.store.messages import StoredMessage
from mailsec.store.schema import policies
from mailsec.store.settings_ids import next_settings_id

KIND = "auto_move"
REQUESTED_BY = "auto-move"
# The copy may reach the mailbox after mailsec saw it (BCC): a recipient not found yet is looked for again, with the
# queue's retry schedule, this many times in all.
ATTEMPTS = 5


def get_rules(engine: Engine, account_id: str) -> dict[str, Destination]:
    q = select(policies.c.data_json).where(policies.c.account_id == account_id, policies.c.kind == KIND)
    with engine.connect() as conn:
        raw = conn.execute(q).scalar()
    return {k: Destination(v) for k, v in json.loads(raw or "{}").items()}


def set_rules(engine: Engine, account_id: str, rules: Mapping[str, str]) -> dict[str, Destination]:
    """Replace the account's rules (validated first: ValueError and nothing written on a bad value)."""
    checked: dict[str, Destination] = {}
    for disposition, folder in rules.items():
        name = disposition.strip().upper()
        if name not in {d.value for d in Disposition}:
            raise ValueError(f"{disposition!r} is not a disposition")
        try:
            checked[name] = Destination(folder.strip())
        except ValueError as exc:
            raise ValueError(f"{folder!r} is not one of {', '.join(d.value for d in Destination)}") from exc
    now = int(time.time() * 1_000_000)
    with engine.begin() as conn:
        conn.execute(delete(policies).where(policies.c.account_id == account_id, policies.c.kind == KIND))
        if checked:
            data = json.dumps({k: v.value for k, v in checked.items()})
            # numbered from the settings sequence like every policies row (its own would collide with theirs)
            conn.execute(insert(policies).values(id=next_settings_id(conn), account_id=account_id, kind=KIND,
                                                 data_json=data, created_us=now, updated_us=now))  # fmt: skip
    return checked


def apply(
    services: Services,
    message: StoredMessage,
    rules: Mapping[str, Destination] | None = None,
    backend_for: BackendFor | None = None,
) -> list[MoveItem]:
    """Move the message as the account's rule for its disposition says; [] when there is no rule for it."""
    rules = rules if rules is not None else get_rules(services.engine, message.account_id)
    destination = destination_of(message, rules)
    if destination is None:
        return []
    return move_message(services, message, destination, REQUESTED_BY, backend_for)


def destination_of(message: StoredMessage, rules: Mapping[str, Destination]) -> Destination | None:
    """Where the account's rules move a message of this disposition; None: it stays where it is."""
    return rules.get(message.final_disposition.value)


def look_again(items: list[MoveItem]) -> bool:
    """Some recipient's copy was not there yet, or its server failed: worth another attempt later."""
    return any(i.status in (NOT_FOUND, FAILED) for i in items)
