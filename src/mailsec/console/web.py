"""Console plumbing shared by every page: templates (autoescaped), security headers, the session cookie, CSRF, and
`Viewer`, who is signed in and what they may do in the account of the URL. Authorisation is the API's: a `Grant`
derived from the credential on every request, `can_read`/`can_write` per account, the same rate limiter."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailsec.api.auth import services_of as services_of  # the console's pages use the API's
from mailsec.api.serialize import iso_z
from mailsec.store.accounts import Grant
from mailsec.store.console_sessions import ConsoleSession, ConsoleSessionRepo

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "mailsec_console"
SIGNIN_COOKIE = "mailsec_signin"  # binds the sign-in form to this browser (no login CSRF)
API_PREFIX = "/client/v4/"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",  # not no-referrer: Chromium then sends `Origin: null` on our own forms
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | None) -> str:
    return iso_z(value).replace("T", " ").removesuffix("Z")[:19] + " UTC" if value else ""


templates.filters["when"] = _when


def is_console_path(path: str) -> bool:
    """Everything outside the API's `/client/v4` is the console's (its pages, /static, unknown paths)."""
    return not (path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"))


class ConsoleHeaders:
    """ASGI middleware: every answer outside the API gets the console's security headers (CSP first of all) and is
    never cached, pages and redirects and errors alike."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_console_path(str(scope.get("path", ""))):
            await self.app(scope, receive, send)
            return

        async def add_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, add_headers)


class SignInRequired(Exception):
    """No live session: the browser goes to the sign-in page, and comes back to `next` afterwards."""

    def __init__(self, next_path: str, expired: bool) -> None:
        self.next_path = next_path
        self.expired = expired


class ConsoleRefusal(Exception):
    """A request the console answers with an error page (status and a sentence for a person)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Viewer:
    """The signed-in credential, seen from one account."""

    session: ConsoleSession
    grant: Grant
    account_id: str

    @property
    def can_write(self) -> bool:
        return self.grant.can_write(self.account_id)

    @property
    def principal(self) -> str:
        return self.grant.principal

    @property
    def csrf(self) -> str:
        return self.session.csrf_token()

    @property
    def accounts(self) -> list[str]:
        return sorted(self.grant.accounts)


def sessions(request: Request) -> ConsoleSessionRepo:
    return ConsoleSessionRepo(services_of(request).engine)


def is_secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="strict", secure=is_secure(request)
    )


def safe_next(value: str | None) -> str:
    """Only a path of this site: no scheme, no host, no `//` (an open redirect otherwise)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 0x20 for c in value):
        return "/"
    return value


async def current_session(request: Request) -> tuple[ConsoleSession, Grant]:
    """The live session and its grant, or SignInRequired. A revoked credential ends the session here."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    settings = services_of(request).settings
    repo = sessions(request)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    session = (
        await run_in_threadpool(repo.touch, cookie, settings.console_idle_seconds, settings.console_max_age_seconds)
        if cookie
        else None
    )
    if session is None:
        raise SignInRequired(path if request.method == "GET" else "/", expired=bool(cookie))
    grant = await run_in_threadpool(repo.grant, session)
    if grant is None:
        await run_in_threadpool(repo.delete, cookie)
        raise SignInRequired(path, expired=True)
    wait = request.app.state.rate_limiter.check(grant.principal)
    if wait > 0:
        raise ConsoleRefusal(429, "Too many requests; wait a moment.", {"retry-after": str(max(1, int(wait + 0.999)))})
    return session, grant


async def viewer(request: Request, account_id: str) -> Viewer:
    """The signed-in credential if it may read this account; else sign-in, or 404 (an account it cannot see is
    not confirmed to exist, as with the API's foreign-account answers)."""
    session, grant = await current_session(request)
    if not grant.can_read(account_id):
        raise ConsoleRefusal(404, "There is no such account for this sign-in.")
    return Viewer(session, grant, account_id)


def same_origin(request: Request) -> bool:
    """A second guard behind the CSRF token: what the browser says about where the form came from, when it says."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin != "null" and urlsplit(origin).netloc == request.headers.get("host", "")


async def checked_form(request: Request, who: Viewer, write: bool = True) -> FormData:
    """The posted form, once its CSRF token and origin check out and (for `write`) the credential may write."""
    form = await request.form()
    token = form.get("csrf")
    if not same_origin(request) or not isinstance(token, str) or not who.session.csrf_ok(token):
        raise ConsoleRefusal(403, "This form has expired or did not come from this console; reload the page.")
    if write and not who.can_write:
        raise ConsoleRefusal(403, "This sign-in has read-only access to the account.")
    return form


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, status: int, message: str, who: Viewer | None = None) -> HTMLResponse:
    return render(request, "error.html", status=status, who=who, message=message, status_code=status)


def signin_redirect(exc: SignInRequired) -> RedirectResponse:
    target = "/signin?next=" + quote(safe_next(exc.next_path), safe="")
    return RedirectResponse(target + ("&expired=1" if exc.expired else ""), status_code=303)


def client_keys(request: Request, credential: str) -> list[str]:
    """The failure-throttle keys of a sign-in attempt: the client address and the credential tried."""
    client = request.client.host if request.client else "unknown"
    digest = hashlib.sha256(credential.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return [f"ip:{client}", f"cred:{digest}"]
