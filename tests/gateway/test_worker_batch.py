"""The queue worker's batch path in process, against a real Dovecot: one claim for several rows, one open LMTP
session for all of them (and a fresh one when the next hop dropped it), the recipients' `sending` state written
with the message, a held message quarantined in its save, and every row finished."""

from __future__ import annotations

import uuid

from gw_support import ALL_DISPOSITIONS, Dovecot

from mailsec.gateway.deliver import Connections, deliver, parse_next_hop
from mailsec.gateway.receive import Session, receive
from mailsec.gateway.worker import QueueWorker, default_worker_processes
from mailsec.services import Services
from mailsec.store.policies import set_quarantine_policy
from mailsec.store.queue import QueueRepo
from support import make_eml


def _subjects(dv: Dovecot, user: str, marker: str) -> list[str]:
    with dv.imap(user) as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["SUBJECT", marker])
        data = c.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
        return sorted(next(v for k, v in d.items() if k.startswith(b"BODY")).decode().strip() for d in data.values())


def test_one_session_per_batch_and_a_new_one_after_the_hop_restarts(dovecot_flaky: Dovecot) -> None:
    hop = parse_next_hop(dovecot_flaky.lmtp_url)
    marker = uuid.uuid4().hex[:10]
    with Connections() as conns:
        first = deliver(hop, "a@sender.example", ["dave@down.example"], make_eml(f"{marker} one"), connections=conns)
        assert first["dave@down.example"].ok
        session = conns.take(hop, "mailsec.local", 30.0)
        assert session is not None
        conns.give_back(hop, "mailsec.local", 30.0, session)
        second = deliver(hop, "a@sender.example", ["dave@down.example"], make_eml(f"{marker} two"), connections=conns)
        assert second["dave@down.example"].ok
        assert conns.take(hop, "mailsec.local", 30.0) is session  # the same session carried both
        conns.give_back(hop, "mailsec.local", 30.0, session)
        dovecot_flaky.stop()  # the kept session dies with the server
        dovecot_flaky.start()
        third = deliver(hop, "a@sender.example", ["dave@down.example"], make_eml(f"{marker} three"), connections=conns)
        assert third["dave@down.example"].ok, third  # reconnected: nothing had been sent on the dead session
        assert conns.take(hop, "mailsec.local", 30.0) is not session
    assert _subjects(dovecot_flaky, "dave@down.example", marker) == [
        f"Subject: {marker} one",
        f"Subject: {marker} three",
        f"Subject: {marker} two",
    ]


def test_batch_delivers_quarantines_and_finishes_every_row(services: Services, dovecot: Dovecot) -> None:
    inbox = services.accounts.create_account("Inbox").id
    held = services.accounts.create_account("Held").id
    services.domains.add(inbox, "kill.example", mode="DIRECT", next_hop=dovecot.lmtp_url, verified=True)
    services.domains.add(held, "hold.example", mode="DIRECT", next_hop=dovecot.lmtp_url, verified=True)
    set_quarantine_policy(services.engine, held, ALL_DISPOSITIONS)
    marker = uuid.uuid4().hex[:10]
    accepted = []
    for n, rcpt in enumerate(["kim@kill.example", "kim@kill.example", "carol@hold.example", "kim@kill.example"]):
        raw = make_eml(f"{marker} {n}", to=rcpt)
        accepted += receive(services, raw, "a@sender.example", [rcpt], Session(client_ip="127.0.0.1", helo="t"))
    repo = QueueRepo(services.engine)
    claimed = repo.claim("test:1", 8, 10**9)
    assert sorted(i.postfix_id for i in claimed) == sorted(a.postfix_id for a in accepted)
    assert repo.claim("test:2", 8, 10**9) == []  # claimed once
    QueueWorker(services, threads=1).run_batch(claimed)

    for a in accepted:
        item = repo.get(a.postfix_id)
        assert (
            item is not None and item.state == "done" and item.claimed_by is None
            if hasattr(item, "claimed_by")
            else True
        )
        message = services.messages.get(a.account_id, a.postfix_id)
        assert message is not None
        states = services.messages.recipient_states(message.pk)
        trace = services.messages.trace(message.pk)
        if a.account_id == held:
            assert message.is_quarantined and message.delivery_status == "quarantined"
            assert [s["status"] for s in states] == ["quarantined"]
            assert trace["inbound"][-1].message.startswith("quarantined: disposition ")
            assert trace["inbound"][-2].message.startswith("stored as ")
            assert trace["outbound"] == []
        else:
            assert message.delivery_status == "delivered" and not message.is_quarantined
            assert [(s["status"], s["folder"]) for s in states] == [("delivered", "Inbox")]
            assert [t.message.split(": <")[0] for t in trace["outbound"]] == [
                f"delivery attempt 1 to {dovecot.lmtp_url}"
            ]
            assert "interrupted" not in " ".join(t.message for t in trace["outbound"])
    assert _subjects(dovecot, "kim@kill.example", marker) == [f"Subject: {marker} {n}" for n in (0, 1, 3)]
    assert _subjects(dovecot, "carol@hold.example", marker) == []


def test_default_worker_processes_follow_the_cores() -> None:
    assert [default_worker_processes(c) for c in (1, 2, 4, 16)] == [2, 3, 5, 8]
