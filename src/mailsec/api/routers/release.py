"""`POST /investigate/release`: both body shapes (a bare array of ids, or `{"ids": [...]}`), write scope."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel

from mailsec.actions.release import release
from mailsec.api.auth import require_write
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, bad_request, not_found, ok
from mailsec.services import Services

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["investigate"], responses=ERROR_RESPONSES)
MAX_IDS = 1000


class ReleaseOut(BaseModel):
    id: str
    postfix_id: str | None = None
    delivered: list[str] = []
    failed: list[str] = []
    undelivered: list[str] = []


def _ids(body: Any) -> list[str]:
    values = body.get("ids", body.get("postfix_ids")) if isinstance(body, dict) else body
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise bad_request('the body must be a non-empty array of ids or {"ids": [...]}', pointer="/ids")
    if len(values) > MAX_IDS:
        raise bad_request(f"at most {MAX_IDS} ids per request", pointer="/ids")
    return list(dict.fromkeys(v.strip() for v in values))


@router.post(
    "/investigate/release",
    response_model=Envelope[list[ReleaseOut]],
    summary="Release messages from quarantine",
)
def release_messages(request: Request, account_id: str, body: Any = Body(...)) -> Any:
    grant = require_write(request, account_id)
    refs = _ids(body)
    services: Services = request.app.state.services
    results = release(services, account_id, refs, grant.principal)
    if not any(r.found for r in results):
        raise not_found("message " + ", ".join(refs[:5]))
    return ok([r.as_dict() for r in results if r.found])
