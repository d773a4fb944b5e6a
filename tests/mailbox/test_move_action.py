"""Moving delivered mail in real Dovecot mailboxes (SQLite and PostgreSQL): every destination, restore from purge,
two recipients, already moved, deleted by the user, server down then retried, wrong admin credentials."""

from __future__ import annotations

from gw_support import Dovecot
from move_support import add_imap, corp_account, deliver_many, folders_holding

from mailsec.actions.move import move, move_message
from mailsec.model import Destination
from mailsec.services import Services
from mailsec.store.search import SearchParams, run_search
from support import free_port

ANN, BOB = "ann@corp.example", "bob@corp.example"


def _state(services: Services, pk: int) -> list[tuple[str, str, str | None]]:
    return [(r["address"], r["status"], r["folder"]) for r in services.messages.recipient_states(pk)]


def test_every_destination_restore_and_idempotence(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    [message] = deliver_many(services, account, [ANN], 1)
    mid = str(message.internet_message_id)
    assert folders_holding(mail_dovecot, ANN, mid) == ["INBOX"]
    for dest, folder in [
        (Destination.JUNK, "Junk"),
        (Destination.DELETED, "Trash"),
        (Destination.RECOVERABLE_DELETIONS, "MailSec Recoverable"),
        (Destination.INBOX, "INBOX"),
        (Destination.RECOVERABLE_PURGES, None),
        (Destination.INBOX, "INBOX"),  # restored from mailsec's stored copy
    ]:
        [item] = move(services, account, [message.id], dest, "soc@corp.example")
        assert (item.success, item.status, item.recipient, item.item_count) == (True, "moved", ANN, 1), item
        assert folders_holding(mail_dovecot, ANN, mid) == ([folder] if folder else [])
        assert _state(services, message.pk) == [(ANN, "moved", dest.value)]
        [again] = move(services, account, [message.postfix_id], dest, "soc@corp.example")  # idempotent
        assert (again.success, again.status, again.item_count) == (True, "already_in_destination", 0)
        assert folders_holding(mail_dovecot, ANN, mid) == ([folder] if folder else [])
    stored = services.messages.get(account, message.id)
    assert stored is not None and stored.delivery_status == "moved"
    log = services.messages.actions([message.pk])[message.pk]
    assert [(a.operation, a.folder, a.requested_by, a.status) for a in log][:2] == [
        ("MOVE", "JunkEmail", "soc@corp.example", "completed"),
        ("MOVE", "JunkEmail", "soc@corp.example", "completed"),
    ]
    page = run_search(services.engine, account, SearchParams(message_action="MOVED", detections_only=False))
    assert page.pks == [message.pk]


def test_two_recipients_each_their_own_result(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    [message] = deliver_many(services, account, [ANN, BOB], 1)
    mid = str(message.internet_message_id)
    items = move_message(services, message, Destination.JUNK, "soc")
    assert sorted((i.recipient, i.status) for i in items) == [(ANN, "moved"), (BOB, "moved")]
    assert folders_holding(mail_dovecot, ANN, mid) == ["Junk"] and folders_holding(mail_dovecot, BOB, mid) == ["Junk"]


def test_deleted_by_the_user_is_not_found(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    [message] = deliver_many(services, account, [ANN, BOB], 1)
    mid = str(message.internet_message_id)
    with mail_dovecot.imap(BOB) as c:
        c.select_folder("INBOX")
        c.delete_messages(c.search(["HEADER", "Message-ID", mid]))
        c.expunge()
    items = {i.recipient: i for i in move_message(services, message, Destination.DELETED, "soc")}
    assert items[ANN].status == "moved" and items[BOB].status == "not_found" and not items[BOB].success
    assert "deleted by the user" in (items[BOB].reason or "")


def test_server_down_is_move_failed_then_retried(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot, imap_port=free_port())  # nothing listens there
    [message] = deliver_many(services, account, [ANN], 1)
    [item] = move_message(services, message, Destination.JUNK, "soc")
    assert (item.success, item.status) == (False, "failed") and "unreachable" in (item.reason or "")
    stored = services.messages.get(account, message.id)
    assert stored is not None and stored.delivery_status == "move_failed"
    assert _state(services, message.pk)[0][1] == "move_failed"
    page = run_search(services.engine, account, SearchParams(delivery_status="move_failed", detections_only=False))
    assert page.pks == [message.pk]
    # the server is back (the integration now points at it): the next move acts on the failed recipient
    from mailsec.store.integrations import IntegrationRepo

    repo = IntegrationRepo(services.engine)
    [broken] = repo.list_for(account)
    repo.remove(account, broken.id)
    add_imap(services, account, mail_dovecot.imap_port)
    [retried] = move_message(services, message, Destination.JUNK, "soc")
    assert (retried.success, retried.status) == (True, "moved")
    assert folders_holding(mail_dovecot, ANN, str(message.internet_message_id)) == ["Junk"]


def test_wrong_admin_credentials(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot, password="not-the-password")
    [message] = deliver_many(services, account, [ANN], 1)
    [item] = move_message(services, message, Destination.JUNK, "soc")
    assert item.status == "failed" and "credentials refused" in (item.reason or "")
    assert folders_holding(mail_dovecot, ANN, str(message.internet_message_id)) == ["INBOX"]


def test_unknown_message_and_no_integration(services: Services, mail_dovecot: Dovecot) -> None:
    account = services.accounts.create_account("No integration").id
    services.domains.add(account, "corp.example", mode="DIRECT", next_hop=mail_dovecot.lmtp_url, verified=True)
    [message] = deliver_many(services, account, [ANN], 1)
    [item] = move(services, account, [message.id], Destination.JUNK, "soc")
    assert item.status == "failed" and "no mailbox integration" in (item.reason or "")
    [missing] = move(services, account, ["AAAAAAAAAAAAAAA"], Destination.JUNK, "soc")
    assert missing.status == "not_found" and missing.recipient is None
