"""The write side of the message page: release from quarantine, move in the recipients' mailboxes, reclassify, apply
the verdict to similar messages; through `actions.release`, `actions.move`, `actions.reclassify` and the learning
router's `apply_radius` as the API's routes do, with the same write-scope check. Each form carries the session's CSRF
token; the answer is the message page again, with the outcome (per recipient where the action has one) on top."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from mailsec.actions.move import move
from mailsec.actions.reclassify import MessageNotFound, ReclassifyError, reclassify
from mailsec.actions.release import release
from mailsec.api.routers.learning import apply_radius
from mailsec.console.pages import load, message_context
from mailsec.console.similar import AppliedView, applied_view, form_days
from mailsec.console.web import ConsoleRefusal, Viewer, checked_form, render, services_of, viewer
from mailsec.model import Destination

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Outcome:
    """What one action did, recipient by recipient, for the page to show."""

    action: str
    lines: list[tuple[str, str, bool, str]]  # recipient, result, succeeded, detail


async def _after(
    request: Request, who: Viewer, ref: str, outcome: Outcome | None, applied: AppliedView | None = None
) -> Response:
    services = services_of(request)
    message = await run_in_threadpool(load, services, who, ref)
    context = await run_in_threadpool(message_context, services, who, message)
    return render(request, "message.html", **context, outcome=outcome, applied=applied)


@router.post("/a/{account_id}/messages/{ref}/release")
async def release_message(request: Request, account_id: str, ref: str) -> Response:
    who = await viewer(request, account_id)
    await checked_form(request, who)
    services = services_of(request)
    await run_in_threadpool(load, services, who, ref)
    [result] = await run_in_threadpool(release, services, account_id, [ref], who.principal)
    lines = (
        [(r, "delivered", True, "") for r in result.delivered]
        + [(r, "failed", False, "refused by the next hop") for r in result.failed]
        + [(r, "not delivered yet", False, "will be retried") for r in result.undelivered]
    )
    if not lines:
        lines = [("", "nothing to release", True, "the message is not held in quarantine")]
    return await _after(request, who, ref, Outcome("Release", lines))


@router.post("/a/{account_id}/messages/{ref}/move")
async def move_message(request: Request, account_id: str, ref: str) -> Response:
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    try:
        destination = Destination(str(form.get("destination", "")))
    except ValueError as exc:
        raise ConsoleRefusal(400, "Choose a destination folder from the list.") from exc
    services = services_of(request)
    await run_in_threadpool(load, services, who, ref)
    items = await run_in_threadpool(move, services, account_id, [ref], destination, who.principal)
    lines = [(i.recipient or "", i.status.replace("_", " "), i.success, i.reason or "") for i in items]
    return await _after(request, who, ref, Outcome(f"Move to {destination.value}", lines))


@router.post("/a/{account_id}/messages/{ref}/reclassify")
async def reclassify_message(request: Request, account_id: str, ref: str) -> Response:
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    services = services_of(request)
    try:
        event = await run_in_threadpool(
            reclassify, services, account_id, ref, str(form.get("disposition", "")), who.principal
        )
    except MessageNotFound as exc:
        raise ConsoleRefusal(404, "There is no such message in this account.") from exc
    except ReclassifyError as exc:
        raise ConsoleRefusal(400, str(exc)) from exc
    was = event.original.value if event.original else "unknown"
    detail = f"was {was}; submission {event.submission_id}"
    line = ("all recipients", f"now {event.requested.value}", True, detail)
    return await _after(request, who, ref, Outcome("Reclassify", [line]))


@router.post("/a/{account_id}/messages/{ref}/similar")
async def apply_to_similar(request: Request, account_id: str, ref: str) -> Response:
    """The analyst's verdict for the messages like this one: `POST /investigate/{id}/similar`'s `apply_radius`."""
    who = await viewer(request, account_id)
    form = await checked_form(request, who)
    try:
        days = form_days(form.get("days", ""))
    except ValueError as exc:
        raise ConsoleRefusal(400, f"Choose how far back to look: {exc}.") from exc
    services = services_of(request)
    message = await run_in_threadpool(load, services, who, ref)
    radius, done = await run_in_threadpool(apply_radius, services, account_id, message.id, days, who.principal)
    applied = await run_in_threadpool(applied_view, services, radius, done)
    return await _after(request, who, ref, None, applied)
