"""Bulk move in real mailboxes: mailsec next to a plain `doveadm move`, on the same messages in one private Dovecot.

Setup (not timed): N messages (default 10,000) scanned and stored by mailsec and delivered by its dispatch over
LMTP to M mailboxes (default 100), so each carries the Message-ID and X-MailSec-Delivery-Id a real delivery has.
Timed:
- mailsec: `actions.move.move` — what `POST investigate/move` runs — in requests of 1,000 ids, INBOX → Junk,
  through the IMAP backend (master user, sessions pooled across requests, 8 mailboxes at once): per mailbox one
  SEARCH for all the request's messages (an OR of their Message-ID / X-MailSec-Delivery-Id headers) and one FETCH of
  those headers to tell the copies apart, pipelined in one round trip (SEARCHRES), then one UID MOVE for the set;
  then every message's recipient state, trace line and action log entry written in one commit (SQLite);
- doveadm: `doveadm move -u USER Junk mailbox INBOX ALL`, one run per mailbox (Dovecot moving its own files with
  no search per message and no record: the floor for the same moves). doveadm moves them from INBOX to Junk after
  mailsec's moves were undone by doveadm itself (not timed), so both start from the same mailboxes.
Usage: .venv/bin/python bench/move.py [N] [MAILBOXES]   (BENCH_NO_DOC=1: print only, docs/benchmarks.md untouched;
BENCH_RTT_MS=5: mailsec reaches Dovecot's IMAP through bench/rtt_proxy.py, as a server 5 ms away)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "gateway"), str(ROOT / "bench")]

import docsection  # noqa: E402
from gw_support import MASTER_PASSWORD, MASTER_USER, Dovecot, make_dovecot  # noqa: E402

from mailsec.actions.move import move  # noqa: E402
from mailsec.config import load_settings  # noqa: E402
from mailsec.gateway import dispatch  # noqa: E402
from mailsec.gateway.deliver import Connections  # noqa: E402
from mailsec.mailbox import registry, secrets  # noqa: E402
from mailsec.model import Destination, Envelope  # noqa: E402
from mailsec.pipeline import process_message  # noqa: E402
from mailsec.services import open_services  # noqa: E402
from mailsec.store.integrations import IntegrationRepo  # noqa: E402
from support import free_port, make_eml, wait_port  # noqa: E402

CHUNK = 1000


def doveadm(dv: Dovecot, *args: str) -> None:
    subprocess.run(["doveadm", "-c", str(dv.conf), *args], check=True, capture_output=True)


def count(dv: Dovecot, users: list[str], folder: str) -> int:
    total = 0
    for user in users:
        out = subprocess.run(["doveadm", "-c", str(dv.conf), "search", "-u", user, "mailbox", folder, "ALL"],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        total += len(out.splitlines())
    return total


def main(n: int, mailboxes: int) -> str:
    root = Path(tempfile.mkdtemp(prefix="mailsec-bench-move-"))
    root.chmod(0o755)
    users = [f"user{i:03d}@bench.example" for i in range(mailboxes)]
    dv = make_dovecot(root / "dovecot", users)
    services = open_services(load_settings(env={}, data_dir=root / "data"))
    rtt_ms = float(os.environ.get("BENCH_RTT_MS") or 0)
    imap_port, proxy = dv.imap_port, None
    if rtt_ms:
        imap_port = free_port()
        proxy = subprocess.Popen([sys.executable, str(ROOT / "bench" / "rtt_proxy.py"), str(imap_port),
                                  str(dv.imap_port), str(rtt_ms)])  # fmt: skip
        wait_port("127.0.0.1", imap_port)
    try:
        account = services.accounts.create_account("Bench").id
        services.domains.add(account, "bench.example", mode="DIRECT", next_hop=dv.lmtp_url, verified=True)
        secret = secrets.encrypt(services.settings.data_dir, MASTER_PASSWORD)
        IntegrationRepo(services.engine).add(
            account, "bench.example", "imap", f"imap://{MASTER_USER}@127.0.0.1:{imap_port}", {}, secret
        )
        started = time.monotonic()
        ids: list[str] = []
        with Connections() as conns:
            for i in range(n):
                rcpt = users[i % mailboxes]
                raw = make_eml(f"bench move {i}", to=rcpt, body=f"message {i} of the bulk move benchmark\n")
                stored = process_message(services, raw, account, Envelope("alice@sender.example", (rcpt,)))
                message = services.messages.get_by_pk(stored.pk)
                assert message is not None
                out = dispatch.deliver_message(services, message, [rcpt], "alice@sender.example", "bench delivery",
                                               raw=raw, connections=conns)  # fmt: skip
                assert out.delivered == [rcpt], out.replies
                ids.append(message.id)
        print(f"setup: {n} messages stored and delivered in {time.monotonic() - started:.0f} s", flush=True)
        assert count(dv, users, "INBOX") == n

        started = time.monotonic()
        items = []
        for k in range(0, n, CHUNK):
            items += move(services, account, ids[k : k + CHUNK], Destination.JUNK, "bench")
        mailsec_s = time.monotonic() - started
        assert len(items) == n and all(i.status == "moved" for i in items), {i.status for i in items}
        assert count(dv, users, "Junk") == n
        registry.close_all()
        print(f"mailsec: {n} moves in {mailsec_s:.1f} s = {n / mailsec_s:.0f}/s", flush=True)

        for user in users:  # back to INBOX (not timed)
            doveadm(dv, "move", "-u", user, "INBOX", "mailbox", "Junk", "ALL")
        started = time.monotonic()
        for user in users:
            doveadm(dv, "move", "-u", user, "Junk", "mailbox", "INBOX", "ALL")
        doveadm_s = time.monotonic() - started
        assert count(dv, users, "Junk") == n
        print(f"doveadm: {n} moves in {doveadm_s:.1f} s = {n / doveadm_s:.0f}/s", flush=True)
    finally:
        services.close()
        if proxy is not None:
            proxy.terminate()
            proxy.wait()
        dv.stop()
        shutil.rmtree(root, ignore_errors=True)
    return (
        f"{n:,} delivered messages over {mailboxes} mailboxes of one Dovecot (maildir), INBOX → Junk.\n\n"
        "| | time | moves/s |\n|---|---|---|\n"
        f"| mailsec (`POST investigate/move`'s code, 1,000 ids a request, IMAP MOVE, state and action log written"
        f"{f'; IMAP {rtt_ms:g} ms away' if rtt_ms else ''}) | {mailsec_s:.1f} s | {n / mailsec_s:,.0f} |\n"
        f"| `doveadm move` (one run per mailbox, `ALL`; no lookup, no record) | {doveadm_s:.1f} s | "
        f"{n / doveadm_s:,.0f} |\n\n"
        "mailsec works per mailbox: for a request's messages in one mailbox, one SEARCH (an OR of their headers) "
        "in each folder it looks in and one FETCH of the matching copies' Message-ID and X-MailSec-Delivery-Id, "
        "pipelined (NOOP, UID SEARCH RETURN (SAVE), UID FETCH $: one round trip), then one UID MOVE for the set "
        "(one more), over a session kept from the previous request; 8 mailboxes at a time; the whole request's "
        "record (recipient states, trace lines, action log) in one commit. doveadm moves a whole mailbox's "
        "messages in one command, with nothing to look up and nothing to record.\n"
    )


if __name__ == "__main__":
    if shutil.which("doveadm") is None:
        sys.exit("doveadm is not installed (Debian dovecot-core)")
    body = main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 100)
    print(body)
    if os.environ.get("BENCH_NO_DOC") != "1":
        docsection.write_section("move", "Bulk move in mailboxes (`bench/move.py`)", body)
