"""IMAP backend for any server (tested on Dovecot). One admin identity acts for every mailbox: a Dovecot-style master
login (`user*admin`) or SASL PLAIN with an authorization id. Junk and Trash are found by their special-use flags
(RFC 6154); soft-deleted mail goes to a folder the user is not subscribed to; a purge is an expunge. Moves use
IMAP MOVE (RFC 6851) when offered, else COPY + STORE \\Deleted + UID EXPUNGE.

Sessions are pooled per mailbox and kept across requests (the login, TLS included, is paid once per mailbox). Many
messages of one mailbox are found with one SEARCH per folder (an OR of their headers) and one FETCH of those headers
to tell them apart, and moved with one UID MOVE per folder. imapclient waits for each reply, so commands are not
pipelined: the batching is what saves the round trips."""

from __future__ import annotations

import contextlib
import imaplib
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import unquote, urlsplit

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailsec.mailbox.base import MailboxAuthError, MailboxError, MailRef, Wanted
from mailsec.model import Destination

JUNK, TRASH = b"\\Junk", b"\\Trash"
FALLBACK_NAMES = {JUNK: ("Junk", "Spam", "Junk E-mail"), TRASH: ("Trash", "Deleted Items", "Deleted Messages")}
HIDDEN_FOLDER = "MailSec Recoverable"
AUTH_MASTER, AUTH_AUTHZID = "master", "authzid"
SEARCH_CHUNK = 100  # messages per SEARCH (two header keys each, in a balanced OR tree)
IDLE_CHECK_S = 60.0  # a pooled session idle this long is checked with a NOOP before use
_ID_HEADERS = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-MAILSEC-DELIVERY-ID)]"


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
    pool_size: int = 128  # sessions kept open (one per mailbox): a bulk move touches many mailboxes

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
        self.used_at = time.monotonic()
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

    def __init__(self, config: ImapConfig, pool_size: int | None = None) -> None:
        self.config = config
        self.pool_size = pool_size or config.pool_size
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
            if found is not None and not _alive(found):
                _logout(found)
                found = None
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
                    session.used_at = time.monotonic()
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
        return self.locate_many(recipient, [Wanted(message_id, delivery_id, hint)])[0]

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
        self._expunge_set(s, [uid])

    @staticmethod
    def _expunge_set(s: _Session, uids: list[int]) -> None:
        if s.uidplus:
            s.client.uid_expunge(uids)
        else:
            s.client.expunge()

    def locate_many(self, recipient: str, wanted: Sequence[Wanted]) -> list[list[MailRef]]:
        """Each message in its hinted folder first (one SEARCH per folder for all of them), the ones not found
        there in every folder (again one SEARCH per folder)."""
        found: list[list[MailRef]] = [[] for _ in wanted]
        keyed = [i for i, w in enumerate(wanted) if _keys(w)]
        if not keyed:
            return found
        with self.session(recipient) as s:
            by_hint: dict[str, list[int]] = {}
            for i in keyed:
                hint = wanted[i].hint
                folder = s.folders.get(hint) if hint is not None else None
                if folder is not None:
                    by_hint.setdefault(folder, []).append(i)
            for folder, indexes in by_hint.items():
                self._search_many(s, recipient, folder, wanted, indexes, found)
            rest = [i for i in keyed if not found[i]]
            for folder in s.all_folders if rest else ():
                self._search_many(s, recipient, folder, wanted, rest, found)
        return found

    @staticmethod
    def _search_many(
        s: _Session, recipient: str, folder: str, wanted: Sequence[Wanted], indexes: list[int],
        found: list[list[MailRef]],
    ) -> None:  # fmt: skip
        s.select(folder, fresh=True)
        meaning = s.meaning(folder)
        for start in range(0, len(indexes), SEARCH_CHUNK):
            chunk = indexes[start : start + SEARCH_CHUNK]
            uids = s.client.search(_any_of([key for i in chunk for key in _keys(wanted[i])]))
            if not uids:
                continue
            if len(chunk) == 1:  # the SEARCH alone says whose they are
                found[chunk[0]].extend(MailRef(recipient, folder, str(uid), meaning) for uid in uids)
                continue
            for uid, data in s.client.fetch(uids, [_ID_HEADERS]).items():
                block = next((v for k, v in data.items() if k.startswith(b"BODY[") and isinstance(v, bytes)), b"")
                headers = _id_headers(block)
                for i in chunk:
                    if _matches(wanted[i], headers):
                        found[i].append(MailRef(recipient, folder, str(uid), meaning))

    def move_many(self, refs: Sequence[MailRef], destination: Destination) -> None:
        """One UID MOVE (or COPY + STORE + UID EXPUNGE) per mailbox and folder for all its copies."""
        groups: dict[tuple[str, str], set[int]] = {}
        for ref in refs:
            groups.setdefault((ref.recipient, ref.folder), set()).add(int(ref.key))
        for recipient in dict.fromkeys(r for r, _ in groups):
            with self.session(recipient) as s:
                for (owner, folder), uid_set in groups.items():
                    if owner != recipient:
                        continue
                    uids = sorted(uid_set)
                    if destination is Destination.RECOVERABLE_PURGES:
                        s.select(folder)
                        s.client.add_flags(uids, [b"\\Deleted"], silent=True)
                        self._expunge_set(s, uids)
                        continue
                    target = s.folders[destination]
                    if target == folder:
                        continue
                    s.select(folder)
                    if s.can_move:
                        s.client.move(uids, target)
                    else:
                        s.client.copy(uids, target)
                        s.client.add_flags(uids, [b"\\Deleted"], silent=True)
                        self._expunge_set(s, uids)

    def append(self, recipient: str, raw: bytes, destination: Destination) -> MailRef:
        with self.session(recipient) as s:
            folder = s.folders[destination if destination is not Destination.RECOVERABLE_PURGES else Destination.INBOX]
            s.client.append(folder, raw)
            return MailRef(recipient, folder, "", s.meaning(folder))

    def check(self, recipient: str) -> list[str]:
        """Log in for `recipient` and list the folders mailsec would use (`mailsec mailbox test`)."""
        with self.session(recipient) as s:
            return [f"{d.value}={name}" for d, name in s.folders.items()]


def _searchable(value: str | None) -> bool:
    """A header value SEARCH can carry: imapclient sends criteria as US-ASCII, and a control character would end
    the command line."""
    return value is not None and value != "" and value.isascii() and value.isprintable()


def _keys(w: Wanted) -> list[list[str]]:
    keys = [["HEADER", "Message-ID", w.message_id]] if _searchable(w.message_id) else []
    if w.delivery_id and _searchable(w.delivery_id):
        keys.append(["HEADER", "X-MailSec-Delivery-Id", w.delivery_id])
    return keys


def _any_of(keys: list[list[str]]) -> list[Any]:
    """A balanced OR tree (IMAP's OR takes two keys): depth log2(n), not n."""
    if len(keys) == 1:
        return keys[0]
    mid = len(keys) // 2
    return ["OR", _any_of(keys[:mid]), _any_of(keys[mid:])]


def _id_headers(block: bytes) -> dict[str, list[str]]:
    parsed = BytesHeaderParser().parsebytes(block)
    return {
        name: [" ".join(str(v).split()).lower() for v in parsed.get_all(name) or ()]
        for name in ("message-id", "x-mailsec-delivery-id")
    }


def _matches(w: Wanted, headers: dict[str, list[str]]) -> bool:
    """What SEARCH HEADER matched: a case-insensitive substring of the header's value."""
    mid, did = w.message_id.lower(), (w.delivery_id or "").lower()
    by_message_id = mid != "" and any(mid in v for v in headers["message-id"])
    return by_message_id or (did != "" and any(did in v for v in headers["x-mailsec-delivery-id"]))


def _alive(session: _Session) -> bool:
    """A session idle for a while may have been closed by the server (autologout) or a middlebox: a NOOP tells."""
    if time.monotonic() - session.used_at < IDLE_CHECK_S:
        return True
    try:
        session.client.noop()
    except Exception:  # any failure means the connection is no use: a new one is made
        return False
    return True


def _logout(session: _Session) -> None:
    try:
        session.client.logout()
    except Exception:  # closing a broken connection: nothing more to learn from it
        with contextlib.suppress(Exception):
            session.client.shutdown()
