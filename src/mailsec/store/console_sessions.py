"""Web console sessions. The browser holds a random 256-bit id; the table holds its SHA-256, the credential the
session stands for (an API token's id or a user's e-mail) and when it was last used. The grant is derived anew on
every request from that credential, exactly as the API does for a header, so a revoked token, a removed user or a
withdrawn account access takes effect at once. A session unused for `idle_seconds` is gone."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select, update

from mailsec.store.accounts import Grant
from mailsec.store.schema import api_tokens, console_sessions, user_accounts, users

TOKEN, USER = "token", "user"


@dataclass(frozen=True)
class ConsoleSession:
    id_hash: str
    kind: str
    subject: str
    created_us: int
    last_seen_us: int

    def csrf_token(self) -> str:
        """The form token of this session: derived from the session's (secret) hashed id, so it needs no storage
        and a page from another session never carries a valid one."""
        return hmac.new(self.id_hash.encode(), b"console-csrf", hashlib.sha256).hexdigest()

    def csrf_ok(self, presented: str) -> bool:
        return hmac.compare_digest(self.csrf_token().encode(), presented.encode("utf-8", "surrogateescape"))


def _now_us() -> int:
    return time.time_ns() // 1000


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8", "surrogateescape")).hexdigest()


class ConsoleSessionRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, kind: str, subject: str) -> str:
        """A new session for this credential; returns the clear id (for the cookie), shown nowhere else."""
        if kind not in (TOKEN, USER):
            raise ValueError(f"unknown session kind {kind!r}")
        session_id = secrets.token_urlsafe(32)
        now = _now_us()
        with self.engine.begin() as conn:
            conn.execute(
                insert(console_sessions).values(
                    id_hash=_hash(session_id), kind=kind, subject=subject, created_us=now, last_seen_us=now
                )
            )
        return session_id

    def touch(self, session_id: str, idle_seconds: float, max_age_seconds: float) -> ConsoleSession | None:
        """The live session with this id, its idle clock restarted (at most once per tenth of the idle time, and
        per minute); None (and the row deleted) when there is none,
        it sat idle too long or it outlived its maximum age."""
        if not session_id or len(session_id) > 128:
            return None
        id_hash = _hash(session_id)
        now = _now_us()
        with self.engine.begin() as conn:
            row = conn.execute(select(console_sessions).where(console_sessions.c.id_hash == id_hash)).first()
            if row is None:
                return None
            idle = now - int(row.last_seen_us) > idle_seconds * 1_000_000
            old = now - int(row.created_us) > max_age_seconds * 1_000_000
            if idle or old:
                conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == id_hash))
                return None
            seen = int(row.last_seen_us)
            if now - seen >= min(60.0, idle_seconds / 10) * 1_000_000:  # not a write per page: a session may
                seen = now  # expire up to a tenth of its idle time early, never late
                conn.execute(
                    update(console_sessions).where(console_sessions.c.id_hash == id_hash).values(last_seen_us=now)
                )
        return ConsoleSession(id_hash, row.kind, row.subject, int(row.created_us), seen)

    def delete(self, session_id: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(console_sessions).where(console_sessions.c.id_hash == _hash(session_id)))
        return bool(result.rowcount)

    def purge_idle(self, idle_seconds: float) -> int:
        """Forget sessions idle longer than `idle_seconds` (they would be refused anyway)."""
        cutoff = _now_us() - int(idle_seconds * 1_000_000)
        with self.engine.begin() as conn:
            result = conn.execute(delete(console_sessions).where(console_sessions.c.last_seen_us < cutoff))
        return int(result.rowcount or 0)

    def grant(self, session: ConsoleSession) -> Grant | None:
        """What the session's credential may do now; None when the token was revoked or the user removed."""
        with self.engine.connect() as conn:
            if session.kind == TOKEN:
                token = conn.execute(
                    select(api_tokens.c.account_id, api_tokens.c.can_write, api_tokens.c.revoked).where(
                        api_tokens.c.id == session.subject
                    )
                ).first()
                if token is None or token.revoked:
                    return None
                return Grant(principal=f"token:{session.subject}", accounts={token.account_id: bool(token.can_write)})
            user = conn.execute(select(users.c.id).where(users.c.email == session.subject)).first()
            if user is None:
                return None
            rows = conn.execute(
                select(user_accounts.c.account_id, user_accounts.c.can_write).where(user_accounts.c.user_id == user.id)
            ).all()
        return Grant(principal=session.subject, accounts={r.account_id: bool(r.can_write) for r in rows})
