"""Searches with a time budget. A search that outlives its budget goes on in the background as a durable job
(a `search_jobs` row); the caller polls it. Jobs left running by a stopped process are run again on start."""

from __future__ import annotations

import json
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
from mailsec.store.search import SearchPage, SearchParams, build_conditions, run_search


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


class SearchService:
    def __init__(self, engine: Engine, budget_seconds: float, workers: int = 4) -> None:
        self.engine = engine
        self.budget_seconds = budget_seconds
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="search")
        self._lock = threading.Lock()

    def search(self, account_id: str, params: SearchParams) -> SearchPage | PendingSearch:
        build_conditions(self.engine, account_id, params)  # validate before going to the background
        now = datetime.now(UTC)
        if params.end is None:
            params.end = now
        future = self._pool.submit(run_search, self.engine, account_id, params, now)
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
        except Exception as exc:
            values = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
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
            future = self._pool.submit(run_search, self.engine, row.account_id, params)
            future.add_done_callback(partial(self._finish_callback, row.id))
        return len(rows)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
