"""Searches past their time budget: 202 + Location, polling with the same credential, other accounts shut out,
and jobs that outlive the process that started them."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
from api_helpers import fill, server_services
from sqlalchemy import insert

from mailsec.pipeline import process_message
from mailsec.services import Services
from mailsec.store.schema import search_jobs
from mailsec.store.search import SearchParams
from support import make_eml, make_live_server


def _poll(http: httpx.Client, url: str, headers: dict[str, str]) -> list[httpx.Response]:
    answers = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = http.get(url, headers=headers)
        answers.append(r)
        if r.status_code != 202:
            return answers
        time.sleep(0.05)
    raise AssertionError("the search job never finished")


def _running_job(services: Services, account: str, params: SearchParams) -> str:
    job_id = str(uuid.uuid4())
    with services.engine.begin() as conn:
        conn.execute(
            insert(search_jobs).values(
                id=job_id,
                account_id=account,
                params_json=params.to_json(),
                status="running",
                created_us=time.time_ns() // 1000,
                updated_us=time.time_ns() // 1000,
            )
        )
    return job_id


def test_over_budget_search_answers_202_and_location(tmp_path: Path) -> None:
    live = make_live_server(
        tmp_path / "live", f"sqlite:///{tmp_path / 'mailsec.db'}", MAILSEC_SEARCH_BUDGET_SECONDS="0"
    )
    a, b = live.create_account("A"), live.create_account("B")
    ta, tb = live.create_token(a, read_only=True), live.create_token(b)
    ids = fill(live, a, 12, prefix="budget")
    live.start()
    try:
        base = f"http://127.0.0.1:{live.port}"
        with httpx.Client(base_url=base) as http:
            search = f"/client/v4/accounts/{a}/email-security/investigate"
            r = http.get(
                search, params={"detections_only": "false", "per_page": 5}, headers={"Authorization": f"Bearer {ta}"}
            )
            assert r.status_code == 202, r.text
            body = r.json()
            assert body["success"] is True and body["result"] == [] and body["result_info"]["count"] == 0
            location = r.headers["location"]
            assert location.startswith(f"/client/v4/accounts/{a}/email-security/investigate/search_jobs/")
            answers = _poll(http, location, {"Authorization": f"Bearer {ta}"})
            assert all(x.status_code == 202 and x.headers["location"] == location for x in answers[:-1])
            done = answers[-1]
            assert done.status_code == 200, done.text
            assert [m["id"] for m in done.json()["result"]] == list(reversed(ids))[:5]
            assert done.json()["result_info"]["next"]
            # Other credentials: none, another account's on A's path, another account's on its own path.
            r = http.get(location)
            assert r.status_code == 400 and r.json()["errors"][0]["code"] == 9106
            r = http.get(location, headers={"Authorization": f"Bearer {tb}"})
            assert r.status_code == 403 and r.json()["errors"][0]["code"] == 10000
            foreign = location.replace(f"/accounts/{a}/", f"/accounts/{b}/")
            r = http.get(foreign, headers={"Authorization": f"Bearer {tb}"})
            assert r.status_code == 404 and r.json()["errors"][0]["code"] == 7003
            assert ids[0] not in r.text
            # Bad parameters are refused before a job is made.
            r = http.get(search, params={"per_page": 1001}, headers={"Authorization": f"Bearer {ta}"})
            assert r.status_code == 400
        # A job left running by a stopped server is run again when the server starts.
        live.stop()
        services = server_services(live)
        try:
            job = _running_job(services, a, SearchParams(detections_only=False, per_page=3))
        finally:
            services.close()
        live.start()
        with httpx.Client(base_url=base) as http:
            url = f"/client/v4/accounts/{a}/email-security/investigate/search_jobs/{job}"
            done = _poll(http, url, {"Authorization": f"Bearer {ta}"})[-1]
            assert done.status_code == 200, done.text
            assert [m["id"] for m in done.json()["result"]] == list(reversed(ids))[:3]
    finally:
        live.stop()


def test_running_job_answers_202_until_resumed(services: Services) -> None:
    from fastapi.testclient import TestClient

    from mailsec.api.app import create_app

    account = services.accounts.create_account("A").id
    token = services.accounts.create_token(account, can_write=False)
    ids = [process_message(services, make_eml(subject=f"job {i}"), account).id for i in range(4)]
    job = _running_job(services, account, SearchParams(detections_only=False, per_page=10, query="job"))
    url = f"/client/v4/accounts/{account}/email-security/investigate/search_jobs/{job}"
    app = create_app(services)
    client = TestClient(app)  # no lifespan: nothing resumes the job yet
    r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202 and r.headers["location"] == url and r.json()["result"] == []
    assert services.searches.resume_unfinished() == 1
    deadline = time.monotonic() + 20
    while (state := services.searches.job(account, job)) is not None and state.status == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert state is not None and state.status == "done"
    r = client.get(url, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["result"]] == list(reversed(ids))
    assert services.searches.job(services.accounts.create_account("B").id, job) is None
