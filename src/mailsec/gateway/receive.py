"""The receive stage: route recipients to the accounts that own their domains, write the raw bytes to the blob
store and one queue row per account, durably, and only then report success (the caller answers 250)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from mailsec import ids
from mailsec.services import Services
from mailsec.store.domains import Domain
from mailsec.store.queue import NewItem, QueueRepo, now_us


@dataclass
class Session:
    """What the SMTP session knew when DATA ended; `trace` holds (message, microseconds) pairs in order."""

    client_ip: str | None = None
    helo: str | None = None
    tls: bool = False
    trace: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class Accepted:
    postfix_id: str
    account_id: str
    recipients: tuple[str, ...]


def route(services: Services, recipients: Sequence[str]) -> dict[str, tuple[Domain, list[str]]]:
    """account id → (the first owning domain, its recipients). Recipients of no protected domain are left out."""
    out: dict[str, tuple[Domain, list[str]]] = {}
    for rcpt in recipients:
        owner = services.domains.owner_of(rcpt)
        if owner is None:
            continue
        out.setdefault(owner.account_id, (owner, []))[1].append(rcpt)
    return out


def receive(
    services: Services, raw: bytes, mail_from: str, recipients: Sequence[str], session: Session
) -> list[Accepted]:
    """Durably accept one message: blob fsync'd, then queue rows committed with a full sync. Raises on failure."""
    routes = route(services, recipients)
    if not routes:
        return []
    digest = services.blobs.put(raw, fsync=True)
    received = now_us()
    items: list[NewItem] = []
    accepted: list[Accepted] = []
    for account_id, (domain, rcpts) in routes.items():
        postfix_id = ids.new_postfix_id()
        trace = [
            *session.trace,
            (f"size {len(raw)} bytes; queued as {postfix_id} for {len(rcpts)} recipient(s)", received),
        ]
        envelope = {
            "mail_from": mail_from,
            "rcpt_to": rcpts,
            "client_ip": session.client_ip,
            "helo": session.helo,
            "tls": session.tls,
            "mode": domain.mode,
            "received_us": received,
            "size": len(raw),
            "trace": trace,
        }
        items.append(NewItem(postfix_id, account_id, digest, envelope))
        accepted.append(Accepted(postfix_id, account_id, tuple(rcpts)))
    QueueRepo(services.engine).enqueue(items)
    return accepted
