"""The move routes on a live `mailsec serve`, driven by the official SDK 5.9 and 4.3 in strict mode, moving mail in
a real Dovecot; the bad requests get a 400 in the standard envelope, a read-only or foreign credential a 403."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cloudflare import Cloudflare
from gw_support import Dovecot
from move_support import add_imap, deliver_many, folders_holding

from mailsec.config import load_settings
from mailsec.services import Services, open_services
from support import LiveServer, make_live_server

ANN, BOB, CAT = "ann@corp.example", "bob@corp.example", "cat@corp.example"
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mail_dovecot: Dovecot) -> Iterator[tuple[LiveServer, Services]]:
    root = tmp_path_factory.mktemp("moveapi")
    server = make_live_server(root, f"sqlite:///{root / 'mailsec.db'}")
    services = open_services(load_settings(env={}, data_dir=root, database_url=server.database_url))
    server.start()
    yield server, services
    server.stop()
    services.close()


@pytest.fixture(scope="module")
def corp(site: tuple[LiveServer, Services], mail_dovecot: Dovecot) -> tuple[str, str]:
    _, services = site
    account = services.accounts.create_account("Corp API").id
    services.domains.add(account, "corp.example", mode="DIRECT", next_hop=mail_dovecot.lmtp_url, verified=True)
    add_imap(services, account, mail_dovecot.imap_port)  # encrypted with the server's data directory key
    return account, services.accounts.create_token(account)


def test_sdk59_strict_move_and_bulk_move(
    site: tuple[LiveServer, Services], corp: tuple[str, str], mail_dovecot: Dovecot
) -> None:
    server, services = site
    account, token = corp
    one, two, three = deliver_many(services, account, [ANN, BOB], 3)
    cf = Cloudflare(api_token=token, base_url=server.base_url, _strict_response_validation=True, max_retries=0)
    items = list(cf.email_security.investigate.move.create(one.id, account_id=account, destination="JunkEmail"))
    assert sorted((i.recipient, i.success, i.status, i.item_count, i.destination) for i in items) == [
        (ANN, True, "moved", 1, "JunkEmail"),
        (BOB, True, "moved", 1, "JunkEmail"),
    ]
    assert all(i.completed_at is not None and i.message_id == one.id for i in items)
    assert folders_holding(mail_dovecot, ANN, str(one.internet_message_id)) == ["Junk"]
    bulk = list(
        cf.email_security.investigate.move.bulk(
            account_id=account, destination="DeletedItems", ids=[one.id, two.id, three.postfix_id]
        )
    )
    assert len(bulk) == 6 and all(i.success and i.status == "moved" for i in bulk)
    for m in (one, two, three):
        assert folders_holding(mail_dovecot, BOB, str(m.internet_message_id)) == ["Trash"]
    again = list(cf.email_security.investigate.move.bulk(account_id=account, destination="DeletedItems", ids=[two.id]))
    assert {i.status for i in again} == {"already_in_destination"} and all(i.success for i in again)
    # the moved mail reads back in the strict SDK: its status, its operations, the search by action
    got = cf.email_security.investigate.get(one.id, account_id=account)
    assert got.delivery_status == ["moved"] and got.post_delivery_operations == ["MOVE"]
    found = cf.email_security.investigate.list(account_id=account, message_action="MOVED", detections_only=False)
    assert {m.id for m in found} == {one.id, two.id, three.id}
    assert all(m.delivery_status == ["moved"] for m in found)
    base = f"{server.base_url}/accounts/{account}/email-security/investigate"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        log = http.get(f"{base}/{one.id}/action_log").json()["result"]
    assert [(e["operation"], e["properties"]["folder"]) for e in log][:2] == [
        ("MOVE", "JunkEmail"),
        ("MOVE", "DeletedItems"),
    ]


def test_sdk43_strict_move_and_bulk_move(
    site: tuple[LiveServer, Services], corp: tuple[str, str], mail_dovecot: Dovecot
) -> None:
    sdk4 = os.environ.get("MAILSEC_SDK4_PATH", "")
    if not sdk4 or not (Path(sdk4) / "cloudflare").is_dir():
        pytest.skip("SDK 4.3 not installed (MAILSEC_SDK4_PATH; make test sets it)")
    server, services = site
    account, token = corp
    one, two = deliver_many(services, account, [CAT], 2)
    request = {"token": token, "base_url": server.base_url, "account": account, "destination": "JunkEmail",
               "one": one.postfix_id, "many": [one.postfix_id, two.postfix_id]}  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([sdk4, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, str(HERE / "sdk4_move.py")], input=json.dumps(request), capture_output=True, text=True,
        env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["version"].startswith("4.3")
    assert [(i["recipient"], i["status"], i["operation"]) for i in out["one"]] == [(CAT, "moved", "MOVE")]
    assert sorted(i["status"] for i in out["many"]) == ["already_in_destination", "moved"]
    assert folders_holding(mail_dovecot, CAT, str(two.internet_message_id)) == ["Junk"]
    assert out["got"]["delivery_status"] == ["moved"] and out["got"]["post_delivery_operations"] == ["MOVE"]
    assert {one.id, two.id} <= set(out["moved_ids"])


def test_bad_requests_and_scopes(site: tuple[LiveServer, Services], corp: tuple[str, str]) -> None:
    server, services = site
    account, token = corp
    [message] = deliver_many(services, account, [ANN], 1)
    base = f"{server.base_url}/accounts/{account}/email-security/investigate"
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for body, pointer in [
            ({"destination": "Elsewhere", "ids": [message.id]}, "destination"),
            ({"destination": "JunkEmail"}, "/ids"),
            ({"destination": "JunkEmail", "ids": [f"x{n}" for n in range(1001)]}, "/ids"),
        ]:
            r = http.post(f"{base}/move", json=body)
            assert r.status_code == 400 and r.json()["success"] is False, r.text
            assert pointer in json.dumps(r.json()["errors"])
        r = http.post(f"{base}/AAAAAAAAAAAAAAA/move", json={"destination": "JunkEmail"})
        assert r.status_code == 404 and r.json()["errors"][0]["code"] >= 1000
    read_only = services.accounts.create_token(account, can_write=False)
    r = httpx.post(f"{base}/move", json={"destination": "JunkEmail", "ids": [message.id]},
                   headers={"Authorization": f"Bearer {read_only}"})  # fmt: skip
    assert r.status_code == 403
    other = services.accounts.create_account("Other").id
    foreign = services.accounts.create_token(other)
    r = httpx.post(f"{base}/{message.id}/move", json={"destination": "JunkEmail"},
                   headers={"Authorization": f"Bearer {foreign}"})  # fmt: skip
    assert r.status_code in (403, 404) and r.json()["result"] is None
    stored = services.messages.get(account, message.id)
    assert stored is not None and stored.delivery_status == "delivered"  # nothing was moved
