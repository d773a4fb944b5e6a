"""`POST /investigate/release`: both body shapes (a bare array of ids, or `{"ids": [...]}`), write scope.

An id that names no message of the account is never dropped silently: it keeps its place in `result` with
`delivered`, `failed` and `undelivered` null (the reference's nullable fields), and the envelope's `messages` says
which (code 7003, `source.pointer` at the id). When no id names a message the answer is a 404."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel

from mailsec.actions.release import ReleaseResult, release
from mailsec.api.auth import require_write
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, bad_request, not_found, ok
from mailsec.services import Services

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["investigate"], responses=ERROR_RESPONSES)
MAX_IDS = 1000


class ReleaseOut(BaseModel):
    id: str
    postfix_id: str | None = None
    delivered: list[str] | None = []
    failed: list[str] | None = []
    undelivered: list[str] | None = []


def _ids(body: Any) -> tuple[list[str], str]:
    """The ids, de-duplicated in order, and the JSON pointer prefix of the list in the body."""
    key = ("ids" if "ids" in body else "postfix_ids") if isinstance(body, dict) else ""
    values = body.get(key) if isinstance(body, dict) else body
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise bad_request('the body must be a non-empty array of ids or {"ids": [...]}', pointer="/ids")
    if len(values) > MAX_IDS:
        raise bad_request(f"at most {MAX_IDS} ids per request", pointer="/ids")
    return list(dict.fromkeys(v.strip() for v in values)), f"/{key}" if key else ""


def _unknown(result: ReleaseResult, ref: str) -> dict[str, Any]:
    return {
        "id": result.id or ref,
        "postfix_id": result.postfix_id or result.id or ref,  # SDK 4.3 requires a string here
        "delivered": None,
        "failed": None,
        "undelivered": None,
    }


@router.post(
    "/investigate/release",
    response_model=Envelope[list[ReleaseOut]],
    summary="Release messages from quarantine",
)
def release_messages(request: Request, account_id: str, body: Any = Body(...)) -> Any:
    grant = require_write(request, account_id)
    refs, pointer = _ids(body)
    services: Services = request.app.state.services
    results = release(services, account_id, refs, grant.principal)
    if not any(r.found for r in results):
        raise not_found("message " + ", ".join(refs[:5]))
    answer = ok([r.as_dict() if r.found else _unknown(r, ref) for ref, r in zip(refs, results, strict=True)])
    positions: dict[str, int] = {}
    for index, value in enumerate(body.get(pointer[1:]) if pointer else body):
        positions.setdefault(value.strip(), index)
    answer["messages"] = [
        {
            "code": 7003,
            "message": f"no message {ref} in this account: nothing released",
            "source": {"pointer": f"{pointer}/{positions[ref]}"},
        }
        for ref, r in zip(refs, results, strict=True)
        if not r.found
    ]
    return answer
