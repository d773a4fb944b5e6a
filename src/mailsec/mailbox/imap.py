"""IMAP backend for any server (tested on Dovecot). One admin identity acts for every mailbox: a Dovecot-style master
login (`user*admin`) or SASL PLAIN with an authorization id. Junk and Trash are found by their special-use flags
(RFC 6154); soft-deleted mail goes to a folder the user is not subscribed to; a purge is an expunge. Moves use
IMAP MOVE (RFC 6851) when offered, else COPY + STORE \\Deleted + UID EXPUNGE.

Sessions are pooled per mailbox and kept across requests (the login, TLS included, is paid once per mailbox). Many
messages of one mailbox are found with one SEARCH per folder (an OR of their headers) and one FETCH of those headers
to tell them apart, and moved with one UID MOVE per folder. Those commands are pipelined (`imap_pipeline`): a
lookup is one round trip (SELECT, then per folder SEARCH RETURN (SAVE) and FETCH $ of RFC 5182; two round trips on
a server without SEARCHRES), a move of several folders' copies one more (two with COPY + EXPUNGE, whose expunge
waits for the copy to succeed). imapclient, which waits for each reply, keeps the login, LIST, CREATE and APPEND."""

from __future__ import annotations

import contextlib
import imaplib
import re
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
from mailsec.mailbox.imap_pipeline import CommandFailed, Pipeline, PipelineError, Reply, check, mailbox, quoted, uid_set
from mailsec.model import Destination

JUNK, TRASH = b"\\Junk", b"\\Trash"
FALLBACK_NAMES = {JUNK: ("Junk", "Spam", "Junk E-mail"), TRASH: ("Trash", "Deleted Items", "Deleted Messages")}
HIDDEN_FOLDER = "MailSec Recoverable"
AUTH_MASTER, AUTH_AUTHZID = "master", "authzid"
SEARCH_CHUNK = 100  # messages per SEARCH (two header keys each, in a balanced OR tree)
IDLE_CHECK_S = 60.0  # a pooled session idle this long is checked with a NOOP before use
_ID_HEADERS = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-MAILSEC-DELIVERY-ID)]"
_FETCH = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)


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
        self.searchres = b"SEARCHRES" in client.capabilities()
        self.pipe = Pipeline(client.socket())
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

    def enter(self, folder: str, fresh: bool = False) -> list[bytes]:
        """The commands that make `folder` the selected one: a SELECT, unless it already is; `fresh`: then a NOOP,
        so the server syncs mail that arrived since (a pooled session can hold a folder selected for minutes). A
        batch that fails drops the session, so the folder is counted as selected when the command is queued."""
        if self.selected != folder:
            self.selected = folder
            return [b"SELECT " + mailbox(folder)]
        return [b"NOOP"] if fresh else []

    def run(self, commands: Sequence[bytes]) -> list[Reply]:
        """The commands pipelined; `CommandFailed` if one is refused."""
        replies = self.pipe.run(commands)
        check(replies)
        return replies

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
            except (OSError, imaplib.IMAP4.abort, PipelineError) as exc:
                raise MailboxError(f"IMAP session for {recipient} failed: {exc}") from exc
            except (IMAPClientError, imaplib.IMAP4.error, CommandFailed) as exc:
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
            self._move_groups(s, [(ref.folder, [int(ref.key)])], destination)
        if destination is Destination.RECOVERABLE_PURGES:
            return None
        target = s.folders[destination]
        return ref if target == ref.folder else MailRef(ref.recipient, target, "", destination)

    def locate_many(self, recipient: str, wanted: Sequence[Wanted]) -> list[list[MailRef]]:
        """Each message in its hinted folder first (one SEARCH per folder for all of them), the ones not found
        there in every folder (again one SEARCH per folder); each of the two steps one pipelined batch."""
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
            if by_hint:
                self._search(s, recipient, list(by_hint.items()), wanted, found)
            rest = [i for i in keyed if not found[i]]
            if rest:
                self._search(s, recipient, [(folder, rest) for folder in s.all_folders], wanted, found)
        return found

    @staticmethod
    def _search(
        s: _Session, recipient: str, plan: list[tuple[str, list[int]]], wanted: Sequence[Wanted],
        found: list[list[MailRef]],
    ) -> None:  # fmt: skip
        """Every folder of `plan` searched for its messages; the copies found told apart by their headers (a folder
        searched for one message needs no telling apart)."""
        commands: list[bytes] = []
        spans: list[tuple[int, int]] = []
        for folder, indexes in plan:
            commands += s.enter(folder, fresh=True)
            first = len(commands)
            for start in range(0, len(indexes), SEARCH_CHUNK):
                criteria = _any_of([key for i in indexes[start : start + SEARCH_CHUNK] for key in _keys(wanted[i])])
                if s.searchres:  # RFC 5182: the FETCH takes the SEARCH's result without waiting for it
                    commands += [b"UID SEARCH RETURN (SAVE) " + criteria, b"UID FETCH $ (UID " + _ID_HEADERS + b")"]
                else:
                    commands.append(b"UID SEARCH " + criteria)
            spans.append((first, len(commands)))
        replies = s.run(commands)
        fetched: list[dict[int, bytes]] = []
        if s.searchres:
            fetched = [_fetched(replies[a:b]) for a, b in spans]
        else:
            hits = [_searched(replies[a:b]) for a, b in spans]
            fetched = [dict.fromkeys(uids, b"") for uids in hits]
            telling = [k for k, (_, indexes) in enumerate(plan) if hits[k] and len(indexes) > 1]
            commands, spans = [], []
            for k in telling:
                commands += s.enter(plan[k][0])
                spans.append((len(commands), len(commands) + 1))
                commands.append(b"UID FETCH " + uid_set(sorted(hits[k])) + b" (UID " + _ID_HEADERS + b")")
            replies = s.run(commands) if commands else []
            for k, (a, b) in zip(telling, spans, strict=True):
                fetched[k] = _fetched(replies[a:b])
        for (folder, indexes), copies in zip(plan, fetched, strict=True):
            meaning = s.meaning(folder)
            for uid, block in sorted(copies.items()):
                headers = _id_headers(block) if len(indexes) > 1 else {}
                for i in indexes:
                    if len(indexes) == 1 or _matches(wanted[i], headers):
                        found[i].append(MailRef(recipient, folder, str(uid), meaning))

    def move_many(self, refs: Sequence[MailRef], destination: Destination) -> None:
        """One UID MOVE (or COPY + STORE + UID EXPUNGE) per mailbox and folder for all its copies, the folders of a
        mailbox in one pipelined batch."""
        groups: dict[str, dict[str, set[int]]] = {}
        for ref in refs:
            groups.setdefault(ref.recipient, {}).setdefault(ref.folder, set()).add(int(ref.key))
        for recipient, folders in groups.items():
            with self.session(recipient) as s:
                self._move_groups(s, [(f, sorted(uids)) for f, uids in folders.items()], destination)

    @staticmethod
    def _move_groups(s: _Session, groups: list[tuple[str, list[int]]], destination: Destination) -> None:
        """The copies of each folder moved to the destination (purged for RecoverableItemsPurges), all folders in
        one pipelined batch; with COPY + EXPUNGE a second batch flags and expunges the originals whose COPY
        succeeded, so a refused COPY never loses one."""
        if destination is Destination.RECOVERABLE_PURGES:
            s.run([c for folder, uids in groups for c in [*s.enter(folder), *_delete(s, uids)]])
            return
        target = s.folders[destination]
        groups = [(folder, uids) for folder, uids in groups if folder != target]
        if not groups:
            return
        verb = b"MOVE" if s.can_move else b"COPY"
        commands: list[bytes] = []
        at: list[int] = []
        for folder, uids in groups:
            commands += s.enter(folder)
            at.append(len(commands))
            commands.append(_uid(verb, uids, mailbox(target)))
        replies = s.pipe.run(commands)
        if verb == b"COPY":
            copied = [(folder, uids) for (folder, uids), i in zip(groups, at, strict=True) if replies[i].ok]
            if copied:
                s.run([c for folder, uids in copied for c in [*s.enter(folder), *_delete(s, uids)]])
        check(replies)

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


def _keys(w: Wanted) -> list[bytes]:
    keys = [b"HEADER Message-ID " + quoted(w.message_id)] if _searchable(w.message_id) else []
    if w.delivery_id and _searchable(w.delivery_id):
        keys.append(b"HEADER X-MailSec-Delivery-Id " + quoted(w.delivery_id))
    return keys


def _any_of(keys: list[bytes]) -> bytes:
    """A balanced OR tree (IMAP's OR takes two keys): depth log2(n), not n."""
    if len(keys) == 1:
        return keys[0]
    mid = len(keys) // 2
    return b"OR (" + _any_of(keys[:mid]) + b") (" + _any_of(keys[mid:]) + b")"


def _uid(verb: bytes, uids: Sequence[int], *args: bytes) -> bytes:
    return b" ".join([b"UID", verb, uid_set(uids), *args])


def _delete(s: _Session, uids: Sequence[int]) -> list[bytes]:
    """Flag and expunge: with UIDPLUS only these; without it EXPUNGE takes every flagged message of the folder."""
    return [_uid(b"STORE", uids, b"+FLAGS.SILENT (\\Deleted)"), _uid(b"EXPUNGE", uids) if s.uidplus else b"EXPUNGE"]


def _fetched(replies: Sequence[Reply]) -> dict[int, bytes]:
    """The UID and header block of each FETCH response that carries our header fields (unsolicited flag updates
    have none)."""
    out: dict[int, bytes] = {}
    for reply in replies:
        for u in reply.untagged:
            uid = _UID.search(u.text)
            if _FETCH.match(u.text) and uid and b"BODY[HEADER.FIELDS" in u.text.upper():
                out[int(uid.group(1))] = u.literals[0] if u.literals else b""
    return out


def _searched(replies: Sequence[Reply]) -> set[int]:
    return {
        int(n)
        for reply in replies
        for u in reply.untagged
        if u.text.upper().startswith(b"SEARCH")
        for n in u.text[6:].split()
        if n.isdigit()
    }


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
