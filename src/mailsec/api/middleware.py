"""ASGI guards around the application, each one job: a body size limit enforced while the body arrives, one
answer for a path with or without a trailing slash, NUL bytes refused before any handler sees them, and a clean
envelope (with a bounded log line) for any error nobody expected. Pure ASGI, so they wrap the app in any order and
never buffer a body."""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from sqlalchemy.exc import DataError, StatementError

from mailsec.api.envelope import APIError

log = logging.getLogger("mailsec.api")
Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any

MAX_LOG_MESSAGE = 300
MAX_LOG_FRAMES = 8


async def send_error(send: Send, error: APIError, close: bool = False) -> None:
    body = json.dumps(error.body(), separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Tracked:
    """`send` that remembers whether the response has started."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodyLimit:
    """413 in the envelope for a body over `max_bytes`: at once from Content-Length, else as soon as the bytes
    received pass the limit, before the application has parsed any of it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> APIError:
        return APIError(413, 1413, f"Request body is larger than {self.max_bytes} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_bytes <= 0:
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and not declared.strip().isdigit():
            await send_error(send, APIError(400, 1001, "Content-Length is not a number"), close=True)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await send_error(send, self._error(), close=True)
            return
        seen = 0
        refused = False
        started = False

        async def limited() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    if not started:
                        await send_error(send, self._error(), close=True)
                    return {"type": "http.disconnect"}  # the application stops reading, whatever it does with it
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 was the answer
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not refused:
                raise


class TrailingSlash:
    """`/path/` is answered as `/path` (no 307 with an empty body, no second request)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = dict(scope, path=path.rstrip("/") or "/")
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.endswith(b"/"):
                scope["raw_path"] = raw.rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class RejectNul:
    """A NUL byte in the path or the query string is a 400: no handler, and no database, should see one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").lower()
            raw_path = (scope.get("raw_path") or b"").lower()
            if b"%00" in query or b"\x00" in query or b"%00" in raw_path or "\x00" in scope.get("path", ""):
                await send_error(send, APIError(400, 1001, "The request contains a NUL byte"))
                return
        await self.app(scope, receive, send)


def describe(exc: BaseException) -> str:
    """One bounded line about an error, without SQL parameters or statement text (they hold analysts' terms)."""
    shown: BaseException = exc
    if isinstance(exc, StatementError) and exc.orig is not None:
        shown = exc.orig
    first = (str(shown).strip().splitlines() or [""])[0]
    sqlstate = getattr(shown, "sqlstate", None)
    if sqlstate:  # PostgreSQL quotes the offending value after the colon: keep the kind of error only
        first = f"{first.split(':', 1)[0]} (sqlstate {sqlstate})"
    return f"{type(exc).__name__}({type(shown).__name__}): {first[:MAX_LOG_MESSAGE]}"


def short_trace(exc: BaseException) -> str:
    """Where it happened: the innermost frame, then our own frames (not the framework's), innermost first."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames[:-1] if "/mailsec/" in f.filename or "/tests/" in f.filename][-MAX_LOG_FRAMES:]
    shown = [*frames[-1:], *reversed(ours)]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in shown)


class UnexpectedErrors:
    """Any exception that reaches here becomes the envelope, never a dropped connection: a 400 for data the
    database cannot take (DataError: out of range, NUL, bad encoding), else a 500; one bounded log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = _Tracked(send)
        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            where = f"{scope.get('method', '')} {scope.get('path', '')[:200]}"
            if isinstance(exc, DataError):
                log.warning("bad data for the database on %s: %s", where, describe(exc))
                error = APIError(400, 1001, "A value in this request is out of range or cannot be stored")
            else:
                log.error("unexpected error on %s: %s at %s", where, describe(exc), short_trace(exc))
                error = APIError(500, 1500, "Internal error; the server log has the details")
            if not tracked.started:
                await send_error(send, error)
