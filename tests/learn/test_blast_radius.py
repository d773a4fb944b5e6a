"""Blast radius: the stored messages of the last days that look like a reclassified one, which of them would change,
and applying it (a re-scan that gives them the analyst's verdict); through `learn.blast_radius`, the extension route
`GET/POST /investigate/{id}/similar` (authenticated, scoped, write scope to apply) and `mailsec reclassify-similar`."""

from __future__ import annotations

import httpx
from learn_helpers import CLUB, PROMO, near_copy, reclassify, store
from sqlalchemy import update
from typer.testing import CliRunner

from mailsec import learn
from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.learn.blast import DAY_US
from mailsec.model import Disposition
from mailsec.services import Services, open_services
from mailsec.store.bulk_jobs import BulkJobRepo
from mailsec.store.integrations import IntegrationRepo
from mailsec.store.schema import learn_sketches, messages
from support import LiveServer

D = Disposition


def _age(services: Services, pk: int, days: int) -> None:
    """Pretend the message was scanned `days` ago."""
    with services.engine.begin() as conn:
        for table, key in ((messages, messages.c.pk), (learn_sketches, learn_sketches.c.message_pk)):
            conn.execute(update(table).where(key == pk).values(scanned_us=table.c.scanned_us - days * DAY_US))


def _campaign(services: Services, account: str) -> tuple[object, list[object], object, object]:
    first = store(services, account, PROMO)
    copies = [
        store(
            services, account, near_copy(PROMO).replace("garden", kind), subject=f"Offer {i}", sender=f"s{i}@x.example"
        )
        for i, kind in enumerate(("garden", "patio", "terrace"))
    ]
    old = store(services, account, near_copy(PROMO) + " Last year.", subject="Old offer", sender="old@x.example")
    _age(services, old.pk, 40)
    club = store(services, account, CLUB, subject="Club", sender="club@garden.example")
    return first, copies, old, club


def test_blast_radius_and_apply(services: Services) -> None:
    account = services.accounts.create_account("Corp").id
    first, copies, old, club = _campaign(services, account)
    outcome = reclassify(services, account, first, D.SPAM, "sub-1")
    assert outcome.similar == 3 and sorted(outcome.would_change) == sorted(p.id for p in copies)

    radius = learn.blast_radius(services, account, first.pk)
    assert radius.requested is D.SPAM and {s.id for s in radius.similar} == {p.id for p in copies}
    assert old.id not in {s.id for s in radius.similar} and club.id not in {s.id for s in radius.similar}
    assert {s.id for s in learn.blast_radius(services, account, first.pk, days=60).similar} >= {old.id}
    done = learn.apply_similar(services, account, first.pk)
    assert sorted(c[0] for c in done.changes) == sorted(p.id for p in copies)
    assert all(old_ == "NONE" and new == "SPAM" for _, old_, new in done.changes)
    assert done.bulk_job_id is None  # no mailbox integration: nothing to move
    assert learn.blast_radius(services, account, first.pk).would_change == []
    # another account's messages are never in it, nor reachable
    other = services.accounts.create_account("Other").id
    store(services, other, near_copy(PROMO), sender="z@x.example")
    assert len(learn.blast_radius(services, account, first.pk).similar) == 3


def test_similar_route_and_cli(live_server: LiveServer) -> None:
    account = live_server.create_account("Corp")
    token, reader = live_server.create_token(account), live_server.create_token(account, read_only=True)
    foreign = live_server.create_token(live_server.create_account("Foreign"))
    services = open_services(
        load_settings(env={}, data_dir=live_server.data_dir, database_url=live_server.database_url)
    )
    try:
        first, copies, _old, _club = _campaign(services, account)
        reclassify(services, account, first, D.SPAM, "sub-1")
    finally:
        services.close()
    base = f"{live_server.base_url}/accounts/{account}/email-security/investigate"
    as_reader = httpx.Client(headers={"Authorization": f"Bearer {reader}"}, timeout=60)
    got = as_reader.get(f"{base}/{first.id}/similar")
    assert got.status_code == 200, got.text
    result = got.json()["result"]
    assert result["requested_disposition"] == "SPAM" and result["similar_count"] == 3
    assert result["would_change_count"] == 3 and all(s["would_change"] for s in result["similar"])
    assert (
        as_reader.get(f"{base}/{first.postfix_id}/similar", params={"days": 60}).json()["result"]["similar_count"] == 4
    )
    assert as_reader.get(f"{base}/{first.id}/similar", params={"days": 0}).status_code == 400
    assert as_reader.get(f"{base}/nosuchmessage/similar").status_code == 404
    assert as_reader.post(f"{base}/{first.id}/similar", json={}).status_code == 403
    stranger = httpx.get(f"{base}/{first.id}/similar", headers={"Authorization": f"Bearer {foreign}"}, timeout=60)
    assert stranger.status_code in (401, 403) and stranger.json()["success"] is False
    assert httpx.get(f"{base}/{first.id}/similar", timeout=60).status_code in (400, 401, 403)

    runner = CliRunner()
    env = {"MAILSEC_DATA_DIR": str(live_server.data_dir), "MAILSEC_DATABASE_URL": live_server.database_url,
           "MAILSEC_CONFIG": ""}  # fmt: skip
    shown = runner.invoke(app, ["reclassify-similar", "--account", account, first.id], env=env)
    assert shown.exit_code == 0, (shown.stdout, shown.stderr)
    assert "similar: 3; would change to SPAM: 3" in shown.stdout

    applied = httpx.post(f"{base}/{first.id}/similar", json={"days": 30}, headers={"Authorization": f"Bearer {token}"},
                         timeout=120)  # fmt: skip
    assert applied.status_code == 200, applied.text
    assert applied.json()["result"]["bulk_job_id"] is None
    changed = applied.json()["result"]["changed"]
    assert sorted(c["id"] for c in changed) == sorted(p.id for p in copies)
    assert all(c["old_disposition"] == "NONE" and c["new_disposition"] == "SPAM" for c in changed)
    after = runner.invoke(app, ["reclassify-similar", "--account", account, first.id, "--apply"], env=env)
    assert "would change to SPAM: 0" in after.stdout and "changed: 0" in after.stdout


def test_apply_moves_through_a_bulk_job_when_mailboxes_exist(services: Services) -> None:
    account = services.accounts.create_account("Corp").id
    IntegrationRepo(services.engine).add(account, "corp.example", "imap", "imap://127.0.0.1:1", {}, b"sealed")
    first, copies, _old, _club = _campaign(services, account)
    reclassify(services, account, first, D.SPAM, "sub-1")
    done = learn.apply_similar(services, account, first.pk, requested_by="soc@corp.example")
    assert done.bulk_job_id is not None
    repo = BulkJobRepo(services.engine)
    job = repo.get(account, done.bulk_job_id)
    assert job is not None and job.action == "MOVE" and job.status == "PROCESSING"
    assert job.params["destination"] == "JunkEmail" and job.requested_by == "soc@corp.example"
    assert {m.message_pk for m in repo.messages(job.id, limit=100)} == {p.pk for p in copies}
    assert all(m.status == "PENDING" for m in repo.messages(job.id, limit=100))
