"""Mailbox integrations: which backend reaches the mailboxes of a protected domain, per account. The secret is
stored encrypted (mailbox/secrets.py); this repository only moves its ciphertext."""

from __future__ import annotations

import json
import secrets as random
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from mailsec.store.schema import mailbox_integrations

KINDS = ("imap", "graph", "gmail")


@dataclass(frozen=True)
class Integration:
    id: str
    account_id: str
    domain: str
    kind: str
    url: str
    options: dict[str, Any]
    secret: bytes
    created_us: int


def _integration(row: Any) -> Integration:
    m = row._mapping
    return Integration(
        m["id"], m["account_id"], m["domain"], m["kind"], m["url"], json.loads(m["options_json"] or "{}"),
        bytes(m["secret"]), m["created_us"],
    )  # fmt: skip


class IntegrationRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, account_id: str, domain: str, kind: str, url: str, options: dict[str, Any], secret: bytes) -> str:
        if kind not in KINDS:
            raise ValueError(f"unknown mailbox kind {kind!r} (one of {', '.join(KINDS)})")
        new_id = random.token_hex(16)
        with self.engine.begin() as conn:
            conn.execute(
                insert(mailbox_integrations).values(
                    id=new_id, account_id=account_id, domain=domain.strip().lower().rstrip("."), kind=kind,
                    url=url, options_json=json.dumps(options, sort_keys=True), secret=secret,
                    created_us=int(time.time() * 1_000_000),
                )
            )  # fmt: skip
        return new_id

    def list_for(self, account_id: str) -> list[Integration]:
        q = select(mailbox_integrations).where(mailbox_integrations.c.account_id == account_id)
        with self.engine.connect() as conn:
            return [_integration(r) for r in conn.execute(q.order_by(mailbox_integrations.c.created_us)).all()]

    def get(self, account_id: str, integration_id: str) -> Integration | None:
        q = select(mailbox_integrations).where(
            mailbox_integrations.c.account_id == account_id, mailbox_integrations.c.id == integration_id
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _integration(row) if row is not None else None

    def remove(self, account_id: str, integration_id: str) -> bool:
        with self.engine.begin() as conn:
            done = conn.execute(
                delete(mailbox_integrations).where(
                    mailbox_integrations.c.account_id == account_id, mailbox_integrations.c.id == integration_id
                )
            )
        return bool(done.rowcount)

    def for_address(self, account_id: str, address: str) -> Integration | None:
        """The integration of the address's domain, or of its closest parent domain."""
        domain = address.rpartition("@")[2].strip().lower().rstrip(".")
        by_domain = {i.domain: i for i in self.list_for(account_id)}
        labels = domain.split(".")
        for n in range(len(labels) - 1):
            found = by_domain.get(".".join(labels[n:]))
            if found is not None:
                return found
        return None
