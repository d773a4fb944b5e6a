"""End to end through the gateway: a real SMTP client, `mailsec serve --smtp`, Dovecot over LMTP, checked over IMAP
and through the API."""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from pathlib import Path

import httpx
import pytest
from gw_support import STRICT_HELD, Dovecot, Gateway

from mailsec.store.messages import StoredMessage
from mailsec.store.queue import QueueRepo
from support import make_eml

QUARANTINED = set(STRICT_HELD)  # the strict account's policy: the default plus SUSPICIOUS


def queued_ids(reply: bytes) -> list[str]:
    text = reply.decode()
    assert "queued as" in text, text
    return text.split("queued as", 1)[1].split()


def send(gw: Gateway, raw: bytes, rcpts: list[str], sender: str = "alice@sender.example") -> list[str]:
    with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
        client.ehlo("client.example")
        client.mail(sender)
        for r in rcpts:
            code, msg = client.rcpt(r)
            assert code == 250, (r, code, msg)
        code, msg = client.data(raw)
        assert code == 250, (code, msg)
        return queued_ids(msg)


def message(gw: Gateway, account: str, postfix_id: str) -> StoredMessage:
    stored = gw.services.messages.get(account, postfix_id)
    assert stored is not None, f"{postfix_id} is not stored"
    return stored


def wait_status(gw: Gateway, account: str, postfix_id: str, statuses: set[str], timeout: float = 30.0) -> StoredMessage:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        stored = gw.services.messages.get(account, postfix_id)
        status = stored.delivery_status if stored else None
        if stored is not None and status in statuses:
            return stored
        time.sleep(0.1)
    raise AssertionError(f"{postfix_id}: status {status!r}, wanted {statuses}")


def api(gw: Gateway, token: str) -> httpx.Client:
    return httpx.Client(base_url=gw.server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def verdict_of(path: Path) -> str:
    from mailsec.mime import parse_message
    from mailsec.model import Envelope
    from mailsec.scan import scan_message

    return str(scan_message(parse_message(path.read_bytes()), Envelope()).disposition)


def corpus_files(corpora: Path, folder: str, n: int) -> list[Path]:
    return sorted(p for p in (corpora / folder).iterdir() if p.suffix == ".eml")[:n]


def test_corpus_messages_end_in_inbox_or_quarantine(gateway: Gateway, dovecot: Dovecot, corpora: Path) -> None:
    # Phishing the scanner holds on its own (the verdict is what decides; the test checks the gateway obeys it).
    phish = [f for f in corpus_files(corpora, "phishing_pot", 60) if verdict_of(f) in QUARANTINED][:5]
    files = corpus_files(corpora, "spamassassin/easy-ham-1", 4) + phish
    sent = {f.name: send(gateway, f.read_bytes(), ["sam@strict.example"])[0] for f in files}
    gateway.wait_idle()
    inbox = dovecot.queue_ids("sam@strict.example")
    held = 0
    for name, pid in sent.items():
        row = wait_status(gateway, gateway.strict_account, pid, {"delivered", "quarantined"})
        if row.final_disposition in QUARANTINED:
            held += 1
            assert row.is_quarantined and row.delivery_status == "quarantined", name
            assert pid not in inbox, f"{name} was quarantined but reached the mailbox"
        else:
            assert not row.is_quarantined and row.delivery_status == "delivered", name
            assert inbox.count(pid) == 1, f"{name} ({row.final_disposition}) should be in INBOX once"
    assert held >= 1, "no corpus phishing message was quarantined"
    assert held < len(files), "every message was quarantined"
    # The delivered copy carries the verdict headers.
    delivered = next(pid for pid in sent.values() if pid in inbox)
    with dovecot.imap("sam@strict.example") as c:
        c.select_folder("INBOX", readonly=True)
        uid = c.search(["HEADER", "X-MailSec-Queue-ID", delivered])[0]
        header = c.fetch([uid], [b"BODY.PEEK[HEADER]"])[uid][b"BODY[HEADER]"].decode("utf-8", "replace")
    assert "X-MailSec-Disposition: " in header and "X-MailSec-Reasons: " in header
    # The trace over the API: inbound session lines, scan, and the LMTP reply of the hand-off.
    token = gateway.services.accounts.create_token(gateway.strict_account)
    with api(gateway, token) as http:
        body = http.get(f"/accounts/{gateway.strict_account}/email-security/investigate/{delivered}/trace").json()
    inbound = [line["message"] for line in body["result"]["inbound"]["lines"]]
    outbound = [line["message"] for line in body["result"]["outbound"]["lines"]]
    assert inbound[0] == "connect from 127.0.0.1"
    assert any(m.startswith("EHLO client.example") for m in inbound)
    assert any(m.startswith("MAIL FROM:<alice@sender.example>") for m in inbound)
    assert any(m.startswith("RCPT TO:<sam@strict.example>") for m in inbound)
    assert any(f"queued as {delivered}" in m for m in inbound)
    assert any(m.startswith("scanned: ") for m in inbound)
    assert any("lmtp://127.0.0.1" in m and "250 2.0.0" in m and "Saved" in m for m in outbound), outbound
    assert body["result"]["outbound"]["pending"] is False


def test_multi_account_message_is_split_per_account(gateway: Gateway, dovecot: Dovecot) -> None:
    ids = send(gateway, make_eml(subject="for two accounts"), ["ann@corp.example", "carol@hold.example"])
    assert len(ids) == 2
    gateway.wait_idle()
    corp = wait_status(gateway, gateway.account, ids[0], {"delivered"})
    hold = wait_status(gateway, gateway.hold_account, ids[1], {"quarantined"})
    assert corp.postfix_id != hold.postfix_id
    assert ids[0] in dovecot.queue_ids("ann@corp.example")
    assert ids[1] not in dovecot.queue_ids("carol@hold.example")
    assert gateway.services.messages.get(gateway.account, ids[1]) is None  # accounts never see each other's rows


def test_release_delivers_and_is_logged(gateway: Gateway, dovecot: Dovecot) -> None:
    pid = send(gateway, make_eml(subject="held then released", to="carol@hold.example"), ["carol@hold.example"])[0]
    row = wait_status(gateway, gateway.hold_account, pid, {"quarantined"})
    assert pid not in dovecot.queue_ids("carol@hold.example")
    base = f"/accounts/{gateway.hold_account}/email-security/investigate"
    with api(gateway, gateway.hold_token) as http:
        r = http.post(f"{base}/release", json=[row.id])
        assert r.status_code == 200, r.text
        item = r.json()["result"][0]
        assert item == {
            "id": row.id,
            "postfix_id": pid,
            "delivered": ["carol@hold.example"],
            "failed": [],
            "undelivered": [],
        }
        got = http.get(f"{base}/{pid}").json()["result"]
        assert got["is_quarantined"] is False and got["delivery_status"] == ["delivered"]
        log = http.get(f"{base}/{pid}/action_log").json()["result"]
        assert [e["operation"] for e in log] == ["QUARANTINE_RELEASE"]
        assert log[0]["properties"]["requested_by"]
        found = http.get(base, params={"message_action": "QUARANTINE_RELEASED", "detections_only": "false"}).json()
        assert pid in [m["postfix_id"] for m in found["result"]]
        # A read-only credential may not release.
        ro = gateway.server.create_token(gateway.hold_account, read_only=True)
        denied = httpx.post(
            f"{gateway.server.base_url}{base}/release", json={"ids": [pid]}, headers={"Authorization": f"Bearer {ro}"}
        )
        assert denied.status_code == 403
    assert dovecot.queue_ids("carol@hold.example").count(pid) == 1


def test_release_through_the_sdk(gateway: Gateway, dovecot: Dovecot) -> None:
    from cloudflare import Cloudflare

    pid = send(gateway, make_eml(subject="sdk release", to="carol@hold.example"), ["carol@hold.example"])[0]
    row = wait_status(gateway, gateway.hold_account, pid, {"quarantined"})
    cf = Cloudflare(api_token=gateway.hold_token, base_url=gateway.server.base_url)
    items = list(cf.email_security.investigate.release.bulk(account_id=gateway.hold_account, ids=[row.id]))
    assert [(i.id, i.postfix_id, i.delivered, i.undelivered) for i in items] == [
        (row.id, pid, ["carol@hold.example"], [])
    ]
    assert pid in dovecot.queue_ids("carol@hold.example")


def test_release_with_next_hop_down_is_undelivered_then_retried(gateway: Gateway, dovecot_flaky: Dovecot) -> None:
    rcpt = "erin@downhold.example"
    pid = send(gateway, make_eml(subject="release while down", to=rcpt), [rcpt])[0]
    row = wait_status(gateway, gateway.hold_account, pid, {"quarantined"})
    dovecot_flaky.stop()
    try:
        with api(gateway, gateway.hold_token) as http:
            r = http.post(
                f"/accounts/{gateway.hold_account}/email-security/investigate/release", json={"ids": [row.id]}
            )
        assert r.status_code == 200, r.text
        item = r.json()["result"][0]
        assert item["delivered"] == [] and item["failed"] == []
        assert item["undelivered"] == ["erin@downhold.example"]
        time.sleep(1.0)  # a few retries fail while the next hop is down
        assert wait_status(gateway, gateway.hold_account, pid, {"deferred"}).is_quarantined is False
    finally:
        dovecot_flaky.start()
    wait_status(gateway, gateway.hold_account, pid, {"delivered"})
    assert dovecot_flaky.queue_ids("erin@downhold.example").count(pid) == 1
    trace = gateway.services.messages.trace(message(gateway, gateway.hold_account, pid).pk)
    attempts = [t.message for t in trace["outbound"] if "<erin@downhold.example>" in t.message]
    assert attempts[0].startswith("release delivery") and " 421 " in attempts[0]
    assert attempts[-1].endswith("Saved") and len(attempts) >= 2


def test_next_hop_down_defers_then_delivers(gateway: Gateway, dovecot_flaky: Dovecot) -> None:
    dovecot_flaky.stop()
    try:
        pid = send(gateway, make_eml(subject="deferred", to="dave@down.example"), ["dave@down.example"])[0]
        row = wait_status(gateway, gateway.account, pid, {"deferred"})
        assert row.is_quarantined is False
        with api(gateway, gateway.token) as http:
            trace = http.get(f"/accounts/{gateway.account}/email-security/investigate/{pid}/trace").json()["result"]
        assert trace["outbound"]["pending"] is True
        assert gateway.services.messages.recipient_states(row.pk)[0]["status"] == "deferred"
        time.sleep(1.0)
    finally:
        dovecot_flaky.start()
    wait_status(gateway, gateway.account, pid, {"delivered"})
    assert dovecot_flaky.queue_ids("dave@down.example").count(pid) == 1
    lines = [t.message for t in gateway.services.messages.trace(row.pk)["outbound"]]
    attempts = [m for m in lines if m.startswith("delivery attempt")]
    assert len(attempts) >= 2
    assert " 421 4.4.1 connection to lmtp://" in attempts[0]
    assert "250 2.0.0" in attempts[-1]
    assert any(m.startswith("deferred:") for m in lines)


def test_relay_is_refused(gateway: Gateway) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=10) as client:
        client.ehlo("client.example")
        client.mail("alice@sender.example")
        code, msg = client.rcpt("victim@elsewhere.example")
        assert code == 550 and b"5.7.1" in msg
        code, _ = client.rcpt("not-an-address")
        assert code >= 500
        code, _ = client.docmd("DATA")
        assert code == 503  # no valid recipient: DATA is refused
        assert client.noop()[0] == 250


def test_oversized_message_is_refused(gateway: Gateway) -> None:
    big = make_eml(subject="big", body="x" * 70 + "\n") + (b"y" * 76 + b"\r\n") * 30000  # ~2.3 MB > 2 MiB limit
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=30) as client:
        client.ehlo("client.example")
        assert client.has_extn("size") and int(client.esmtp_features["size"]) == 2 * 1024 * 1024
        code, _ = client.mail("alice@sender.example", [f"SIZE={len(big)}"])
        assert code == 552
        client.rset()
        client.mail("alice@sender.example")
        client.rcpt("bob@corp.example")
        code, _ = client.data(big)
        assert code == 552
    # the server is still serving
    assert send(gateway, make_eml(subject="after big"), ["bob@corp.example"])


def test_extensions_and_bad_commands(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.smtp_port), timeout=10) as s:
        f = s.makefile("rwb")
        assert f.readline().startswith(b"220 ")

        def cmd(line: bytes) -> list[bytes]:
            f.write(line + b"\r\n")
            f.flush()
            out = [f.readline()]
            while out[-1][3:4] == b"-":
                out.append(f.readline())
            return out

        ehlo = b"".join(cmd(b"EHLO client.example"))
        for ext in (b"PIPELINING", b"8BITMIME", b"SMTPUTF8", b"SIZE", b"STARTTLS"):
            assert ext in ehlo
        assert b"AUTH" not in ehlo
        assert cmd(b"FOO bar")[0][:1] == b"5"
        assert cmd(b"RCPT TO:<bob@corp.example>")[0][:3] == b"503"  # no MAIL first
        assert cmd(b"MAIL FROM:<<<>>")[0][:1] == b"5"
        assert cmd(b"\x00\xff\xfe garbage")[0][:1] == b"5"
        assert cmd(b"DATA")[0][:3] == b"503"
        # PIPELINING: a whole transaction written at once, the replies read after.
        f.write(
            b"MAIL FROM:<alice@sender.example>\r\nRCPT TO:<bob@corp.example>\r\nRCPT TO:<x@nowhere.example>\r\nDATA\r\n"
        )
        f.flush()
        replies = [f.readline()[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"550", b"354"]
        f.write(b"Subject: pipelined\r\n\r\n\xc3\xa9t\xc3\xa9 8-bit body\r\n.\r\n")
        f.flush()
        assert f.readline().startswith(b"250 2.0.0 Ok: queued as ")
        assert cmd(b"QUIT")[0][:3] == b"221"


def test_smtputf8_and_malformed_content_are_accepted_and_stored(gateway: Gateway) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=10) as client:
        client.ehlo("client.example")
        client.mail("jos\u00e9@exp\u00e9diteur.example", ["SMTPUTF8", "BODY=8BITMIME"])
        assert client.rcpt("bob@corp.example")[0] == 250
        text = "Subject: caf\u00e9\r\nFrom: jos\u00e9@exp\u00e9diteur.example\r\n\r\nd\u00e9j\u00e0\r\n"
        code, msg = client.data(text.encode())
        assert code == 250
        utf8 = queued_ids(msg)[0]
    garbage = b"\x00\x01binary\xff\xfe no headers at all\r\n" + bytes(range(256)) + b"\r\n" + b"=?broken?=\r\n" * 50
    bad = send(gateway, garbage, ["bob@corp.example"])[0]
    gateway.wait_idle()
    assert wait_status(gateway, gateway.account, bad, {"delivered", "quarantined"})
    # Dovecot's LMTP has no SMTPUTF8: the non-ASCII sender is a permanent failure, recorded as bounced.
    row = wait_status(gateway, gateway.account, utf8, {"bounced", "delivered"})
    lines = [t.message for t in gateway.services.messages.trace(row.pk)["outbound"]]
    assert row.delivery_status == "delivered" or any("553 5.6.7" in m for m in lines), lines


def test_starttls(gateway: Gateway) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", gateway.smtp_port, timeout=10) as client:
        client.ehlo("client.example")
        assert client.starttls(context=ctx)[0] == 220
        client.ehlo("client.example")
        assert not client.has_extn("starttls")
        client.mail("alice@sender.example")
        client.rcpt("bob@corp.example")
        code, msg = client.data(make_eml(subject="over tls"))
        assert code == 250
    pid = queued_ids(msg)[0]
    row = wait_status(gateway, gateway.account, pid, {"delivered"})
    lines = [t.message for t in gateway.services.messages.trace(row.pk)["inbound"]]
    assert any(m.startswith("TLS established: TLSv1.") for m in lines), lines
    assert gateway.services.messages.get(gateway.account, pid).data.tls is True


def test_bcc_and_journal_store_only(gateway: Gateway, dovecot: Dovecot) -> None:
    original = make_eml(subject="journaled original", to="bob@corp.example")
    report = (
        b"From: journal@exchange.example\r\nTo: journal@journal.example\r\nSubject: journal report\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=BB\r\n\r\n"
        b"--BB\r\nContent-Type: text/plain\r\n\r\n"
        b"Sender: alice@sender.example\r\n--BB\r\nContent-Type: message/rfc822\r\n\r\n" + original + b"\r\n--BB--\r\n"
    )
    jid = send(gateway, report, ["journal@journal.example"])[0]
    bid = send(gateway, make_eml(subject="bcc copy"), ["copy@bcc.example"])[0]
    gateway.wait_idle()
    journal = gateway.services.messages.get(gateway.account, jid)
    bcc = gateway.services.messages.get(gateway.account, bid)
    assert journal is not None and bcc is not None
    assert journal.subject == "journaled original" and journal.delivery_mode == "JOURNAL"
    assert bcc.delivery_mode == "BCC"
    assert QueueRepo(gateway.services.engine).get(jid).state == "done"  # type: ignore[union-attr]
    for m in (journal, bcc):
        assert gateway.services.messages.trace(m.pk)["outbound"] == []


@pytest.mark.parametrize("body", [[], {"ids": []}, {"nope": 1}, "x", [1, 2]])
def test_release_rejects_bad_bodies(gateway: Gateway, body: object) -> None:
    with api(gateway, gateway.token) as http:
        r = http.post(f"/accounts/{gateway.account}/email-security/investigate/release", json=body)
    assert r.status_code == 400 and r.json()["success"] is False


def test_release_unknown_id_is_404(gateway: Gateway) -> None:
    with api(gateway, gateway.token) as http:
        r = http.post(f"/accounts/{gateway.account}/email-security/investigate/release", json=["0123456789ABCDE"])
    assert r.status_code == 404
