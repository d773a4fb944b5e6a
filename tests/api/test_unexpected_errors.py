"""An error nobody expected answers the envelope on a keep-alive connection that stays usable, and logs one
bounded line without the SQL parameters (which hold analysts' search terms). Real uvicorn on loopback, real SQL
failures on SQLite and PostgreSQL."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import APIRouter, Request
from sqlalchemy import text

from mailsec.api.app import create_app
from mailsec.api.auth import require_read
from mailsec.services import Services
from support import free_port, wait_port

SECRET = "analyst-search-term-" + "z" * 60_000


def failing_router() -> APIRouter:
    router = APIRouter(prefix="/client/v4/accounts/{account_id}/email-security")

    @router.get("/probe/missing-table")
    def missing_table(request: Request, account_id: str) -> None:
        require_read(request, account_id)
        with request.app.state.services.engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table WHERE x = :p"), {"p": SECRET})

    @router.get("/probe/bad-number")
    def bad_number(request: Request, account_id: str) -> None:
        require_read(request, account_id)
        with request.app.state.services.engine.connect() as conn:
            conn.execute(text("SELECT CAST(:p AS INTEGER) + 0"), {"p": SECRET}).scalar_one()
            raise ValueError("the cast was accepted")  # SQLite casts anything; PostgreSQL refuses (DataError)

    return router


@pytest.fixture
def server(services: Services) -> Iterator[tuple[int, str, str]]:
    account = services.accounts.create_account("Errors").id
    token = services.accounts.create_token(account)
    app = create_app(services)
    app.include_router(failing_router())
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_port("127.0.0.1", port)
    yield port, account, token
    srv.should_exit = True
    thread.join(10)


def test_unexpected_errors_keep_the_connection_and_log_one_short_line(
    server: tuple[int, str, str], caplog: pytest.LogCaptureFixture, services: Services
) -> None:
    port, account, token = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    prefix = f"/client/v4/accounts/{account}/email-security"
    caplog.set_level(logging.INFO)
    conn.request("GET", f"{prefix}/investigate?detections_only=false", headers=headers)
    assert conn.getresponse().read() and conn.sock is not None
    sock = conn.sock
    conn.request("GET", f"{prefix}/probe/missing-table", headers=headers)
    response = conn.getresponse()
    body = json.loads(response.read())
    assert response.status == 500 and body["errors"][0]["code"] == 1500 and body["success"] is False
    assert (response.getheader("connection") or "").lower() != "close"
    conn.request("GET", f"{prefix}/probe/bad-number", headers=headers)
    response = conn.getresponse()
    body = json.loads(response.read())
    expected = 400 if services.engine.dialect.name == "postgresql" else 500  # PostgreSQL: a DataError
    assert response.status == expected, body
    conn.request("GET", f"{prefix}/investigate?detections_only=false", headers=headers)
    assert conn.getresponse().status == 200 and conn.sock is sock  # the same connection, still open
    conn.close()
    time.sleep(0.1)
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "probe/missing-table" in logged and "no_such_table" in logged and "missing_table" in logged
    assert "z" * 100 not in logged and len(logged) < 4000
