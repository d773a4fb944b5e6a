"""mailsec extensions (not in Cloudflare's API): the blast radius of a reclassification.

`GET /investigate/{id}/similar` lists the account's stored messages of the last `days` (default 30) that look like
the message (same text fingerprint, or near-identical text by MinHash) and says which would change to the verdict
the analyst asked for; `POST` with the same path re-scans those, so that the campaign memory gives them that verdict
(write scope), and when the account has mailbox integrations starts a bulk MOVE job for them (`bulk_job_id`: Inbox
for NONE, JunkEmail otherwise). The work is `mailsec.learn`'s."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from mailsec.api.auth import require_read, require_write
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, not_found, ok
from mailsec.learn.blast import Applied, BlastRadius, apply, blast_radius
from mailsec.services import Services

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["learning (mailsec extension)"], responses=ERROR_RESPONSES)
Days = Annotated[int, Query(ge=1, le=366, description="How far back to look, in days.")]


class SimilarOut(BaseModel):
    id: str
    final_disposition: str
    would_change: bool
    how: str


class BlastRadiusOut(BaseModel):
    id: str
    requested_disposition: str
    days: int
    similar_count: int
    would_change_count: int
    similar: list[SimilarOut]


class ApplyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    days: int = Field(default=30, ge=1, le=366)


class ChangeOut(BaseModel):
    id: str
    old_disposition: str
    new_disposition: str


class ApplyOut(BaseModel):
    id: str
    rescanned: int
    changed: list[ChangeOut]
    bulk_job_id: str | None = None


def radius_of(services: Services, account_id: str, investigate_id: str, days: int) -> BlastRadius:
    """The blast radius of one of the account's messages (a 404 for any other id); the API's and the console's."""
    m = services.messages.get(account_id, investigate_id)
    if m is None:
        raise not_found(f"message {investigate_id}")
    return blast_radius(services, account_id, m.pk, days)


def apply_radius(
    services: Services, account_id: str, investigate_id: str, days: int, principal: str
) -> tuple[BlastRadius, Applied]:
    """Re-scan (and move) the messages of the blast radius that would change; the caller has checked write scope.
    The radius is computed afresh here, so a second apply finds nothing left to change."""
    radius = radius_of(services, account_id, investigate_id, days)
    return radius, apply(services, radius, account_id, principal)


def _out(radius: BlastRadius) -> dict[str, Any]:
    changing = {s.pk for s in radius.would_change}
    return {
        "id": radius.message_id,
        "requested_disposition": radius.requested.value,
        "days": radius.days,
        "similar_count": len(radius.similar),
        "would_change_count": len(changing),
        "similar": [
            {"id": s.id, "final_disposition": s.disposition, "would_change": s.pk in changing, "how": s.how}
            for s in radius.similar
        ],
    }


@router.get(
    "/investigate/{investigate_id}/similar",
    response_model=Envelope[BlastRadiusOut],
    summary="Stored messages like this one, and which would change (mailsec extension)",
)
async def similar(request: Request, account_id: str, investigate_id: str, days: Days = 30) -> Any:
    require_read(request, account_id)
    services: Services = request.app.state.services
    radius = await run_in_threadpool(radius_of, services, account_id, investigate_id, days)
    return ok(_out(radius))


@router.post(
    "/investigate/{investigate_id}/similar",
    response_model=Envelope[ApplyOut],
    summary="Re-scan the stored messages like this one that would change (mailsec extension)",
)
async def apply_similar(request: Request, account_id: str, investigate_id: str, body: ApplyIn | None = None) -> Any:
    grant = require_write(request, account_id)
    services: Services = request.app.state.services
    days = body.days if body is not None else 30
    radius, done = await run_in_threadpool(apply_radius, services, account_id, investigate_id, days, grant.principal)
    return ok(
        {
            "id": radius.message_id,
            "rescanned": len(radius.would_change),
            "changed": [{"id": i, "old_disposition": o, "new_disposition": n} for i, o, n in done.changes],
            "bulk_job_id": done.bulk_job_id,
        }
    )
