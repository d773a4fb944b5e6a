"""The quarantine: every held message of the account, newest first, with cursor paging. Selected messages are
released (delivered now through the next hop, as `POST /investigate/release`) or deleted from quarantine, each
after a confirmation page; the answer shows what happened to every recipient."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mailsec.actions.discard import discard
from mailsec.actions.release import release
from mailsec.console.rows import MessageRow, message_row
from mailsec.console.web import ConsoleRefusal, checked_form, render, services_of, viewer
from mailsec.model import DeliveryStatus
from mailsec.store.search import SearchError, SearchParams, run_search

router = APIRouter(include_in_schema=False)
PER_PAGE = 50
MAX_SELECTED = 200  # one form; more than this goes through a bulk job
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ACTIONS = {"release": "Release", "delete": "Delete"}


def held_params(cursor: str | None = None, per_page: int = PER_PAGE) -> SearchParams:
    """Every quarantined message whenever it came (the status index makes the whole history cheap)."""
    return SearchParams(
        start=EPOCH,
        delivery_status=DeliveryStatus.QUARANTINED.value,
        detections_only=False,
        cursor=cursor,
        per_page=per_page,
    )


@router.get("/a/{account_id}/quarantine")
async def quarantine(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    services = services_of(request)
    cursor = request.query_params.get("cursor") or None

    def load() -> tuple[list[MessageRow], str | None, str | None]:
        page = run_search(services.engine, account_id, held_params(cursor))
        return [message_row(m) for m in services.messages.get_many(page.pks)], page.next, page.previous

    try:
        rows, next_cursor, previous = await run_in_threadpool(load)
    except (SearchError, ValueError) as exc:
        raise ConsoleRefusal(400, "That page of the quarantine does not exist; start from its first page.") from exc
    return render(
        request, "quarantine.html", who=who, rows=rows, next_cursor=next_cursor, previous=previous, cursor=cursor
    )


def _selected(form_ids: list[str]) -> list[str]:
    ids = list(dict.fromkeys(i.strip() for i in form_ids if i.strip()))
    if not ids:
        raise ConsoleRefusal(400, "Select at least one message first.")
    if len(ids) > MAX_SELECTED:
        raise ConsoleRefusal(400, f"At most {MAX_SELECTED} messages at once; use a bulk job for more.")
    return ids


@router.post("/a/{account_id}/quarantine/confirm")
async def confirm(request: Request, account_id: str) -> Response:
    """The confirmation page: the chosen action and the messages it will touch."""
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    action = form.get("action")
    if action not in ACTIONS:
        raise ConsoleRefusal(400, "Choose Release or Delete.")
    ids = _selected([v for v in form.getlist("id") if isinstance(v, str)])
    services = services_of(request)
    found = await run_in_threadpool(lambda: [services.messages.get(account_id, i) for i in ids])
    rows = [message_row(m) for m in found if m is not None]
    if not rows:
        raise ConsoleRefusal(404, "None of the selected messages is in this account.")
    return render(request, "quarantine_confirm.html", who=who, action=action, label=ACTIONS[str(action)], rows=rows)


@router.post("/a/{account_id}/quarantine/{action}")
async def act(request: Request, account_id: str, action: str) -> Response:
    who = await viewer(request, account_id)
    if action not in ACTIONS:
        raise ConsoleRefusal(404, "There is no such quarantine action.")
    form = await checked_form(request, who)
    ids = _selected([v for v in form.getlist("id") if isinstance(v, str)])
    services = services_of(request)
    if action == "release":
        released = await run_in_threadpool(release, services, account_id, ids, who.principal)
        outcomes = [
            {
                "id": r.id,
                "found": r.found,
                "lines": [("delivered", a) for a in r.delivered]
                + [("refused", a) for a in r.failed]
                + [("retrying", a) for a in r.undelivered],
            }
            for r in released
        ]
    else:
        deleted = await run_in_threadpool(discard, services, account_id, ids, who.principal)
        outcomes = [
            {
                "id": r.id,
                "found": r.found,
                "lines": [("deleted", a) for a in r.deleted] + [("not held", a) for a in r.untouched],
            }
            for r in deleted
        ]
    return render(request, "quarantine_done.html", who=who, label=ACTIONS[action], outcomes=outcomes)
