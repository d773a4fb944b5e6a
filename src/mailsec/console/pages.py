"""The account's pages: search and messages."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from mailsec.console.web import render, viewer

router = APIRouter(include_in_schema=False)


@router.get("/a/{account_id}/search")
async def search_page(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    return render(request, "search.html", who=who, q=request.query_params.get("q", ""), rows=[], error=None)


@router.get("/accounts")
async def switch_account(request: Request, account: str = "") -> Response:
    who = await viewer(request, account)
    return RedirectResponse(f"/a/{who.account_id}/search", status_code=303)
