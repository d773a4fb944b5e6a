"""Bulk jobs and bulk move on a live `mailsec serve` with real Dovecot mailboxes: every bulk method of the official
SDK 5.9 in strict mode, a job by search that survives a SIGKILL of the server mid-job and finishes after the restart
without acting twice, a cancel, and a 1000-id bulk move."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from cloudflare import Cloudflare
from gw_support import Dovecot
from move_support import add_imap, deliver_many

from mailsec.config import load_settings
from mailsec.services import Services, open_services
from support import LiveServer, make_live_server

ANN, BOB, CAT = "ann@corp.example", "bob@corp.example", "cat@corp.example"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, mail_dovecot: Dovecot) -> Iterator[tuple[LiveServer, Services, str]]:
    root = tmp_path_factory.mktemp("bulkapi")
    server = make_live_server(root, f"sqlite:///{root / 'mailsec.db'}")
    services = open_services(load_settings(env={}, data_dir=root, database_url=server.database_url))
    account = services.accounts.create_account("Corp bulk").id
    services.domains.add(account, "corp.example", mode="DIRECT", next_hop=mail_dovecot.lmtp_url, verified=True)
    add_imap(services, account, mail_dovecot.imap_port)
    server.start()
    yield server, services, account
    server.stop()
    services.close()


def _count(dv: Dovecot, user: str, folder: str, marker: str) -> int:
    with dv.imap(user) as c:
        c.select_folder(folder, readonly=True)
        return len(c.search(["SUBJECT", marker]))


def _wait(cf: Cloudflare, account: str, job_id: str, statuses: set[str], timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = cf.email_security.investigate.bulk.get(job_id, account_id=account)
        if job.status in statuses:
            return job
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {job.status}")


def test_sdk59_bulk_job_survives_a_sigkill(site: tuple[LiveServer, Services, str], mail_dovecot: Dovecot) -> None:
    server, services, account = site
    token = services.accounts.create_token(account)
    marker = uuid.uuid4().hex[:10]
    messages = deliver_many(services, account, [ANN, BOB], 300, subject=marker)
    cf = Cloudflare(api_token=token, base_url=server.base_url, _strict_response_validation=True, max_retries=0)
    bulk = cf.email_security.investigate.bulk
    job = bulk.create(
        account_id=account, action="MOVE", destination="JunkEmail", comment="wave 7",
        search_params={"query": marker, "detections_only": False},
    )  # fmt: skip
    assert job.status in ("PENDING", "DISCOVERING", "PROCESSING") and job.action_type == "MOVE"
    # kill the server while it is moving (some done, some not)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        got = bulk.get(job.job_id, account_id=account)
        if got.messages_successful >= 100:
            break
        time.sleep(0.05)
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    with services.engine.connect() as conn:  # what the kill left: a job still running, held by a dead process
        from sqlalchemy import text

        status, holder = conn.execute(
            text("SELECT status, claimed_by FROM bulk_jobs WHERE id = :i"), {"i": job.job_id}
        ).one()
    assert status == "PROCESSING" and holder is not None
    server.start()
    done = _wait(cf, account, job.job_id, {"COMPLETED", "FAILED"})
    assert done.status == "COMPLETED", done  # type: ignore[attr-defined]
    assert (done.total_messages_discovered, done.messages_successful) == (300, 300)  # type: ignore[attr-defined]
    for user in (ANN, BOB):  # every copy moved, none twice
        assert _count(mail_dovecot, user, "Junk", marker) == 300 and _count(mail_dovecot, user, "INBOX", marker) == 0
    listed = list(bulk.list(account_id=account, status="COMPLETED", per_page=10))
    assert job.job_id in [j.job_id for j in listed]
    outcomes = list(bulk.messages.list(job.job_id, account_id=account, per_page=100))
    assert len(outcomes) == 300 and {m.status for m in outcomes} == {"COMPLETED"}
    assert {m.postfix_id for m in outcomes} == {m.postfix_id for m in messages}
    assert all(m.action_params.client_recipient in (ANN, BOB) for m in outcomes)  # type: ignore[union-attr]
    deleted = bulk.delete(job.job_id, account_id=account)
    assert deleted.id == job.job_id
    with pytest.raises(Exception, match=r"404|Could not route"):
        bulk.get(job.job_id, account_id=account)


def test_sdk59_cancel(site: tuple[LiveServer, Services, str], mail_dovecot: Dovecot) -> None:
    server, services, account = site
    token = services.accounts.create_token(account)
    marker = uuid.uuid4().hex[:10]
    deliver_many(services, account, [CAT], 400, subject=marker)
    cf = Cloudflare(api_token=token, base_url=server.base_url, _strict_response_validation=True, max_retries=0)
    bulk = cf.email_security.investigate.bulk
    job = bulk.create(account_id=account, action="MOVE", destination="DeletedItems",
                      search_params={"query": marker, "detections_only": False})  # fmt: skip
    deadline = time.monotonic() + 60
    while bulk.get(job.job_id, account_id=account).messages_successful < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    cancelled = cf.email_security.investigate.bulk.cancel.create(job.job_id, account_id=account)
    assert cancelled.job_id == job.job_id
    done = _wait(cf, account, job.job_id, {"CANCELLED", "COMPLETED"})
    assert done.status == "CANCELLED"  # type: ignore[attr-defined]
    moved, left = done.messages_successful, done.messages_cancelled  # type: ignore[attr-defined]
    assert moved + left == 400 and 0 < moved < 400
    assert _count(mail_dovecot, CAT, "Trash", marker) == moved and _count(mail_dovecot, CAT, "INBOX", marker) == left
    pending = list(bulk.messages.list(job.job_id, account_id=account, status="CANCELLED", per_page=1000))
    assert len(pending) == left


def test_bulk_move_of_1000_ids(site: tuple[LiveServer, Services, str], mail_dovecot: Dovecot) -> None:
    server, services, account = site
    token = services.accounts.create_token(account)
    marker = uuid.uuid4().hex[:10]
    messages = [m for user in (ANN, BOB, CAT) for m in deliver_many(services, account, [user], 334, subject=marker)]
    ids = [m.id for m in messages[:1000]]
    base = f"{server.base_url}/accounts/{account}/email-security/investigate"
    started = time.monotonic()
    r = httpx.post(f"{base}/move", json={"destination": "JunkEmail", "ids": ids},
                   headers={"Authorization": f"Bearer {token}"}, timeout=600)  # fmt: skip
    elapsed = time.monotonic() - started
    assert r.status_code == 200, r.text[:500]
    items = r.json()["result"]
    assert len(items) == 1000 and all(i["success"] and i["status"] == "moved" for i in items)
    assert sum(_count(mail_dovecot, u, "Junk", marker) for u in (ANN, BOB, CAT)) == 1000
    print(f"1000-id bulk move: {elapsed:.1f} s")
