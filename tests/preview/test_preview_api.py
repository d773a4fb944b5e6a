"""The preview routes on a live `mailsec serve` (SQLite and PostgreSQL), driven by the official SDK 5.9 in strict
mode (and 4.3 in a subprocess when installed): PNG answers, write scope on POST, the action log, `message_action`
search and `post_delivery_operations`; the error envelope for a missing Chromium and oversized messages in-process."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cloudflare
import httpx
import pytest
from cloudflare import Cloudflare
from fastapi.testclient import TestClient
from preview_helpers import cid_eml, open_png, variance

from mailsec.api.app import create_app
from mailsec.config import load_settings
from mailsec.pipeline import process_message
from mailsec.services import open_services
from support import LiveServer, database_url, make_eml, make_live_server, sdk_client

MESSAGES = {
    "cid": cid_eml(),
    "plain": make_eml(subject="Plain words", body="Hello Bob,\nthe report is attached.\n" * 10),
    "remote": make_eml(
        subject="Tracked newsletter",
        html="<h1>News</h1><img src='https://tracker.example/open.gif?u=1'>"
        "<p style=\"background:url('https://cdn.example/bg.png')\">Body text</p>",
    ),
}


@dataclass
class Site:
    live: LiveServer
    account: str
    token: str
    ro_token: str
    other: str
    other_token: str
    ids: dict[str, str] = field(default_factory=dict)

    def client(self, token: str | None = None) -> Cloudflare:
        return sdk_client(self.live.base_url, token or self.token)

    def url(self, path: str) -> str:
        return f"{self.live.base_url}/accounts/{self.account}/email-security/investigate{path}"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Chromium not installed (Debian package chromium)")
    tmp = tmp_path_factory.mktemp(f"preview-{request.param}")
    url = database_url(request, tmp)
    live = make_live_server(tmp / "live", url)
    # Accounts, tokens and messages go straight into the server's database: much faster than the CLI.
    services = open_services(load_settings(env={}, data_dir=live.data_dir, database_url=url))
    try:
        account = services.accounts.create_account("Preview").id
        other = services.accounts.create_account("Other").id
        site = Site(
            live,
            account,
            services.accounts.create_token(account, can_write=True),
            services.accounts.create_token(account, can_write=False),
            other,
            services.accounts.create_token(other, can_write=True),
        )
        for label, raw in MESSAGES.items():
            site.ids[label] = process_message(services, raw, account).id
    finally:
        services.close()
    live.start()
    yield site
    live.stop()


def _png(b64: str) -> bytes:
    png = base64.b64decode(b64, validate=True)
    image = open_png(png)
    assert image.width == 800 and variance(image) > 50
    return png


def test_sdk5_get_and_create_in_strict_mode(site: Site) -> None:
    assert cloudflare.__version__.startswith("5.9")
    preview = site.client().email_security.investigate.preview
    got = preview.get(site.ids["plain"], account_id=site.account)
    created = preview.create(account_id=site.account, id=site.ids["cid"])
    _png(got.screenshot)
    cid_png = open_png(_png(created.screenshot))
    assert cid_png.getpixel((150, 20)) == (20, 60, 200)  # the inline logo is drawn
    # postfix_id works as the path segment and as the older body field.
    by_postfix = preview.get(site.ids["plain"].split("-")[0], account_id=site.account)
    assert by_postfix.screenshot == got.screenshot
    resp = httpx.post(
        site.url("/preview"),
        json={"postfix_id": site.ids["cid"].split("-")[0]},
        headers={"Authorization": f"Bearer {site.token}"},
    )
    assert resp.status_code == 200 and resp.json()["result"]["screenshot"] == created.screenshot


def test_remote_resources_reported(site: Site) -> None:
    resp = httpx.get(
        site.url(f"/{site.ids['remote']}/preview"), headers={"Authorization": f"Bearer {site.ro_token}"}, timeout=60
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["success"] is True and body["errors"] == []
    result = body["result"]
    _png(result["screenshot"])
    assert result["width"] == 800 and result["truncated"] is False
    urls = {r["url"]: r for r in result["remote_resources"]}
    assert urls["https://tracker.example/open.gif?u=1"]["kind"] == "image"
    assert urls["https://tracker.example/open.gif?u=1"]["requested"] is True
    assert urls["https://cdn.example/bg.png"]["kind"] == "css"


def test_views_are_logged_searchable_and_listed(site: Site) -> None:
    cf = site.client().email_security.investigate
    cf.preview.get(site.ids["remote"], account_id=site.account)
    log = httpx.get(
        site.url(f"/{site.ids['remote']}/action_log"), headers={"Authorization": f"Bearer {site.token}"}
    ).json()["result"]
    previews = [e for e in log if e["operation"] == "PREVIEW"]
    assert previews and all(e["properties"]["requested_by"].startswith("token:") for e in previews)
    assert all(e["status"] == "completed" for e in previews)
    found = {m.id for m in cf.list(account_id=site.account, detections_only=False, message_action="PREVIEW")}
    assert site.ids["remote"] in found
    for m in cf.list(account_id=site.account, detections_only=False, message_action="PREVIEW"):
        assert "PREVIEW" in (m.post_delivery_operations or [])
    got = cf.get(site.ids["remote"], account_id=site.account)
    assert "PREVIEW" in (got.post_delivery_operations or [])
    assert any(a.operation == "PREVIEW" for a in got.action_log)


def test_scopes_and_errors(site: Site) -> None:
    ro = {"Authorization": f"Bearer {site.ro_token}"}
    rw = {"Authorization": f"Bearer {site.token}"}
    # POST needs the write scope; GET works with read.
    resp = httpx.post(site.url("/preview"), json={"id": site.ids["plain"]}, headers=ro)
    assert resp.status_code == 403 and resp.json()["success"] is False
    with pytest.raises(cloudflare.PermissionDeniedError):
        site.client(site.ro_token).email_security.investigate.preview.create(account_id=site.account, id="x")
    assert httpx.get(site.url(f"/{site.ids['plain']}/preview"), headers=ro).status_code == 200
    # Unknown message, empty body, anonymous, another account.
    assert httpx.get(site.url("/4Njp3P0STMz2c02Q/preview"), headers=rw).status_code == 404
    resp = httpx.post(site.url("/preview"), json={}, headers=rw)
    assert resp.status_code == 400 and resp.json()["errors"][0]["source"]["pointer"] == "/id"
    assert httpx.get(site.url(f"/{site.ids['plain']}/preview")).status_code == 400
    foreign = httpx.get(
        f"{site.live.base_url}/accounts/{site.other}/email-security/investigate/{site.ids['plain']}/preview",
        headers={"Authorization": f"Bearer {site.other_token}"},
    )
    assert foreign.status_code == 404
    stolen = httpx.get(
        site.url(f"/{site.ids['plain']}/preview"), headers={"Authorization": f"Bearer {site.other_token}"}
    )
    assert stolen.status_code == 403


SDK4_SCRIPT = """
import json, sys
from cloudflare import Cloudflare
req = json.load(sys.stdin)
cf = Cloudflare(api_token=req["token"], base_url=req["base_url"], _strict_response_validation=True, max_retries=0)
p = cf.email_security.investigate.preview
got = p.get(req["postfix_id"], account_id=req["account"])
made = p.create(account_id=req["account"], postfix_id=req["postfix_id"])
print(json.dumps({"get": len(got.screenshot), "create": len(made.screenshot)}))
"""


def test_sdk4_get_and_create(site: Site) -> None:
    sdk4 = os.environ.get("MAILSEC_SDK4_PATH", "")
    if not sdk4 or not (Path(sdk4) / "cloudflare").is_dir():
        pytest.skip("SDK 4.3 not installed (make test installs it and sets MAILSEC_SDK4_PATH)")
    request = {
        "token": site.token,
        "base_url": site.live.base_url,
        "account": site.account,
        "postfix_id": site.ids["plain"].split("-")[0],
    }
    proc = subprocess.run(
        [sys.executable, "-c", SDK4_SCRIPT],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": sdk4},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["get"] > 1000 and out["get"] == out["create"]


def test_missing_chromium_and_too_large_answer_the_envelope(tmp_path: Path) -> None:
    settings = load_settings(
        env={}, data_dir=tmp_path / "data", chromium_path="/nonexistent/chromium", preview_max_bytes=5000
    )
    services = open_services(settings)
    try:
        account = services.accounts.create_account("Errors").id
        token = services.accounts.create_token(account, can_write=True)
        small = process_message(services, make_eml(body="short"), account).id
        big = process_message(services, make_eml(body="x" * 8000), account).id
        headers = {"Authorization": f"Bearer {token}"}
        base = f"/client/v4/accounts/{account}/email-security/investigate"
        with TestClient(create_app(services)) as client:
            resp = client.get(f"{base}/{small}/preview", headers=headers)
            assert resp.status_code == 503
            body = resp.json()
            assert body["success"] is False and body["result"] is None
            assert "apt-get install chromium" in body["errors"][0]["message"]
            resp = client.post(f"{base}/preview", json={"id": big}, headers=headers)
            assert resp.status_code == 413 and "5000 bytes" in resp.json()["errors"][0]["message"]
        # Failed views are not logged as views.
        stored = services.messages.get(account, small)
        assert stored is not None
        assert services.messages.actions([stored.pk])[stored.pk] == []
    finally:
        services.close()
