"""Helpers for the gateway tests: Dovecot started from its own config (LMTP + IMAP on loopback), and `mailsec serve
--smtp` in a subprocess with protected domains routed to it."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imapclient import IMAPClient

from mailsec.config import load_settings
from mailsec.services import Services, open_services
from support import LiveServer, free_port, make_live_server, wait_port

PASSWORD = "secret"
# The Dovecot master user that acts for every mailbox (`user*mailsec-admin`, or SASL PLAIN with an authzid)
MASTER_USER, MASTER_PASSWORD = "mailsec-admin", "master-secret"
STRICT_HELD = ("MALICIOUS", "MALICIOUS-BEC", "SPOOF", "SUSPICIOUS")
ALL_DISPOSITIONS = ("MALICIOUS", "MALICIOUS-BEC", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE", "UNKNOWN")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


@dataclass
class Dovecot:
    """A private Dovecot: own base_dir, passwd-file users, LMTP and IMAP on loopback, maildir under `root`."""

    root: Path
    users: list[str]
    lmtp_port: int = field(default_factory=free_port)
    imap_port: int = field(default_factory=free_port)
    extra_config: str = ""  # appended to dovecot.conf (e.g. a narrower imap_capability, a TLS listener)

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def lmtp_url(self) -> str:
        return f"lmtp://127.0.0.1:{self.lmtp_port}"

    def write_config(self) -> None:
        if os.geteuid() == 0:
            uid, gid, internal, login = 8, 8, "dovecot", "dovenull"  # the `mail` user delivers
        else:
            me = pwd.getpwuid(os.getuid())
            uid, gid, internal, login = me.pw_uid, me.pw_gid, me.pw_name, me.pw_name
        mail = self.root / "mail"
        for d in ("run", "state", "mail"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        mail.chmod(0o777)
        if os.geteuid() == 0:
            os.chown(mail, uid, gid)
        (self.root / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{mail / u}::\n" for u in self.users)
        )
        (self.root / "masters").write_text(f"{MASTER_USER}:{{PLAIN}}{MASTER_PASSWORD}\n")
        self.conf.write_text(
            f"""protocols = imap lmtp
base_dir = {self.root / "run"}
state_dir = {self.root / "state"}
log_path = {self.root / "dovecot.log"}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
login_trusted_networks = 127.0.0.0/8
mail_location = maildir:{mail}/%u
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
first_valid_gid = 1
auth_master_user_separator = *
namespace inbox {{
  inbox = yes
  mailbox Junk {{
    special_use = \\Junk
    auto = create
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root / "masters"}
  master = yes
  pass = yes
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root / "users"}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self.root / "users"}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
{self.extra_config}
"""
        )

    def start(self) -> None:
        if not self.conf.exists():
            self.write_config()
        deadline = time.monotonic() + 10
        while True:
            # The daemon keeps its stdio: give it a file, not a pipe nobody would ever see closed.
            with open(self.root / "start.log", "ab") as log:
                result = subprocess.run(["dovecot", "-c", str(self.conf)], stdout=log, stderr=log)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("dovecot did not start: " + (self.root / "start.log").read_text()[-2000:])
            time.sleep(0.2)  # the previous instance may still hold its ports
        wait_port("127.0.0.1", self.lmtp_port)
        wait_port("127.0.0.1", self.imap_port)

    def stop(self) -> None:
        subprocess.run(["dovecot", "-c", str(self.conf), "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (_port_open(self.lmtp_port) or _port_open(self.imap_port)):
            time.sleep(0.05)

    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[IMAPClient]:
        client = IMAPClient("127.0.0.1", self.imap_port, ssl=False, timeout=10)
        try:
            client.login(user, PASSWORD)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def queue_ids(self, user: str) -> list[str]:
        """The X-MailSec-Queue-ID of every message in the user's INBOX (one entry per delivered copy)."""
        with self.imap(user) as c:
            c.select_folder("INBOX", readonly=True)
            uids = c.search("ALL")
            if not uids:
                return []
            out = []
            for data in c.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (X-MAILSEC-QUEUE-ID)]"]).values():
                header = next(v for k, v in data.items() if k.startswith(b"BODY"))
                for line in header.decode().splitlines():
                    if ":" in line:
                        out.append(line.split(":", 1)[1].strip())
            return out


def make_dovecot(root: Path, users: list[str], extra_config: str = "") -> Dovecot:
    if shutil.which("dovecot") is None:
        pytest.skip("dovecot is not installed (Debian dovecot-imapd, dovecot-lmtpd)")
    dv = Dovecot(root, users, extra_config=extra_config)
    dv.write_config()
    dv.start()
    return dv


@dataclass
class Gateway:
    server: LiveServer
    smtp_port: int
    account: str
    hold_account: str
    strict_account: str
    token: str
    hold_token: str
    services: Services

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until no queue row is due now (deferred rows waiting for a later attempt count as idle)."""
        from mailsec.store.queue import QueueRepo

        repo = QueueRepo(self.services.engine)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if repo.counts().get("queued", 0) == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"queue not drained: {repo.counts()}")


def self_signed(root: Path) -> tuple[Path, Path]:
    cert, key = root / "cert.pem", root / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=mailsec.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def start_gateway(
    root: Path,
    dovecot: Dovecot,
    dovecot_flaky: Dovecot | None,
    database_url: str | None = None,
    new_session: bool = False,
    **env: str,
) -> Gateway:
    """`mailsec serve --smtp` on SQLite in `root`, or on `database_url` (a PostgreSQL database of the fixture);
    `new_session`: in a process group of its own (see LiveServer.start)."""
    smtp_port = free_port()
    env = {
        "MAILSEC_QUEUE_RETRY_SECONDS": "0.4",
        "MAILSEC_QUEUE_POLL_SECONDS": "0.1",
        "MAILSEC_DELIVERY_TIMEOUT_SECONDS": "5",
        "MAILSEC_SMTP_HOSTNAME": "mx.mailsec.test",
        # one worker process, as before the default became cores + 1: each loads the scanner at every (re)start
        "MAILSEC_QUEUE_WORKERS": "1",
        **env,
    }
    server = make_live_server(root, database_url or f"sqlite:///{root / 'mailsec.db'}", **env)
    services = open_services(load_settings(env={}, data_dir=root, database_url=server.database_url))
    account = services.accounts.create_account("Corp").id
    hold_account = services.accounts.create_account("Hold").id
    # One domain through the CLI (the command under test), the rest directly: each CLI run costs a Python start.
    server.cli("domain", "add", "--account", account, "corp.example", "--next-hop", dovecot.lmtp_url)
    domains = [
        (account, "kill.example", "DIRECT", dovecot.lmtp_url),
        (hold_account, "hold.example", "DIRECT", dovecot.lmtp_url),
        (account, "bcc.example", "BCC", ""),
        (account, "journal.example", "JOURNAL", ""),
    ]
    if dovecot_flaky is not None:
        domains += [
            (account, "down.example", "DIRECT", dovecot_flaky.lmtp_url),
            (hold_account, "downhold.example", "DIRECT", dovecot_flaky.lmtp_url),
        ]
    for acc, name, mode, hop in domains:
        services.domains.add(acc, name, mode=mode, next_hop=hop, verified=True)
    from mailsec.store.queue import QueueRepo

    QueueRepo(services.engine).set_quarantine_dispositions(hold_account, ALL_DISPOSITIONS)
    strict = services.accounts.create_account("Strict").id
    services.domains.add(strict, "strict.example", mode="DIRECT", next_hop=dovecot.lmtp_url, verified=True)
    QueueRepo(services.engine).set_quarantine_dispositions(strict, STRICT_HELD)
    gw = Gateway(
        server, smtp_port, account, hold_account, strict, services.accounts.create_token(account),
        services.accounts.create_token(hold_account), services,
    )  # fmt: skip
    server.start("--smtp", f"127.0.0.1:{smtp_port}", new_session=new_session)
    wait_port("127.0.0.1", smtp_port)
    return gw
