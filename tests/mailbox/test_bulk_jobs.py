"""Bulk jobs in process, on SQLite and PostgreSQL, moving real mail in Dovecot: a job by search runs in batches to
completion, a cancel stops it between batches, a runner that stops mid-job is resumed by another, and no message
is acted on twice."""

from __future__ import annotations

import threading
import uuid

import pytest
from gw_support import Dovecot
from move_support import corp_account, deliver_many

from mailsec.actions.bulk import BulkJobError, create_job, run_job
from mailsec.mailbox import registry
from mailsec.mailbox.base import MailboxBackend
from mailsec.services import Services
from mailsec.store import bulk_jobs as jobs
from mailsec.store.bulk_jobs import BulkJobRepo
from mailsec.store.integrations import Integration

ANN, BOB = "ann@corp.example", "bob@corp.example"


def _in(dv: Dovecot, user: str, folder: str, marker: str) -> int:
    with dv.imap(user) as c:
        c.select_folder(folder, readonly=True)
        return len(c.search(["SUBJECT", marker]))


def _job(services: Services, account: str, marker: str) -> str:
    return create_job(
        services, account, "MOVE", {"query": marker, "detections_only": False}, "JunkEmail", "phish wave", "soc"
    )


def _counting(services: Services, on_call: list, hook) -> object:  # type: ignore[no-untyped-def]
    """The real backend, with a hook run at each mailbox lookup (to cancel or stop at a chosen point); `on_call`
    gets the name of each lookup and move."""

    def backend_for(integration: Integration) -> MailboxBackend:
        real = registry.backend_for(integration, services.settings.data_dir)

        class Hooked:
            def locate(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                on_call.append("locate")
                hook(len(on_call))
                return real.locate(*args, **kwargs)

            def locate_many(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                on_call.append("locate_many")
                hook(len(on_call))
                return real.locate_many(*args, **kwargs)

            def move(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                on_call.append("move")
                return real.move(*args, **kwargs)

            def move_many(self, *args, **kwargs):  # type: ignore[no-untyped-def]
                on_call.append("move_many")
                return real.move_many(*args, **kwargs)

            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

        return Hooked()  # type: ignore[return-value]

    return backend_for


def test_job_by_search_runs_in_batches_to_completion(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    marker = uuid.uuid4().hex[:10]
    messages = deliver_many(services, account, [ANN], 5, subject=marker)
    deliver_many(services, account, [ANN], 2)  # not matched by the search: left alone
    job_id = _job(services, account, marker)
    repo = BulkJobRepo(services.engine)
    assert (job := repo.get(account, job_id)) is not None and job.status == jobs.PENDING
    calls: list = []
    counting = _counting(services, calls, lambda n: None)
    assert run_job(services, job_id, batch=2, backend_for=counting) == job_id  # type: ignore[arg-type]
    # batches of 2, 2 and 1: the two of a batch found and moved together, the lone one alone
    assert calls == ["locate_many", "move_many", "locate_many", "move_many", "locate", "move"], calls
    job = repo.get(account, job_id)
    assert job is not None and job.status == jobs.COMPLETED and job.completed_at is not None
    assert job.counts == {jobs.M_SUCCESSFUL: 5}
    assert _in(mail_dovecot, ANN, "Junk", marker) == 5 and _in(mail_dovecot, ANN, "INBOX", marker) == 0
    rows = repo.messages(job_id, limit=100)
    assert sorted(r.message_pk for r in rows) == sorted(m.pk for m in messages)
    assert all(r.outcome["items"][0]["status"] == "moved" for r in rows)
    assert run_job(services, job_id) is None  # finished: nothing to claim


def test_cancel_stops_between_batches(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    marker = uuid.uuid4().hex[:10]
    deliver_many(services, account, [BOB], 6, subject=marker)
    job_id = _job(services, account, marker)
    repo = BulkJobRepo(services.engine)
    calls: list = []
    hook = _counting(services, calls, lambda n: n == 1 and repo.cancel(account, job_id))
    run_job(services, job_id, batch=2, backend_for=hook)  # type: ignore[arg-type]
    job = repo.get(account, job_id)
    assert job is not None and job.status == jobs.CANCELLED
    assert job.counts == {jobs.M_SUCCESSFUL: 2, jobs.M_CANCELLED: 4}
    assert _in(mail_dovecot, BOB, "Junk", marker) == 2 and _in(mail_dovecot, BOB, "INBOX", marker) == 4


def test_a_stopped_runner_is_resumed_and_nothing_is_acted_on_twice(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    marker = uuid.uuid4().hex[:10]
    deliver_many(services, account, [ANN, BOB], 5, subject=marker)
    job_id = _job(services, account, marker)
    repo = BulkJobRepo(services.engine)
    stop = threading.Event()
    calls: list = []
    hook = _counting(services, calls, lambda n: stop.set())  # while batch 1 is worked on
    run_job(services, job_id, identity="host:1:a", batch=2, stop=stop, backend_for=hook)  # type: ignore[arg-type]
    job = repo.get(account, job_id)
    assert job is not None and job.status == jobs.PROCESSING
    assert job.counts == {jobs.M_SUCCESSFUL: 2, jobs.M_PENDING: 3}
    assert run_job(services, job_id, identity="host:2:b", batch=2) == job_id  # another runner resumes
    job = repo.get(account, job_id)
    assert job is not None and job.status == jobs.COMPLETED and job.counts == {jobs.M_SUCCESSFUL: 5}
    # one outcome per message, each acted on once: one MOVE in its action log, both mailboxes moved once
    rows = repo.messages(job_id, limit=100)
    assert len({r.message_pk for r in rows}) == 5
    logs = services.messages.actions([r.message_pk for r in rows])
    assert all([a.operation for a in log] == ["MOVE"] for log in logs.values())
    for user in (ANN, BOB):
        assert _in(mail_dovecot, user, "Junk", marker) == 5 and _in(mail_dovecot, user, "INBOX", marker) == 0


def test_bad_jobs_are_refused(services: Services) -> None:
    account = services.accounts.create_account("Bad").id
    for action, search, dest, pointer in [
        ("DELETE", {}, None, "/action"),
        ("MOVE", {}, None, "/destination"),
        ("MOVE", {"start": "yesterday"}, "Inbox", "/search_params/start"),
        ("MOVE", {"final_disposition": "EVIL"}, "Inbox", "/search_params"),
    ]:
        with pytest.raises(BulkJobError) as info:
            create_job(services, account, action, search, dest, None, "soc")
        assert info.value.pointer == pointer


def test_release_job_delivers_the_held_and_skips_the_rest(services: Services, mail_dovecot: Dovecot) -> None:
    from gw_support import ALL_DISPOSITIONS

    from mailsec.store.policies import set_quarantine_policy

    account = corp_account(services, mail_dovecot)
    marker = uuid.uuid4().hex[:10]
    delivered = deliver_many(services, account, [BOB], 1, subject=marker)  # not held: the job skips it
    set_quarantine_policy(services.engine, account, ALL_DISPOSITIONS)
    held = deliver_many(services, account, [BOB], 3, subject=marker, expect="quarantined")
    assert _in(mail_dovecot, BOB, "INBOX", marker) == 1
    job_id = create_job(services, account, "RELEASE", {"query": marker, "detections_only": False}, None, None, "soc")
    assert run_job(services, job_id) == job_id
    repo = BulkJobRepo(services.engine)
    job = repo.get(account, job_id)
    assert job is not None and job.status == jobs.COMPLETED
    assert job.counts == {jobs.M_SUCCESSFUL: 3, jobs.M_SKIPPED: 1}
    assert _in(mail_dovecot, BOB, "INBOX", marker) == 4
    outcomes = {r.message_pk: r for r in repo.messages(job_id, limit=10)}
    assert outcomes[delivered[0].pk].outcome["reason"] == "not quarantined"
    assert all(outcomes[m.pk].outcome["delivered"] == [BOB] for m in held)
