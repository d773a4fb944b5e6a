"""One account's searches cannot starve the others: at most `per_account` searches of an account run or wait at
once (the others still get theirs), and every search statement stops at a deadline. SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from mailsec.services import Services
from mailsec.store.search import SearchParams, SearchTooLong, statement_deadline
from mailsec.store.search_jobs import PendingSearch, SearchBusy, SearchService

SLOW = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
    "SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(30)",
}


def test_a_statement_past_its_deadline_is_stopped(services: Services) -> None:
    started = time.monotonic()
    with services.engine.connect() as conn, pytest.raises(SearchTooLong), statement_deadline(conn, 0.3):
        conn.execute(text(SLOW[services.engine.dialect.name])).all()
    assert time.monotonic() - started < 5
    with services.engine.connect() as conn:  # the connection goes back to the pool usable, with no deadline
        assert conn.execute(text("SELECT 1")).scalar_one() == 1


def test_one_accounts_searches_do_not_take_every_worker(services: Services) -> None:
    heavy = services.accounts.create_account("Heavy").id
    light = services.accounts.create_account("Light").id
    searches = SearchService(services.engine, budget_seconds=0.05, workers=1, per_account=1)
    gate = threading.Event()
    searches._pool.submit(gate.wait, 30)  # the worker kept busy: the searches below wait in line
    try:
        first = searches.search(heavy, SearchParams(detections_only=False))
        assert isinstance(first, PendingSearch)  # past its budget: a job
        with pytest.raises(SearchBusy):
            searches.search(heavy, SearchParams(detections_only=False, query="again"))
        other = searches.search(light, SearchParams(detections_only=False))
        assert isinstance(other, PendingSearch)  # another account is not refused: it waits its turn
    finally:
        gate.set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = searches.job(heavy, first.job_id)
        if state is not None and state.status == "done":
            break
        time.sleep(0.05)
    assert state is not None and state.status == "done"
    searches.search(heavy, SearchParams(detections_only=False))  # done: the account may search again
    searches.close()
