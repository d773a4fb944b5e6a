"""The account's pages: search (the URL holds the search), and one message with its detections, preview, raw
download, trace and action log. Reads go through the same services as the API's investigate routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailsec.api.routers.preview import preview_service
from mailsec.console.query import OPERATORS, QueryError, parse
from mailsec.console.similar import similar_view, was_reclassified
from mailsec.console.web import ConsoleRefusal, Viewer, render, services_of, viewer
from mailsec.model import SEARCHABLE_DISPOSITIONS, THREAT_CATEGORIES
from mailsec.preview.errors import PreviewError
from mailsec.services import Services
from mailsec.store.blobs import BlobNotFound
from mailsec.store.integrations import IntegrationRepo
from mailsec.store.messages import StoredMessage
from mailsec.store.records import from_us
from mailsec.store.search import MAX_PER_PAGE, SearchError, SearchPage
from mailsec.store.search_jobs import CLIENT_ERROR, PendingSearch, SearchBusy

router = APIRouter(include_in_schema=False)
PER_PAGE = 50


@dataclass(frozen=True)
class Row:
    """One line of the result table."""

    id: str
    scanned: Any
    disposition: str
    quarantined: bool
    status: str
    sender: str
    sender_name: str
    recipients: list[str]
    subject: str


def _row(m: StoredMessage) -> Row:
    return Row(
        id=m.id,
        scanned=m.scanned_at,
        disposition=m.final_disposition.value,
        quarantined=m.is_quarantined,
        status=m.delivery_status or "",
        sender=m.from_addr or m.envelope_from or "",
        sender_name=m.from_name or "",
        recipients=list(m.data.to or m.envelope_to),
        subject=m.subject or "",
    )


def page_url(account_id: str, q: str, **extra: str | int | None) -> str:
    query = {"q": q} if q else {}
    query.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
    return f"/a/{account_id}/search" + (f"?{urlencode(query)}" if query else "")


def _run(services: Services, account_id: str, q: str, cursor: str | None, per_page: int, job: str | None) -> Any:
    """The search of the box (SearchPage), a job still running (PendingSearch), or ConsoleRefusal."""
    if job:
        state = services.searches.job(account_id, job)
        if state is None:
            raise ConsoleRefusal(404, "That search is no longer known; search again.")
        if state.status == "running":
            return PendingSearch(job)
        if state.page is None:
            raise ConsoleRefusal(400, f"The search failed: {(state.error or '').removeprefix(CLIENT_ERROR)}")
        return state.page
    try:
        params = parse(q)
    except QueryError as exc:
        raise ConsoleRefusal(400, str(exc)) from exc
    params.cursor, params.per_page = cursor or None, per_page
    try:
        return services.searches.search(account_id, params)
    except SearchError as exc:
        raise ConsoleRefusal(400, str(exc)) from exc
    except SearchBusy as exc:
        raise ConsoleRefusal(429, f"{exc}; try again in a moment.", {"retry-after": "1"}) from exc


@router.get("/a/{account_id}/search")
async def search_page(
    request: Request, account_id: str, q: str = "", cursor: str = "", per_page: str = "", job: str = ""
) -> Response:
    """`per_page` is read leniently (a hand-edited URL gets the nearest sensible page size, not an error)."""
    who = await viewer(request, account_id)
    q = q[:2048]
    size = int(per_page) if per_page.isascii() and per_page.isdigit() and len(per_page) < 8 else PER_PAGE
    size = min(max(size, 1), MAX_PER_PAGE)
    services = services_of(request)
    context: dict[str, Any] = {"who": who, "q": q, "operators": OPERATORS, "rows": [], "error": None}
    try:
        outcome = await run_in_threadpool(_run, services, account_id, q, cursor, size, job)
    except ConsoleRefusal as exc:
        return render(request, "search.html", status=exc.status, **{**context, "error": exc.message}, pending=None)
    if isinstance(outcome, PendingSearch):
        return render(
            request, "search.html", **context, pending=page_url(account_id, q, job=outcome.job_id, per_page=size)
        )
    assert isinstance(outcome, SearchPage)
    rows = [_row(m) for m in await run_in_threadpool(services.messages.get_many, outcome.pks)]
    return render(
        request,
        "search.html",
        **{**context, "rows": rows},
        pending=None,
        next_url=page_url(account_id, q, cursor=outcome.next, per_page=size) if outcome.next else None,
        prev_url=page_url(account_id, q, cursor=outcome.previous, per_page=size) if outcome.previous else None,
    )


@router.get("/accounts")
async def switch_account(request: Request, account: str = "") -> Response:
    who = await viewer(request, account)
    return RedirectResponse(f"/a/{who.account_id}/search", status_code=303)


def load(services: Services, who: Viewer, ref: str) -> StoredMessage:
    message = services.messages.get(who.account_id, ref)
    if message is None:
        raise ConsoleRefusal(404, "There is no such message in this account.")
    return message


def timeline(services: Services, message: StoredMessage) -> list[dict[str, Any]]:
    """Inbound and outbound trace lines as one list in time order (the stored order breaks ties)."""
    lines = services.messages.trace(message.pk)
    merged = [(e.logged_at, i, e) for i, e in enumerate(lines.get("inbound", []) + lines.get("outbound", []))]
    return [{"at": at, "direction": e.direction, "message": e.message} for at, _, e in sorted(merged)]


def message_context(services: Services, who: Viewer, message: StoredMessage) -> dict[str, Any]:
    verdict = message.verdict
    actions = services.messages.actions([message.pk])[message.pk]
    return {
        "who": who,
        "m": message,
        "row": _row(message),
        "findings": verdict.findings,
        "reasons": list(message.detection_reasons),
        "categories": [
            {"name": name, "description": THREAT_CATEGORIES.get(name, (0, ""))[1]} for name in verdict.threat_categories
        ],
        "validation": verdict.validation,
        "attachments": services.messages.attachments(message.pk),
        "links": services.messages.links(message.pk),
        "recipients": [
            {**r, "updated": from_us(r["updated_us"]) if r.get("updated_us") else None}
            for r in services.messages.recipient_states(message.pk)
        ],
        "trace": timeline(services, message),
        "actions": actions,
        "similar": similar_view(services, who.account_id, message) if was_reclassified(actions) else None,
        "can_move": who.can_write and bool(IntegrationRepo(services.engine).list_for(who.account_id)),
        "can_release": who.can_write and message.is_quarantined,
        "can_reclassify": who.can_write,
        "dispositions": SEARCHABLE_DISPOSITIONS,
    }


@router.get("/a/{account_id}/messages/{ref}")
async def message_page(request: Request, account_id: str, ref: str) -> Response:
    who = await viewer(request, account_id)
    services = services_of(request)
    message = await run_in_threadpool(load, services, who, ref)
    context = await run_in_threadpool(message_context, services, who, message)
    return render(request, "message.html", **context, outcome=None, applied=None)


@router.get("/a/{account_id}/messages/{ref}/preview.png")
async def preview_picture(request: Request, account_id: str, ref: str) -> Response:
    """The API's preview (no script, no network; action-logged as a PREVIEW by this sign-in) as an image."""
    who = await viewer(request, account_id)
    message = await run_in_threadpool(load, services_of(request), who, ref)
    try:
        result = await run_in_threadpool(preview_service(request).preview, message, who.principal)
    except PreviewError as exc:
        raise ConsoleRefusal(exc.status, exc.message) from exc
    return Response(result.png, media_type="image/png", headers={"cache-control": "private, max-age=300"})


@router.get("/a/{account_id}/messages/{ref}/raw.eml")
async def raw_download(request: Request, account_id: str, ref: str) -> Response:
    """The stored bytes, as an attachment: the browser saves the file and never renders it."""
    who = await viewer(request, account_id)
    services = services_of(request)
    message = await run_in_threadpool(load, services, who, ref)
    try:
        raw = await run_in_threadpool(services.blobs.get, message.raw_sha256)
    except BlobNotFound as exc:
        raise ConsoleRefusal(500, "The stored raw message is missing from the blob store.") from exc
    return Response(
        raw,
        media_type="message/rfc822",
        headers={"content-disposition": f'attachment; filename="{message.postfix_id}.eml"'},
    )
