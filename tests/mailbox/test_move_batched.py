"""A move request works per mailbox, on real Dovecot: the request's messages of one mailbox are found with one
batched lookup and moved with one batched move, over a session kept for the next request; each recipient still gets
its own result (moved, already there, deleted by the user), with MOVE and with the COPY + EXPUNGE fallback."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from gw_support import Dovecot
from move_support import corp_account, deliver_many, folders_holding

from mailsec.actions.move import move
from mailsec.mailbox import registry
from mailsec.mailbox.base import MailboxBackend
from mailsec.mailbox.imap import ImapBackend
from mailsec.model import Destination
from mailsec.services import Services
from mailsec.store.integrations import Integration, IntegrationRepo

ANN, BOB = "ann@corp.example", "bob@corp.example"


class Counting:
    """The live backend, counting the calls the move makes on it."""

    def __init__(self, real: MailboxBackend) -> None:
        self.real = real
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.real, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self.lock:  # mailboxes are worked on in parallel threads
                self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


def _counting(services: Services) -> tuple[Callable[[Integration], MailboxBackend], dict[str, Counting]]:
    wrapped: dict[str, Counting] = {}
    lock = threading.Lock()

    def backend_for(integration: Integration) -> MailboxBackend:
        with lock:
            if integration.id not in wrapped:
                wrapped[integration.id] = Counting(registry.backend_for(integration, services.settings.data_dir))
            return wrapped[integration.id]  # type: ignore[return-value]

    return backend_for, wrapped


def _integration(services: Services, account: str) -> Integration:
    [integration] = IntegrationRepo(services.engine).list_for(account)
    return integration


def _user_moves(dv: Dovecot, user: str, message_id: str, folder: str | None) -> None:
    """What the mailbox's owner does in a mail client: move the message to `folder`, or delete it for good."""
    with dv.imap(user) as c:
        c.select_folder("INBOX")
        uids = c.search(["HEADER", "Message-ID", message_id])
        assert uids
        if folder is not None:
            c.copy(uids, folder)
        c.delete_messages(uids)
        c.expunge()


@pytest.mark.parametrize("server", ["mail_dovecot", "dovecot_without_move"])
def test_a_request_is_one_lookup_and_one_move_per_mailbox(
    services: Services, server: str, request: pytest.FixtureRequest
) -> None:
    dv: Dovecot = request.getfixturevalue(server)
    account = corp_account(services, dv)
    messages = deliver_many(services, account, [ANN, BOB], 5)
    moved_by_ann, deleted_by_bob = messages[1], messages[3]
    _user_moves(dv, ANN, moved_by_ann.internet_message_id, "Junk")
    _user_moves(dv, BOB, deleted_by_bob.internet_message_id, None)
    backend_for, wrapped = _counting(services)

    items = move(services, account, [m.id for m in messages] + ["nope"], Destination.JUNK, "soc", backend_for)

    expected = []
    for m in messages:
        for rcpt in (ANN, BOB):
            status = "moved"
            if m is moved_by_ann and rcpt == ANN:
                status = "already_in_destination"
            elif m is deleted_by_bob and rcpt == BOB:
                status = "not_found"
            expected.append((m.id, rcpt, status, 1 if status == "moved" else 0))
    expected.append(("nope", None, "not_found", 0))
    assert [(i.id, i.recipient, i.status, i.item_count) for i in items] == expected
    [counting] = wrapped.values()
    assert counting.calls == {"locate_many": 2, "move_many": 2}, counting.calls  # one each per mailbox
    for m in messages:
        ann_folders = folders_holding(dv, ANN, m.internet_message_id)
        bob_folders = folders_holding(dv, BOB, m.internet_message_id)
        assert ann_folders == ["Junk"]
        assert bob_folders == ([] if m is deleted_by_bob else ["Junk"])
    stored = services.messages.get(account, messages[0].id)
    assert stored is not None and stored.delivery_status == "moved"
    assert [(a.operation, a.folder, a.status) for a in services.messages.actions([stored.pk])[stored.pk]] == [
        ("MOVE", "JunkEmail", "completed")
    ]

    # The next request: the sessions of the first are reused, and the recorded folder is the one looked in
    live = registry.backend_for(_integration(services, account), services.settings.data_dir)
    assert isinstance(live, ImapBackend)
    clients = {k: id(s.client) for k, s in live._pool.items()}
    assert set(clients) == {ANN, BOB}
    back = move(services, account, [m.id for m in messages], Destination.INBOX, "soc", backend_for)
    assert sorted({i.status for i in back}) == ["moved", "not_found"]
    assert {k: id(s.client) for k, s in live._pool.items()} == clients
    assert counting.calls == {"locate_many": 4, "move_many": 4}
    assert folders_holding(dv, ANN, messages[0].internet_message_id) == ["INBOX"]


def test_a_pooled_session_the_server_closed_is_replaced(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    first, second = deliver_many(services, account, [ANN], 2)
    [item] = move(services, account, [first.id], Destination.JUNK, "soc")
    assert item.status == "moved"
    live = registry.backend_for(_integration(services, account), services.settings.data_dir)
    assert isinstance(live, ImapBackend)
    session = live._pool[ANN]
    session.client.shutdown()  # the server's autologout, or a middlebox dropping an idle connection
    session.used_at -= 3600
    [item] = move(services, account, [second.id], Destination.JUNK, "soc")
    assert item.status == "moved", item.reason
    assert live._pool[ANN] is not session
    assert folders_holding(mail_dovecot, ANN, second.internet_message_id) == ["Junk"]


def test_a_hard_delete_removes_every_copy_and_a_move_restores_one(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    [message] = deliver_many(services, account, [ANN], 1)
    with mail_dovecot.imap(ANN) as c:  # the user filed a copy of it too
        c.select_folder("INBOX")
        c.copy(c.search(["HEADER", "Message-ID", message.internet_message_id]), "Trash")
    assert folders_holding(mail_dovecot, ANN, message.internet_message_id) == ["INBOX", "Trash"]
    [item] = move(services, account, [message.id], Destination.RECOVERABLE_PURGES, "soc")
    assert (item.status, item.item_count) == ("moved", 2)
    assert folders_holding(mail_dovecot, ANN, message.internet_message_id) == []
    [item] = move(services, account, [message.id], Destination.INBOX, "soc")  # mailsec's stored copy, appended
    assert (item.status, item.item_count) == ("moved", 1)
    assert folders_holding(mail_dovecot, ANN, message.internet_message_id) == ["INBOX"]
