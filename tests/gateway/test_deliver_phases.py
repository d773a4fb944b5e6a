"""deliver() against a scripted SMTP/LMTP peer on loopback: each refusal path gives every recipient the peer's own
reply, the session is kept only when it is still in step, and nothing is ever sent twice."""

from __future__ import annotations

from scripted_peer import Script, ScriptedPeer

from mailsec.gateway.deliver import Connections, deliver, parse_next_hop
from support import free_port, make_eml

SENDER = "alice@sender.example"
ANN, BOB = "ann@corp.example", "bob@corp.example"


def _send(peer: ScriptedPeer, recipients: list[str], conns: Connections | None = None, subject: str = "hi") -> dict:
    return deliver(parse_next_hop(peer.url), SENDER, recipients, make_eml(subject), timeout=5, connections=conns)


def _kept(peer: ScriptedPeer, conns: Connections) -> bool:
    session = conns.take(parse_next_hop(peer.url), "mailsec.local", 5)
    if session is None:
        return False
    conns.give_back(parse_next_hop(peer.url), "mailsec.local", 5, session)
    return True


def test_mail_refused_pipelined_reaches_every_recipient_and_keeps_the_session() -> None:
    with ScriptedPeer(Script(mail=lambda c, t: "550 5.7.1 sender refused" if t == 0 else "250 ok")) as peer:
        with Connections() as conns:
            replies = _send(peer, [ANN, BOB], conns)
            assert {r: (x.code, x.text) for r, x in replies.items()} == {
                ANN: (550, "5.7.1 sender refused"),
                BOB: (550, "5.7.1 sender refused"),
            }
            assert _kept(peer, conns)  # the pipelined RCPTs and DATA were drained, RSET answered
            assert [c for _, c in peer.commands][-1] == "RSET"
            again = _send(peer, [ANN], conns)
            assert again[ANN].ok
        # one session for both; only the second (accepted) transaction carried content
        assert peer.connections == 1 and [m.recipients for m in peer.received] == [[ANN]]


def test_mail_refused_without_pipelining() -> None:
    script = Script(lmtp=False, extensions=("8BITMIME",), mail=lambda c, t: "451 4.3.0 try later")
    with ScriptedPeer(script) as peer:
        replies = _send(peer, [ANN])
        assert (replies[ANN].code, replies[ANN].permanent, replies[ANN].ok) == (451, False, False)
        assert not any(c.startswith("RCPT") for _, c in peer.commands)


def test_one_rcpt_refused_while_pipelined_the_other_delivered() -> None:
    with ScriptedPeer(Script(rcpt={BOB: "550 5.1.1 no such user"})) as peer:
        replies = _send(peer, [ANN, BOB])
        assert replies[ANN].ok and (replies[BOB].code, replies[BOB].text) == (550, "5.1.1 no such user")
        assert [m.recipients for m in peer.received] == [[ANN]]
        # one write for the envelope: MAIL, both RCPTs and DATA arrived before any reply was read
        assert [c.split(":")[0] for _, c in peer.commands][1:5] == ["MAIL FROM", "RCPT TO", "RCPT TO", "DATA"]


def test_every_rcpt_refused_while_pipelined_sends_nothing() -> None:
    script = Script(rcpt={ANN: "550 5.1.1 unknown", BOB: "452 4.2.2 over quota"})
    with ScriptedPeer(script) as peer, Connections() as conns:
        replies = _send(peer, [ANN, BOB], conns)
        assert {r: x.code for r, x in replies.items()} == {ANN: 550, BOB: 452}
        assert peer.received == []
        assert _kept(peer, conns)


def test_no_354_to_data_fails_the_accepted_recipients_and_drops_the_session() -> None:
    with ScriptedPeer(Script(data="451 4.3.0 no storage")) as peer, Connections() as conns:
        replies = _send(peer, [ANN, BOB], conns)
        assert {r: (x.code, x.text) for r, x in replies.items()} == {
            ANN: (451, "4.3.0 no storage"),
            BOB: (451, "4.3.0 no storage"),
        }
        assert peer.received == [] and not _kept(peer, conns)


def test_421_on_a_reused_session_reconnects_once_without_a_duplicate() -> None:
    with ScriptedPeer(Script(mail=lambda c, t: "421 4.4.2 idle too long" if t > 0 else "250 ok")) as peer:
        with Connections() as conns:
            assert _send(peer, [ANN], conns, "first")[ANN].ok
            second = _send(peer, [ANN], conns, "second")
            assert second[ANN].ok, second
        assert peer.connections == 2
        assert [(m.connection, b"second" in m.body) for m in peer.received] == [(1, False), (2, True)]


def test_421_on_a_fresh_session_is_a_temporary_failure_not_a_retry() -> None:
    with ScriptedPeer(Script(mail=lambda c, t: "421 4.3.2 shutting down")) as peer:
        replies = _send(peer, [ANN], Connections())
        assert replies[ANN].code == 421 and peer.connections == 1


def test_partial_lmtp_failure_gives_each_recipient_its_own_reply() -> None:
    with ScriptedPeer(Script(final={BOB: "452 4.2.2 mailbox full"})) as peer, Connections() as conns:
        replies = _send(peer, [ANN, BOB], conns)
        assert replies[ANN].ok and (replies[BOB].code, replies[BOB].text) == (452, "4.2.2 mailbox full")
        assert _kept(peer, conns)  # every per-recipient reply was read: the session is in step
        assert len(peer.received) == 1


def test_smtp_has_one_reply_for_the_transaction() -> None:
    with ScriptedPeer(Script(lmtp=False, final={"*": "554 5.6.0 rejected content"})) as peer:
        replies = _send(peer, [ANN, BOB])
        assert {r: x.code for r, x in replies.items()} == {ANN: 554, BOB: 554}


def test_no_listener_is_a_421_for_everyone() -> None:
    replies = deliver(parse_next_hop(f"lmtp://127.0.0.1:{free_port()}"), SENDER, [ANN, BOB], b"x", timeout=2)
    assert {r.code for r in replies.values()} == {421} and all("connection to" in r.text for r in replies.values())


def test_non_ascii_address_without_smtputf8_is_refused_before_anything_is_sent() -> None:
    with ScriptedPeer(Script()) as peer, Connections() as conns:
        replies = _send(peer, ["jörg@corp.example"], conns)
        assert replies["jörg@corp.example"].code == 553
        assert not any(c.startswith("MAIL") for _, c in peer.commands) and _kept(peer, conns)
