"""The pipelined IMAP sender on a real Dovecot: a batch of tagged commands is one write and its replies come back in
order with their untagged responses; a refusal stays in its reply and leaves the session usable, by the pipeline and
by imapclient alike; SEARCHRES lets a FETCH use a SEARCH's result in the same flight. Against a scripted peer: a
server that breaks the protocol gets a clear PipelineError."""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator

import pytest
from gw_support import MASTER_PASSWORD, MASTER_USER, Dovecot
from imapclient import IMAPClient

from mailsec.gateway.deliver import deliver, parse_next_hop
from mailsec.mailbox import imap_pipeline
from mailsec.mailbox.imap_pipeline import (
    CommandFailed,
    Pipeline,
    PipelineError,
    check,
    mailbox,
    quoted,
    uid_set,
)
from support import make_eml

ANN = "ann@corp.example"


class Wire:
    """A socket that counts the writes made on it: one per flight of pipelined commands."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.writes = 0

    def sendall(self, data: bytes) -> None:
        self.writes += 1
        self.sock.sendall(data)

    def recv(self, size: int) -> bytes:
        return self.sock.recv(size)


@pytest.fixture
def client(mail_dovecot: Dovecot) -> Iterator[IMAPClient]:
    c = IMAPClient("127.0.0.1", mail_dovecot.imap_port, ssl=False, timeout=10)
    c.login(f"{ANN}*{MASTER_USER}", MASTER_PASSWORD)
    yield c
    c.logout()


def _deliver(dv: Dovecot, subject: str) -> None:
    raw = make_eml(subject, to=ANN)
    assert deliver(parse_next_hop(dv.lmtp_url), "alice@sender.example", [ANN], raw, timeout=10)[ANN].ok


def _pipe(client: IMAPClient) -> tuple[Pipeline, Wire]:
    wire = Wire(client.socket())
    return Pipeline(wire), wire  # type: ignore[arg-type]


def test_a_batch_is_one_write_and_its_replies_come_back_in_order(mail_dovecot: Dovecot, client: IMAPClient) -> None:
    token = uuid.uuid4().hex
    for n in range(3):
        _deliver(mail_dovecot, f"pipelined {token} {n}")
    pipe, wire = _pipe(client)
    replies = pipe.run(
        [
            b"SELECT " + mailbox("INBOX"),
            b"UID SEARCH SUBJECT " + quoted(token),
            b"UID SEARCH SUBJECT " + quoted("nothing-" + token),
            b"NOOP",
        ]
    )
    assert wire.writes == 1
    assert [r.status for r in replies] == ["OK"] * 4
    assert any(u.text.endswith(b"EXISTS") for u in replies[0].untagged)
    # Dovecot runs the two SEARCHes at once: their answers are known to belong to this folder's commands only
    searches = sorted(u.text for r in replies[1:4] for u in r.untagged if u.text.startswith(b"SEARCH"))
    assert len(searches) == 2 and searches[0] == b"SEARCH"
    hits = searches[1].split()[1:]
    assert len(hits) == 3

    [fetch] = pipe.run([b"UID FETCH " + uid_set([int(h) for h in hits]) + b" (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])"])
    blocks = sorted(u.literals[0] for u in fetch.untagged)
    assert blocks == [f"Subject: pipelined {token} {n}\r\n\r\n".encode() for n in range(3)]


def test_searchres_lets_the_fetch_follow_the_search_in_one_flight(mail_dovecot: Dovecot, client: IMAPClient) -> None:
    assert b"SEARCHRES" in client.capabilities()
    token = uuid.uuid4().hex
    _deliver(mail_dovecot, f"saved {token}")
    pipe, wire = _pipe(client)
    replies = pipe.run(
        [
            b"SELECT INBOX",
            b"UID SEARCH RETURN (SAVE) SUBJECT " + quoted(token),
            b"UID FETCH $ (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
            b"UID SEARCH RETURN (SAVE) SUBJECT " + quoted("none-" + token),
            b"UID FETCH $ (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
        ]
    )
    assert wire.writes == 1 and all(r.ok for r in replies)
    [found] = [u for u in replies[2].untagged if b"FETCH" in u.text]
    assert found.literals == (f"Subject: saved {token}\r\n\r\n".encode(),)
    assert not [u for u in replies[4].untagged if b"FETCH" in u.text]  # an empty result: nothing fetched


def test_a_refusal_stays_in_its_reply_and_the_session_goes_on(mail_dovecot: Dovecot, client: IMAPClient) -> None:
    pipe, _ = _pipe(client)
    replies = pipe.run([b"SELECT " + mailbox("No such folder"), b"UID SEARCH ALL", b"NOOP"])
    assert [r.status for r in replies] == ["NO", "BAD", "OK"]
    with pytest.raises(CommandFailed, match="SELECT refused: NO"):
        check(replies)
    with pytest.raises(CommandFailed, match="UID SEARCH refused: BAD"):
        check(replies[1:])
    # imapclient's own bookkeeping is intact: its commands and the pipeline's take turns on one connection
    folder = f"Gelöscht {uuid.uuid4().hex[:6]}"
    client.create_folder(folder)
    try:
        client.append(folder, make_eml("in a non-ASCII folder", to=ANN))
        [select, search] = pipe.run([b"SELECT " + mailbox(folder), b"UID SEARCH ALL"])
        assert select.ok and search.ok and search.untagged[-1].text == b"SEARCH 1"
        assert client.noop()[0].startswith(b"NOOP")
        assert client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"] == 1
    finally:
        client.delete_folder(folder)


def test_large_batches_go_in_flights(
    mail_dovecot: Dovecot, client: IMAPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imap_pipeline, "FLIGHT_BYTES", 64)
    pipe, wire = _pipe(client)
    replies = pipe.run([b"SELECT INBOX"] + [b"UID SEARCH SUBJECT " + quoted(f"flight {n}") for n in range(20)])
    assert all(r.ok for r in replies) and len(replies) == 21
    assert 5 < wire.writes < 21  # several commands a flight, several flights


def test_what_a_command_line_can_carry() -> None:
    assert quoted('a "b" \\c') == b'"a \\"b\\" \\\\c"'
    for bad in ("line\r\nbreak", "nul\0", "é"):
        with pytest.raises(ValueError):
            quoted(bad)
    assert mailbox("Gelöscht") == b'"Gel&APY-scht"'
    assert mailbox('Bad "x"\r\nA1 DELETE INBOX') == b'"Bad \\"x\\"&AA0ACg-A1 DELETE INBOX"'  # encoded, not a new line
    assert uid_set([9, 1, 2, 3, 7, 10, 3]) == b"1:3,7,9:10"
    with pytest.raises(ValueError):
        uid_set([])
    with pytest.raises(ValueError):
        Pipeline(socket.socket()).run([b"NOOP\r\nA1 LOGOUT"])


def _scripted(answer: bytes) -> Pipeline:
    """A pipeline on one end of a socket pair whose other end answers the first command with `answer`."""
    ours, theirs = socket.socketpair()
    ours.settimeout(5)

    def peer() -> None:
        theirs.recv(65536)
        with contextlib.suppress(OSError):  # the pipeline may give up before the whole answer is sent
            theirs.sendall(answer)
            if not answer.endswith(b"\r\n"):
                theirs.shutdown(socket.SHUT_WR)

    threading.Thread(target=peer, daemon=True).start()
    return Pipeline(ours)


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"* BYE Autologout\r\n", "closed the session"),
        (b"zz9 OK done\r\n", "unexpected response"),
        (b"+ go ahead\r\n", "unexpected response"),
        (b"ms1 OK done\r\n* 1 EXISTS\r\n", "more than was asked"),
        (b"* 1 FETCH (BODY[] {99999999999}\r\n", "a literal of"),
        (b"* 1 FETCH (BODY[] {10}\r\nshort", "closed the connection"),
        (b"* SEARCH " + b"1 " * 600_000, "longer than 1 MiB"),
    ],
)
def test_a_server_breaking_the_protocol_is_a_clear_error(answer: bytes, error: str) -> None:
    with pytest.raises(PipelineError, match=error):
        _scripted(answer).run([b"NOOP"])


def test_replies_are_matched_by_tag() -> None:
    """A server may finish pipelined commands out of order (RFC 3501 §5.5): each reply still finds its command."""
    replies = _scripted(b"* 2 EXISTS\r\nms2 NO [TRYCREATE] no such folder\r\nms1 OK done\r\n").run(
        [b"NOOP", b"UID COPY 1 Nowhere"]
    )
    assert [(r.command, r.status) for r in replies] == [(b"NOOP", "OK"), (b"UID COPY 1 Nowhere", "NO")]
    assert replies[0].untagged[0].text == b"2 EXISTS" and replies[1].text == "[TRYCREATE] no such folder"
