"""The quarantine policy and subject tags through the whole gateway (policy set over the API, mail sent over SMTP,
delivered by `mailsec serve` to Dovecot over LMTP, read back over IMAP), and the marking of a copy that may be a
duplicate after a hand-off was interrupted."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from gw_support import Dovecot, Gateway, make_dovecot, start_gateway
from test_gateway_flow import send, wait_status

from mailsec.gateway import dispatch
from mailsec.model import DeliveryMode, Envelope
from mailsec.pipeline import process_message
from support import make_eml

PAT, TIA = "pat@policy.example", "tia@policy.example"
DEFAULT = ["MALICIOUS", "MALICIOUS-BEC", "SPOOF"]
BULK_HEADERS = {
    "X-Mailjet-Campaign": "4711",
    "List-Unsubscribe": "<mailto:unsubscribe@esp.example>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "Precedence": "bulk",
}


@pytest.fixture(scope="module")
def pdovecot() -> Iterator[Dovecot]:
    root = Path(tempfile.mkdtemp(prefix="mailsec-dovecot-policy-"))
    root.chmod(0o755)  # Dovecot's unprivileged processes read the users file
    dv = make_dovecot(root, [PAT, TIA])
    yield dv
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


@pytest.fixture(scope="module")
def pgw(tmp_path_factory: pytest.TempPathFactory, pdovecot: Dovecot) -> Iterator[tuple[Gateway, str, str]]:
    """The gateway, with one more account (default policy) owning policy.example; its id and a write token."""
    gw = start_gateway(tmp_path_factory.mktemp("gw-policy") / "data", pdovecot, None)
    account = gw.services.accounts.create_account("Policy").id
    gw.services.domains.add(account, "policy.example", mode="DIRECT", next_hop=pdovecot.lmtp_url, verified=True)
    yield gw, account, gw.services.accounts.create_token(account)
    gw.server.stop()
    gw.services.close()


def put_policy(gw: Gateway, account: str, token: str, body: dict) -> dict:
    r = httpx.put(
        f"{gw.server.base_url}/accounts/{account}/email-security/settings/quarantine_policy",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]


def mailbox(dv: Dovecot, user: str) -> dict[str, tuple[EmailMessage, bytes]]:
    """Queue-ID -> the delivered header, parsed the modern way (Subject decoded from RFC 2047), and its raw bytes."""
    out: dict[str, tuple[EmailMessage, bytes]] = {}
    with dv.imap(user) as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search("ALL")
        for data in c.fetch(uids, [b"BODY.PEEK[HEADER]"]).values() if uids else ():
            raw = data[b"BODY[HEADER]"]
            msg = message_from_bytes(raw, policy=email_policy.default)
            assert isinstance(msg, EmailMessage)
            out.setdefault(str(msg["X-MailSec-Queue-ID"]), (msg, raw))
    return out


# Plain text the content classifier reads as harmless: with BULK_HEADERS the verdict is BULK, without them NONE.
NEWSLETTER = (
    "PyCon Newsletter - November edition\n\nThe call for proposals is open until January 15. We are looking for talks "
    "about testing, packaging, data science and web development. Tutorials will run on the first two days, "
    "followed by three days of talks and four days of sprints. Financial aid applications are open as well.\n\n"
    "See you there,\nThe organizers\n"
)


def bulk(subject: str, to: str = PAT) -> bytes:
    return make_eml(subject=subject, to=to, headers=BULK_HEADERS, body=NEWSLETTER)


def test_changed_policy_changes_what_is_held_and_tags_what_is_delivered(
    pgw: tuple[Gateway, str, str], pdovecot: Dovecot
) -> None:
    gw, account, token = pgw
    # Hold BULK too: a newsletter is quarantined.
    held = put_policy(gw, account, token, {"dispositions": [*DEFAULT, "BULK"]})
    assert held["dispositions"] == [*DEFAULT, "BULK"]
    first = send(gw, bulk("Spring newsletter"), [PAT])[0]
    row = wait_status(gw, account, first, {"quarantined", "delivered"})
    assert row.final_disposition == "BULK", "the test message must scan as BULK"
    assert row.delivery_status == "quarantined" and row.is_quarantined
    # Deliver BULK again, tagged: the next newsletter reaches the mailbox with "[BULK]" before its subject.
    put_policy(gw, account, token, {"dispositions": DEFAULT, "subject_tag": {"BULK": "[BULK]"}})
    second = send(gw, bulk("Summer newsletter"), [PAT])[0]
    assert wait_status(gw, account, second, {"quarantined", "delivered"}).delivery_status == "delivered"
    # A clean message of the same account is not tagged (the tag is per disposition).
    clean = send(gw, make_eml(subject="Lunch?", to=PAT, body=NEWSLETTER), [PAT])[0]
    assert wait_status(gw, account, clean, {"delivered", "quarantined"}).final_disposition == "NONE"
    # Releasing the held one delivers it tagged by today's policy, once.
    r = httpx.post(
        f"{gw.server.base_url}/accounts/{account}/email-security/investigate/release",
        json=[row.id],
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["result"][0]["delivered"] == [PAT], r.text
    box = mailbox(pdovecot, PAT)
    assert box[second][0]["Subject"] == "[BULK] Summer newsletter"
    assert box[second][0]["X-MailSec-Disposition"] == "BULK"
    assert box[clean][0]["Subject"] == "Lunch?"
    assert box[first][0]["Subject"] == "[BULK] Spring newsletter"
    assert box[first][0]["X-MailSec-Released"]
    assert pdovecot.queue_ids(PAT).count(first) == 1
    # Every copy carries its stable delivery id and keeps the sender's Message-ID.
    for pid in (first, second, clean):
        assert box[pid][0]["X-MailSec-Delivery-Id"] == f"<{pid}@mx.mailsec.test>"
        assert str(box[pid][0]["Message-ID"]).endswith("@sender.example>")


def test_subject_tags_keep_encoded_subjects_valid_and_are_not_doubled(
    pgw: tuple[Gateway, str, str], pdovecot: Dovecot
) -> None:
    gw, account, token = pgw
    put_policy(gw, account, token, {"dispositions": DEFAULT, "subject_tag": {"BULK": "[Réclame]"}})
    encoded = send(gw, bulk("Été: offre spéciale", to=TIA), [TIA])[0]  # EmailMessage encodes it (RFC 2047)
    ascii_subject = send(gw, bulk("Weekly digest", to=TIA), [TIA])[0]
    already = send(gw, bulk("[Réclame] déjà marqué", to=TIA), [TIA])[0]
    raw_subject = bulk("Hello", to=TIA).replace(b"Subject: Hello", b"Subject: =?utf-8?q?caf=C3=A9?=")
    folded = send(gw, raw_subject, [TIA])[0]
    for pid in (encoded, ascii_subject, already, folded):
        assert wait_status(gw, account, pid, {"delivered", "quarantined"}).delivery_status == "delivered"
    box = mailbox(pdovecot, TIA)
    assert box[encoded][0]["Subject"] == "[Réclame] Été: offre spéciale"
    assert box[ascii_subject][0]["Subject"] == "[Réclame] Weekly digest"
    assert box[already][0]["Subject"] == "[Réclame] déjà marqué"  # not "[Réclame] [Réclame] ..."
    assert box[folded][0]["Subject"] == "[Réclame] café"
    for pid in (encoded, ascii_subject, already, folded):
        header = box[pid][1]
        assert header.isascii(), "the tagged Subject must stay 7-bit (RFC 2047 encoded-words)"
        assert header.lower().count(b"\nsubject:") == 1


def test_interrupted_hand_off_is_redelivered_recognisably(pgw: tuple[Gateway, str, str], pdovecot: Dovecot) -> None:
    """A kill right after the next hop's 250 (before the recipient's state is written) is injected by making the
    hand-off raise once it returned; the rerun delivers again, and the two copies say they are the same delivery."""
    gw, account, _ = pgw
    services = gw.services
    raw = make_eml(subject="handed off twice", to=PAT, body=NEWSLETTER).replace(b"Message-ID:", b"X-Old-Message-ID:")
    processed = process_message(
        services, raw, account, Envelope(mail_from="alice@sender.example", rcpt_to=(PAT,)), mode=DeliveryMode.DIRECT
    )
    message = services.messages.get_by_pk(processed.pk)
    assert message is not None and message.final_disposition == "NONE"
    services.messages.set_recipient_state(processed.pk, PAT, "queued")

    class Killed(BaseException):
        pass

    real = dispatch.deliver

    def deliver_then_die(*args: object, **kwargs: object) -> object:
        replies = real(*args, **kwargs)  # type: ignore[arg-type]
        assert all(r.ok for r in replies.values()), replies
        raise Killed

    dispatch.deliver = deliver_then_die  # type: ignore[assignment]
    try:
        with pytest.raises(Killed):
            dispatch.deliver_message(services, message, [PAT], "alice@sender.example", "delivery attempt 1")
    finally:
        dispatch.deliver = real  # type: ignore[assignment]
    # What survived the "kill": the hand-off had been recorded, its reply had not.
    assert [r["status"] for r in services.messages.recipient_states(processed.pk)] == [dispatch.SENDING]
    assert dispatch.message_status(services, processed.pk) == "deferred"  # not final: the worker resumes it
    outcome = dispatch.deliver_message(services, message, [PAT], "alice@sender.example", "delivery attempt 2")
    assert outcome.delivered == [PAT]
    assert [r["status"] for r in services.messages.recipient_states(processed.pk)] == ["delivered"]
    # Both copies are in the mailbox, recognisably one delivery: same delivery id and Message-ID (made from the
    # postfix_id when the original has none); the second says it may be a duplicate.
    copies = []
    with pdovecot.imap(PAT) as c:
        c.select_folder("INBOX", readonly=True)
        uids = c.search(["HEADER", "X-MailSec-Queue-ID", processed.postfix_id])
        for data in c.fetch(uids, [b"BODY.PEEK[HEADER]"]).values():
            copies.append(message_from_bytes(data[b"BODY[HEADER]"], policy=email_policy.default))
    assert len(copies) == 2
    assert {str(m["X-MailSec-Delivery-Id"]) for m in copies} == {
        f"<{processed.postfix_id}@{services.settings.smtp_hostname}>"
    }
    assert {str(m["Message-ID"]) for m in copies} == {str(copies[0]["X-MailSec-Delivery-Id"])}
    marked = [m for m in copies if m["X-MailSec-Possible-Duplicate"]]
    assert len(marked) == 1 and "interrupted" in str(marked[0]["X-MailSec-Possible-Duplicate"])
    lines = [t.message for t in services.messages.trace(processed.pk)["outbound"]]
    assert any("interrupted before its reply was recorded" in m and "may be a duplicate" in m for m in lines), lines
    assert lines[-1].startswith("delivery attempt 2 to lmtp://") and " 250 " in lines[-1]


def test_tag_subject_edge_cases() -> None:
    """Hostile and odd headers: no Subject, folded, 8-bit, broken encoded-words, a body line that looks like one."""
    cases = {
        b"From: a\r\nTo: b\r\n\r\nSubject: in the body\r\n": b"Subject: [T]\r\nFrom: a\r\nTo: b\r\n\r\nSubject: in",
        b"Subject:\r\n folded\r\n  more\r\n\r\nx": b"Subject: [T]\r\n folded\r\n  more\r\n\r\nx",
        b"Subject: caf\xc3\xa9\n\nx": b"Subject: [T] caf\xc3\xa9\n\nx",
        b"Subject: =?bogus?q?x?=\r\n\r\n": b"Subject: [T] =?bogus?q?x?=\r\n\r\n",
        b"\x00\xff no header\r\n": b"Subject: [T]\r\n\x00\xff no header\r\n",
    }
    for raw, start in cases.items():
        out = dispatch.tag_subject(raw, "[T]")
        assert out.startswith(start), (raw, out)
        assert dispatch.tag_subject(out, "[T]") == out  # idempotent: never tagged twice
    # A non-ASCII tag is an encoded-word before 7-bit text, raw UTF-8 beside an 8-bit subject.
    assert dispatch.tag_subject(b"Subject: hi\r\n\r\n", "[Späm]") == b"Subject: =?utf-8?b?W1Nww6RtXQ==?= hi\r\n\r\n"
    assert dispatch.tag_subject(b"Subject: \xc3\xa9\r\n\r\n", "[Sp\u00e4m]").startswith(
        b"Subject: [Sp\xc3\xa4m] \xc3\xa9"
    )
    assert not dispatch.has_message_id(b"To: a\r\n\r\nMessage-ID: <x@y>\r\n")
    assert dispatch.has_message_id(b"Message-Id:\r\n <x@y>\r\n\r\n")
    assert not dispatch.has_message_id(b"Message-ID: \r\nTo: a\r\n\r\n")
