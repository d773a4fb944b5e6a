"""The FastAPI application: every route under `/client/v4/accounts/{account_id}/email-security/`, the standard
envelope on every answer (404, 405, validation errors and crashes included), authentication before anything else."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute, APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailsec import __version__
from mailsec.actions.bulk import BulkJobRunner
from mailsec.api.auth import FailureThrottle, RateLimiter, require_read, require_write
from mailsec.api.envelope import APIError
from mailsec.api.middleware import BodyLimit, RejectNul, TrailingSlash, UnexpectedErrors
from mailsec.api.routers import (
    bulk,
    domains,
    investigate,
    learning,
    move,
    preview,
    quarantine_policy,
    release,
    settings,
    submissions,
)
from mailsec.console import console_error, mount_console
from mailsec.console.web import is_console_path
from mailsec.observability import Timer, logger, metrics
from mailsec.services import Services

log = logging.getLogger("mailsec.api")
ROUTERS = [
    bulk.router,  # before investigate: `bulk` is not a message id
    investigate.router,
    release.router,
    move.router,
    settings.router,
    domains.router,
    quarantine_policy.router,
    preview.router,
    submissions.router,
    learning.router,
]
access = logger("mailsec.api.access")
ACCOUNT_PATH = re.compile(r"^/client/v4/accounts/([^/]+)(/|$)")


def _error(exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def route_templates(routers: list[APIRouter]) -> list[tuple[re.Pattern[str], str]]:
    """(path regex, template) of every route, for requests refused before routing (a bad credential)."""
    return [
        (route.path_regex, route.path) for router in routers for route in router.routes if isinstance(route, APIRoute)
    ]


def route_template(request: Request, templates: list[tuple[re.Pattern[str], str]]) -> str:
    """The path template of the route that answered (or would have); "unmatched" for a path of no route, so a
    scanner cannot grow the metrics without bound."""
    path = getattr(request.scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return next((template for regex, template in templates if regex.match(request.url.path)), "unmatched")


class AccessLog:
    """ASGI middleware, outermost: one access line and the request metrics for every answer, refusals included.
    The route is its template (`/client/v4/accounts/{account_id}/...`): no ids, no query string, no search terms."""

    def __init__(self, app: ASGIApp, templates: list[tuple[re.Pattern[str], str]]) -> None:
        self.app = app
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timer = Timer()
        status = 500

        async def note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, note_status)
        finally:
            self._record(Request(scope), status, timer.seconds)

    def _record(self, request: Request, status: int, seconds: float) -> None:
        route = route_template(request, self.templates)
        counters = metrics()
        counters.api_requests.labels(route=route, status=str(status)).inc()
        counters.api_seconds.labels(route=route).observe(seconds)
        match = ACCOUNT_PATH.match(request.url.path)
        access.info(
            "api request",
            method=request.method,
            route=route,
            status=status,
            duration=round(seconds, 4),
            account=match.group(1)[:64] if match else None,
            client=request.client.host if request.client else None,
        )


def create_app(services: Services) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        resumed = services.searches.resume_unfinished()
        if resumed:
            log.info("resumed %d unfinished search job(s)", resumed)
        app.state.bulk_runner = BulkJobRunner(services)  # bulk jobs resume where they stopped
        app.state.bulk_runner.start()
        yield
        await run_in_threadpool(app.state.bulk_runner.stop)
        await run_in_threadpool(preview.close_preview, app)

    app = FastAPI(
        title="mailsec",
        version=__version__,
        description="Self-hosted e-mail security: the Cloudflare Email Security Investigate API, on your own machine.",
        lifespan=lifespan,
    )
    app.state.services = services
    templates = route_templates(ROUTERS)
    app.state.rate_limiter = RateLimiter(services.settings.rate_limit_per_minute, services.settings.rate_limit_burst)
    app.state.auth_throttle = FailureThrottle(
        services.settings.auth_failures_per_minute, services.settings.auth_failures_burst
    )

    @app.middleware("http")
    async def authenticate_first(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Credentials (and, for anything but GET/HEAD/OPTIONS, the write scope) are checked before parameters and
        bodies, so nothing about a route leaks to an anonymous caller and a read-only one never gets past a 403."""
        match = ACCOUNT_PATH.match(request.url.path)
        if match:
            check = require_read if request.method in ("GET", "HEAD", "OPTIONS") else require_write
            try:
                await run_in_threadpool(check, request, match.group(1))
            except APIError as exc:
                return _error(exc)
        return await call_next(request)

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        allow = {"Allow": ", ".join(allowed_methods(app, request))} if exc.status_code == 405 else {}
        if is_console_path(request.url.path):
            return console_error(request, exc.status_code, allow)
        if exc.status_code == 404:
            return _error(APIError(404, 7000, "No route for that URI"))
        if exc.status_code == 405:
            return _error(APIError(405, 10405, f"Method {request.method} not allowed for this route", headers=allow))
        return _error(APIError(exc.status_code, 1000 + exc.status_code, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = "/".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path"))
        message = f"{where or 'request'}: {first.get('msg', 'invalid value')}"
        return _error(APIError(400, 1001, message, pointer=f"/{where}" if where else None))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for router in ROUTERS:
        app.include_router(router)
    mount_console(app)
    add_request_guards(app, services.settings.api_max_body_bytes)
    app.add_middleware(AccessLog, templates=templates)  # added last: outermost
    return app


def add_request_guards(app: FastAPI, max_body_bytes: int) -> None:
    """Outermost first: unexpected errors become the envelope, bodies are bounded, NUL bytes and trailing
    slashes are dealt with before routing and authentication."""
    app.add_middleware(TrailingSlash)
    app.add_middleware(RejectNul)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(UnexpectedErrors)


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _leaf_routes(inner.routes)
        elif getattr(route, "path_regex", None) is not None:
            yield route


def allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """Every method some route answers on this path, for a 405's `Allow`."""
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for route in _leaf_routes(app.router.routes):
        if route.path_regex.match(path):
            methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)
