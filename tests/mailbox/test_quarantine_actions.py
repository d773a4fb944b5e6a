"""The write side behind the console's quarantine and bulk pages, on SQLite and PostgreSQL with real mail: delete
from quarantine (the held recipients never get the message, the stored copy stays, the action log says who), and
bulk jobs on ticked messages (exactly those, never the rest of a search)."""

from __future__ import annotations

import uuid

import pytest
from gw_support import Dovecot
from move_support import corp_account, deliver_many

from mailsec.actions.bulk import BulkJobError, create_job, run_job
from mailsec.actions.discard import discard
from mailsec.pipeline import process_message
from mailsec.services import Services
from mailsec.store import bulk_jobs as jobs
from mailsec.store.bulk_jobs import BulkJobRepo
from mailsec.store.policies import set_quarantine_policy
from support import make_eml

ANN, BOB, CAT = "ann@corp.example", "bob@corp.example", "cat@corp.example"


def _in(dv: Dovecot, user: str, folder: str, marker: str) -> int:
    with dv.imap(user) as c:
        c.select_folder(folder, readonly=True)
        return len(c.search(["SUBJECT", marker]))


def test_delete_from_quarantine(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    set_quarantine_policy(services.engine, account, ["NONE", "SPAM", "BULK", "SPOOF", "MALICIOUS"])
    marker = uuid.uuid4().hex[:10]
    held = deliver_many(services, account, [ANN, BOB], 2, subject=marker, expect="quarantined")
    other = services.accounts.create_account("Other").id

    assert discard(services, other, [held[0].id], "soc@other")[0].found is False  # another account's message
    result = discard(services, account, [held[0].id], "soc@corp")[0]
    assert result.found and sorted(result.deleted) == [ANN, BOB] and result.untouched == []

    gone = services.messages.get(account, held[0].id)
    assert gone is not None and not gone.is_quarantined and gone.delivery_status == "rejected"
    states = {r["address"]: (r["status"], r["detail"]) for r in services.messages.recipient_states(gone.pk)}
    assert states == {a: ("rejected", "deleted from quarantine by soc@corp") for a in (ANN, BOB)}
    log = services.messages.actions([gone.pk])[gone.pk]
    assert [(a.operation, a.folder, a.requested_by) for a in log] == [("MOVE", "RecoverableItemsPurges", "soc@corp")]
    assert any("deleted from quarantine by soc@corp" in t.message for t in services.messages.trace(gone.pk)["inbound"])

    again = discard(services, account, [held[0].id], "soc@corp")[0]
    assert again.deleted == [] and sorted(again.untouched) == [ANN, BOB]  # nothing held any more: nothing done
    still = services.messages.get(account, held[1].id)
    assert still is not None and still.is_quarantined and still.delivery_status == "quarantined"
    assert _in(mail_dovecot, ANN, "INBOX", marker) == 0 and _in(mail_dovecot, BOB, "INBOX", marker) == 0


def test_bulk_job_on_ticked_messages_moves_exactly_those(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    marker = uuid.uuid4().hex[:10]
    delivered = deliver_many(services, account, [CAT], 4, subject=marker)
    ticked = [delivered[0].id, delivered[2].postfix_id]  # either kind of id, as the API accepts
    job_id = create_job(services, account, "MOVE", {}, "JunkEmail", "console", "soc", message_refs=ticked)
    assert run_job(services, job_id) == job_id
    job = BulkJobRepo(services.engine).get(account, job_id)
    assert job is not None and job.status == jobs.COMPLETED and job.counts == {jobs.M_SUCCESSFUL: 2}
    rows = BulkJobRepo(services.engine).messages(job_id, limit=10)
    assert sorted(r.message_pk for r in rows) == sorted([delivered[0].pk, delivered[2].pk])
    assert _in(mail_dovecot, CAT, "Junk", marker) == 2 and _in(mail_dovecot, CAT, "INBOX", marker) == 2


def test_bulk_job_on_ticked_messages_of_another_account_is_refused(services: Services) -> None:
    mine = services.accounts.create_account("Mine").id
    theirs = services.accounts.create_account("Theirs").id
    message = process_message(services, make_eml("mine only"), mine)
    with pytest.raises(BulkJobError) as refused:
        create_job(services, theirs, "RELEASE", {}, None, None, "soc", message_refs=[message.id, "nosuchmessage00"])
    assert refused.value.pointer == "/message_ids"
    assert BulkJobRepo(services.engine).list_jobs(theirs, None, None, 0, 10) == []
    assert discard(services, theirs, [message.id], "soc")[0].found is False
