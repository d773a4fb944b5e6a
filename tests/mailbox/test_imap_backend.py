"""The IMAP backend on a real Dovecot: an admin identity (master user or SASL PLAIN authzid) finds delivered mail
in any folder and moves it to every destination, purges it, restores it by APPEND; COPY+EXPUNGE where MOVE is not
offered; clear errors for wrong credentials and a server that is down."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from gw_support import MASTER_PASSWORD, MASTER_USER, Dovecot, make_dovecot
from move_support import folders_holding

from mailsec.gateway.deliver import deliver, parse_next_hop
from mailsec.mailbox import imap
from mailsec.mailbox.base import MailboxAuthError, MailboxError, MailRef, Wanted
from mailsec.mailbox.imap import AUTH_AUTHZID, HIDDEN_FOLDER, ImapBackend, ImapConfig
from mailsec.model import Destination
from support import free_port, make_eml

ANN, BOB = "ann@corp.example", "bob@corp.example"


def _backend(dv: Dovecot, **options: object) -> ImapBackend:
    return ImapBackend(
        ImapConfig.from_url(f"imap://{MASTER_USER}@127.0.0.1:{dv.imap_port}", MASTER_PASSWORD, **options)
    )


def _eml(subject: str, message_id: str, delivery_id: str) -> bytes:
    raw = re.sub(rb"(?m)^Message-ID:.*$", f"Message-ID: {message_id}\r".encode(), make_eml(subject), count=1)
    return f"X-MailSec-Delivery-Id: {delivery_id}\r\n".encode() + raw


def _deliver(dv: Dovecot, recipients: list[str]) -> tuple[str, str]:
    """A message over LMTP as the gateway sends it; its Message-ID and X-MailSec-Delivery-Id."""
    token = uuid.uuid4().hex[:12]
    message_id, delivery_id = f"<{token}@sender.example>", f"<{token}@mx.mailsec.test>"
    raw = _eml(f"remediate {token}", message_id, delivery_id)
    replies = deliver(parse_next_hop(dv.lmtp_url), "alice@sender.example", recipients, raw, timeout=10)
    assert all(r.ok for r in replies.values()), replies
    return message_id, delivery_id


def test_every_destination_and_back(mail_dovecot: Dovecot) -> None:
    message_id, delivery_id = _deliver(mail_dovecot, [ANN])
    backend = _backend(mail_dovecot)
    try:
        [ref] = backend.locate(ANN, message_id)
        assert (ref.folder, ref.destination) == ("INBOX", Destination.INBOX)
        for dest, folder in [
            (Destination.JUNK, "Junk"),
            (Destination.DELETED, "Trash"),
            (Destination.RECOVERABLE_DELETIONS, HIDDEN_FOLDER),
            (Destination.INBOX, "INBOX"),
        ]:
            [ref] = backend.locate(ANN, message_id, delivery_id)
            moved = backend.move(ref, dest)
            assert moved is not None and moved.folder == folder
            assert folders_holding(mail_dovecot, ANN, message_id) == [folder]
            [again] = backend.locate(ANN, message_id)
            assert (again.folder, again.destination) == (folder, dest)
            assert backend.move(again, dest) == again  # already there: nothing happens
        with mail_dovecot.imap(ANN) as c:  # the soft-delete folder exists but the user is not subscribed to it
            assert HIDDEN_FOLDER in [n for _, _, n in c.list_folders()]
            assert HIDDEN_FOLDER not in [n for _, _, n in c.list_sub_folders()]
    finally:
        backend.close()


def test_purge_then_restore_from_the_stored_copy(mail_dovecot: Dovecot) -> None:
    message_id, delivery_id = _deliver(mail_dovecot, [ANN])
    backend = _backend(mail_dovecot)
    try:
        [ref] = backend.locate(ANN, message_id)
        backend.move(ref, Destination.JUNK)
        [ref] = backend.locate(ANN, message_id)
        assert backend.move(ref, Destination.RECOVERABLE_PURGES) is None
        assert (
            backend.locate(ANN, message_id, delivery_id) == [] and folders_holding(mail_dovecot, ANN, message_id) == []
        )
        stored = _eml("restored", message_id, delivery_id)
        backend.append(ANN, stored, Destination.INBOX)
        assert folders_holding(mail_dovecot, ANN, message_id) == ["INBOX"]
        assert [r.folder for r in backend.locate(ANN, "", delivery_id)] == ["INBOX"]  # by delivery id alone
    finally:
        backend.close()


def test_two_recipients_are_two_mailboxes_and_sessions_are_pooled(mail_dovecot: Dovecot) -> None:
    message_id, _ = _deliver(mail_dovecot, [ANN, BOB])
    backend = _backend(mail_dovecot, auth=AUTH_AUTHZID)  # SASL PLAIN: authcid the admin, authzid the user
    try:
        [a], [b] = backend.locate(ANN, message_id), backend.locate(BOB, message_id)
        backend.move(a, Destination.JUNK)
        assert folders_holding(mail_dovecot, ANN, message_id) == ["Junk"]
        assert folders_holding(mail_dovecot, BOB, message_id) == ["INBOX"]  # the other mailbox is untouched
        with backend.session(BOB) as first:
            pass
        with backend.session(BOB) as second:
            assert second is first  # one login per mailbox, reused
        backend.move(b, Destination.DELETED)
        assert folders_holding(mail_dovecot, BOB, message_id) == ["Trash"]
    finally:
        backend.close()


def test_a_message_the_user_moved_is_found_where_it_is(mail_dovecot: Dovecot) -> None:
    message_id, _ = _deliver(mail_dovecot, [BOB])
    with mail_dovecot.imap(BOB) as c:
        c.select_folder("INBOX")
        c.move(c.search(["HEADER", "Message-ID", message_id]), "Trash")
    backend = _backend(mail_dovecot)
    try:
        assert [(r.folder, r.destination) for r in backend.locate(BOB, message_id)] == [("Trash", Destination.DELETED)]
        with mail_dovecot.imap(BOB) as c:  # then the user empties the trash
            c.select_folder("Trash")
            c.delete_messages(c.search(["HEADER", "Message-ID", message_id]))
            c.expunge()
        assert backend.locate(BOB, message_id) == []
    finally:
        backend.close()


def test_copy_and_expunge_where_move_is_not_offered(dovecot_without_move: Dovecot) -> None:
    message_id, _ = _deliver(dovecot_without_move, [ANN])
    backend = _backend(dovecot_without_move)
    try:
        with backend.session(ANN) as s:
            assert not s.can_move and s.uidplus
        [ref] = backend.locate(ANN, message_id)
        backend.move(ref, Destination.JUNK)
        assert folders_holding(dovecot_without_move, ANN, message_id) == ["Junk"]  # one copy, the original expunged
    finally:
        backend.close()


def test_wrong_admin_password_is_an_auth_error(mail_dovecot: Dovecot) -> None:
    backend = ImapBackend(ImapConfig("127.0.0.1", mail_dovecot.imap_port, False, MASTER_USER, "wrong"))
    with pytest.raises(MailboxAuthError, match="refused"):
        backend.locate(ANN, "<x@y>")
    plain = ImapBackend(ImapConfig("127.0.0.1", mail_dovecot.imap_port, False, ANN, "secret", auth=AUTH_AUTHZID))
    with pytest.raises(MailboxAuthError):  # an ordinary user may not act for another mailbox
        plain.locate(BOB, "<x@y>")


def test_server_down_is_a_retryable_error() -> None:
    backend = ImapBackend(ImapConfig("127.0.0.1", free_port(), False, MASTER_USER, MASTER_PASSWORD, timeout=3))
    with pytest.raises(MailboxError) as info:
        backend.locate(ANN, "<x@y>")
    assert not isinstance(info.value, MailboxAuthError) and "unreachable" in str(info.value)


def test_urls() -> None:
    cfg = ImapConfig.from_url("imaps://admin%40corp@mail.corp.example", "pw")
    assert (cfg.host, cfg.port, cfg.tls, cfg.admin) == ("mail.corp.example", 993, True, "admin@corp")
    assert ImapConfig.from_url("imap://a@h:1143", "pw").port == 1143
    for bad in ("http://a@h", "imap://h", "imap://a@h:99999"):
        with pytest.raises(ValueError):
            ImapConfig.from_url(bad, "pw")


def test_imaps_with_the_servers_own_ca() -> None:
    """imaps:// on a Dovecot with a self-signed certificate: trusted with --ca-file, refused without it."""
    root = Path(tempfile.mkdtemp(prefix="mailsec-tls-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes read the users file
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    tls = f"""ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
service imap-login {{
  inet_listener imaps {{
    address = 127.0.0.1
    port = {port}
    ssl = yes
  }}
}}
"""
    dv = make_dovecot(root, [ANN], extra_config=tls)
    try:
        message_id, _ = _deliver(dv, [ANN])
        url = f"imaps://{MASTER_USER}@127.0.0.1:{port}"
        backend = ImapBackend(ImapConfig.from_url(url, MASTER_PASSWORD, ca_file=str(cert), timeout=5))
        [ref] = backend.locate(ANN, message_id)
        assert backend.move(ref, Destination.JUNK) is not None
        backend.close()
        untrusted = ImapBackend(ImapConfig.from_url(url, MASTER_PASSWORD, timeout=5))
        with pytest.raises(MailboxError, match="certificate"):
            untrusted.locate(ANN, message_id)
    finally:
        dv.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_many_messages_in_one_lookup_are_told_apart_by_their_headers(
    mail_dovecot: Dovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imap, "SEARCH_CHUNK", 2)  # several SEARCH commands in one folder
    backend = _backend(mail_dovecot)
    try:
        delivered = [_deliver(mail_dovecot, [ANN]) for _ in range(3)]
        wanted = [
            Wanted(delivered[0][0], delivered[0][1], Destination.INBOX),
            Wanted("<rewritten-by-a-list@x.example>", delivered[1][1]),  # found by its delivery id alone
            Wanted(delivered[2][0]),  # by its Message-ID alone
            Wanted("<nowhere@x.example>", "<nowhere@y.example>"),
            Wanted("<é@hostile.example>"),  # not US-ASCII: not searchable, and no crash
            Wanted("<a\r\nb@hostile.example>"),  # a line break would end the command
            Wanted(""),
        ]
        found = backend.locate_many(ANN, wanted)
        assert [len(refs) for refs in found] == [1, 1, 1, 0, 0, 0, 0]
        assert len({refs[0].key for refs in found[:3]}) == 3
        assert all(refs[0].folder == "INBOX" for refs in found[:3])
        backend.move_many([refs[0] for refs in found[:3]], Destination.JUNK)
        for message_id, _ in delivered:
            assert folders_holding(mail_dovecot, ANN, message_id) == ["Junk"]
    finally:
        backend.close()


class _Wire:
    """The session's socket, counting the writes: one per pipelined flight, so one per round trip."""

    def __init__(self, sock: Any) -> None:
        self.sock, self.writes = sock, 0

    def sendall(self, data: bytes) -> None:
        self.writes += 1
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)


def _counted(backend: ImapBackend, recipient: str) -> _Wire:
    with backend.session(recipient) as s:
        wire = _Wire(s.pipe.sock)
        s.pipe.sock = wire  # type: ignore[assignment]
    return wire


def _filed(dv: Dovecot, message_id: str, folder: str) -> None:
    """The user files the message in `folder` themselves."""
    with dv.imap(ANN) as c:
        c.select_folder("INBOX")
        uids = c.search(["HEADER", "Message-ID", message_id])
        c.copy(uids, folder)
        c.delete_messages(uids)
        c.expunge()


@pytest.mark.parametrize("server", ["mail_dovecot", "dovecot_without_move"])
def test_lookups_and_moves_are_pipelined(server: str, request: pytest.FixtureRequest) -> None:
    """With SEARCHRES and MOVE (Dovecot's default), a lookup of several messages in their hinted folder is one round
    trip, the search of every folder for the ones not there one more, and a move of copies in two folders one; a
    server with neither needs a second round trip for each (FETCH after SEARCH, EXPUNGE after COPY)."""
    dv: Dovecot = request.getfixturevalue(server)
    delivered = [_deliver(dv, [ANN]) for _ in range(3)]
    _filed(dv, delivered[2][0], "Trash")
    backend = _backend(dv)
    try:
        wire = _counted(backend, ANN)
        with backend.session(ANN) as s:
            full = s.searchres and s.can_move
        assert full == (server == "mail_dovecot")
        found = backend.locate_many(ANN, [Wanted(m, d, Destination.INBOX) for m, d in delivered])
        assert [[r.folder for r in refs] for refs in found] == [["INBOX"], ["INBOX"], ["Trash"]]
        assert wire.writes == (2 if full else 3)  # a folder searched for one message needs no FETCH
        backend.move_many([refs[0] for refs in found], Destination.JUNK)
        assert wire.writes == (3 if full else 5)
        for message_id, _ in delivered:
            assert folders_holding(dv, ANN, message_id) == ["Junk"]
    finally:
        backend.close()


@pytest.mark.parametrize("server", ["mail_dovecot", "dovecot_without_move"])
def test_a_refused_move_keeps_the_original(server: str, request: pytest.FixtureRequest) -> None:
    """The destination folder is gone (deleted since the session listed it): MOVE or COPY is refused, the move
    fails with a retryable error, and no original is flagged or expunged. The session is replaced."""
    dv: Dovecot = request.getfixturevalue(server)
    message_id, delivery_id = _deliver(dv, [ANN])
    backend = _backend(dv)
    try:
        [ref] = backend.locate(ANN, message_id, delivery_id, Destination.INBOX)
        with backend.session(ANN) as s:
            broken = s
            s.folders[Destination.JUNK] = f"Gone {uuid.uuid4().hex[:6]}"
        with pytest.raises(MailboxError, match="refused") as info:
            backend.move_many([ref], Destination.JUNK)
        assert not isinstance(info.value, MailboxAuthError)
        assert folders_holding(dv, ANN, message_id) == ["INBOX"]
        with dv.imap(ANN) as c:
            c.select_folder("INBOX", readonly=True)
            assert c.search(["HEADER", "Message-ID", message_id, "DELETED"]) == []
        [ref] = backend.locate(ANN, message_id, delivery_id, Destination.INBOX)
        backend.move(ref, Destination.JUNK)  # a new session, with the real folders
        assert folders_holding(dv, ANN, message_id) == ["Junk"]
        with backend.session(ANN) as s:
            assert s is not broken
    finally:
        backend.close()


def test_copies_whose_folder_vanished_do_not_stop_the_others(dovecot_without_move: Dovecot) -> None:
    """COPY + EXPUNGE over two folders, one of which the user just deleted: the other folder's copy is moved (once),
    and the mailbox's move still reports the failure, to be retried."""
    dv = dovecot_without_move
    message_id, delivery_id = _deliver(dv, [ANN])
    backend = _backend(dv)
    try:
        [ref] = backend.locate(ANN, message_id, delivery_id, Destination.INBOX)
        gone = MailRef(ANN, f"Gone {uuid.uuid4().hex[:6]}", "1")
        with pytest.raises(MailboxError, match="SELECT refused"):
            backend.move_many([gone, ref], Destination.JUNK)
        assert folders_holding(dv, ANN, message_id) == ["Junk"]
    finally:
        backend.close()


def _wait_gone(dv: Dovecot, user: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        who = subprocess.run(["doveadm", "-c", str(dv.conf), "who", user], capture_output=True, text=True)
        assert who.returncode == 0, who.stderr
        if user not in who.stdout:
            return
        time.sleep(0.05)
    raise AssertionError(f"{user}'s kicked sessions still there: {who.stdout}")


def test_a_session_the_server_drops_is_a_retryable_error_then_replaced(mail_dovecot: Dovecot) -> None:
    """The server ends a pooled session between two requests (restart, admin kick): the next batch fails with a
    retryable error, not an auth error, and the one after gets a new session."""
    message_id, delivery_id = _deliver(mail_dovecot, [ANN])
    backend = _backend(mail_dovecot)
    try:
        [ref] = backend.locate(ANN, message_id, delivery_id, Destination.INBOX)
        with backend.session(ANN) as s:
            dropped = s
        kicked = subprocess.run(["doveadm", "-c", str(mail_dovecot.conf), "kick", ANN], capture_output=True)
        assert kicked.returncode == 0, kicked.stderr
        _wait_gone(mail_dovecot, ANN)  # a kick signals the process; a MOVE sent before it dies could still be done
        with pytest.raises(MailboxError) as info:
            backend.move(ref, Destination.JUNK)
        assert not isinstance(info.value, MailboxAuthError) and "session" in str(info.value)
        assert folders_holding(mail_dovecot, ANN, message_id) == ["INBOX"]
        [ref] = backend.locate(ANN, message_id, delivery_id, Destination.INBOX)
        backend.move(ref, Destination.JUNK)
        assert folders_holding(mail_dovecot, ANN, message_id) == ["Junk"]
        with backend.session(ANN) as s:
            assert s is not dropped
    finally:
        backend.close()
