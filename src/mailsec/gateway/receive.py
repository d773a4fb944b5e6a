"""The receive stage: route recipients to the accounts that own their domains, write one queue row per account
carrying the raw bytes, durably, and only then report success (the caller answers 250).

The bytes travel in the queue row rather than in a blob file fsync'd (with its directory) before 250: one durable
write instead of three. Concurrent DATA completions share that commit (`GroupCommit`): the rows of every message
that is ready go into one transaction with one fsync. Nobody is answered before their own bytes and rows are on
disk. The queue worker writes the blob (fsync'd) when it stores the message and only then drops the bytes from the
row."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from email.utils import format_datetime

from mailsec import ids
from mailsec.gateway.fold import clean
from mailsec.model import DeliveryMode
from mailsec.report_address import is_report_address
from mailsec.services import Services
from mailsec.store.domains import Domain
from mailsec.store.queue import NewItem, QueueRepo, now_us
from mailsec.store.records import from_us


@dataclass
class Session:
    """What the SMTP session knew when DATA ended; `trace` holds (message, microseconds) pairs in order."""

    client_ip: str | None = None
    helo: str | None = None
    tls: bool = False
    trace: list[tuple[str, int]] = field(default_factory=list)
    protocol: str = "ESMTP"  # RFC 5321 / 3848 "with": SMTP, ESMTP, ESMTPS, LMTP...
    tls_version: str = ""
    tls_cipher: str = ""
    tls_bits: int = 0


def received_header(session: Session, postfix_id: str, recipients: Sequence[str], hostname: str, when_us: int) -> str:
    """The value of the `Received:` field mailsec adds (RFC 5321 4.4), in Postfix's form: who connected (EHLO name and
    address literal), the TLS in use, which host took it with which protocol under which queue id, the recipient
    when there is only one (more would disclose Bcc recipients to each other), and when."""
    helo = clean(session.helo or "unknown").replace("(", "").replace(")", "") or "unknown"
    ip = session.client_ip or "unknown"
    literal = f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"
    parts = [f"from {helo} ({literal})"]
    if session.tls:
        cipher = f" with cipher {session.tls_cipher}" if session.tls_cipher else ""
        bits = f" ({session.tls_bits}/{session.tls_bits} bits)" if session.tls_bits else ""
        parts.append(f"(using {session.tls_version or 'TLS'}{cipher}{bits})")
    parts.append(f"by {clean(hostname) or 'mailsec.local'} (mailsec) with {session.protocol} id {postfix_id}")
    if len(recipients) == 1 and recipients[0].isascii():
        parts.append(f"for <{clean(recipients[0])}>")
    return " ".join(parts) + "; " + format_datetime(from_us(when_us))


@dataclass(frozen=True)
class Accepted:
    postfix_id: str
    account_id: str
    recipients: tuple[str, ...]


log = logging.getLogger("mailsec.gateway.receive")


def route(
    services: Services, recipients: Sequence[str], owners: Mapping[str, Domain] | None = None
) -> dict[str, tuple[Domain, list[str]]]:
    """account id → (the first owning domain, its recipients). Recipients of no protected domain are left out.
    `owners` are the lookups RCPT already made in this session (saves a query per recipient)."""
    out: dict[str, tuple[Domain, list[str]]] = {}
    for rcpt in recipients:
        owner = owners.get(rcpt) if owners else None
        if owner is None:
            owner = services.domains.owner_of(rcpt)
        if owner is None:
            continue
        out.setdefault(owner.account_id, (owner, []))[1].append(rcpt)
    return out


def receive(
    services: Services,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[str],
    session: Session,
    owners: Mapping[str, Domain] | None = None,
    committer: GroupCommit | None = None,
) -> list[Accepted]:
    """Durably accept one message: queue rows with the raw bytes committed with a full sync. Raises on failure."""
    items, accepted = prepare(services, raw, mail_from, recipients, session, owners)
    if not items:
        return []
    if committer is not None:
        committer.commit(items)
    else:
        QueueRepo(services.engine).enqueue(items)
    return accepted


def prepare(
    services: Services,
    raw: bytes,
    mail_from: str,
    recipients: Sequence[str],
    session: Session,
    owners: Mapping[str, Domain] | None = None,
) -> tuple[list[NewItem], list[Accepted]]:
    """The queue rows for one message, one per owning account (no I/O when `owners` covers every recipient)."""
    routes = route(services, recipients, owners)
    if not routes:
        return [], []
    digest = hashlib.sha256(raw).hexdigest()
    received = now_us()
    items: list[NewItem] = []
    accepted: list[Accepted] = []
    groups: list[tuple[str, list[str], str]] = []
    for account_id, (domain, rcpts) in routes.items():
        # mail to a domain's report address is a user's report: stored as a submission, never delivered
        reports = [r for r in rcpts if is_report_address(_owner(services, r, owners), r)]
        rest = [r for r in rcpts if r not in reports]
        if rest:
            groups.append((account_id, rest, domain.mode))
        if reports:
            groups.append((account_id, reports, DeliveryMode.REVIEW_SUBMISSION.value))
    for account_id, rcpts, mode in groups:
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
            "mode": mode,
            "received_us": received,
            "size": len(raw),
            "trace": trace,
            "received_header": received_header(session, postfix_id, rcpts, services.settings.smtp_hostname, received),
        }
        items.append(NewItem(postfix_id, account_id, digest, envelope, raw))
        accepted.append(Accepted(postfix_id, account_id, tuple(rcpts)))
    return items, accepted


def _owner(services: Services, address: str, owners: Mapping[str, Domain] | None) -> Domain | None:
    found = owners.get(address) if owners else None
    return found if found is not None else services.domains.owner_of(address)


class GroupCommit:
    """One committer thread: callers hand over their rows and block; whatever arrived while the previous
    transaction was being synced is committed together. A failed batch is retried row set by row set, so one bad
    message cannot fail its neighbours."""

    def __init__(self, repo: QueueRepo, max_batch: int = 64) -> None:
        self.repo = repo
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[tuple[list[NewItem], Future[None]]] = []
        self._stopped = False
        self.commits = 0
        self.rows = 0
        self._thread = threading.Thread(target=self._run, name="mailsec-commit", daemon=True)
        self._thread.start()

    def commit(self, items: list[NewItem]) -> None:
        """Returns once `items` are committed and synced; raises what the commit raised."""
        self.submit(items).result()

    def submit(self, items: list[NewItem]) -> Future[None]:
        """A future that completes once `items` are committed and synced (for callers that must not block)."""
        fut: Future[None] = Future()
        with self._cond:
            if self._stopped:
                raise RuntimeError("receive stopped")
            self._pending.append((items, fut))
            self._cond.notify()
        return fut

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join(10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopped:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            try:
                self.repo.enqueue([it for items, _ in batch for it in items])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0][1].set_exception(exc)
                    continue
                log.warning("group commit of %d messages failed; committing them one by one", len(batch))
                for items, fut in batch:
                    try:
                        self.repo.enqueue(items)
                    except Exception as exc:
                        fut.set_exception(exc)
                    else:
                        fut.set_result(None)
                continue
            self.commits += 1
            self.rows += len(batch)
            for _, fut in batch:
                fut.set_result(None)
