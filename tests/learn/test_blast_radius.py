"""Blast radius: the stored messages of the last days that look like a reclassified one, which of them would change,
and applying it (a re-scan that gives them the analyst's verdict); through `learn.blast_radius`, the extension route
`GET/POST /investigate/{id}/similar` (authenticated, scoped, write scope to apply) and `mailsec reclassify-similar`."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
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
from support import LiveServer, make_eml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "mailbox"))

from gw_support import Dovecot, make_dovecot
from move_support import add_imap

from mailsec.actions.bulk import BulkJobRunner
from mailsec.gateway.deliver import deliver, parse_next_hop
from mailsec.mailbox import registry
from mailsec.model import DeliveryMode, Envelope
from mailsec.pipeline import Processed, process_message

D = Disposition
BOB = "bob@corp.example"


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
    assert all(old_ != "SPAM" and new == "SPAM" for _, old_, new in done.changes)
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
    assert all(c["old_disposition"] != "SPAM" and c["new_disposition"] == "SPAM" for c in changed)
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


@pytest.fixture(scope="module")
def dovecot() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="mailsec-blast-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes read the users file
    dv = make_dovecot(root, [BOB])
    yield dv
    registry.close_all()
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


def _in_mailbox(services: Services, dv: Dovecot, account: str, body: str, subject: str, sender: str) -> Processed:
    """A message the mailbox server delivered to bob, of which mailsec scanned a BCC copy."""
    raw = make_eml(subject=subject, sender=sender, to=BOB, body=body)
    assert deliver(parse_next_hop(dv.lmtp_url), sender, [BOB], raw)[BOB].ok
    envelope = Envelope(mail_from=sender, rcpt_to=(BOB,))
    return process_message(services, raw, account, envelope=envelope, mode=DeliveryMode.BCC)


def _folder_of(dv: Dovecot, subject: str) -> list[str]:
    with dv.imap(BOB) as c:
        out = []
        for _, _, name in c.list_folders():
            c.select_folder(name, readonly=True)
            out += [name] * len(c.search(["SUBJECT", subject]))
        return out


def test_the_blast_radius_move_job_runs_and_moves_the_similar_copies(services: Services, dovecot: Dovecot) -> None:
    account = services.accounts.create_account("Corp").id
    services.domains.add(account, "corp.example", mode="BCC", next_hop="", verified=True)
    add_imap(services, account, dovecot.imap_port)
    tag = uuid.uuid4().hex[:8]  # the Dovecot is shared by the test's sqlite and postgresql runs
    first = _in_mailbox(services, dovecot, account, PROMO, f"Offer first {tag}", "sales@shop.example")
    copies = [
        _in_mailbox(services, dovecot, account, near_copy(PROMO).replace("garden", kind), f"Offer {kind} {tag}", sender)
        for kind, sender in (("garden", "s0@x.example"), ("patio", "s1@x.example"), ("terrace", "s2@x.example"))
    ]
    club = _in_mailbox(services, dovecot, account, CLUB, f"Club news {tag}", "club@garden.example")
    reclassify(services, account, first, D.SPAM, "sub-1")
    done = learn.apply_similar(services, account, first.pk, requested_by="soc@corp.example")
    assert done.bulk_job_id is not None and sorted(c[0] for c in done.changes) == sorted(p.id for p in copies)
    assert all(_folder_of(dovecot, f"Offer {kind} {tag}") == ["INBOX"] for kind in ("garden", "patio", "terrace"))

    runner = BulkJobRunner(services, poll_seconds=0.1)  # as `serve` runs it
    runner.start()
    repo = BulkJobRepo(services.engine)
    try:
        deadline = time.monotonic() + 60
        while (job := repo.get(account, done.bulk_job_id)) is not None and job.status != "COMPLETED":
            assert time.monotonic() < deadline, job
            time.sleep(0.1)
    finally:
        runner.stop()
    assert job is not None and job.counts == {"COMPLETED": 3}
    for kind in ("garden", "patio", "terrace"):
        assert _folder_of(dovecot, f"Offer {kind} {tag}") == ["Junk"]
    assert _folder_of(dovecot, f"Offer first {tag}") == ["INBOX"]  # the analyst's own message: not in its radius
    assert _folder_of(dovecot, f"Club news {tag}") == ["INBOX"]
    for p in copies:
        stored = services.messages.get(account, p.id)
        assert stored is not None and stored.delivery_status == "moved"
        log = services.messages.actions([p.pk])[p.pk]
        assert [(a.operation, a.folder, a.requested_by, a.status) for a in log if a.operation == "MOVE"] == [
            ("MOVE", "JunkEmail", "soc@corp.example", "completed")
        ]
    assert services.messages.actions([club.pk])[club.pk] == []
