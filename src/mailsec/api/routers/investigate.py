"""Read side of `/investigate`: search, one message, detections, raw, trace, action log, search-job polling."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from mailsec.api import serialize
from mailsec.api.auth import require_read, services_of
from mailsec.api.envelope import ERROR_RESPONSES, APIError, Envelope, ListEnvelope, bad_request, not_found, ok
from mailsec.api.models import ActionLogEntry, DetectionsOut, MessageOut, RawOut, TraceOut
from mailsec.model import THREAT_CATEGORIES, DeliveryStatus
from mailsec.services import Services
from mailsec.store.blobs import BlobNotFound
from mailsec.store.messages import StoredMessage
from mailsec.store.search import SearchError, SearchPage, SearchParams
from mailsec.store.search_jobs import CLIENT_ERROR, PendingSearch, SearchBusy
from mailsec.store.submissions import SubmissionRepo

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["investigate"], responses=ERROR_RESPONSES)

_TZ_SPACE = re.compile(r" (\d{2}:?\d{2})$")


def parse_time(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    text = _TZ_SPACE.sub(r"+\1", value.strip())  # a '+' sent unencoded arrives as a space
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise bad_request(f"{name} is not an ISO 8601 date-time: {value[:64]!r}", pointer=f"/{name}") from exc


def load_message(request: Request, account_id: str, ref: str) -> StoredMessage:
    message = services_of(request).messages.get(account_id, ref)
    if message is None:
        raise not_found(f"message {ref}")
    return message


def total_count(page: SearchPage, count: int, from_start: bool) -> int:
    """Exact when this page, read from the start, is the whole result; else 0, the value the reference documents
    for this deprecated field: counting every match would cost a second full search per page."""
    return count if from_start and page.next is None and page.previous is None else 0


def page_response(services: Services, page: SearchPage, embed_actions: bool, from_start: bool) -> dict[str, Any]:
    rows = services.messages.get_many(page.pks)
    actions = services.messages.actions(m.pk for m in rows)
    result = [serialize.message(m, actions[m.pk], embed_actions) for m in rows]
    body = ok(result)
    body["result_info"] = {
        "count": len(result),
        "per_page": page.per_page,
        "page": 0,
        "total_count": total_count(page, len(result), from_start),
        "next": page.next,
        "previous": page.previous,
    }
    return body


def pending_response(request: Request, account_id: str, job_id: str, per_page: int) -> JSONResponse:
    location = str(request.url_for("poll_search", account_id=account_id, job_id=job_id).path)
    body = ok([])
    body["result_info"] = {
        "count": 0,
        "per_page": per_page,
        "page": 0,
        "total_count": 0,
        "next": None,
        "previous": None,
    }
    return JSONResponse(body, status_code=202, headers={"Location": location})


@router.get(
    "/investigate",
    response_model=ListEnvelope[list[MessageOut]],
    response_model_by_alias=True,
    summary="Search email messages",
    responses={
        202: {"model": ListEnvelope[list[MessageOut]], "description": "Search continues as a job; poll Location"}
    },
)
def search(
    request: Request,
    account_id: str,
    start: str | None = None,
    end: str | None = None,
    query: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    domain: str | None = None,
    subject: str | None = None,
    exact_subject: str | None = None,
    alert_id: str | None = None,
    message_id: str | None = None,
    final_disposition: str | None = None,
    message_action: str | None = None,
    delivery_status: str | None = None,
    detections_only: bool = True,
    action_log: bool = False,
    submissions: bool = False,
    smtp_helo_ip: str | None = None,
    metric: str | None = None,
    cursor: str | None = None,
    page: Annotated[int | None, Query(ge=1, le=10_000_000)] = None,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Any:
    require_read(request, account_id)
    if delivery_status and delivery_status.lower() not in {s.value for s in DeliveryStatus}:
        raise bad_request(
            f"delivery_status {delivery_status!r} is not one of " + ", ".join(s.value for s in DeliveryStatus),
            pointer="/delivery_status",
        )
    params = SearchParams(
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        query=query,
        sender=sender,
        recipient=recipient,
        domain=domain,
        subject=subject,
        exact_subject=exact_subject,
        alert_id=alert_id,
        message_id=message_id,
        final_disposition=final_disposition,
        message_action=message_action,
        delivery_status=delivery_status,
        detections_only=detections_only,
        smtp_helo_ip=smtp_helo_ip,
        submissions=submissions,
        cursor=cursor,
        page=page,
        per_page=per_page,
        extra={"action_log": action_log, "metric": metric},
    )
    services = services_of(request)
    try:
        outcome = services.searches.search(account_id, params)
    except SearchError as exc:
        raise bad_request(str(exc)) from exc
    except SearchBusy as exc:
        raise APIError(429, 1015, f"{exc}; retry shortly", headers={"retry-after": "1"}) from exc
    if isinstance(outcome, PendingSearch):
        return pending_response(request, account_id, outcome.job_id, per_page)
    return page_response(services, outcome, action_log, cursor is None and (page or 1) == 1)


@router.get(
    "/investigate/search_jobs/{job_id}",
    name="poll_search",
    response_model=ListEnvelope[list[MessageOut]],
    response_model_by_alias=True,
    summary="Poll a search that outlived its time budget",
    responses={202: {"model": ListEnvelope[list[MessageOut]], "description": "Still running"}},
)
def poll_search(request: Request, account_id: str, job_id: str) -> Any:
    require_read(request, account_id)
    services = services_of(request)
    state = services.searches.job(account_id, job_id)
    if state is None:
        raise not_found(f"search job {job_id}")
    if state.status == "running":
        return pending_response(request, account_id, job_id, 0)
    if state.status == "failed" or state.page is None:
        error = state.error or ""
        if error.startswith(CLIENT_ERROR):
            raise bad_request(f"search job failed: {error.removeprefix(CLIENT_ERROR)}")
        raise APIError(500, 1002, f"search job failed: {error}")
    return page_response(services, state.page, False, False)


@router.get(
    "/investigate/{investigate_id}",
    response_model=Envelope[MessageOut],
    response_model_by_alias=True,
    summary="Get message details",
)
def get_message(request: Request, account_id: str, investigate_id: str, submission: bool = False) -> Any:
    require_read(request, account_id)
    message = load_message(request, account_id, investigate_id)
    if (
        submission
        and not SubmissionRepo(services_of(request).engine).for_messages(account_id, [message.pk])[message.pk]
    ):
        raise not_found(f"submission of message {investigate_id}")
    actions = services_of(request).messages.actions([message.pk])[message.pk]
    return ok(serialize.message(message, actions, True))


@router.get(
    "/investigate/{investigate_id}/detections",
    response_model=Envelope[DetectionsOut],
    summary="Get message detection details",
)
def get_detections(request: Request, account_id: str, investigate_id: str) -> Any:
    require_read(request, account_id)
    services = services_of(request)
    message = load_message(request, account_id, investigate_id)
    raw = _raw_bytes(services, message)
    categories = [
        {
            "id": THREAT_CATEGORIES.get(name, (0, ""))[0],
            "name": name,
            "description": THREAT_CATEGORIES.get(name, (0, None))[1],
        }
        for name in message.verdict.threat_categories
    ]
    return ok(
        serialize.detections(
            message, raw, services.messages.attachments(message.pk), services.messages.links(message.pk), categories
        )
    )


def _raw_bytes(services: Services, message: StoredMessage) -> bytes:
    try:
        return services.blobs.get(message.raw_sha256)
    except BlobNotFound as exc:
        raise APIError(500, 1003, "the stored raw message is missing from the blob store") from exc


@router.get("/investigate/{investigate_id}/raw", response_model=Envelope[RawOut], summary="Get raw email content")
def get_raw(request: Request, account_id: str, investigate_id: str) -> Any:
    require_read(request, account_id)
    message = load_message(request, account_id, investigate_id)
    return ok(serialize.raw_text(_raw_bytes(services_of(request), message)))


@router.get("/investigate/{investigate_id}/trace", response_model=Envelope[TraceOut], summary="Get email trace")
def get_trace(request: Request, account_id: str, investigate_id: str, submission: bool = False) -> Any:
    require_read(request, account_id)
    message = load_message(request, account_id, investigate_id)
    lines = services_of(request).messages.trace(message.pk)
    status = message.delivery_status
    pending = {"inbound": False, "outbound": status in ("queued", "deferred")}
    return ok(serialize.trace(lines, pending))


@router.get(
    "/investigate/{investigate_id}/action_log",
    response_model=Envelope[list[ActionLogEntry]],
    summary="Get the action log of a message",
)
def get_action_log(request: Request, account_id: str, investigate_id: str) -> Any:
    require_read(request, account_id)
    message = load_message(request, account_id, investigate_id)
    actions = services_of(request).messages.actions([message.pk])[message.pk]
    return ok([serialize.action_entry(a) for a in actions])
