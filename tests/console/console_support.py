"""Helpers of the console tests: a live `mailsec serve` with an account, tokens and a user with a password, and
signing in as a person would, through the form."""

from __future__ import annotations

import os
import smtplib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway.gw_support import MASTER_PASSWORD, MASTER_USER
from mailsec.config import load_settings
from mailsec.mailbox import secrets
from mailsec.pipeline import process_message
from mailsec.services import open_services
from mailsec.store.integrations import IntegrationRepo
from mailsec.store.queue import QueueRepo
from support import LiveServer, free_port, make_live_server, wait_port

CHROMIUM = os.environ.get("MAILSEC_CHROMIUM_PATH", "/usr/bin/chromium")
PASSWORD = "correct horse battery staple"


@dataclass
class Console:
    """A running console and the credentials to sign in with."""

    server: LiveServer
    account: str
    token: str
    read_token: str
    email: str
    password: str
    smtp_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@dataclass
class BrowserPage:
    page: Any  # playwright.sync_api.Page
    problems: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


HELD_DOMAIN = "hold.example"  # every message to it is held in quarantine, then released to Dovecot over LMTP
HELD_RECIPIENT = f"carol@{HELD_DOMAIN}"
ALL_DISPOSITIONS = ("MALICIOUS", "MALICIOUS-BEC", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE", "UNKNOWN")


def start_console(data_dir: Path, next_hop: str | None = None, imap_port: int | None = None, **env: str) -> Console:
    """`mailsec serve` with an account, a read-write and a read-only token and a user with a password; with
    `next_hop` (an LMTP URL) also `--smtp`, with HELD_DOMAIN routed there and every disposition held; with
    `imap_port`, an IMAP integration for HELD_DOMAIN through Dovecot's master user (the console offers Move)."""
    if next_hop:
        env = {"MAILSEC_QUEUE_WORKERS": "1", "MAILSEC_QUEUE_POLL_SECONDS": "0.1", "MAILSEC_QUEUE_RETRY_SECONDS": "0.4",
               "MAILSEC_SMTP_HOSTNAME": "mx.mailsec.test", **env}  # fmt: skip
    server = make_live_server(data_dir, f"sqlite:///{data_dir / 'mailsec.db'}", **env)
    services = open_services(load_settings(env=server.env))
    try:
        account = services.accounts.create_account("Console").id
        token = services.accounts.create_token(account)
        read_token = services.accounts.create_token(account, can_write=False)
        email = "analyst@corp.example"
        services.accounts.create_user(email, account)
        services.accounts.set_password(email, PASSWORD)
        if next_hop:
            services.domains.add(account, HELD_DOMAIN, mode="DIRECT", next_hop=next_hop, verified=True)
            QueueRepo(services.engine).set_quarantine_dispositions(account, ALL_DISPOSITIONS)
        if imap_port:
            secret = secrets.encrypt(services.settings.data_dir, MASTER_PASSWORD)
            url = f"imap://{MASTER_USER}@127.0.0.1:{imap_port}"
            IntegrationRepo(services.engine).add(account, HELD_DOMAIN, "imap", url, {"timeout": 30}, secret)
    finally:
        services.close()
    smtp_port = free_port() if next_hop else None
    server.start(*(["--smtp", f"127.0.0.1:{smtp_port}"] if smtp_port else []))
    if smtp_port:
        wait_port("127.0.0.1", smtp_port)
    return Console(server, account, token, read_token, email, PASSWORD, smtp_port)


def send(console: Console, raw: bytes, rcpts: list[str], sender: str = "alice@sender.example") -> str:
    """One real SMTP session; the queue id the gateway answered."""
    assert console.smtp_port is not None
    with smtplib.SMTP("127.0.0.1", console.smtp_port, timeout=30) as client:
        client.ehlo("client.example")
        client.mail(sender)
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(raw)
    assert code == 250, reply
    return reply.decode().split("queued as", 1)[1].split()[0]


def wait_stored(console: Console, postfix_id: str, status: str, timeout: float = 60.0) -> str:
    """The investigate id of the message once it is stored with this delivery status."""
    services = open_services(load_settings(env=console.server.env))
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            stored = services.messages.get(console.account, postfix_id)
            if stored is not None and stored.delivery_status == status:
                return stored.id
            time.sleep(0.1)
    finally:
        services.close()
    raise TimeoutError(f"{postfix_id} not {status} after {timeout}s")


def ingest(console: Console, raws: list[bytes]) -> list[str]:
    """Scan and store messages as `mailsec ingest` does (API delivery mode: stored, not held); their ids."""
    services = open_services(load_settings(env=console.server.env))
    try:
        return [process_message(services, raw, console.account).id for raw in raws]
    finally:
        services.close()


BLOCKING = {"serious", "critical"}


def violations(axe: Any, page: Any) -> list[str]:
    """axe-core's serious and critical findings on the page: rule, impact, and the first few elements, one line
    each (`axe` an `axe_playwright_python.sync_playwright.Axe`)."""
    results = axe.run(page)
    found = []
    for v in results.response["violations"]:
        if v.get("impact") in BLOCKING:
            targets = ", ".join(str(n["target"]) for n in v["nodes"][:3])
            found.append(f"{page.url}: {v['id']} ({v['impact']}): {v['help']} — {targets}")
    return found


def sign_in_with_token(page: Any, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/signin")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/search**")


def sign_in_with_password(page: Any, base_url: str, email: str, password: str) -> None:
    page.goto(f"{base_url}/signin")
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/search**")


def http_session(console: Console, token: str) -> httpx.Client:
    """An HTTP client signed in through the form, as a browser would be (for requests a browser cannot make)."""
    client = httpx.Client(base_url=console.url, timeout=30)
    client.get("/signin")
    nonce = client.cookies["mailsec_signin"]
    answer = client.post("/signin", data={"csrf": nonce, "token": token, "next": "/"})
    assert answer.status_code == 303 and "mailsec_console" in client.cookies, answer.text
    return client
