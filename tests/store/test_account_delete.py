"""Deleting an account takes everything that is its, the queue rows included: with SQLite they live in a file of
their own (`<db>-queue.db`) that has no foreign key to cascade from."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailsec import pipeline
from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.model import Envelope
from mailsec.services import Services, open_services
from mailsec.store.queue import NewItem, QueueRepo
from support import make_eml


def _queue_some(services: Services, account_id: str, n: int) -> None:
    raw = make_eml(subject="queued")
    QueueRepo(services.engine).enqueue(
        NewItem(f"{account_id[:6]}q{i}", account_id, "0" * 64, {"rcpt_to": ["a@x.example"]}, raw) for i in range(n)
    )


def _queued(services: Services, account_id: str) -> int:
    from sqlalchemy import func, select

    from mailsec.store.schema import queue

    repo = QueueRepo(services.engine)
    with repo.engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(queue.c.account_id == account_id)).scalar_one())


def test_delete_account_removes_its_queue_rows_and_data(services: Services) -> None:
    gone = services.accounts.create_account("Gone").id
    kept = services.accounts.create_account("Kept").id
    services.domains.add(gone, "gone.example", mode="DIRECT", next_hop="lmtp://127.0.0.1:24", verified=True)
    stored = pipeline.process_message(services, make_eml(subject="stored"), gone, Envelope(rcpt_to=("a@gone.example",)))
    _queue_some(services, gone, 3)
    _queue_some(services, kept, 2)
    assert _queued(services, gone) == 3

    assert services.accounts.delete_account(gone)
    assert services.accounts.get_account(gone) is None
    assert _queued(services, gone) == 0
    assert _queued(services, kept) == 2  # other accounts' mail stays queued
    assert services.messages.get_by_pk(stored.pk) is None  # cascade in the main database
    assert services.domains.owner_of("a@gone.example") is None
    assert not services.accounts.delete_account(gone)  # a second time: nothing there


def test_cli_account_delete(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MAILSEC_DATA_DIR": str(tmp_path / "data"), "MAILSEC_DATABASE_URL": "", "MAILSEC_CONFIG": ""}
    created = runner.invoke(app, ["account", "create", "Doomed"], env=env)
    account = created.stdout.strip().splitlines()[-1]
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data"))
    try:
        _queue_some(services, account, 2)
        refused = runner.invoke(app, ["account", "delete", account], env=env)
        assert refused.exit_code != 0 and _queued(services, account) == 2  # without --yes nothing happens
        done = runner.invoke(app, ["account", "delete", account, "--yes"], env=env)
        assert done.exit_code == 0, done.stderr
        assert _queued(services, account) == 0 and services.accounts.get_account(account) is None
        assert runner.invoke(app, ["account", "delete", account, "--yes"], env=env).exit_code != 0
    finally:
        services.close()
