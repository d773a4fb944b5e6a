"""The analyst console: server-rendered pages on the API's port, at `/`, calling the same code as the API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from mailsec.console import bulk_page, dashboard_page, pages, quarantine_page, remediate, settings_pages, signin
from mailsec.console.web import (
    HERE,
    ConsoleHeaders,
    ConsoleRefusal,
    SignInRequired,
    error_page,
    signin_redirect,
)

ROUTERS = [
    signin.router,
    pages.router,
    remediate.router,
    dashboard_page.router,
    quarantine_page.router,
    bulk_page.router,
    settings_pages.router,
]


ERROR_SENTENCES = {
    404: "There is no such page in the console.",
    405: "This page does not answer that kind of request.",
}


def console_error(request: Request, status: int, headers: dict[str, str] | None = None) -> Response:
    """An HTTP error of a console path (no route, wrong method) as a page in the console's layout; the API's
    paths keep the JSON envelope. No session is looked up: an unknown path says nothing about the sign-in."""
    response = error_page(request, status, ERROR_SENTENCES.get(status, "This request cannot be answered."))
    response.headers.update(headers or {})
    return response


def mount_console(app: FastAPI) -> None:
    """Add the console's routes, its static files (/static) and its security headers to the API's app."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="console-static")

    async def to_signin(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return signin_redirect(exc)

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ConsoleRefusal)
        response = error_page(request, exc.status, exc.message)
        response.headers.update(exc.headers)
        return response

    app.add_exception_handler(SignInRequired, to_signin)
    app.add_exception_handler(ConsoleRefusal, refused)
    app.add_middleware(ConsoleHeaders)
