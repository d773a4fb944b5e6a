"""Reclassify, submissions and PhishGuard reports over the wire, on mail stored by `mailsec ingest`, on SQLite and
PostgreSQL: the official SDK 5.9 (this process) and 4.3 (a subprocess), both in strict response validation; errors
in the standard envelope; write scope and account scope enforced."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cloudflare
import httpx
import pytest
from api_helpers import run_sdk4, sdk4_path, server_services
from cloudflare import Cloudflare, PermissionDeniedError

from support import LiveServer, database_url, make_eml, make_live_server, sdk_client

SDK4_SCRIPT = Path(__file__).with_name("sdk4_submissions.py")
CAMPAIGN_BODY = "This month the garden club meets on Thursday; bring seedlings to swap and a friend.\n"


@dataclass
class Site:
    live: LiveServer
    account: str
    token: str
    read_token: str
    email: str
    key: str
    other_token: str
    ids: dict[str, str]  # label -> investigate id
    postfix_ids: dict[str, str]
    initial: dict[str, str]  # label -> the disposition the scan gave at ingest

    def client(self, token: str | None = None) -> Cloudflare:
        return sdk_client(self.live.base_url, token or self.token)

    def url(self, path: str) -> str:
        return f"{self.live.base_url}/accounts/{self.account}/email-security{path}"


MAIL = {
    "parcel1": make_eml(subject="Garden club news", sender="track@parcel-one.example", body=CAMPAIGN_BODY),
    "parcel2": make_eml(subject="Garden club news", sender="info@parcel-two.example", body=CAMPAIGN_BODY),
    "parcel3": make_eml(subject="Garden club news", sender="news@parcel-three.example", body=CAMPAIGN_BODY),
    "lunch": make_eml(subject="Lunch on Friday", sender="carol@partner.example", body="Pizza at noon?\n"),
    "report": make_eml(subject="Board minutes", sender="dan@partner.example", body="Minutes attached soon.\n"),
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp(f"subm-{request.param}")
    url = database_url(request, tmp)
    live = make_live_server(tmp / "live", url)
    account = live.create_account("Subm")
    other = live.create_account("Other")
    mail_dir = tmp / "mail"
    mail_dir.mkdir()
    for label, raw in MAIL.items():
        (mail_dir / f"{label}.eml").write_bytes(raw)
    live.cli("ingest", "--account", account, str(mail_dir))
    email = "soc@subm.example"
    key = live.last_line("user", "create", email, "--account", account)
    services = server_services(live)
    try:
        ids, postfix_ids, initial = {}, {}, {}
        for label, raw in MAIL.items():
            stored = services.messages.find_by_raw(account, hashlib.sha256(raw).hexdigest())
            assert stored is not None, label
            ids[label], postfix_ids[label] = stored.id, stored.postfix_id
            initial[label] = stored.final_disposition.value
    finally:
        services.close()
    live.start()
    yield Site(
        live,
        account,
        live.create_token(account),
        live.create_token(account, read_only=True),
        email,
        key,
        live.create_token(other),
        ids,
        postfix_ids,
        initial,
    )
    live.stop()


def test_reclassify_with_the_sdk_changes_the_disposition_and_records_a_submission(site: Site) -> None:
    cf = site.client()
    result = cf.email_security.investigate.reclassify.create(
        site.ids["parcel1"], account_id=site.account, expected_disposition="SPAM"
    )
    assert result == {}
    got = cf.email_security.investigate.get(site.ids["parcel1"], account_id=site.account)
    assert got.final_disposition == "SPAM"
    assert got.detection_reasons[0].startswith("Reclassified as SPAM by token:")
    assert [a.operation for a in got.action_log] == ["RECLASSIFY"]
    assert got.post_delivery_operations == ["SUBMISSION"]
    listed = list(cf.email_security.submissions.list(account_id=site.account, type="TEAM"))
    assert len(listed) == 1
    team = listed[0]
    assert (team.type, team.original_disposition, team.requested_disposition, team.outcome_disposition) == (
        "Team",
        site.initial["parcel1"],
        "SPAM",
        "SPAM",
    )
    assert team.original_postfix_id == site.postfix_ids["parcel1"] and team.subject == "Garden club news"
    assert team.requested_by and team.requested_by.startswith("token:") and team.status == "completed"
    # search by the new disposition, by SUBMITTED, and the submissions store
    spam = cf.email_security.investigate.list(account_id=site.account, final_disposition="SPAM")
    assert [m.id for m in spam] == [site.ids["parcel1"]]
    submitted = cf.email_security.investigate.list(account_id=site.account, message_action="SUBMITTED")
    assert [m.id for m in submitted] == [site.ids["parcel1"]]
    store = cf.email_security.investigate.list(account_id=site.account, extra_query={"submissions": "true"})
    assert [m.id for m in store] == [site.ids["parcel1"]]
    one = cf.email_security.investigate.get(site.ids["parcel1"], account_id=site.account, submission=True)
    assert one.id == site.ids["parcel1"]
    with pytest.raises(cloudflare.NotFoundError):
        cf.email_security.investigate.get(site.ids["lunch"], account_id=site.account, submission=True)


def test_the_global_key_and_an_eml_copy(site: Site) -> None:
    cf = sdk_client(site.live.base_url, email=site.email, key=site.key)
    eml = make_eml(subject="Board minutes (the copy I got)", sender="dan@partner.example", body="Wire the fee.\n")
    cf.email_security.investigate.reclassify.create(
        site.postfix_ids["report"],
        account_id=site.account,
        expected_disposition="MALICIOUS",
        eml_content=base64.b64encode(eml).decode(),
    )
    found = list(cf.email_security.submissions.list(account_id=site.account, query="the copy i got"))
    assert [(s.requested_by, s.requested_disposition, s.original_postfix_id) for s in found] == [
        (site.email, "MALICIOUS", site.postfix_ids["report"])
    ]
    got = cf.email_security.investigate.get(site.ids["report"], account_id=site.account)
    assert got.final_disposition == "MALICIOUS" and got.is_phish_submission is True


def _error(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    return response.status_code, body["errors"][0]["code"], body["errors"][0]["message"]


def test_bad_requests_get_the_standard_envelope(site: Site) -> None:
    url = site.url(f"/investigate/{site.ids['lunch']}/reclassify")
    auth = {"Authorization": f"Bearer {site.token}"}
    for body, needle in (
        ({"expected_disposition": "NONE", "eml_content": "%%% not base64 %%%"}, "not base64"),
        (
            {"expected_disposition": "NONE", "eml_content": base64.b64encode(b"\x00\x01\x02binary").decode()},
            "not an e-mail",
        ),
        ({"expected_disposition": "NONE", "escalated_submission_id": "no-such-id"}, "escalated_submission_id"),
        ({"expected_disposition": "EVIL"}, "expected_disposition"),
        ({}, "expected_disposition"),
    ):
        status, code, message = _error(httpx.post(url, json=body, headers=auth, timeout=30))
        assert (status, code) == (400, 1001) and needle in message, message
    status, code, _ = _error(
        httpx.post(
            site.url("/investigate/AAAAAAAAAAAAAAA/reclassify"), json={"expected_disposition": "NONE"}, headers=auth
        )
    )
    assert (status, code) == (404, 7003)
    for params, needle in (({"type": "ROBOT"}, "type"), ({"start": "yesterday"}, "start"), ({"order": "x"}, "order")):
        status, code, message = _error(httpx.get(site.url("/submissions"), params=params, headers=auth))
        assert (status, code) == (400, 1001) and needle in message
    status, code, _ = _error(httpx.get(site.url("/phishguard/reports"), params={"from_date": "June"}, headers=auth))
    assert (status, code) == (400, 1001)
    cf = site.client()
    got = cf.email_security.investigate.get(site.ids["lunch"], account_id=site.account)
    assert got.final_disposition == "NONE" and got.action_log == []


def test_scopes_read_only_and_foreign_credentials(site: Site) -> None:
    with pytest.raises(PermissionDeniedError):
        site.client(site.read_token).email_security.investigate.reclassify.create(
            site.ids["lunch"], account_id=site.account, expected_disposition="SPAM"
        )
    assert list(site.client(site.read_token).email_security.submissions.list(account_id=site.account)) != []
    foreign = site.client(site.other_token).email_security
    for call in (
        lambda: foreign.investigate.reclassify.create(
            site.ids["lunch"], account_id=site.account, expected_disposition="SPAM"
        ),
        lambda: list(foreign.submissions.list(account_id=site.account)),
        lambda: list(foreign.phishguard.reports.list(account_id=site.account)),
    ):
        with pytest.raises(PermissionDeniedError):
            call()
    other_account = httpx.get(
        f"{site.live.base_url}/accounts/{site.account}/email-security/submissions",
        headers={"Authorization": f"Bearer {site.other_token}"},
    )
    assert other_account.status_code == 403 and "submission" not in other_account.text.lower()


def test_phishguard_reports_group_a_campaign(site: Site) -> None:
    cf = site.client()
    cf.email_security.investigate.reclassify.create(
        site.ids["parcel2"], account_id=site.account, expected_disposition="MALICIOUS"
    )
    reports = list(cf.email_security.phishguard.reports.list(account_id=site.account, per_page=1))
    parcel = [r for r in reports if r.title.endswith("Garden club news")]
    assert len(parcel) == 1, [r.title for r in reports]
    report = parcel[0]
    extra = report.model_extra or {}
    assert report.disposition == "MALICIOUS" and report.priority == "high"
    assert extra["message_count"] == 3 and extra["counts"] == dict(
        Counter(["MALICIOUS", "SPAM", site.initial["parcel3"]])
    )
    assert sorted(c["disposition"] for c in extra["conclusions"]) == ["MALICIOUS", "SPAM"]
    assert {t.value for t in report.tags or [] if t.category == "analyst_conclusion"} == {"SPAM", "MALICIOUS"}
    assert report.fields.postfix_id == site.postfix_ids["parcel1"] and report.fields.to == ["bob@corp.example"]
    assert report.created_at is not None and report.updated_at is not None and report.created_at <= report.updated_at
    assert "3 message(s)" in report.content and "concluded MALICIOUS" in report.content
    assert (
        list(
            cf.email_security.phishguard.reports.list(
                account_id=site.account, start="2020-01-01T00:00:00Z", end="2020-02-01T00:00:00Z"
            )
        )
        == []
    )


def test_submission_filters_and_paging_with_the_sdk(site: Site) -> None:
    cf = site.client()
    es = cf.email_security
    everything = list(es.submissions.list(account_id=site.account, per_page=1))
    assert len(everything) == len({s.submission_id for s in everything}) >= 3
    ordered = list(es.submissions.list(account_id=site.account, order="requested_at", direction="asc"))
    assert [s.requested_at for s in ordered] == sorted(s.requested_at for s in everything)
    assert [
        s.requested_disposition for s in es.submissions.list(account_id=site.account, requested_disposition="SPAM")
    ] == ["SPAM"]
    by_original = list(es.submissions.list(account_id=site.account, original_disposition=site.initial["parcel1"]))
    assert site.postfix_ids["parcel1"] in {s.original_postfix_id for s in by_original}
    assert all(s.original_disposition == site.initial["parcel1"] for s in by_original)
    first = everything[0].submission_id
    assert [s.submission_id for s in es.submissions.list(account_id=site.account, submission_id=first)] == [first]
    assert list(es.submissions.list(account_id=site.account, type="USER")) == []
    assert list(es.submissions.list(account_id=site.account, escalated_from_user=True)) == []
    assert list(es.submissions.list(account_id=site.account, status="pending")) == []


def test_sdk_4_3_reclassifies_and_lists(site: Site) -> None:
    sdk4_path()
    out = run_sdk4(
        {
            "base_url": site.live.base_url,
            "token": site.token,
            "account": site.account,
            "reclassify": [[site.ids["parcel3"], "BULK"]],
            "filters": {"requested_disposition": "BULK", "type": "TEAM"},
        },
        script=SDK4_SCRIPT,
    )
    assert out["version"].startswith("4.3") and out["reclassified"] == [{}]
    assert [(s["requested_disposition"], s["original_disposition"]) for s in out["submissions"]] == [
        ("BULK", site.initial["parcel3"])
    ]
    assert out["submissions"][0]["requested_ts"]
    assert site.ids["parcel3"] in out["submitted_ids"]
    assert out["got"][site.ids["parcel3"]]["final_disposition"] == "BULK"
