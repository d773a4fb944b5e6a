"""Bulk jobs: MOVE or RELEASE every message a search finds, durably. Discovery pages through the search and
records each message once; processing works through the recorded messages in batches, checking between batches
whether the job was cancelled. A runner that stops (restart, crash) leaves the job claimed; its claim is freed
at the next start (or expires) and another runner resumes from the rows. Each message is acted on once per job:
its row takes one outcome, and the actions themselves are idempotent (a move interrupted before its row was
written finds the message already in place on the rerun)."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import fields
from datetime import datetime
from typing import Any

from mailsec.actions.move import FAILED, BackendFor, MoveItem, move_stored
from mailsec.actions.release import release_one
from mailsec.model import Destination
from mailsec.services import Services
from mailsec.store import bulk_jobs as jobs
from mailsec.store.bulk_jobs import BulkJobRepo
from mailsec.store.search import SearchParams, build_conditions, run_search

log = logging.getLogger("mailsec.actions.bulk")
ACTIONS = ("MOVE", "RELEASE")
BATCH = 100
CLAIM_TIMEOUT_US = 120 * 1_000_000  # a runner renews its claim with every batch
SEARCH_FIELDS = {f.name for f in fields(SearchParams)} - {"cursor", "page", "per_page", "extra"}


class BulkJobError(ValueError):
    """A job that cannot be created as asked (the API answers 400 with `pointer`)."""

    def __init__(self, message: str, pointer: str) -> None:
        super().__init__(message)
        self.pointer = pointer


def search_params(raw: dict[str, Any]) -> SearchParams:
    """The search of a job, from the API's `search_params` (unknown keys ignored, like the search's query)."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in SEARCH_FIELDS or value is None:
            continue
        if key in ("start", "end"):
            try:
                value = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError as exc:
                raise BulkJobError(f"search_params.{key} is not a date-time", f"/search_params/{key}") from exc
        values[key] = value
    return SearchParams(**values, per_page=1000)


def create_job(
    services: Services,
    account_id: str,
    action: str,
    raw_search: dict[str, Any],
    destination: str | None,
    comment: str | None,
    requested_by: str | None,
    expected_disposition: str | None = None,
    message_refs: list[str] | None = None,
) -> str:
    """`message_refs` (ids or postfix_ids of the account, e.g. rows an analyst ticked) replace the search: the job
    acts on exactly those messages."""
    action = action.upper()
    if action not in ACTIONS:
        raise BulkJobError("action must be MOVE or RELEASE", "/action")
    if action == "MOVE" and destination not in {d.value for d in Destination}:
        raise BulkJobError("a MOVE job needs a destination folder", "/destination")
    stored: dict[str, Any] = {
        "search_params": raw_search, "destination": destination, "expected_disposition": expected_disposition
    }  # fmt: skip
    if message_refs is not None:
        found = [services.messages.get(account_id, ref) for ref in message_refs]
        pks = list(dict.fromkeys(m.pk for m in found if m is not None))
        if not pks:
            raise BulkJobError("none of the messages is in this account", "/message_ids")
        stored["message_pks"] = pks
    else:
        params = search_params(raw_search)
        try:
            build_conditions(services.engine, account_id, params)  # the search itself is valid: fail now, not later
        except ValueError as exc:
            raise BulkJobError(str(exc), "/search_params") from exc
    return BulkJobRepo(services.engine).create(account_id, action, stored, comment, requested_by)


def runner_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run_job(
    services: Services,
    job_id: str | None = None,
    *,
    identity: str | None = None,
    batch: int = BATCH,
    stop: threading.Event | None = None,
    backend_for: BackendFor | None = None,
) -> str | None:
    """Claim one active job (this one, or the oldest) and run it until it ends or `stop` is set. The job's id."""
    repo = BulkJobRepo(services.engine)
    identity = identity or runner_identity()
    claimed = repo.claim(identity, CLAIM_TIMEOUT_US, job_id)
    if claimed is None:
        return None
    try:
        _run(services, repo, claimed, identity, batch, stop, backend_for)
    except Exception as exc:
        log.exception("bulk job %s failed", claimed)
        repo.set_status(claimed, identity, jobs.FAILED, f"{type(exc).__name__}: {exc}"[:500])
    finally:
        repo.release_claim(claimed, identity)
    return claimed


def _run(
    services: Services,
    repo: BulkJobRepo,
    job_id: str,
    identity: str,
    batch: int,
    stop: threading.Event | None,
    backend_for: BackendFor | None,
) -> None:
    state = repo.state(job_id)
    assert state is not None
    status, cancelled, params, action, requested_by = state
    account_id = str(params["account_id"])
    if status in (jobs.PENDING, jobs.DISCOVERING) and not cancelled:
        repo.set_status(job_id, identity, jobs.DISCOVERING)
        found = _discover(services, repo, job_id, account_id, params)
        repo.set_status(job_id, identity, jobs.PROCESSING, f"{found} message(s) found")
    while True:
        if stop is not None and stop.is_set():
            return  # claim released: another start resumes
        state = repo.state(job_id)
        if state is None:
            return  # deleted meanwhile
        if state[1]:
            repo.cancel_pending(job_id)
            repo.set_status(job_id, identity, jobs.CANCELLED, "cancelled on request")
            return
        rows = repo.pending(job_id, batch)
        if not rows:
            repo.set_status(job_id, identity, jobs.COMPLETED)
            return
        if action == "MOVE":
            outcomes = _move_batch(services, account_id, Destination(params["destination"]), rows, requested_by,
                                   backend_for)  # fmt: skip
        else:
            outcomes = [(row_id, *_release(services, account_id, pk, requested_by)) for row_id, pk in rows]
        repo.record(job_id, identity, outcomes)


def _discover(services: Services, repo: BulkJobRepo, job_id: str, account_id: str, params: dict[str, Any]) -> int:
    if params.get("message_pks"):
        return repo.add_messages(job_id, [int(pk) for pk in params["message_pks"]])
    search = search_params(params.get("search_params") or {})
    total = 0
    while True:
        page = run_search(services.engine, account_id, search)
        total += repo.add_messages(job_id, page.pks)
        if not page.next or not page.pks:
            return total
        search.cursor = page.next


def _move_batch(
    services: Services,
    account_id: str,
    destination: Destination,
    rows: list[tuple[int, int]],
    requested_by: str | None,
    backend_for: BackendFor | None,
) -> list[tuple[int, str, dict[str, Any]]]:
    """The batch's messages moved together, as one move request moves them (one lookup and one move per mailbox
    and folder, one commit for their record); each row still takes its own message's outcome."""
    stored = {m.pk: m for m in services.messages.get_many(pk for _, pk in rows) if m.account_id == account_id}
    present = [m for _, pk in rows if (m := stored.get(pk)) is not None]
    moved_items = move_stored(services, present, destination, requested_by, backend_for)
    moved = {m.pk: items for m, items in zip(present, moved_items, strict=True)}
    outcomes: list[tuple[int, str, dict[str, Any]]] = []
    for row_id, pk in rows:
        message = stored.get(pk)
        if message is None:
            outcomes.append((row_id, jobs.M_SKIPPED, {"reason": "message no longer stored"}))
            continue
        items = moved[pk]
        out = {"id": message.id, "postfix_id": message.postfix_id, "items": [i.as_dict() for i in items]}
        outcomes.append((row_id, _move_status(items), out))
    return outcomes


def _move_status(items: list[MoveItem]) -> str:
    if items and all(i.success for i in items):
        return jobs.M_SUCCESSFUL
    if any(i.status == FAILED for i in items):
        return jobs.M_FAILED
    return jobs.M_SUCCESSFUL if any(i.success for i in items) else jobs.M_SKIPPED


def _release(services: Services, account_id: str, pk: int, requested_by: str | None) -> tuple[str, dict[str, Any]]:
    message = services.messages.get_by_pk(pk)
    if message is None or message.account_id != account_id:
        return jobs.M_SKIPPED, {"reason": "message no longer stored"}
    result = release_one(services, account_id, message.id, requested_by)
    out = result.as_dict()
    if not (result.delivered or result.failed or result.undelivered):
        return jobs.M_SKIPPED, {**out, "reason": "not quarantined"}
    return (jobs.M_FAILED if result.failed else jobs.M_SUCCESSFUL), out


class BulkJobRunner:
    """One thread of `serve` that runs bulk jobs one after the other, resuming unfinished ones at start."""

    def __init__(self, services: Services, poll_seconds: float = 1.0) -> None:
        self.services = services
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        freed = jobs.release_dead_claims(self.services.engine)
        if freed:
            log.info("resuming %d bulk job(s) held by a process that stopped", freed)
        self._thread = threading.Thread(target=self._loop, name="mailsec-bulk-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                ran = run_job(self.services, stop=self._stop)
            except Exception:
                log.exception("bulk job runner")
                ran = None
            if ran is None:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()
