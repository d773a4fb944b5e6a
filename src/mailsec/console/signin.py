"""Sign-in (an API token, or e-mail and console password), sign-out, and `/`. A successful sign-in creates a
server-side session (store/console_sessions.py) whose random id goes into an HttpOnly, SameSite=Strict cookie.
Failed attempts feed the API's failure throttle: guessing through the console is no faster than through the API."""

from __future__ import annotations

import hmac
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from mailsec.api.auth import FailureThrottle
from mailsec.console.web import (
    SESSION_COOKIE,
    SIGNIN_COOKIE,
    ConsoleRefusal,
    client_keys,
    current_session,
    render,
    safe_next,
    services_of,
    sessions,
    set_cookie,
)
from mailsec.store.console_sessions import TOKEN, USER

router = APIRouter(include_in_schema=False)
MAX_FIELD = 1024


def _signin_page(request: Request, status: int = 200, error: str | None = None, email: str = "") -> Response:
    nonce = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "signin.html",
        status=status,
        who=None,
        error=error,
        email=email,
        signin_csrf=nonce,
        next_path=safe_next(request.query_params.get("next")),
        expired=request.query_params.get("expired") == "1",
    )
    set_cookie(response, request, SIGNIN_COOKIE, nonce)
    return response


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    return _signin_page(request)


@router.post("/signin")
async def signin(request: Request) -> Response:
    form = await request.form()
    fields = {k: v if isinstance(v, str) else "" for k, v in form.items()}
    nonce = request.cookies.get(SIGNIN_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce.encode(), fields.get("csrf", "").encode("utf-8", "surrogateescape")):
        raise ConsoleRefusal(403, "The sign-in form expired; open the sign-in page again.")
    token, email = (fields.get(k, "").strip()[:MAX_FIELD] for k in ("token", "email"))
    password = fields.get("password", "")[:MAX_FIELD]
    services = services_of(request)
    throttle: FailureThrottle = request.app.state.auth_throttle
    credential = "token:" + token if token else "email:" + email.lower()
    keys = client_keys(request, credential)
    if throttle.wait(keys) > 0:
        return _signin_page(request, 429, "Too many failed sign-ins; wait a minute and try again.", email)
    kind, subject = "", ""
    if token:
        grant = await run_in_threadpool(services.accounts.grant_for_token, token)
        if grant is not None:
            kind, subject = TOKEN, grant.principal.removeprefix("token:")
    elif email and password:
        if await run_in_threadpool(services.accounts.check_password, email, password):
            kind, subject = USER, email.lower()
    else:
        return _signin_page(request, 400, "Give an API token, or an e-mail address and password.", email)
    if not kind:
        throttle.failed(keys)
        return _signin_page(request, 403, "That did not sign you in: check the token, or e-mail and password.", email)
    old = request.cookies.get(SESSION_COOKIE)
    repo = sessions(request)
    if old:
        await run_in_threadpool(repo.delete, old)  # a fresh id at every sign-in: no session fixation
    await run_in_threadpool(repo.purge_idle, services.settings.console_idle_seconds)  # what sign-ins left behind
    session_id = await run_in_threadpool(repo.create, kind, subject)
    response = RedirectResponse(safe_next(fields.get("next")), status_code=303)
    set_cookie(response, request, SESSION_COOKIE, session_id)
    response.delete_cookie(SIGNIN_COOKIE, path="/")
    return response


@router.post("/signout")
async def signout(request: Request) -> Response:
    session, _ = await current_session(request)
    form = await request.form()
    token = form.get("csrf")
    if not isinstance(token, str) or not session.csrf_ok(token):
        raise ConsoleRefusal(403, "This form has expired or did not come from this console; reload the page.")
    await run_in_threadpool(sessions(request).delete, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
async def home(request: Request) -> Response:
    """The first account the sign-in reaches (its search page); the sign-in page when nobody is signed in."""
    _, grant = await current_session(request)
    accounts = sorted(grant.accounts)
    if not accounts:
        raise ConsoleRefusal(403, "This sign-in reaches no account.")
    return RedirectResponse(f"/a/{accounts[0]}/search", status_code=303)
