"""Mail delivered by the real gateway path (receive, queue worker, LMTP into Dovecot), and an IMAP integration of
the account with its admin secret encrypted, for the remediation tests."""

from __future__ import annotations

import uuid

from gw_support import MASTER_PASSWORD, MASTER_USER, Dovecot

from mailsec.gateway.receive import Session, receive
from mailsec.gateway.worker import QueueWorker
from mailsec.mailbox import secrets
from mailsec.services import Services
from mailsec.store.integrations import IntegrationRepo
from mailsec.store.messages import StoredMessage
from mailsec.store.queue import QueueRepo
from support import make_eml


def corp_account(services: Services, dv: Dovecot, imap_port: int | None = None, password: str = MASTER_PASSWORD) -> str:
    account = services.accounts.create_account(f"Corp {uuid.uuid4().hex[:6]}").id
    services.domains.add(account, "corp.example", mode="DIRECT", next_hop=dv.lmtp_url, verified=True)
    add_imap(services, account, imap_port or dv.imap_port, password)
    return account


def add_imap(services: Services, account: str, port: int, password: str = MASTER_PASSWORD) -> str:
    secret = secrets.encrypt(services.settings.data_dir, password)
    url = f"imap://{MASTER_USER}@127.0.0.1:{port}"
    return IntegrationRepo(services.engine).add(account, "corp.example", "imap", url, {"timeout": 30}, secret)


def deliver_many(
    services: Services,
    account: str,
    recipients: list[str],
    count: int,
    subject: str = "remediation",
    expect: str = "delivered",
    sender: str = "alice@sender.example",
) -> list[StoredMessage]:
    """`count` messages through receive and the queue worker; each delivered to every recipient over LMTP (or, with
    `expect="quarantined"`, held by the account's policy)."""
    repo = QueueRepo(services.engine)
    accepted = []
    for n in range(count):
        raw = make_eml(f"{subject} {uuid.uuid4().hex[:8]} {n}", sender=sender, to=", ".join(recipients))
        accepted += receive(services, raw, sender, recipients, Session(client_ip="127.0.0.1"))
    worker = QueueWorker(services, threads=1)
    while claimed := repo.claim("test:move", 64, 10**9):
        worker.run_batch(claimed)
    out = []
    for a in accepted:
        message = services.messages.get(account, a.postfix_id)
        assert message is not None and message.delivery_status == expect, message
        out.append(message)
    return out


def folders_holding(dv: Dovecot, user: str, message_id: str) -> list[str]:
    """The folders holding the message, as the user's own login sees them."""
    with dv.imap(user) as c:
        out = []
        for _, _, name in c.list_folders():
            c.select_folder(name, readonly=True)
            out += [name] * len(c.search(["HEADER", "Message-ID", message_id]))
        return sorted(out)
