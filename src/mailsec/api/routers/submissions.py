"""`POST /investigate/{id}/reclassify` (write scope; 202, `result: {}`), `GET /submissions` and
`GET /phishguard/reports`. The work is `actions.reclassify`'s and the store's."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from mailsec.actions.reclassify import MessageNotFound, ReclassifyError, reclassify
from mailsec.api.auth import require_read, require_write, services_of
from mailsec.api.envelope import ERROR_RESPONSES, Envelope, ListEnvelope, bad_request, not_found, ok
from mailsec.api.routers.investigate import parse_time
from mailsec.api.serialize import iso_z
from mailsec.ids import format_ts
from mailsec.store.reports import CampaignReport, campaign_reports
from mailsec.store.submissions import (
    DEFAULT_WINDOW,
    Submission,
    SubmissionFilter,
    SubmissionKind,
    SubmissionRepo,
)

PREFIX = "/client/v4/accounts/{account_id}/email-security"
router = APIRouter(prefix=PREFIX, tags=["submissions"], responses=ERROR_RESPONSES)

SubmissionDisposition = Literal["MALICIOUS", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE"]
ReportDisposition = Literal[
    "MALICIOUS", "MALICIOUS-BEC", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "ENCRYPTED", "EXTERNAL", "UNKNOWN", "NONE"
]
_PRIORITY = {"MALICIOUS-BEC": "high", "MALICIOUS": "high", "SUSPICIOUS": "high", "SPOOF": "medium"}


class ReclassifyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    expected_disposition: SubmissionDisposition
    eml_content: str | None = None
    escalated_submission_id: str | None = None


class SubmissionOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    submission_id: str
    requested_at: str
    requested_ts: str | None = None
    type: Literal["Team", "User"] | None = None
    status: str | None = None
    customer_status: Literal["escalated", "reviewed", "unreviewed"] | None = None
    original_disposition: SubmissionDisposition | None = None
    requested_disposition: SubmissionDisposition | None = None
    outcome_disposition: SubmissionDisposition | None = None
    outcome: str | None = None
    requested_by: str | None = None
    subject: str | None = None
    original_postfix_id: str | None = None
    original_edf_hash: str | None = None
    escalated_submission_id: str | None = None
    escalated_by: str | None = None
    escalated_at: str | None = None
    escalated_as: SubmissionDisposition | None = None


class ReportFields(BaseModel):
    model_config = ConfigDict(extra="allow")
    to: list[str]
    occurred_at: str | None = None
    postfix_id: str | None = None
    ts: str | None = None


class ReportTag(BaseModel):
    category: str
    value: str


class ReportOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    title: str
    content: str
    disposition: ReportDisposition
    priority: str
    fields: ReportFields
    tags: list[ReportTag] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    ts: str | None = None


@router.post(
    "/investigate/{investigate_id}/reclassify",
    status_code=202,
    response_model=Envelope[dict[str, Any]],
    summary="Change email classification",
)
async def reclassify_message(request: Request, account_id: str, investigate_id: str, body: ReclassifyIn) -> Any:
    grant = require_write(request, account_id)
    try:
        await run_in_threadpool(
            reclassify,
            services_of(request),
            account_id,
            investigate_id,
            body.expected_disposition,
            grant.principal,
            body.eml_content,
            body.escalated_submission_id,
        )
    except MessageNotFound as exc:
        raise not_found(f"message {investigate_id}") from exc
    except ReclassifyError as exc:
        raise bad_request(str(exc), pointer=exc.pointer) from exc
    return JSONResponse(ok({}), status_code=202)


def submission_out(s: Submission) -> dict[str, Any]:
    return {
        "submission_id": s.id,
        "requested_at": iso_z(s.requested_at),
        "requested_ts": iso_z(s.requested_at),
        "type": "Team" if s.kind is SubmissionKind.TEAM else "User",
        "status": s.status,
        "customer_status": s.customer_status,
        "original_disposition": s.original_disposition,
        "requested_disposition": s.requested_disposition,
        "outcome_disposition": s.outcome_disposition,
        "outcome": s.outcome,
        "requested_by": s.requested_by,
        "subject": s.subject,
        "original_postfix_id": s.original_postfix_id,
        "original_edf_hash": s.original_edf_hash,
        "escalated_submission_id": s.escalated_submission_id,
        "escalated_by": s.escalated_by,
        "escalated_at": iso_z(s.escalated_at) if s.escalated_at else None,
        "escalated_as": s.escalated_as,
    }


def _upper(value: str | None, name: str, allowed: tuple[str, ...]) -> str | None:
    if value is None or value == "":
        return None
    if value.strip().upper() not in allowed:
        raise bad_request(f"{name} must be one of {', '.join(allowed)}", pointer=f"/{name}")
    return value.strip().upper()


DISPOSITIONS = ("MALICIOUS", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE")


@router.get(
    "/submissions",
    response_model=ListEnvelope[list[SubmissionOut]],
    summary="Get reclassify submissions",
)
def list_submissions(
    request: Request,
    account_id: str,
    start: str | None = None,
    end: str | None = None,
    type: str | None = None,
    submission_id: Annotated[str | None, Query(max_length=64)] = None,
    original_disposition: str | None = None,
    requested_disposition: str | None = None,
    outcome_disposition: str | None = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    customer_status: Annotated[str | None, Query(max_length=32)] = None,
    query: Annotated[str | None, Query(max_length=1024)] = None,
    escalated_from_user: bool | None = None,
    order: Literal[
        "submission_id",
        "subject",
        "original_disposition",
        "requested_disposition",
        "outcome_disposition",
        "requested_at",
    ] = "requested_at",
    direction: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Any:
    require_read(request, account_id)
    kind = _upper(type, "type", ("TEAM", "USER"))
    f = SubmissionFilter(
        start=parse_time(start, "start"),
        end=parse_time(end, "end"),
        kind=SubmissionKind(kind) if kind else None,
        submission_id=submission_id,
        original_disposition=_upper(original_disposition, "original_disposition", DISPOSITIONS),
        requested_disposition=_upper(requested_disposition, "requested_disposition", DISPOSITIONS),
        outcome_disposition=_upper(outcome_disposition, "outcome_disposition", DISPOSITIONS),
        status=status,
        customer_status=customer_status,
        query=query,
        escalated_from_user=escalated_from_user,
        order=order,
        direction=direction,
        page=page,
        per_page=per_page,
    )
    if f.start and f.end and f.start > f.end:
        raise bad_request("start is after end", pointer="/start")
    rows, total = SubmissionRepo(services_of(request).engine).search(account_id, f)
    body = ok([submission_out(s) for s in rows])
    body["result_info"] = {"count": len(rows), "page": page, "per_page": per_page, "total_count": total}
    return body


def _day(value: str | None, name: str, end_of_day: bool) -> datetime | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value.strip()[:10])
    except ValueError as exc:
        raise bad_request(f"{name} is not a date (YYYY-MM-DD): {value[:32]!r}", pointer=f"/{name}") from exc
    moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
    return moment


def report_out(r: CampaignReport) -> dict[str, Any]:
    counts = ", ".join(f"{n} {d}" for d, n in sorted(r.counts.items()))
    lines = [
        f"{r.message_count} message(s) ({counts}) from {r.sender or 'an unknown sender'} "
        f"to {len(r.recipients)} recipient(s), "
        f"first seen {format_ts(r.first_seen)}, last seen {format_ts(r.last_seen)}.",
    ]
    lines += [
        f"Analyst {c.by or 'unknown'} concluded {c.disposition or 'no disposition'} "
        f"(submission {c.submission_id}, {format_ts(c.at)})."
        for c in r.conclusions
    ]
    tags = [
        {"category": "disposition", "value": r.disposition.value},
        {"category": "messages", "value": str(r.message_count)},
        {"category": "fingerprint", "value": r.key},
        *({"category": "analyst_conclusion", "value": c.disposition or "NONE"} for c in r.conclusions),
    ]
    return {
        "id": r.id,
        "title": f"{r.disposition.value}: {r.subject or '(no subject)'}"[:300],
        "content": "\n".join(lines),
        "disposition": r.disposition.value,
        "priority": _PRIORITY.get(r.disposition.value, "low"),
        "fields": {
            "to": r.recipients,
            "from": r.sender,
            "occurred_at": iso_z(r.first_seen),
            "ts": iso_z(r.first_seen),
            "postfix_id": r.first_postfix_id,
        },
        "tags": tags,
        "created_at": iso_z(r.first_seen),
        "ts": iso_z(r.first_seen),
        "updated_at": iso_z(r.last_seen),
        "message_count": r.message_count,
        "counts": r.counts,
        "first_seen": iso_z(r.first_seen),
        "last_seen": iso_z(r.last_seen),
        "conclusions": [
            {
                "submission_id": c.submission_id,
                "disposition": c.disposition,
                "by": c.by,
                "at": iso_z(c.at),
                "postfix_id": c.postfix_id,
            }
            for c in r.conclusions
        ],
    }


@router.get(
    "/phishguard/reports",
    response_model=ListEnvelope[list[ReportOut]],
    summary="Get PhishGuard reports",
)
def list_reports(
    request: Request,
    account_id: str,
    start: str | None = None,
    end: str | None = None,
    from_date: str | None = None,
    to_date: str | None = None,
    page: Annotated[int, Query(ge=1, le=10_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Any:
    require_read(request, account_id)
    until = parse_time(end, "end") or _day(to_date, "to_date", True) or datetime.now(UTC)
    since = parse_time(start, "start") or _day(from_date, "from_date", False) or until - DEFAULT_WINDOW
    if since > until:
        raise bad_request("start is after end", pointer="/start")
    if until - since > timedelta(days=366):
        raise bad_request("the time range is longer than a year; narrow it", pointer="/start")
    reports = campaign_reports(services_of(request).engine, account_id, since, until)
    shown = reports[(page - 1) * per_page : page * per_page]
    body = ok([report_out(r) for r in shown])
    body["result_info"] = {"count": len(shown), "page": page, "per_page": per_page, "total_count": len(reports)}
    return body
