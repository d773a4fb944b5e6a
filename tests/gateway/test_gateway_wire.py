"""Mail that came through the gateway, in every delivery state (delivered, quarantined, released, deferred), read
with the official SDK in strict mode: 5.9 in this process, 4.3 in a subprocess (list, get, detections, raw, trace)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
import pytest
from gw_support import Dovecot, Gateway
from test_gateway_flow import send, wait_status

from support import ROOT, make_eml, sdk_client

SDK4_SCRIPT = ROOT / "tests" / "api" / "sdk4_client.py"


def run_sdk4(request: dict[str, Any]) -> Any:
    path = os.environ.get("MAILSEC_SDK4_PATH", "")
    if not path or not os.path.isdir(os.path.join(path, "cloudflare")):
        pytest.skip("SDK 4.3 not installed: set MAILSEC_SDK4_PATH (make test does)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([path, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(SDK4_SCRIPT)], input=json.dumps(request), capture_output=True, text=True, env=env,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout)


def test_gateway_mail_in_every_state_reads_in_strict_sdks(
    gateway: Gateway, dovecot: Dovecot, dovecot_flaky: Dovecot
) -> None:
    delivered = send(gateway, make_eml(subject="wire delivered"), ["bob@corp.example"])[0]
    held = send(gateway, make_eml(subject="wire held", to="carol@hold.example"), ["carol@hold.example"])[0]
    released = send(gateway, make_eml(subject="wire released", to="carol@hold.example"), ["carol@hold.example"])[0]
    wait_status(gateway, gateway.account, delivered, {"delivered"})
    wait_status(gateway, gateway.hold_account, held, {"quarantined"})
    release_row = wait_status(gateway, gateway.hold_account, released, {"quarantined"})
    cf_hold = sdk_client(gateway.server.base_url, gateway.hold_token)
    cf_corp = sdk_client(gateway.server.base_url, gateway.token)
    out = list(cf_hold.email_security.investigate.release.bulk(account_id=gateway.hold_account, ids=[released]))
    assert [(r.id, r.delivered) for r in out] == [(release_row.id, ["carol@hold.example"])]
    dovecot_flaky.stop()
    try:
        deferred = send(gateway, make_eml(subject="wire deferred", to="dave@down.example"), ["dave@down.example"])[0]
        wait_status(gateway, gateway.account, deferred, {"deferred"})
        expected = {
            (gateway.account, delivered): ["delivered"],
            (gateway.account, deferred): ["deferred"],
            (gateway.hold_account, held): ["quarantined"],
            (gateway.hold_account, released): ["delivered"],
        }
        for (account, pid), status in expected.items():
            cf = cf_corp if account == gateway.account else cf_hold
            inv = cf.email_security.investigate
            listed = {m.postfix_id: m for m in inv.list(account_id=account, detections_only=False)}
            assert listed[pid].delivery_status == status
            got = inv.get(pid, account_id=account)
            assert got.delivery_status == status and got.is_quarantined is (status == ["quarantined"])
            inv.detections.get(pid, account_id=account)
            trace = inv.trace.get(pid, account_id=account)
            assert trace.outbound is not None and trace.outbound.pending is (status == ["deferred"])
        again = cf_hold.email_security.investigate.get(released, account_id=gateway.hold_account)
        assert again.post_delivery_operations == ["QUARANTINE_RELEASE"]
        for account, token in ((gateway.account, gateway.token), (gateway.hold_account, gateway.hold_token)):
            refs = [pid for (acc, pid) in expected if acc == account]
            answer = run_sdk4(
                {"mode": "read", "base_url": gateway.server.base_url, "token": token, "account": account,
                 "refs": refs, "query": "wire"}
            )  # fmt: skip
            assert answer["version"].startswith("4.3")
            listed_ids = {m["postfix_id"] for m in answer["list"]}
            assert set(refs) <= listed_ids
            for pid in refs:
                assert answer["get"][pid]["message"]["postfix_id"] == pid
                assert answer["get"][pid]["trace"]["outbound"]["pending"] is (pid == deferred)
    finally:
        dovecot_flaky.start()
    wait_status(gateway, gateway.account, deferred, {"delivered"})


def test_release_reports_unknown_ids_beside_the_known_one(gateway: Gateway, dovecot: Dovecot) -> None:
    pid = send(gateway, make_eml(subject="mixed release", to="carol@hold.example"), ["carol@hold.example"])[0]
    row = wait_status(gateway, gateway.hold_account, pid, {"quarantined"})
    unknown = ["0123456789ABCDE", "not-an-id"]
    with httpx.Client(base_url=gateway.server.base_url, headers={"Authorization": f"Bearer {gateway.hold_token}"}) as h:
        r = h.post(
            f"/accounts/{gateway.hold_account}/email-security/investigate/release", json={"ids": [*unknown, pid]}
        )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(i["id"], i["delivered"], i["undelivered"]) for i in body["result"]] == [
        ("0123456789ABCDE", None, None),
        ("not-an-id", None, None),
        (row.id, ["carol@hold.example"], []),
    ]
    assert [(m["code"], m["source"]["pointer"]) for m in body["messages"]] == [(7003, "/ids/0"), (7003, "/ids/1")]
    assert all("0123456789ABCDE" in m["message"] or "not-an-id" in m["message"] for m in body["messages"])
    assert dovecot.queue_ids("carol@hold.example").count(pid) == 1
    # The strict SDK reads the same answer: an unknown id is an item whose outcome lists are null.
    second = send(gateway, make_eml(subject="mixed sdk", to="carol@hold.example"), ["carol@hold.example"])[0]
    wait_status(gateway, gateway.hold_account, second, {"quarantined"})
    cf = sdk_client(gateway.server.base_url, gateway.hold_token)
    items = list(cf.email_security.investigate.release.bulk(account_id=gateway.hold_account, ids=[second, unknown[0]]))
    assert [(i.postfix_id, i.delivered) for i in items] == [(second, ["carol@hold.example"]), (unknown[0], None)]
