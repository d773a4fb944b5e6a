"""Auto-move of BCC copies (SQLite and PostgreSQL): the real MX delivered the mail to Dovecot, mailsec gets the
copy, and the account's rule for the copy's disposition moves it in every recipient's mailbox — at once when the
mail is there, or on a later attempt of the queue when it arrives after mailsec saw it."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from gw_support import Dovecot
from move_support import add_imap
from sqlalchemy import text

from mailsec.actions import auto_move
from mailsec.gateway.deliver import deliver, parse_next_hop
from mailsec.gateway.receive import Session, receive
from mailsec.gateway.worker import QueueWorker
from mailsec.mailbox import registry
from mailsec.mailbox.base import MailboxBackend
from mailsec.services import Services
from mailsec.store.integrations import Integration
from mailsec.store.queue import QueueRepo
from support import make_eml

ANN, BOB = "ann@corp.example", "bob@corp.example"


def _bcc_account(services: Services, dv: Dovecot) -> str:
    account = services.accounts.create_account(f"BCC {uuid.uuid4().hex[:6]}").id
    services.domains.add(account, "corp.example", mode="BCC", next_hop="", verified=True)
    add_imap(services, account, dv.imap_port)
    return account


def _folders(dv: Dovecot, user: str, marker: str) -> list[str]:
    with dv.imap(user) as c:
        out = []
        for _, _, name in c.list_folders():
            c.select_folder(name, readonly=True)
            out += [name] * len(c.search(["SUBJECT", marker]))
        return sorted(out)


def _run_queue(services: Services) -> None:
    repo = QueueRepo(services.engine)
    worker = QueueWorker(services, threads=1)
    while claimed := repo.claim("test:auto", 16, 10**9):
        worker.run_batch(claimed)


def test_rules_are_validated(services: Services) -> None:
    account = services.accounts.create_account("Rules").id
    assert auto_move.get_rules(services.engine, account) == {}
    auto_move.set_rules(services.engine, account, {"spam": "JunkEmail", "MALICIOUS": "RecoverableItemsDeletions"})
    assert {k: v.value for k, v in auto_move.get_rules(services.engine, account).items()} == {
        "SPAM": "JunkEmail",
        "MALICIOUS": "RecoverableItemsDeletions",
    }
    for bad in ({"EVIL": "JunkEmail"}, {"SPAM": "Attic"}):
        with pytest.raises(ValueError):
            auto_move.set_rules(services.engine, account, bad)
    assert len(auto_move.get_rules(services.engine, account)) == 2  # nothing written on a bad value
    auto_move.set_rules(services.engine, account, {})
    assert auto_move.get_rules(services.engine, account) == {}


def test_bcc_copy_is_moved_now_or_when_it_arrives(services: Services, mail_dovecot: Dovecot) -> None:
    account = _bcc_account(services, mail_dovecot)
    # (clean test mail is NONE: the rule is on NONE so that the verdict is certain; any disposition works the same)
    auto_move.set_rules(services.engine, account, {"NONE": "JunkEmail"})
    marker = uuid.uuid4().hex[:10]
    raw = make_eml(f"bcc {marker}", to=f"{ANN}, {BOB}")
    mx = parse_next_hop(mail_dovecot.lmtp_url)
    assert deliver(mx, "alice@sender.example", [ANN], raw)[ANN].ok  # the real MX: ann has it now, bob not yet
    [accepted] = receive(services, raw, "alice@sender.example", [ANN, BOB], Session(client_ip="127.0.0.1"))
    _run_queue(services)
    assert _folders(mail_dovecot, ANN, marker) == ["Junk"]
    row = QueueRepo(services.engine).get(accepted.postfix_id)
    assert row is not None and row.state == "deferred"  # bob's copy: looked for again later
    assert deliver(mx, "alice@sender.example", [BOB], raw)[BOB].ok
    queue = QueueRepo(services.engine)
    with queue.engine.begin() as conn:  # the retry is due now (the queue may be a database of its own)
        conn.execute(text("UPDATE queue SET next_attempt_us = 0 WHERE postfix_id = :p"), {"p": accepted.postfix_id})
    _run_queue(services)
    assert _folders(mail_dovecot, BOB, marker) == ["Junk"] and _folders(mail_dovecot, ANN, marker) == ["Junk"]
    row = QueueRepo(services.engine).get(accepted.postfix_id)
    assert row is not None and row.state == "done"
    message = services.messages.get(account, accepted.postfix_id)
    assert message is not None and message.delivery_status == "moved"
    log = services.messages.actions([message.pk])[message.pk]
    assert [(a.operation, a.requested_by, a.status) for a in log] == [
        ("MOVE", "auto-move", "partial"),
        ("MOVE", "auto-move", "completed"),
    ]


def test_no_rule_no_move(services: Services, mail_dovecot: Dovecot) -> None:
    account = _bcc_account(services, mail_dovecot)
    auto_move.set_rules(services.engine, account, {"MALICIOUS": "RecoverableItemsPurges"})
    marker = uuid.uuid4().hex[:10]
    raw = make_eml(f"bcc {marker}", to=ANN)
    assert deliver(parse_next_hop(mail_dovecot.lmtp_url), "alice@sender.example", [ANN], raw)[ANN].ok
    [accepted] = receive(services, raw, "alice@sender.example", [ANN], Session(client_ip="127.0.0.1"))
    _run_queue(services)
    assert _folders(mail_dovecot, ANN, marker) == ["INBOX"]
    message = services.messages.get(account, accepted.postfix_id)
    assert message is not None and services.messages.actions([message.pk])[message.pk] == []
    assert re.search(r"BCC copy", " ".join(t.message for t in services.messages.trace(message.pk)["inbound"]))


def test_the_copies_of_a_queue_batch_are_moved_together(
    services: Services, mail_dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = _bcc_account(services, mail_dovecot)
    auto_move.set_rules(services.engine, account, {"NONE": "JunkEmail"})
    calls: list[str] = []
    real_backend_for = registry.backend_for

    def counting(integration: Integration, data_dir: Path) -> MailboxBackend:
        real = real_backend_for(integration, data_dir)

        class Counted:
            def __getattr__(self, name: str) -> Any:
                calls.append(name)
                return getattr(real, name)

        return Counted()  # type: ignore[return-value]

    monkeypatch.setattr(registry, "backend_for", counting)
    marker = uuid.uuid4().hex[:10]
    mx = parse_next_hop(mail_dovecot.lmtp_url)
    accepted = []
    for n in range(3):
        raw = make_eml(f"bcc {marker} {n}", to=ANN)
        assert deliver(mx, "alice@sender.example", [ANN], raw)[ANN].ok
        accepted += receive(services, raw, "alice@sender.example", [ANN], Session(client_ip="127.0.0.1"))
    _run_queue(services)  # one claim of 16 rows: one batch
    assert calls == ["locate_many", "move_many"], calls  # one lookup and one move for the batch's three copies
    assert _folders(mail_dovecot, ANN, marker) == ["Junk"] * 3
    for a in accepted:
        row = QueueRepo(services.engine).get(a.postfix_id)
        assert row is not None and row.state == "done"
        message = services.messages.get(account, a.postfix_id)
        assert message is not None and message.delivery_status == "moved"
        log = services.messages.actions([message.pk])[message.pk]
        assert [(a.operation, a.requested_by, a.status) for a in log] == [("MOVE", "auto-move", "completed")]
