"""User reports through a real SMTP session: a domain's report address (`mailsec domain edit --report-address`)
takes a user's report — the suspicious message attached as message/rfc822, or forwarded inline — without delivering
it, and records a USER submission linked to the original (by Message-ID, else by fingerprint). An analyst escalates
it with the official SDK (5.9 and 4.3, strict): the TEAM submission and the USER one name each other."""

from __future__ import annotations

import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from gw_support import Dovecot, Gateway
from test_gateway_flow import send, wait_status

from mailsec.store.submissions import SubmissionFilter, SubmissionKind, SubmissionRepo
from support import make_eml, sdk_client

REPORT = "report@corp.example"
SDK4_SCRIPT = Path(__file__).resolve().parent.parent / "api" / "sdk4_submissions.py"


def attached_report(original: bytes, subject: str = "Phishing?") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@corp.example>"
    msg["To"] = REPORT
    msg["Subject"] = subject
    msg.set_content("This looks like phishing to me.\n")
    msg.add_attachment(original, maintype="message", subtype="rfc822", filename="suspicious.eml")
    return msg.as_bytes()


def inline_report(subject: str, body: str) -> bytes:
    forwarded = (
        "FYI, is this spam?\n\n---------- Forwarded message ---------\n"
        "From: Promo <deals@promo.example>\nDate: Tue, 24 Nov 2026 10:00:00 +0000\n"
        f"Subject: {subject}\nTo: <ann@corp.example>\n\n{body}"
    )
    return make_eml(subject=f"Fwd: {subject} - spam", sender="ann@corp.example", to=REPORT, body=forwarded)


def wait_submissions(gw: Gateway, count: int, timeout: float = 30.0) -> list:
    repo = SubmissionRepo(gw.services.engine)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found, _ = repo.search(gw.account, SubmissionFilter(kind=SubmissionKind.USER, direction="asc"))
        if len(found) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{count} user submission(s) expected")


def test_report_address_is_set_and_checked_by_the_cli(gateway: Gateway) -> None:
    bad = gateway.server.cli(
        "domain", "edit", "corp.example", "--account", gateway.account, "--report-address", "x@other.example",
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "report address must be an address of corp.example" in bad.stderr + bad.stdout
    done = gateway.server.cli(
        "domain", "edit", "corp.example", "--account", gateway.account, "--report-address", REPORT.upper()
    )
    assert f"user reports to {REPORT}" in " ".join(done.stderr.split())  # rich wraps long lines
    found = gateway.services.domains.find(gateway.account, "corp.example")
    assert found is not None and found.settings["report_address"] == REPORT
    time.sleep(1.2)  # the SMTP server remembers a domain's owner for a second


def test_reports_become_user_submissions_and_are_not_delivered(gateway: Gateway, dovecot: Dovecot) -> None:
    gw = gateway
    phish = make_eml(
        subject="Mailbox quota exceeded", sender="it-desk@quota-alert.example", body="Log in to keep your mail.\n"
    )
    promo_body = "Huge savings on garden furniture this weekend only, visit our store.\n"
    promo = make_eml(
        subject="Weekend garden sale", sender="deals@promo.example", to="ann@corp.example", body=promo_body
    )
    original_ids = {
        "phish": send(gw, phish, ["bob@corp.example"])[0],
        "promo": send(gw, promo, ["ann@corp.example"])[0],
    }
    for pid in original_ids.values():
        wait_status(gw, gw.account, pid, {"delivered", "quarantined"})
    before_ann = dovecot.queue_ids("ann@corp.example")

    # one transaction to the report address and to a person: the person gets it, the report address never does
    report_ids = send(gw, attached_report(phish), [REPORT, "ann@corp.example"], sender="bob@corp.example")
    report_ids += send(gw, inline_report("Weekend garden sale", promo_body), [REPORT], sender="ann@corp.example")
    gw.wait_idle()
    first, second = wait_submissions(gw, 2)

    phish_row = gw.services.messages.get(gw.account, original_ids["phish"])
    promo_row = gw.services.messages.get(gw.account, original_ids["promo"])
    assert phish_row is not None and promo_row is not None
    assert (first.message_pk, first.requested_by, first.requested_disposition) == (
        phish_row.pk,
        "bob@corp.example",
        "MALICIOUS",
    )
    assert first.detail["matched_by"] == "message-id" and first.detail["reported_as"] == "attached"
    assert (second.message_pk, second.requested_disposition, second.detail["matched_by"]) == (
        promo_row.pk,
        "SPAM",
        "fingerprint",
    )
    assert (first.status, first.customer_status, first.original_postfix_id) == (
        "pending",
        "unreviewed",
        phish_row.postfix_id,
    )
    # the reports are stored, marked as submissions and not delivered; the copy for Ann was delivered
    for pid in report_ids:
        stored = [m for m in (gw.services.messages.get(gw.account, p) for p in [pid]) if m is not None]
        if stored and stored[0].delivery_mode.value == "REVIEW_SUBMISSION":
            assert stored[0].delivery_status is None
            lines = [e.message for e in gw.services.messages.trace(stored[0].pk)["inbound"]]
            assert any("USER submission" in line and "not delivered" in line for line in lines), lines
    modes = {
        m.delivery_mode.value for m in (gw.services.messages.get(gw.account, p) for p in report_ids) if m is not None
    }
    assert modes == {"REVIEW_SUBMISSION", "DIRECT"}
    assert len(dovecot.queue_ids("ann@corp.example")) == len(before_ann) + 1
    assert gw.services.messages.actions([phish_row.pk])[phish_row.pk][-1].operation == "SUBMISSION"

    # the analyst sees the USER submission with the SDK and escalates it
    cf = sdk_client(gw.server.base_url, gw.token).email_security
    users = list(cf.submissions.list(account_id=gw.account, type="USER", order="requested_at", direction="asc"))
    assert [(s.type, s.original_postfix_id, s.customer_status) for s in users] == [
        ("User", phish_row.postfix_id, "unreviewed"),
        ("User", promo_row.postfix_id, "unreviewed"),
    ]
    submitted = cf.investigate.list(account_id=gw.account, message_action="SUBMITTED", detections_only=False)
    assert {phish_row.id, promo_row.id} <= {m.id for m in submitted}
    assert cf.investigate.get(phish_row.id, account_id=gw.account, submission=True).is_phish_submission is True
    cf.investigate.reclassify.create(
        phish_row.id, account_id=gw.account, expected_disposition="MALICIOUS", escalated_submission_id=first.id
    )
    team = list(cf.submissions.list(account_id=gw.account, escalated_from_user=True))
    assert len(team) == 1 and team[0].type == "Team" and team[0].escalated_submission_id == first.id
    user = next(s for s in cf.submissions.list(account_id=gw.account, type="USER") if s.submission_id == first.id)
    assert (user.escalated_submission_id, user.customer_status, user.escalated_as, user.outcome_disposition) == (
        team[0].submission_id,
        "escalated",
        "MALICIOUS",
        "MALICIOUS",
    )
    assert user.escalated_by is not None and user.escalated_at is not None
    got = cf.investigate.get(phish_row.id, account_id=gw.account)
    assert got.final_disposition == "MALICIOUS"
    reports = list(cf.phishguard.reports.list(account_id=gw.account))
    mine = [r for r in reports if r.fields.postfix_id == phish_row.postfix_id]
    assert len(mine) == 1 and (mine[0].model_extra or {})["conclusions"][0]["disposition"] == "MALICIOUS"
    assert not any(r.title.endswith("Phishing?") for r in reports)  # a report is not a campaign


def test_sdk_4_3_reclassifies_gateway_mail(gateway: Gateway) -> None:
    from api_helpers import run_sdk4, sdk4_path

    sdk4_path()
    gw = gateway
    pid = send(gw, make_eml(subject="Team offsite agenda", sender="hr@partner.example"), ["bob@corp.example"])[0]
    wait_status(gw, gw.account, pid, {"delivered", "quarantined"})
    stored = gw.services.messages.get(gw.account, pid)
    assert stored is not None
    out = run_sdk4(
        {
            "base_url": gw.server.base_url,
            "token": gw.token,
            "account": gw.account,
            "reclassify": [[pid, "SPOOF"]],
            "filters": {"requested_disposition": "SPOOF"},
        },
        script=SDK4_SCRIPT,
    )
    assert out["reclassified"] == [{}] and out["got"][pid]["final_disposition"] == "SPOOF"
    assert [s["original_edf_hash"] for s in out["submissions"]] == [stored.verdict.edf_hash]
    assert stored.id in out["submitted_ids"]


@pytest.fixture(autouse=True)
def _api_helpers_on_path() -> None:
    """The 4.3 SDK runner lives with the API tests (tests/api/api_helpers.py)."""
    import sys

    api = str(Path(__file__).resolve().parent.parent / "api")
    if api not in sys.path:
        sys.path.append(api)


def test_a_report_with_nothing_to_match_is_recorded_unlinked(gateway: Gateway) -> None:
    gw = gateway
    hostile = (
        b"From: kim@corp.example\r\nTo: report@corp.example\r\nSubject: weird\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n%%%% not base64 \x00\xff %%%%\r\n--b--\r\n"
    )
    before = len(wait_submissions(gw, 0))
    pid = send(gw, hostile, [REPORT], sender="kim@corp.example")[0]
    gw.wait_idle()
    found = wait_submissions(gw, before + 1)
    mine = next(s for s in found if s.detail["report_postfix_id"] == pid)
    assert mine.message_pk is None and mine.detail["matched_by"] is None and mine.requested_by == "kim@corp.example"
    report = gw.services.messages.get(gw.account, pid)
    assert report is not None and report.delivery_mode.value == "REVIEW_SUBMISSION"
    lines = [e.message for e in gw.services.messages.trace(report.pk)["inbound"]]
    assert any("no stored message matches it" in line for line in lines), lines
    # a "report" from outside the account's domains is kept, not delivered, and records nothing
    outsider = make_eml(subject="Phishing?", sender="mallory@evil.example", to=REPORT)
    ignored = send(gw, outsider, [REPORT], sender="mallory@evil.example")[0]
    gw.wait_idle()
    stored = gw.services.messages.get(gw.account, ignored)
    deadline = time.monotonic() + 30
    while stored is None and time.monotonic() < deadline:
        time.sleep(0.1)
        stored = gw.services.messages.get(gw.account, ignored)
    assert stored is not None and stored.delivery_status is None
    lines = [e.message for e in gw.services.messages.trace(stored.pk)["inbound"]]
    assert any("ignored: not a user of the account's domains" in line for line in lines), lines
    assert SubmissionRepo(gw.services.engine).get(gw.account, f"user-{ignored}") is None
    # `--report-address ""` removes it
    gw.server.cli("domain", "edit", "corp.example", "--account", gw.account, "--report-address", "")
    found_domain = gw.services.domains.find(gw.account, "corp.example")
    assert found_domain is not None and "report_address" not in found_domain.settings
