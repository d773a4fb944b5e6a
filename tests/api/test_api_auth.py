"""Every account route of the app (listed from `app.routes`, so new routes are covered as they land) with no
credential, bad ones, a read-only one and another account's valid one: no data ever crosses accounts. And the
per-credential rate limit of a live server."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import insert

from mailsec.api.app import create_app
from mailsec.api.auth import FailureThrottle
from mailsec.pipeline import process_message
from mailsec.services import Services
from mailsec.store.schema import search_jobs
from support import make_eml, make_live_server

PREFIX = "/client/v4/accounts/{account_id}/"
SAFE = {"GET", "HEAD", "OPTIONS"}
MESSAGE_PARAMS = {"investigate_id", "postfix_id", "message_id", "id"}


@dataclass
class World:
    client: TestClient
    a: str
    b: str
    a_write: str
    a_read: str
    b_write: str
    a_email: str
    a_key: str
    a_msg: str
    a_subject: str
    b_msg: str
    a_job: str
    routes: list[tuple[str, str]]  # (method, path template)

    def path(self, template: str, account: str, message: str | None = None, job: str | None = None) -> str:
        def fill(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "account_id":
                return account
            if name in MESSAGE_PARAMS:
                return message or self.a_msg
            if name == "job_id" and "search_jobs" in template:
                return job or self.a_job
            return str(uuid.uuid4())

        return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", fill, template)

    def call(self, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
        kwargs: dict[str, object] = {"headers": headers}
        if method not in SAFE:
            kwargs["json"] = {}
        return self.client.request(method, path, **kwargs)  # type: ignore[arg-type]


class ProbeBody(BaseModel):
    destination: str
    ids: list[str]


def probe_router() -> APIRouter:
    """A write route with a required body, as the write side will add: until real ones land it proves that scope is
    checked before the body is validated."""
    router = APIRouter()

    @router.post(PREFIX + "email-security/investigate/_probe_write")
    def probe(account_id: str, body: ProbeBody) -> dict[str, object]:
        return {"success": True, "errors": [], "messages": [], "result": body.ids}

    return router


def account_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every account route: the flat `app.routes` plus, as FastAPI 0.165 mounts
    included routers lazily, the routes of the OpenAPI document."""
    found = {(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    found |= {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    return sorted((m, p) for m, p in found if p.startswith(PREFIX) and m != "HEAD")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def world(services: Services) -> Iterator[World]:
    acc = services.accounts
    a = acc.create_account("A").id
    b = acc.create_account("B").id
    a_subject = "secret-of-account-a quarterly numbers"
    a_msg = process_message(services, make_eml(subject=a_subject), a).id
    b_msg = process_message(services, make_eml(subject="account b hello"), b).id
    a_job = str(uuid.uuid4())
    pk = services.messages.get(a, a_msg)
    assert pk is not None
    with services.engine.begin() as conn:
        conn.execute(
            insert(search_jobs).values(
                id=a_job,
                account_id=a,
                params_json="{}",
                status="done",
                result_json=json.dumps({"pks": [pk.pk], "next": None, "previous": None, "per_page": 20}),
                created_us=0,
                updated_us=0,
            )
        )
    app = create_app(services)
    app.state.auth_throttle = FailureThrottle(0, 1)  # every route is probed with bad credentials: no throttle here
    app.include_router(probe_router())
    routes = account_routes(app)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(
            client=client,
            a=a,
            b=b,
            a_write=acc.create_token(a),
            a_read=acc.create_token(a, can_write=False),
            b_write=acc.create_token(b),
            a_email="soc@a.example",
            a_key=acc.create_user("soc@a.example", a, can_write=False),
            a_msg=a_msg,
            a_subject=a_subject,
            b_msg=b_msg,
            a_job=a_job,
            routes=routes,
        )


def _error(r: httpx.Response, status: int, code: int) -> None:
    assert r.status_code == status, (r.request.method, r.request.url, r.status_code, r.text)
    body = r.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert [e["code"] for e in body["errors"]] == [code], body


def test_the_read_routes_are_there(world: World) -> None:
    gets = {p for m, p in world.routes if m == "GET"}
    inv = PREFIX + "email-security/investigate"
    for suffix in ("", "/{investigate_id}", "/{investigate_id}/detections", "/{investigate_id}/raw"):
        assert inv + suffix in gets
    assert {inv + "/{investigate_id}/trace", inv + "/{investigate_id}/action_log"} <= gets
    assert any("search_jobs" in p for p in gets)
    assert ("POST", inv + "/_probe_write") in world.routes


def test_no_credential(world: World) -> None:
    for method, template in world.routes:
        _error(world.call(method, world.path(template, world.a), {}), 400, 9106)
    _error(world.client.get(world.path(PREFIX + "email-security/nothing-here", world.a)), 400, 9106)
    _error(world.call("GET", world.path(world.routes[0][1], world.a), {"X-Auth-Email": world.a_email}), 400, 9106)


def test_bad_credentials(world: World) -> None:
    for method, template in world.routes:
        path = world.path(template, world.a)
        _error(world.call(method, path, bearer("msk_not-a-token")), 403, 9109)
        _error(world.call(method, path, {"X-Auth-Email": world.a_email, "X-Auth-Key": "0" * 48}), 403, 9103)
        _error(world.call(method, path, {"X-Auth-Email": "nobody@a.example", "X-Auth-Key": world.a_key}), 403, 9103)
        r = world.call(method, path, {"Authorization": f"Basic {world.a_read}"})
        assert r.status_code == 400 and r.json()["success"] is False


def test_read_only_credentials_read_but_never_write(world: World) -> None:
    for creds in (bearer(world.a_read), {"X-Auth-Email": world.a_email, "X-Auth-Key": world.a_key}):
        for method, template in world.routes:
            r = world.call(method, world.path(template, world.a), creds)
            if method in SAFE:
                # A route naming an object the fixture did not make (bulk job, settings entry) may answer 404.
                others = set(re.findall(r"\{([^}:]+)", template)) - {"account_id", *MESSAGE_PARAMS}
                known = not others or (others == {"job_id"} and "search_jobs" in template)
                assert r.status_code in ((200, 202) if known else (200, 202, 404)), (template, r.text)
                assert r.json()["success"] is (r.status_code < 400)
            else:
                _error(r, 403, 10000)
    body = world.client.get(
        world.path(PREFIX + "email-security/investigate/{investigate_id}", world.a), headers=bearer(world.a_read)
    ).json()
    assert body["result"]["subject"] == world.a_subject


def test_another_accounts_credential_never_reaches_data(world: World) -> None:
    for method, template in world.routes:
        r = world.call(method, world.path(template, world.a), bearer(world.b_write))
        _error(r, 403, 10000)
        assert world.a_msg not in r.text and world.a_subject not in r.text
    # B's own path with A's message id or A's job: not found, never A's data.
    for method, template in world.routes:
        if method not in SAFE or not ({"{investigate_id}", "{postfix_id}"} & set(re.findall(r"\{[^}]+\}", template))):
            continue
        for ref in (world.a_msg, world.a_msg.split("-")[0]):
            r = world.call(method, world.path(template, world.b, message=ref), bearer(world.b_write))
            _error(r, 404, 7003)
            assert world.a_subject not in r.text
    job_route = next(t for m, t in world.routes if "search_jobs" in t)
    _error(world.call("GET", world.path(job_route, world.b, job=world.a_job), bearer(world.b_write)), 404, 7003)
    search = world.path(PREFIX + "email-security/investigate", world.b)
    for params in ({"detections_only": "false"}, {"detections_only": "false", "query": "secret-of-account-a"}):
        body = world.client.get(search, params=params, headers=bearer(world.b_write)).json()
        assert [m["id"] for m in body["result"]] == ([world.b_msg] if "query" not in params else [])
        assert world.a_subject not in json.dumps(body)


def test_unknown_route_and_method_use_the_envelope(world: World) -> None:
    base = world.path(PREFIX + "email-security/investigate", world.a)
    _error(world.client.get(base + "/x/y/z/w", headers=bearer(world.a_read)), 404, 7000)
    r = world.client.request("PATCH", base, headers=bearer(world.a_write))
    assert r.status_code in (404, 405) and r.json()["success"] is False
    _error(world.client.get(base + "/nonsense-id", headers=bearer(world.a_read)), 404, 7003)


def test_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    live = make_live_server(
        tmp_path / "live",
        f"sqlite:///{tmp_path / 'mailsec.db'}",
        MAILSEC_RATE_LIMIT_PER_MINUTE="1",
        MAILSEC_RATE_LIMIT_BURST="3",
    )
    account = live.create_account()
    token, other = live.create_token(account), live.create_token(account, read_only=True)
    live.start()
    try:
        url = f"{live.base_url}/accounts/{account}/email-security/investigate"
        with httpx.Client() as http:
            codes = [http.get(url, headers=bearer(token)).status_code for _ in range(3)]
            assert codes == [200, 200, 200]
            r = http.get(url, headers=bearer(token))
            assert r.status_code == 429
            assert int(r.headers["retry-after"]) >= 1
            body = r.json()
            assert body["success"] is False and body["result"] is None and body["errors"][0]["code"] >= 1000
            assert http.get(url, headers=bearer(other)).status_code == 200  # the limit is per credential
            time.sleep(0)
    finally:
        live.stop()
