"""The dashboard: mail volume by disposition over a period (an SVG chart and the same figures as a table), and the
top senders, sender domains and threat categories of the period's detections, each a link to the search that
lists those messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from mailsec.console.chart import ORDER, legend, volume_svg
from mailsec.console.web import render, services_of, viewer
from mailsec.store.dashboard import Bucket, DashboardRepo, bucket_floor

PERIODS = {  # name -> (length, bucket)
    "24h": (timedelta(hours=24), Bucket.HOUR),
    "7d": (timedelta(days=7), Bucket.DAY),
    "30d": (timedelta(days=30), Bucket.DAY),
}
PERIOD_LABELS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
DEFAULT_PERIOD = "7d"

router = APIRouter(include_in_schema=False)


def period_bounds(name: str, now: datetime) -> tuple[datetime, datetime, Bucket]:
    """[start, end) of a named period ending with the bucket that holds `now`, whole buckets only."""
    length, bucket = PERIODS[name]
    end = bucket_floor(now, bucket) + bucket.width
    return end - length, end, bucket


@router.get("/a/{account_id}/dashboard")
async def dashboard(request: Request, account_id: str) -> Response:
    who = await viewer(request, account_id)
    period = request.query_params.get("period", DEFAULT_PERIOD)
    if period not in PERIODS:
        period = DEFAULT_PERIOD
    start, end, bucket = period_bounds(period, datetime.now(UTC))
    repo = DashboardRepo(services_of(request).engine)
    data = await run_in_threadpool(repo.summary, account_id, start, end, bucket, 10)
    title = f"Messages per {bucket.value} by disposition, {PERIOD_LABELS[period].lower()}"
    return render(
        request,
        "dashboard.html",
        who=who,
        data=data,
        period=period,
        periods=PERIOD_LABELS,
        chart=Markup(volume_svg(data.volume, bucket, title)),
        chart_title=title,
        legend=legend(data.volume),
        order=[d for d in ORDER if data.totals_by_disposition().get(d)],
        search_after=start.strftime("%Y-%m-%d"),
    )
