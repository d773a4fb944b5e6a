"""IMAP backend for any server (tested on Dovecot). One admin identity acts for every mailbox: a Dovecot-style master
login (`user*admin`) or SASL PLAIN with an authorization id. Junk and Trash are found by their special-use flags
(RFC 6154); soft-deleted mail goes to a folder the user is not subscribed to; a purge is an expunge. Moves use
IMAP MOVE (RFC 6851) when offered, else COPY + STORE \\Deleted + UID EXPUNGE. Sessions are pooled per mailbox."""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailsec.mailbox.base import MailboxAuthError, MailboxError, MailRef
from mailsec.model import Destination

JUNK, TRASH = b"\\Junk", b"\\Trash"
FALLBACK_NAMES = {JUNK: ("Junk", "Spam", "Junk E-mail"), TRASH: ("Trash", "Deleted Items", "Deleted Messages")}
HIDDEN_FOLDER = "MailSec Recoverable"
AUTH_MASTER, AUTH_AUTHZID = "master", "authzid"


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    tls: bool
    admin: str
    password: str
    auth: str = AUTH_MASTER  # or AUTH_AUTHZID
    separator: str = "*"  # Dovecot's auth_master_user_separator
    hidden_folder: str = HIDDEN_FOLDER
    timeout: float = 30.0
    ca_file: str | None = None  # trust this CA (a private server's own); the system's otherwise
    use_move: bool = True  # False: always COPY + EXPUNGE (servers whose MOVE is broken)

    @classmethod
    def from_url(cls, url: str, password: str, **options: Any) -> ImapConfig:
        """`imap://ADMIN@HOST:PORT` or `imaps://...` (default ports 143 and 993)."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError(f"{url!r} is not imap://[ADMIN@]HOST[:PORT] or imaps://...")
        try:
            port = parts.port or (993 if scheme == "imaps" else 143)
        except ValueError as exc:
            raise ValueError(f"{url!r} has a bad port") from exc
        admin = unquote(parts.username or options.pop("admin", "") or "")
        if not admin:
            raise ValueError("an IMAP integration needs an admin (master) user")
        return cls(parts.hostname, port, scheme == "imaps", admin, password, **options)


class _Session:
    """One logged-in connection acting as one recipient, with its folder map read once."""

    def __init__(self, client: IMAPClient, config: ImapConfig) -> None:
        self.client = client
        self.config = config
        self.selected: str | None = None
        self.can_move = config.use_move and b"MOVE" in client.capabilities()
        self.uidplus = b"UIDPLUS" in client.capabilities()
        self.folders = self._folders()

    def _folders(self) -> dict[Destination, str]:
        listed = self.client.list_folders()
        by_flag = {flag: name for flags, _, name in listed for flag in flags if flag in (JUNK, TRASH)}
        names = {name for _, _, name in listed}
        folders = {Destination.INBOX: "INBOX"}
        for dest, flag in ((Destination.JUNK, JUNK), (Destination.DELETED, TRASH)):
            found = by_flag.get(flag) or next((n for n in FALLBACK_NAMES[flag] if n in names), None)
            if found is None:
                found = FALLBACK_NAMES[flag][0]
                self.client.create_folder(found)
                self.client.subscribe_folder(found)
            folders[dest] = found
        if self.config.hidden_folder not in names:
            self.client.create_folder(self.config.hidden_folder)  # created, never subscribed: clients hide it
            with contextlib.suppress(IMAPClientError):
                self.client.unsubscribe_folder(self.config.hidden_folder)
        folders[Destination.RECOVERABLE_DELETIONS] = self.config.hidden_folder
        self.all_folders = [n for flags, _, n in listed if b"\\Noselect" not in flags and b"\\NonExistent" not in flags]
        if self.config.hidden_folder not in self.all_folders:
            self.all_folders.append(self.config.hidden_folder)
        return folders

    def select(self, folder: str, fresh: bool = False) -> None:
        """SELECT, unless the folder already is; `fresh`: then a NOOP, so the server syncs mail that arrived since
        (a pooled session can hold a folder selected for minutes)."""
        if self.selected != folder:
            self.client.select_folder(folder)
            self.selected = folder
        elif fresh:
            self.client.noop()

    def meaning(self, folder: str) -> Destination | None:
        return next((d for d, name in self.folders.items() if name == folder), None)


class ImapBackend:
    """Pooled sessions: at most one per mailbox, and `pool_size` kept open in all (least recently used closed
    first)."""

    def __init__(self, config: ImapConfig, pool_size: int = 16) -> None:
        self.config = config
        self.pool_size = pool_size
        self._pool: OrderedDict[str, _Session] = OrderedDict()
        self._mailbox_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    # -- sessions ---------------------------------------------------------------------------------------------

    def _connect(self, recipient: str) -> _Session:
        cfg = self.config
        context = None
        if cfg.tls:
            context = ssl.create_default_context(cafile=cfg.ca_file)
        try:
            client = IMAPClient(cfg.host, cfg.port, ssl=cfg.tls, ssl_context=context, timeout=cfg.timeout)
        except (OSError, ssl.SSLError) as exc:
            raise MailboxError(f"IMAP server {cfg.host}:{cfg.port} unreachable: {exc}") from exc
        try:
            if cfg.auth == AUTH_AUTHZID:
                client.plain_login(cfg.admin, cfg.password, authorization_identity=recipient)
            else:
                client.login(f"{recipient}{cfg.separator}{cfg.admin}", cfg.password)
        except (LoginError, IMAPClientError, imaplib.IMAP4.error) as exc:
            with contextlib.suppress(Exception):
                client.shutdown()
            raise MailboxAuthError(f"IMAP login as admin {cfg.admin!r} for {recipient} refused: {exc}") from exc
        return _Session(client, cfg)

    @contextlib.contextmanager
    def session(self, recipient: str) -> Iterator[_Session]:
        """The mailbox's session, one at a time: callers for the same mailbox wait for each other (servers cap the
        connections per user, e.g. Dovecot's mail_max_userip_connections = 10), other mailboxes go on at once."""
        key = recipient.lower()
        with self._lock:
            mailbox_lock = self._mailbox_locks.setdefault(key, threading.Lock())
        with mailbox_lock:
            with self._lock:
                found = self._pool.pop(key, None)
            session = found or self._connect(recipient)
            healthy = False
            try:
                yield session
                healthy = True
            except (OSError, imaplib.IMAP4.abort) as exc:
                raise MailboxError(f"IMAP session for {recipient} failed: {exc}") from exc
            except (IMAPClientError, imaplib.IMAP4.error) as exc:
                raise MailboxError(f"IMAP server refused a command for {recipient}: {exc}") from exc
            finally:
                if healthy:
                    with self._lock:
                        self._pool[key] = session
                        while len(self._pool) > self.pool_size:
                            _logout(self._pool.popitem(last=False)[1])
                else:
                    _logout(session)

    def close(self) -> None:
        with self._lock:
            while self._pool:
                _logout(self._pool.popitem()[1])

    # -- the protocol -----------------------------------------------------------------------------------------

    def locate(
        self, recipient: str, message_id: str, delivery_id: str | None = None, hint: Destination | None = None
    ) -> list[MailRef]:
        """Every copy, in every folder; with a `hint` (where mailsec last put it), that folder alone when the
        message is still there (one SEARCH instead of one per folder)."""
        criteria: list[Any] = []
        if message_id and delivery_id:
            criteria = ["OR", "HEADER", "Message-ID", message_id, "HEADER", "X-MailSec-Delivery-Id", delivery_id]
        elif message_id or delivery_id:
            criteria = ["HEADER", "Message-ID" if message_id else "X-MailSec-Delivery-Id", message_id or delivery_id]
        if not criteria:
            return []
        with self.session(recipient) as s:
            first = s.folders.get(hint) if hint is not None else None
            if first is not None:
                found = self._search(s, recipient, first, criteria)
                if found:
                    return found
            return [ref for folder in s.all_folders for ref in self._search(s, recipient, folder, criteria)]

    @staticmethod
    def _search(s: _Session, recipient: str, folder: str, criteria: list[Any]) -> list[MailRef]:
        s.select(folder, fresh=True)  # read-write: the move that usually follows needs no second SELECT
        return [MailRef(recipient, folder, str(uid), s.meaning(folder)) for uid in s.client.search(criteria)]

    def move(self, ref: MailRef, destination: Destination) -> MailRef | None:
        with self.session(ref.recipient) as s:
            uid = int(ref.key)
            if destination is Destination.RECOVERABLE_PURGES:
                s.select(ref.folder)
                s.client.add_flags([uid], [b"\\Deleted"], silent=True)
                self._expunge(s, uid)
                return None
            target = s.folders[destination]
            if target == ref.folder:
                return ref
            s.select(ref.folder)
            if s.can_move:
                s.client.move([uid], target)
            else:
                s.client.copy([uid], target)
                s.client.add_flags([uid], [b"\\Deleted"], silent=True)
                self._expunge(s, uid)
            return MailRef(ref.recipient, target, "", destination)

    def _expunge(self, s: _Session, uid: int) -> None:
        if s.uidplus:
            s.client.uid_expunge([uid])
        else:
            s.client.expunge()

    def append(self, recipient: str, raw: bytes, destination: Destination) -> MailRef:
        with self.session(recipient) as s:
            folder = s.folders[destination if destination is not Destination.RECOVERABLE_PURGES else Destination.INBOX]
            s.client.append(folder, raw)
            return MailRef(recipient, folder, "", s.meaning(folder))

    def check(self, recipient: str) -> list[str]:
        """Log in for `recipient` and list the folders mailsec would use (`mailsec mailbox test`)."""
        with self.session(recipient) as s:
            return [f"{d.value}={name}" for d, name in s.folders.items()]


def _logout(session: _Session) -> None:
    try:
        session.client.logout()
    except Exception:  # closing a broken connection: nothing more to learn from it
        with contextlib.suppress(Exception):
            session.client.shutdown()
