"""`POST /investigate/{id}/move` and `POST /investigate/move` (`ids`, or the deprecated `postfix_ids`; at most
1000): one result item per recipient mailbox, write scope. The work is `actions.move`'s."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict

from mailsec.actions.move import MoveItem, move
from mailsec.api.auth import require_write
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, bad_request, not_found, ok
from mailsec.model import Destination
from mailsec.services import Services

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["investigate"], responses=ERROR_RESPONSES)
MAX_IDS = 1000
DestinationName = Literal["Inbox", "JunkEmail", "DeletedItems", "RecoverableItemsDeletions", "RecoverableItemsPurges"]
DispositionName = Literal[
    "MALICIOUS", "MALICIOUS-BEC", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "ENCRYPTED", "EXTERNAL", "UNKNOWN", "NONE"
]


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    destination: DestinationName
    expected_disposition: DispositionName | None = None  # accepted for compatibility; a move does not reclassify


class BulkMoveIn(MoveIn):
    ids: list[str] | None = None
    postfix_ids: list[str] | None = None


class MoveOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    success: bool
    status: str
    reason: str | None = None
    recipient: str
    destination: str
    item_count: int
    completed_at: str
    completed_timestamp: str
    message_id: str
    id: str
    postfix_id: str | None = None
    operation: str


def _answer(items: list[MoveItem]) -> Any:
    return ok([i.as_dict() for i in items])


@router.post(
    "/investigate/{investigate_id}/move",
    response_model=Envelope[list[MoveOut]],
    summary="Move a message in its recipients' mailboxes",
)
async def move_one(request: Request, account_id: str, investigate_id: str, body: MoveIn) -> Any:
    grant = require_write(request, account_id)
    services: Services = request.app.state.services
    if services.messages.get(account_id, investigate_id) is None:
        raise not_found(f"message {investigate_id}")
    items = await run_in_threadpool(
        move, services, account_id, [investigate_id], Destination(body.destination), grant.principal
    )
    return _answer(items)


@router.post(
    "/investigate/move",
    response_model=Envelope[list[MoveOut]],
    summary="Move messages in their recipients' mailboxes",
)
async def move_many(request: Request, account_id: str, body: BulkMoveIn) -> Any:
    grant = require_write(request, account_id)
    refs = [r.strip() for r in (body.ids or []) + (body.postfix_ids or []) if isinstance(r, str) and r.strip()]
    if not refs:
        raise bad_request("give the messages to move in `ids` (or the deprecated `postfix_ids`)", pointer="/ids")
    if len(refs) > MAX_IDS:
        raise bad_request(f"at most {MAX_IDS} ids per request", pointer="/ids")
    services: Services = request.app.state.services
    items = await run_in_threadpool(move, services, account_id, refs, Destination(body.destination), grant.principal)
    return _answer(items)
