"""The receive stage's durable commit without servers: bytes travel in the queue row until the worker has written
the blob, concurrent DATA completions share a commit without one bad message failing its neighbours, and with
SQLite the queue lives in its own file (rows an older version left in the main database are adopted)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mailsec.config import load_settings
from mailsec.gateway.receive import GroupCommit, Session, receive
from mailsec.gateway.worker import QueueWorker
from mailsec.services import Services, open_services
from mailsec.store import queue as queue_module
from mailsec.store.queue import Finish, NewItem, QueueRepo, now_us
from mailsec.store.schema import queue
from support import make_eml


def _bcc_account(services: Services) -> str:
    account = services.accounts.create_account("Copies").id
    services.domains.add(account, "copies.example", mode="BCC", next_hop="", verified=True)
    return account


def test_raw_bytes_ride_in_the_row_until_the_blob_is_written(services: Services) -> None:
    account = _bcc_account(services)
    raw = make_eml(subject="in the row", to="ann@copies.example", body="hello\n")
    accepted = receive(services, raw, "bob@sender.example", ["ann@copies.example"], Session(client_ip="127.0.0.1"))
    assert [a.account_id for a in accepted] == [account]
    repo = QueueRepo(services.engine)
    item = repo.get(accepted[0].postfix_id)
    assert item is not None and item.raw == raw
    assert not services.blobs.exists(item.raw_sha256)  # one durable write before 250: the row
    worker = QueueWorker(services, threads=1)
    for claimed in repo.claim("test:1", 8, 10**9):
        worker.run_item(claimed)
    done = repo.get(accepted[0].postfix_id)
    assert done is not None and done.state == "done" and done.raw == raw  # until the blob is synced
    assert services.blobs.get(item.raw_sha256) == raw
    worker.sync_blobs()
    synced = repo.get(accepted[0].postfix_id)
    assert synced is not None and synced.raw is None
    assert services.messages.get(account, accepted[0].postfix_id) is not None


def test_group_commit_shares_a_transaction_and_isolates_a_bad_message(services: Services) -> None:
    account = _bcc_account(services)
    repo = QueueRepo(services.engine)
    gate = threading.Event()
    calls: list[int] = []
    real_enqueue = repo.enqueue

    def slow_enqueue(items: list[NewItem]) -> None:
        calls.append(len(items))
        if len(calls) == 1:
            gate.wait(10)  # the first commit is "syncing" while the next messages arrive
        real_enqueue(items)

    repo.enqueue = slow_enqueue  # type: ignore[method-assign]
    committer = GroupCommit(repo)

    def item(pid: str) -> NewItem:
        return NewItem(pid, account, "0" * 64, {"mail_from": "", "rcpt_to": ["x@copies.example"]}, b"x")

    try:
        first = committer.submit([item("GCFIRST0001")])
        while not calls:
            threading.Event().wait(0.01)
        waiting = [committer.submit([item(f"GCWAIT{i:05d}")]) for i in range(4)]
        duplicate = committer.submit([item("GCFIRST0001")])  # same postfix_id: this one cannot commit
        gate.set()
        first.result(10)
        for fut in waiting:
            fut.result(10)
        with pytest.raises(Exception):  # noqa: B017 - the driver's integrity error, whatever its class
            duplicate.result(10)
    finally:
        committer.stop()
    assert calls[1] == 5  # the four good messages and the bad one arrived during the first commit: one batch
    for pid in ["GCFIRST0001", *(f"GCWAIT{i:05d}" for i in range(4))]:
        assert repo.get(pid) is not None


def test_sqlite_queue_has_its_own_file_and_adopts_old_rows(tmp_path: Path) -> None:
    db = tmp_path / "data" / "mailsec.db"
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data", database_url=f"sqlite:///{db}"))
    try:
        account = _bcc_account(services)
        with services.engine.begin() as conn:  # a row left in the main database by an older version
            conn.execute(
                insert(queue).values(
                    postfix_id="OLDROW00001", account_id=account, raw_sha256="0" * 64, envelope_json="{}",
                    state="queued", attempts=0, next_attempt_us=0, created_us=0, updated_us=0, data_json="{}",
                )
            )  # fmt: skip
        queue_module.dispose_queue_engine(services.engine)  # as a fresh process would find it
        repo = QueueRepo(services.engine)
        assert (tmp_path / "data" / "mailsec-queue.db").exists()
        assert repo.engine is not services.engine
        adopted = repo.get("OLDROW00001")
        assert adopted is not None and adopted.state == "queued"
        with services.engine.connect() as conn:
            assert conn.execute(select(queue.c.id)).all() == []
        queue_module.dispose_queue_engine(services.engine)
        assert QueueRepo(services.engine).counts() == {"queued": 1}  # adopting twice copies nothing twice
    finally:
        services.close()


def test_queue_depth_by_state_and_oldest_age(services: Services) -> None:
    """What /metrics reports of the queue, on SQLite and PostgreSQL: rows not done by state, and the age of the
    oldest one still to be worked on (a failed row, kept for the record, does not count as waiting)."""
    repo = QueueRepo(services.engine)
    assert repo.depth() == ({}, None)
    account = services.accounts.create_account("Depth").id
    repo.enqueue([NewItem(f"DEPTH{i:010d}", account, "0" * 64, {"rcpt_to": ["a@b.example"]}) for i in range(4)])
    time.sleep(0.05)
    items = repo.claim("test-worker", 4, 60_000_000)
    assert len(items) == 4
    repo.finish_many(
        [
            Finish(items[0].id, "done"),
            Finish(items[1].id, "deferred", attempts=1, next_attempt_us=now_us() + 60_000_000),
            Finish(items[2].id, "failed"),
        ]
    )
    counts, oldest = repo.depth()
    assert counts.get("deferred") == 1 and counts.get("failed") == 1 and "done" not in counts
    assert sum(counts.values()) == 3, counts  # the fourth is still claimed: queued
    assert oldest is not None and 0.05 <= oldest < 60
