"""Bulk jobs: `POST|GET /investigate/bulk`, `GET|DELETE /investigate/bulk/{job_id}`, `POST .../cancel`,
`GET .../messages`. The jobs run in `serve`'s bulk-job runner (actions/bulk.py); these handlers only record and
report them. Reads need the read scope, the rest write."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from mailsec.actions import bulk as actions
from mailsec.api.auth import require_read, require_write
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, ListEnvelope, bad_request, not_found, ok
from mailsec.api.routers.move import DestinationName, DispositionName
from mailsec.services import Services
from mailsec.store import bulk_jobs as jobs
from mailsec.store.bulk_jobs import BulkJob, BulkJobRepo

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["bulk"], responses=ERROR_RESPONSES)
JobStatus = Literal["PENDING", "DISCOVERING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED"]


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    action: Literal["MOVE", "RELEASE"]
    search_params: dict[str, Any]
    destination: DestinationName | None = None
    expected_disposition: DispositionName | None = None
    comment: str | None = None


class JobOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    job_id: str
    action_type: str
    action_params: dict[str, Any]
    search_params: dict[str, Any]
    status: str
    status_message: str | None = None
    comment: str | None = None
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    total_messages_discovered: int
    messages_pending: int
    messages_successful: int
    messages_failed: int
    messages_skipped: int
    messages_cancelled: int


class JobMessageOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    message_id: str
    postfix_id: str
    action_type: str
    action_params: dict[str, Any]
    status: str
    retry_count: int
    created_at: str
    alert_id: str | None = None
    email_message_id: str | None = None
    outcome: dict[str, Any] = {}


class DeletedOut(BaseModel):
    id: str


def _time(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _action_params(job: BulkJob) -> dict[str, Any]:
    if job.action == "MOVE":
        return {"type": "MOVE", "destination": job.params.get("destination"),
                "expected_disposition": job.params.get("expected_disposition")}  # fmt: skip
    return {"type": "RELEASE"}


def job_dict(job: BulkJob) -> dict[str, Any]:
    c = job.counts
    return {
        "job_id": job.id,
        "action_type": job.action,
        "action_params": _action_params(job),
        "search_params": job.params.get("search_params") or {},
        "status": job.status,
        "status_message": job.status_message,
        "comment": job.comment,
        "requested_by": job.requested_by,
        "created_at": _time(job.created_at),
        "started_at": _time(job.started_at),
        "completed_at": _time(job.completed_at),
        "total_messages_discovered": job.total,
        "messages_pending": c.get(jobs.M_PENDING, 0),
        "messages_successful": c.get(jobs.M_SUCCESSFUL, 0),
        "messages_failed": c.get(jobs.M_FAILED, 0),
        "messages_skipped": c.get(jobs.M_SKIPPED, 0),
        "messages_cancelled": c.get(jobs.M_CANCELLED, 0),
    }


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def wake_runner(request: Request) -> None:
    """A job just queued starts now rather than at the runner's next poll (the console's bulk page too)."""
    runner = getattr(request.app.state, "bulk_runner", None)
    if runner is not None:
        runner.wake()


def _job_or_404(services: Services, account_id: str, job_id: str) -> BulkJob:
    job = BulkJobRepo(services.engine).get(account_id, job_id)
    if job is None:
        raise not_found(f"bulk job {job_id}")
    return job


def _page_info(count: int, page: int, per_page: int) -> dict[str, Any]:
    return {"count": count, "per_page": per_page, "page": page, "total_count": 0, "next": None, "previous": None}


@router.post("/investigate/bulk", status_code=201, response_model=Envelope[JobOut], summary="Create a bulk job")
def create_bulk(request: Request, account_id: str, body: BulkIn) -> Any:
    grant = require_write(request, account_id)
    services = _services(request)
    try:
        job_id = actions.create_job(
            services, account_id, body.action, body.search_params, body.destination, body.comment, grant.principal,
            body.expected_disposition,
        )  # fmt: skip
    except actions.BulkJobError as exc:
        raise bad_request(str(exc), pointer=exc.pointer) from exc
    wake_runner(request)
    return ok(job_dict(_job_or_404(services, account_id, job_id)))


@router.get("/investigate/bulk", response_model=ListEnvelope[list[JobOut]], summary="List bulk jobs")
def list_bulk(
    request: Request,
    account_id: str,
    page: int = Query(1, ge=1, le=10_000_000),
    per_page: int = Query(20, ge=1, le=1000),
    action_type: Literal["MOVE", "RELEASE"] | None = None,
    status: JobStatus | None = None,
) -> Any:
    require_read(request, account_id)
    found = BulkJobRepo(_services(request).engine).list_jobs(
        account_id, status, action_type, (page - 1) * per_page, per_page
    )
    return {**ok([job_dict(j) for j in found]), "result_info": _page_info(len(found), page, per_page)}


@router.get("/investigate/bulk/{job_id}", response_model=Envelope[JobOut], summary="Get a bulk job")
def get_bulk(request: Request, account_id: str, job_id: str) -> Any:
    require_read(request, account_id)
    return ok(job_dict(_job_or_404(_services(request), account_id, job_id)))


@router.delete("/investigate/bulk/{job_id}", response_model=Envelope[DeletedOut], summary="Delete a bulk job")
def delete_bulk(request: Request, account_id: str, job_id: str) -> Any:
    require_write(request, account_id)
    repo = BulkJobRepo(_services(request).engine)
    repo.cancel(account_id, job_id)  # a running job stops at its next batch, then its rows go with it
    if not repo.delete(account_id, job_id):
        raise not_found(f"bulk job {job_id}")
    return ok({"id": job_id})


@router.post("/investigate/bulk/{job_id}/cancel", response_model=Envelope[JobOut], summary="Cancel a bulk job")
def cancel_bulk(request: Request, account_id: str, job_id: str) -> Any:
    require_write(request, account_id)
    services = _services(request)
    job = _job_or_404(services, account_id, job_id)
    if job.status in jobs.ACTIVE:
        BulkJobRepo(services.engine).cancel(account_id, job_id)
        wake_runner(request)
    return ok(job_dict(_job_or_404(services, account_id, job_id)))


@router.get(
    "/investigate/bulk/{job_id}/messages",
    response_model=ListEnvelope[list[JobMessageOut]],
    summary="The messages of a bulk job and each one's outcome",
)
def bulk_messages(
    request: Request,
    account_id: str,
    job_id: str,
    page: int = Query(1, ge=1, le=10_000_000),
    per_page: int = Query(20, ge=1, le=1000),
    status: JobStatus | None = None,
) -> Any:
    require_read(request, account_id)
    services = _services(request)
    job = _job_or_404(services, account_id, job_id)
    rows = BulkJobRepo(services.engine).messages(job_id, (page - 1) * per_page, per_page, status)
    out = []
    for row in rows:
        message = services.messages.get_by_pk(row.message_pk)
        recipients = list(message.envelope_to) if message is not None else []
        out.append({
            "message_id": message.id if message is not None else "",
            "postfix_id": message.postfix_id if message is not None else "",
            "alert_id": message.alert_id if message is not None else None,
            "email_message_id": message.internet_message_id if message is not None else None,
            "action_type": job.action,
            "action_params": {**_action_params(job), "client_recipient": recipients[0] if recipients else ""},
            "status": row.status,
            "retry_count": 0,
            "created_at": _time(row.updated_at),
            "outcome": row.outcome,
        })  # fmt: skip
    return {**ok(out), "result_info": _page_info(len(out), page, per_page)}
