"""Searches with a time budget. A search that outlives its budget goes on in the background as a durable job
(a `search_jobs` row); the caller polls it. Jobs left running by a stopped process are run again on start."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Engine, insert, select, update

from mailsec.store.schema import search_jobs
from mailsec.store.search import SearchError, SearchPage, SearchParams, build_conditions, run_search

log = logging.getLogger(__name__)
CLIENT_ERROR = "client: "  # a job that failed on its parameters or bounds (a 400), not on the server


@dataclass(frozen=True)
class PendingSearch:
    job_id: str


@dataclass(frozen=True)
class JobState:
    status: str
    page: SearchPage | None
    error: str | None


def _now_us() -> int:
    return time.time_ns() // 1000


class SearchBusy(Exception):
    """The account already has as many searches running as it may; the caller retries shortly."""


class SearchService:
    """Runs searches on a small shared pool. One account may have at most `per_account` searches running or
    waiting (background jobs included), so its heavy searches never take every worker from the others."""

    def __init__(self, engine: Engine, budget_seconds: float, workers: int = 4, per_account: int = 2) -> None:
        self.engine = engine
        self.budget_seconds = budget_seconds
        self.per_account = max(1, per_account)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="search")
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    def _submit(self, account_id: str, params: SearchParams, now: datetime | None) -> Future[SearchPage]:
        with self._lock:
            if self._running.get(account_id, 0) >= self.per_account:
                raise SearchBusy(f"this account already has {self.per_account} searches running")
            self._running[account_id] = self._running.get(account_id, 0) + 1
        try:
            future = self._pool.submit(run_search, self.engine, account_id, params, now)
        except BaseException:
            self._release(account_id)
            raise
        future.add_done_callback(lambda _: self._release(account_id))
        return future

    def _release(self, account_id: str) -> None:
        with self._lock:
            left = self._running.get(account_id, 0) - 1
            if left > 0:
                self._running[account_id] = left
            else:
                self._running.pop(account_id, None)

    def search(self, account_id: str, params: SearchParams) -> SearchPage | PendingSearch:
        """The page, or a job to poll when the search outlives the budget. Raises SearchError (bad parameters)
        and SearchBusy (too many of this account's searches at once)."""
        build_conditions(self.engine, account_id, params)  # validate before going to the background
        now = datetime.now(UTC)
        if params.end is None:
            params.end = now
        future = self._submit(account_id, params, now)
        if self.budget_seconds <= 0:  # no budget: every search is a job, even one that finished at once
            return PendingSearch(self._record_job(account_id, params, future))
        try:
            return future.result(timeout=self.budget_seconds)
        except FutureTimeout:
            return PendingSearch(self._record_job(account_id, params, future))

    def _record_job(self, account_id: str, params: SearchParams, future: Future[SearchPage]) -> str:
        job_id = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(
                insert(search_jobs).values(
                    id=job_id,
                    account_id=account_id,
                    params_json=params.to_json(),
                    status="running",
                    created_us=_now_us(),
                    updated_us=_now_us(),
                )
            )
        future.add_done_callback(lambda f: self._finish(job_id, f))
        return job_id

    def _finish(self, job_id: str, future: Future[SearchPage]) -> None:
        try:
            page = future.result()
            values = {
                "status": "done",
                "result_json": json.dumps(
                    {"pks": page.pks, "next": page.next, "previous": page.previous, "per_page": page.per_page}
                ),
            }
        except SearchError as exc:
            values = {"status": "failed", "error": CLIENT_ERROR + str(exc)[:300]}
        except Exception as exc:  # the log has it; the caller gets no SQL text
            log.warning("search job %s failed: %s", job_id, type(exc).__name__)
            values = {"status": "failed", "error": f"{type(exc).__name__}"}
        with self.engine.begin() as conn:
            conn.execute(update(search_jobs).where(search_jobs.c.id == job_id).values(updated_us=_now_us(), **values))

    def _finish_callback(self, job_id: str, future: Future[SearchPage]) -> None:
        self._finish(job_id, future)

    def job(self, account_id: str, job_id: str) -> JobState | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(search_jobs).where(search_jobs.c.id == job_id, search_jobs.c.account_id == account_id)
            ).first()
        if row is None:
            return None
        page = None
        if row.status == "done" and row.result_json:
            data = json.loads(row.result_json)
            page = SearchPage(pks=data["pks"], next=data["next"], previous=data["previous"], per_page=data["per_page"])
        return JobState(status=row.status, page=page, error=row.error)

    def resume_unfinished(self) -> int:
        """Start again every job a previous process left running; returns how many."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(search_jobs).where(search_jobs.c.status == "running")).all()
        for row in rows:
            params = SearchParams.from_json(row.params_json)
            future = self._pool.submit(run_search, self.engine, row.account_id, params, None)
            future.add_done_callback(partial(self._finish_callback, row.id))
        return len(rows)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
