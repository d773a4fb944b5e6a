"""Bulk actions: move or release the ticked messages, or everything a search matches, as a bulk job of the API
(actions/bulk.py, run by `serve`'s bulk-job runner). The job's page shows its progress and refreshes itself while
the job runs (static/bulk.js; a Refresh link without script), then each message's outcome. The search is the
console's search text (console/query.py), so "everything matching" is exactly what the search page lists."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailsec.actions import bulk as actions
from mailsec.api.routers import bulk as bulk_api
from mailsec.console import query
from mailsec.console.rows import MessageRow, message_row
from mailsec.console.web import ConsoleRefusal, checked_form, render, services_of, viewer
from mailsec.model import Destination
from mailsec.store import bulk_jobs as jobs
from mailsec.store.bulk_jobs import BulkJobRepo
from mailsec.store.search import SearchError, SearchParams, run_search

router = APIRouter(include_in_schema=False)
MAX_TICKED = 1000
DESTINATIONS = [(d.value, label) for d, label in (
    (Destination.INBOX, "Inbox"),
    (Destination.JUNK, "Junk"),
    (Destination.DELETED, "Deleted items"),
    (Destination.RECOVERABLE_DELETIONS, "Soft delete (restorable)"),
    (Destination.RECOVERABLE_PURGES, "Hard delete"),
)]  # fmt: skip
OUTCOME_PAGE = 100
PREVIEW_ROWS = 100


def _verb(form_action: str) -> tuple[str, str | None]:
    """The form's action field: "release", or "move:<destination>"."""
    if form_action == "release":
        return "RELEASE", None
    kind, _, destination = form_action.partition(":")
    if kind == "move" and destination in {d for d, _ in DESTINATIONS}:
        return "MOVE", destination
    raise ConsoleRefusal(400, "Choose what to do: release, or move to a folder.")


def search_params_of(q: str) -> dict[str, Any]:
    """The console's search text as the bulk-job API's `search_params` (only what differs from the defaults)."""
    params = query.parse(q)
    defaults = SearchParams()
    out: dict[str, Any] = {}
    for f in fields(SearchParams):
        if f.name in ("cursor", "page", "per_page", "extra"):
            continue
        value = getattr(params, f.name)
        if value != getattr(defaults, f.name):
            out[f.name] = value.isoformat() if isinstance(value, datetime) else value
    out["detections_only"] = params.detections_only
    return out


@router.get("/a/{account_id}/bulk/new")
async def choose(request: Request, account_id: str) -> Response:
    """The messages of a search, each with a tick box, and what to do with the ticked ones or with all of them."""
    who = await viewer(request, account_id)
    if not who.can_write:
        raise ConsoleRefusal(403, "This sign-in has read-only access to the account.")
    q = request.query_params.get("q", "")
    services = services_of(request)

    def load() -> list[MessageRow]:
        params = query.parse(q)
        params.per_page = PREVIEW_ROWS
        page = run_search(services.engine, account_id, params)
        return [message_row(m) for m in services.messages.get_many(page.pks)]

    try:
        rows = await run_in_threadpool(load)
    except (query.QueryError, SearchError) as exc:
        return render(request, "bulk_new.html", who=who, q=q, rows=[], error=str(exc), destinations=DESTINATIONS)
    return render(request, "bulk_new.html", who=who, q=q, rows=rows, error=None, destinations=DESTINATIONS)


@router.post("/a/{account_id}/bulk")
async def create(request: Request, account_id: str) -> Response:
    """Ticked rows (`id` fields), or with scope=search every message of the search text `q`."""
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    action, destination = _verb(str(form.get("action") or ""))
    refs: list[str] | None = None
    search: dict[str, Any] = {}
    if form.get("scope") == "search":
        q = form.get("q")
        try:
            search = search_params_of(q if isinstance(q, str) else "")
        except query.QueryError as exc:
            raise ConsoleRefusal(400, f"The search cannot run: {exc}") from exc
    else:
        refs = list(dict.fromkeys(v.strip() for v in form.getlist("id") if isinstance(v, str) and v.strip()))
        if not refs:
            raise ConsoleRefusal(400, "Tick at least one message, or choose everything matching the search.")
        if len(refs) > MAX_TICKED:
            raise ConsoleRefusal(400, f"At most {MAX_TICKED} ticked messages; act on the whole search instead.")
    services = services_of(request)
    try:
        job_id = await run_in_threadpool(
            actions.create_job, services, account_id, action, search, destination, "console", who.principal, None,
            refs,
        )  # fmt: skip
    except actions.BulkJobError as exc:
        raise ConsoleRefusal(400, str(exc)) from exc
    bulk_api.wake_runner(request)
    return RedirectResponse(f"/a/{account_id}/bulk/{job_id}", status_code=303)


@router.get("/a/{account_id}/bulk")
async def job_list(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    repo = BulkJobRepo(services_of(request).engine)
    found = await run_in_threadpool(repo.list_jobs, account_id, None, None, 0, 50)
    return render(request, "bulk_jobs.html", who=who, jobs=[bulk_api.job_dict(j) for j in found])


@router.get("/a/{account_id}/bulk/{job_id}")
async def job_page(request: Request, account_id: str, job_id: str) -> Response:
    who = await viewer(request, account_id)
    services = services_of(request)
    repo = BulkJobRepo(services.engine)

    def load() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        job = repo.get(account_id, job_id)
        if job is None:
            return None
        rows = repo.messages(job_id, 0, OUTCOME_PAGE, None)
        found = {m.pk: m for m in services.messages.get_many([r.message_pk for r in rows])}
        out = []
        for r in rows:
            m = found.get(r.message_pk)
            out.append({
                "id": m.id if m else "",
                "subject": (m.subject or "") if m else "",
                "status": r.status,
                "detail": _outcome_text(r.outcome),
            })  # fmt: skip
        return bulk_api.job_dict(job), out

    loaded = await run_in_threadpool(load)
    if loaded is None:
        raise ConsoleRefusal(404, f"There is no bulk job {job_id} in this account.")
    job, rows = loaded
    done = job["total_messages_discovered"] - job["messages_pending"]
    total = job["total_messages_discovered"]
    return render(
        request,
        "bulk_job.html",
        who=who,
        job=job,
        rows=rows,
        running=job["status"] in jobs.ACTIVE,
        done=done,
        total=total,
        percent=int(100 * done / total) if total else (100 if job["status"] not in jobs.ACTIVE else 0),
    )


@router.post("/a/{account_id}/bulk/{job_id}/cancel")
async def cancel(request: Request, account_id: str, job_id: str) -> Response:
    who = await viewer(request, account_id)
    await checked_form(request, who)
    repo = BulkJobRepo(services_of(request).engine)
    if await run_in_threadpool(repo.get, account_id, job_id) is None:
        raise ConsoleRefusal(404, f"There is no bulk job {job_id} in this account.")
    await run_in_threadpool(repo.cancel, account_id, job_id)
    bulk_api.wake_runner(request)
    return RedirectResponse(f"/a/{account_id}/bulk/{job_id}", status_code=303)


def _outcome_text(outcome: dict[str, Any] | None) -> str:
    """A short sentence for a message's outcome: per recipient for moves, per kind for releases."""
    if not outcome:
        return ""
    if outcome.get("reason"):
        return str(outcome["reason"])
    if "items" in outcome:
        parts = []
        for item in outcome.get("items") or ():
            who = item.get("recipient") or item.get("address") or ""
            status = item.get("status") or ("moved" if item.get("success") else "failed")
            parts.append(f"{who}: {status}".strip(": "))
        return "; ".join(parts)
    parts = []
    for key, label in (("delivered", "delivered"), ("failed", "refused"), ("undelivered", "retrying")):
        for address in outcome.get(key) or ():
            parts.append(f"{address}: {label}")
    return "; ".join(parts)
