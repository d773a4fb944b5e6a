"""The official SDK, 5.9 in this process and 4.3 in a subprocess, drives a live `mailsec serve` in strict
response-validation mode: every read method, both credential kinds, auto-paging and cursor paging."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import cloudflare
import httpx
import pytest
from api_helpers import fill, run_sdk4, server_services
from cloudflare import Cloudflare

from mailsec.model import Operation
from support import LiveServer, database_url, make_eml, make_live_server, sdk_client

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@dataclass
class Site:
    live: LiveServer
    account: str
    token: str
    email: str
    key: str
    ids: dict[str, str] = field(default_factory=dict)  # label -> investigate id
    files: dict[str, bytes] = field(default_factory=dict)  # label -> raw bytes

    def client(self, kind: str = "token") -> Cloudflare:
        if kind == "token":
            return sdk_client(self.live.base_url, self.token)
        return sdk_client(self.live.base_url, email=self.email, key=self.key)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str = "") -> str:
        return f"{self.live.base_url}/accounts/{self.account}/email-security/investigate{path}"


MESSAGES: dict[str, bytes] = {
    "attachment": make_eml(
        subject="Invoice 4471 attached",
        sender="billing@vendor.example",
        to="Bob Example <bob@corp.example>",
        html='<p>Pay <a href="https://pay.vendor.example/inv/4471">here</a></p>',
        attachments=[("invoice-4471.pdf", "application/pdf", PDF)],
    ),
    "encoded": make_eml(subject="R\u00e9sum\u00e9 for the role", sender="Zo\u00eb <zoe@applicant.example>"),
    "latin1": (
        b"From: Jos\xe9 <jose@latin.example>\r\nTo: bob@corp.example\r\nSubject: Ol\xe1 amigo\r\n"
        b"Message-ID: <latin1-1@latin.example>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\nOl\xe1, tudo bem? \xa9 2026\r\n"
    ),
    "received": (
        b"Received: from mx.sender.example (mx.sender.example [198.51.100.7]) by mx.corp.example with ESMTP\r\n"
        b"Received: from laptop (unknown [203.0.113.9]) by mx.sender.example with ESMTPSA\r\n"
        + make_eml(subject="Lunch on Friday", sender="carol@sender.example")
    ),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"sdk-{request.param}")
    url = database_url(request, tmp)
    live = make_live_server(tmp / "live", url)
    account = live.create_account("SDK")
    token = live.create_token(account, read_only=True)
    email = "analyst@corp.example"
    key = live.last_line("user", "create", email, "--account", account, "--read-only")
    site = Site(live, account, token, email, key)
    folder = tmp / "mail"
    folder.mkdir()
    for label, raw in MESSAGES.items():
        (folder / f"{label}.eml").write_bytes(raw)
        site.files[label] = raw
    out = live.cli("ingest", "--account", account, "--quiet", str(folder)).stdout
    assert "stored: 4" in out, out
    services = server_services(live)
    try:
        for label, raw in MESSAGES.items():
            stored = services.messages.find_by_raw(account, hashlib.sha256(raw).hexdigest())
            assert stored is not None
            site.ids[label] = stored.id
        pk = services.messages.get(account, site.ids["attachment"])
        assert pk is not None
        services.messages.add_action(pk.pk, Operation.MOVE, folder="JunkEmail", requested_by="soc@corp.example")
        services.messages.add_action(pk.pk, Operation.PREVIEW, requested_by="soc@corp.example")
    finally:
        services.close()
    live.start()
    yield site
    live.stop()


def _check_message(m: Any, site: Site, label: str) -> None:
    assert m.id == site.ids[label]
    assert m.postfix_id == m.id.split("-")[0]
    assert m.final_disposition in ("NONE", "BULK", "SPAM", "SPOOF", "SUSPICIOUS", "MALICIOUS", "MALICIOUS-BEC")
    assert m.client_recipients


@pytest.mark.parametrize("kind", ["token", "key"])
def test_sdk5_every_read_method(site: Site, kind: str) -> None:
    assert cloudflare.__version__.startswith("5.")
    cf = site.client(kind).email_security.investigate
    listed = list(cf.list(account_id=site.account, detections_only=False))
    assert {m.id for m in listed} == set(site.ids.values())
    flagged = {m.id for m in listed if m.final_disposition != "NONE"}
    assert {m.id for m in cf.list(account_id=site.account)} == flagged  # detections_only defaults to true
    for label, mid in site.ids.items():
        for ref in (mid, mid.split("-")[0]):
            got = cf.get(ref, account_id=site.account)
            _check_message(got, site, label)
            raw = cf.raw.get(ref, account_id=site.account)
            assert raw.raw.encode("utf-8" if label != "latin1" else "latin-1") == site.files[label]
            trace = cf.trace.get(ref, account_id=site.account)
            assert trace.inbound and trace.inbound.lines
            assert [line.lineno for line in trace.inbound.lines] == list(range(1, len(trace.inbound.lines) + 1))
            assert any("stored as" in (line.message or "") for line in trace.inbound.lines)
            det = cf.detections.get(ref, account_id=site.account)
            assert det.headers and any(h.name.lower() == "subject" for h in det.headers)
    det = cf.detections.get(site.ids["attachment"], account_id=site.account)
    assert [(a.name, a.sha256) for a in det.attachments] == [("invoice-4471.pdf", hashlib.sha256(PDF).hexdigest())]
    assert [lk.href for lk in det.links] == ["https://pay.vendor.example/inv/4471"]
    got = cf.get(site.ids["attachment"], account_id=site.account)
    assert got.to == ["bob@corp.example"] and got.to_name == ["Bob Example"]
    assert [a.operation for a in got.action_log] == ["MOVE", "PREVIEW"]
    assert set(got.post_delivery_operations or []) == {"MOVE", "PREVIEW"}
    got = cf.get(site.ids["encoded"], account_id=site.account)
    assert got.subject == "R\u00e9sum\u00e9 for the role" and got.from_name == "Zo\u00eb"
    got = cf.get(site.ids["latin1"], account_id=site.account)
    assert got.subject == "Ol\u00e1 amigo" and got.from_name == "Jos\u00e9"
    got = cf.get(site.ids["received"], account_id=site.account)
    assert (got.smtp_helo_server_ip, got.smtp_previous_hop_ip) == ("198.51.100.7", "203.0.113.9")
    found = cf.list(account_id=site.account, detections_only=False, query="invoice-4471.pdf")
    assert [m.id for m in found] == [site.ids["attachment"]]
    found = cf.list(account_id=site.account, detections_only=False, sender="vendor.example", subject="invoice")
    assert [m.id for m in found] == [site.ids["attachment"]]
    found = cf.list(account_id=site.account, detections_only=False, smtp_helo_ip="198.51.100.7")
    assert [m.id for m in found] == [site.ids["received"]]
    found = list(
        cf.list(
            account_id=site.account, detections_only=False, message_action="MOVED", extra_query={"action_log": "true"}
        )
    )
    assert [m.id for m in found] == [site.ids["attachment"]]
    assert [a.operation for a in found[0].action_log] == ["MOVE", "PREVIEW"]


def test_sdk5_action_log_route(site: Site) -> None:
    """SDK 5.9 has no method for the action_log route; the SDK's generic request API reads it."""
    client = site.client()
    body = client.get(
        f"/accounts/{site.account}/email-security/investigate/{site.ids['attachment']}/action_log",
        cast_to=httpx.Response,
    ).json()
    assert body["success"] is True
    assert [(e["operation"], e["properties"]["folder"]) for e in body["result"]] == [
        ("MOVE", "JunkEmail"),
        ("PREVIEW", None),
    ]
    assert all(e["completed_at"] == e["completed_timestamp"] for e in body["result"])
    empty = httpx.get(site.url(f"/{site.ids['encoded']}/action_log"), headers=site.headers).json()
    assert empty["result"] == []


def test_percent_encoded_investigate_id(site: Site) -> None:
    mid = site.ids["attachment"]
    for ref in (quote(mid, safe=""), mid.replace(":", "%3a"), mid):
        r = httpx.get(site.url(f"/{ref}"), headers=site.headers)
        assert r.status_code == 200, (ref, r.text)
        assert r.json()["result"]["id"] == mid
        r = httpx.get(site.url(f"/{ref}/raw"), headers=site.headers)
        assert r.status_code == 200 and r.json()["result"]["raw"].encode() == site.files["attachment"]


@pytest.mark.parametrize("kind", ["token", "key"])
def test_sdk4_every_read_method(site: Site, kind: str) -> None:
    refs = [site.ids["attachment"].split("-")[0], site.ids["latin1"]]
    creds: dict[str, Any] = {"token": site.token} if kind == "token" else {"email": site.email, "key": site.key}
    out = run_sdk4(
        {
            "mode": "read",
            "base_url": site.live.base_url,
            "account": site.account,
            "refs": refs,
            "query": "Lunch",
            **creds,
        }
    )
    assert out["version"].startswith("4.3")
    assert {m["id"] for m in out["list"]} == set(site.ids.values())
    assert all(m["postfix_id"] == m["id"].split("-")[0] for m in out["list"])
    att = out["get"][refs[0]]
    assert att["message"]["id"] == site.ids["attachment"]
    assert att["raw"].encode() == site.files["attachment"]
    assert [a["sha256"] for a in att["detections"]["attachments"]] == [hashlib.sha256(PDF).hexdigest()]
    assert att["trace"]["inbound"]["lines"][0]["lineno"] == 1
    latin = out["get"][refs[1]]
    assert latin["raw"].encode("latin-1") == site.files["latin1"]
    assert out["query"] == [site.ids["received"]]


def test_paging_sdk_and_cursor(site: Site, tmp_path: Path) -> None:
    """A smaller paging run on both databases (the 2,500-message run is in test_api_paging.py)."""
    sub = site.live.create_account("paging")
    token = site.live.create_token(sub, read_only=True)
    ids = fill(site.live, sub, 130)
    cf = sdk_client(site.live.base_url, token)
    seen = [m.id for m in cf.email_security.investigate.list(account_id=sub, detections_only=False, per_page=25)]
    assert len(seen) == len(set(seen)) == 130 and set(seen) == set(ids)
    assert seen == list(reversed(ids))  # newest first
    pages = []
    params: dict[str, Any] = {"detections_only": "false", "per_page": 40}
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        url = f"{site.live.base_url}/accounts/{sub}/email-security/investigate"
        body = http.get(url, params=params).json()
        pages.append(body)
        while body["result_info"]["next"]:
            body = http.get(url, params={**params, "cursor": body["result_info"]["next"]}).json()
            pages.append(body)
        assert [m["id"] for p in pages for m in p["result"]] == seen
        assert [len(p["result"]) for p in pages] == [40, 40, 40, 10]
        back = pages[-1]
        for expected in reversed(pages[:-1]):
            back = http.get(url, params={**params, "cursor": back["result_info"]["previous"]}).json()
            assert [m["id"] for m in back["result"]] == [m["id"] for m in expected["result"]]
        assert back["result_info"]["previous"] is None
        far = http.get(url, params={**params, "page": 50}).json()
        assert far["success"] is True and far["result"] == []
