"""Submissions on SQLite and PostgreSQL: `actions.reclassify` records a TEAM submission, an action-log entry and the
message's new final disposition (keeping the scan's); `SubmissionRepo` filters, orders and pages per account; a
USER report is escalated and the two submissions name each other; hostile .eml content is a clear error."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from mailsec.actions.reclassify import MessageNotFound, ReclassifyError, reclassify
from mailsec.model import Disposition, Operation
from mailsec.pipeline import process_message
from mailsec.services import Services
from mailsec.store.history import HistoryRepo
from mailsec.store.search import SearchParams, run_search
from mailsec.store.submissions import (
    CustomerStatus,
    NewSubmission,
    SubmissionFilter,
    SubmissionKind,
    SubmissionRepo,
    SubmissionStatus,
)
from support import make_eml


def _account(services: Services, name: str = "A") -> str:
    return services.accounts.create_account(name).id


def test_reclassify_records_submission_action_and_new_disposition(services: Services) -> None:
    account = _account(services)
    stored = process_message(
        services, make_eml(subject="Team lunch on Friday", sender="carol@partner.example"), account
    )
    before = services.messages.get(account, stored.id)
    assert before is not None and before.final_disposition is Disposition.NONE

    event = reclassify(services, account, stored.postfix_id, "spam", "soc@corp.example")

    assert (event.original, event.requested, event.message_pk) == (Disposition.NONE, Disposition.SPAM, stored.pk)
    after = services.messages.get(account, stored.id)
    assert after is not None and after.final_disposition is Disposition.SPAM
    assert after.scanned_disposition is Disposition.NONE
    assert after.detection_reasons[0].startswith("Reclassified as SPAM by soc@corp.example")
    actions = services.messages.actions([stored.pk])[stored.pk]
    assert [(a.operation, a.requested_by) for a in actions] == [(Operation.RECLASSIFY.value, "soc@corp.example")]
    team = SubmissionRepo(services.engine).get(account, event.submission_id)
    assert team is not None and team.kind is SubmissionKind.TEAM
    assert (team.original_disposition, team.requested_disposition, team.outcome_disposition) == ("NONE", "SPAM", "SPAM")
    assert team.original_postfix_id == stored.postfix_id and team.subject == "Team lunch on Friday"
    # the search by final disposition and by message_action finds it; the scan's verdict is not searched for
    assert run_search(services.engine, account, SearchParams(final_disposition="SPAM")).pks == [stored.pk]
    assert run_search(services.engine, account, SearchParams(message_action="SUBMITTED")).pks == [stored.pk]
    assert run_search(services.engine, account, SearchParams(query="spam")).pks == [stored.pk]
    # a second verdict keeps the first original
    reclassify(services, account, stored.id, "NONE", "lead@corp.example")
    again = services.messages.get(account, stored.id)
    assert again is not None and again.final_disposition is Disposition.NONE
    assert again.scanned_disposition is Disposition.NONE
    assert again.detection_reasons[0].startswith("Reclassified as NONE by lead@corp.example")
    assert sum(r.startswith("Reclassified as") for r in again.detection_reasons) == 1
    # the sender's history learnt the bad verdict
    history = HistoryRepo(services.engine).read(account, "partner.example", "carol@partner.example")
    assert history.address is not None and history.address.flagged == 1


def test_reclassify_refuses_what_it_cannot_honour(services: Services) -> None:
    account, other = _account(services), _account(services, "B")
    stored = process_message(services, make_eml(subject="Quarterly numbers"), account)
    with pytest.raises(MessageNotFound):
        reclassify(services, other, stored.id, "SPAM", "x@y.example")  # another account's message
    with pytest.raises(ReclassifyError, match="expected_disposition"):
        reclassify(services, account, stored.id, "MALICIOUS-BEC", "x@y.example")
    with pytest.raises(ReclassifyError, match="not base64"):
        reclassify(services, account, stored.id, "SPAM", "x@y.example", eml_content="@@not base64@@")
    not_mail = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256))).decode()
    with pytest.raises(ReclassifyError, match="not an e-mail"):
        reclassify(services, account, stored.id, "SPAM", "x@y.example", eml_content=not_mail)
    with pytest.raises(ReclassifyError, match="escalated_submission_id"):
        reclassify(services, account, stored.id, "SPAM", "x@y.example", escalated_submission_id="nope")
    assert services.messages.actions([stored.pk])[stored.pk] == []
    assert SubmissionRepo(services.engine).for_messages(account, [stored.pk])[stored.pk] == []


def test_eml_content_is_analysed_in_place_of_the_stored_copy(services: Services) -> None:
    account = _account(services)
    stored = process_message(services, make_eml(subject="Original subject", body="Short note.\n"), account)
    eml = make_eml(subject="The copy the analyst holds", body="A different text about invoices and payment.\n")
    event = reclassify(services, account, stored.id, "MALICIOUS", "soc@corp.example", base64.b64encode(eml).decode())
    team = SubmissionRepo(services.engine).get(account, event.submission_id)
    assert team is not None and team.subject == "The copy the analyst holds"
    assert team.detail["eml"]["size"] == len(eml) and services.blobs.get(team.detail["eml"]["sha256"]) == eml
    message = services.messages.get(account, stored.id)
    assert team.original_edf_hash and message is not None and team.original_edf_hash != message.verdict.edf_hash
    assert message is not None and message.is_phish_submission


def test_filters_order_paging_and_account_scope(services: Services) -> None:
    account, other = _account(services), _account(services, "B")
    repo = SubmissionRepo(services.engine)
    ids = [process_message(services, make_eml(subject=f"Subject {n}"), account).id for n in "abc"]
    foreign = process_message(services, make_eml(subject="Subject z"), other).id
    first = reclassify(services, account, ids[0], "SPAM", "ann@corp.example").submission_id
    second = reclassify(services, account, ids[1], "MALICIOUS", "bob@corp.example").submission_id
    reclassify(services, other, foreign, "SPAM", "eve@other.example")
    user = repo.add(
        NewSubmission(
            account_id=account,
            kind=SubmissionKind.USER,
            message_pk=None,
            requested_disposition="MALICIOUS",
            requested_by="user@corp.example",
            status=SubmissionStatus.PENDING,
            customer_status=CustomerStatus.UNREVIEWED,
            subject="Subject c reported",
        )
    )

    def found(**kw: object) -> list[str]:
        return [s.id for s in repo.search(account, SubmissionFilter(**kw))[0]]  # type: ignore[arg-type]

    assert set(found()) == {first, second, user.id}
    assert found(kind=SubmissionKind.USER) == [user.id]
    assert set(found(kind=SubmissionKind.TEAM)) == {first, second}
    assert found(requested_disposition="spam") == [first]
    assert set(found(original_disposition="NONE")) == {first, second}
    assert found(outcome_disposition="MALICIOUS") == [second]
    assert found(status="PENDING") == [user.id] and found(customer_status="unreviewed") == [user.id]
    assert found(query="BOB@corp") == [second] and found(query="subject reported") == [user.id]
    assert found(submission_id=first) == [first]
    assert found(order="subject", direction="asc") == [first, second, user.id]
    assert found(order="subject", direction="asc", page=2, per_page=2) == [user.id]
    assert repo.search(account, SubmissionFilter(per_page=1))[1] == 3
    future = datetime.now(UTC) + timedelta(days=1)
    assert found(start=future, end=future + timedelta(days=1)) == []
    assert found(escalated_from_user=True) == []
    assert set(found(escalated_from_user=False)) == {first, second, user.id}
    assert repo.get(other, first) is None and len(found()) == 3


def test_escalation_links_user_and_team_submissions(services: Services) -> None:
    account = _account(services)
    repo = SubmissionRepo(services.engine)
    stored = process_message(services, make_eml(subject="Your mailbox is full"), account)
    other = process_message(services, make_eml(subject="Something else"), account)
    user = repo.record(
        NewSubmission(
            account_id=account,
            kind=SubmissionKind.USER,
            message_pk=stored.pk,
            requested_disposition="MALICIOUS",
            requested_by="bob@corp.example",
            original_disposition="NONE",
            status=SubmissionStatus.PENDING,
            customer_status=CustomerStatus.UNREVIEWED,
        ),
        Operation.SUBMISSION,
        datetime.now(UTC),
    )
    with pytest.raises(ReclassifyError, match="another message"):
        reclassify(services, account, other.id, "MALICIOUS", "soc@corp.example", escalated_submission_id=user.id)
    event = reclassify(services, account, stored.id, "MALICIOUS", "soc@corp.example", escalated_submission_id=user.id)
    team = repo.get(account, event.submission_id)
    escalated = repo.get(account, user.id)
    assert team is not None and escalated is not None
    assert team.escalated_submission_id == user.id and escalated.escalated_submission_id == team.id
    assert (escalated.status, escalated.customer_status) == ("escalated", "escalated")
    assert (escalated.escalated_by, escalated.escalated_as, escalated.outcome_disposition) == (
        "soc@corp.example",
        "MALICIOUS",
        "MALICIOUS",
    )
    assert [s.id for s in repo.search(account, SubmissionFilter(escalated_from_user=True))[0]] == [team.id]
    with pytest.raises(ReclassifyError):  # a TEAM submission is not a user report
        reclassify(services, account, stored.id, "SPAM", "soc@corp.example", escalated_submission_id=team.id)


def test_a_rescan_keeps_the_analysts_disposition(services: Services) -> None:
    from mailsec.rescan import rescan

    account = _account(services)
    stored = process_message(services, make_eml(subject="Quarterly figures", sender="dan@partner.example"), account)
    reclassify(services, account, stored.id, "SPAM", "soc@corp.example")

    summary = rescan(services, account, [stored.pk])

    after = services.messages.get(account, stored.id)
    assert after is not None and after.final_disposition is Disposition.SPAM and after.reclassified
    assert after.scanned_disposition is Disposition.NONE
    assert after.detection_reasons[0].startswith("Reclassified as SPAM by soc@corp.example")
    assert run_search(services.engine, account, SearchParams(final_disposition="SPAM")).pks == [stored.pk]
    assert summary.scanned == 1 and summary.changed == []
    trace = [t.message for lines in services.messages.trace(stored.pk).values() for t in lines]
    assert any("an analyst's reclassification" in line for line in trace)
