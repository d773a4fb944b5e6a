"""Accounts, users with global API keys, and API tokens. Secrets are random and stored only as SHA-256 hashes
(they carry 256 bits of entropy, so a slow hash adds nothing); the clear value is shown once, at creation.
Console passwords, chosen by people, get a salted slow hash (store/passwords.py). Nothing here caches a grant:
every request looks its credential up, so a revoked token or deleted user stops working at once in every process."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailsec import ids
from mailsec.store.passwords import hash_password, verify_password
from mailsec.store.schema import accounts, api_tokens, user_accounts, users


class AlreadyExists(ValueError):
    pass


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class Account:
    id: str
    name: str


@dataclass(frozen=True)
class Grant:
    """What one credential may do: the accounts it reaches and, per account, whether it may write."""

    principal: str
    accounts: dict[str, bool]

    def can_read(self, account_id: str) -> bool:
        return account_id in self.accounts

    def can_write(self, account_id: str) -> bool:
        return self.accounts.get(account_id, False)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never its secret (nor its hash)."""

    id: str
    account_id: str
    name: str
    read_only: bool
    revoked: bool
    created_at: datetime


@dataclass(frozen=True)
class UserInfo:
    email: str
    accounts: dict[str, bool]  # account id -> may write
    has_password: bool
    created_at: datetime


def _when(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def _now_us() -> int:
    return time.time_ns() // 1000


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class AccountRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create_account(self, name: str, account_id: str | None = None) -> Account:
        account_id = (account_id or ids.new_account_id()).lower()
        if not ids.is_account_id(account_id):
            raise ValueError("an account id is 32 lowercase hexadecimal characters")
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(accounts).values(id=account_id, name=name, created_us=_now_us(), settings_json="{}")
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"account {account_id} already exists") from exc
        return Account(account_id, name)

    def get_account(self, account_id: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(accounts.c.id, accounts.c.name).where(accounts.c.id == account_id)).first()
        return Account(row.id, row.name) if row else None

    def list_accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(accounts.c.id, accounts.c.name).order_by(accounts.c.created_us)).all()
        return [Account(r.id, r.name) for r in rows]

    def delete_account(self, account_id: str) -> bool:
        """Delete the account and everything that is its: the rows that reference it in the main database go with
        it (ON DELETE CASCADE), and its queue rows, which with SQLite live in a file of their own without a
        foreign key, are deleted here (before and after, so that mail received meanwhile is not left behind).
        Blobs are content-addressed and may be shared with other accounts: they stay. False when there is none."""
        from mailsec.store.queue import QueueRepo  # the queue module knows where the queue lives

        if self.get_account(account_id) is None:
            return False
        queue = QueueRepo(self.engine)
        queue.delete_account(account_id)
        with self.engine.begin() as conn:
            result = conn.execute(delete(accounts).where(accounts.c.id == account_id))
        queue.delete_account(account_id)
        return bool(result.rowcount)

    def _require(self, account_id: str) -> None:
        if self.get_account(account_id) is None:
            raise NotFound(f"no account {account_id}")

    def create_token(self, account_id: str, can_write: bool = True, name: str = "") -> str:
        self._require(account_id)
        token = "msk_" + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(
                insert(api_tokens).values(
                    id=secrets.token_hex(16),
                    token_hash=hash_secret(token),
                    account_id=account_id,
                    can_write=can_write,
                    name=name,
                    created_us=_now_us(),
                    revoked=False,
                )
            )
        return token

    def list_tokens(self, account_id: str) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(api_tokens.c.id, api_tokens.c.account_id, api_tokens.c.name, api_tokens.c.can_write,
                       api_tokens.c.revoked, api_tokens.c.created_us)
                .where(api_tokens.c.account_id == account_id)
                .order_by(api_tokens.c.created_us, api_tokens.c.id)
            ).all()  # fmt: skip
        return [
            TokenInfo(r.id, r.account_id, r.name or "", not r.can_write, bool(r.revoked), _when(r.created_us))
            for r in rows
        ]

    def revoke_token(self, token_id: str) -> TokenInfo | None:
        """Revoke by id (what `token list` shows); the row stays, so the id keeps meaning "revoked". None: no token."""
        token_id = token_id.strip().lower()
        with self.engine.begin() as conn:
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked=True))
            r = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
        if r is None:
            return None
        return TokenInfo(r.id, r.account_id, r.name or "", not r.can_write, bool(r.revoked), _when(r.created_us))

    def create_user(self, email: str, account_id: str, can_write: bool = True) -> str:
        """Create a user with access to one account and issue its global API key. An existing e-mail is an error
        (AlreadyExists): its key is never replaced behind its owner's back; see `grant_user` and `rotate_user_key`."""
        self._require(account_id)
        key = secrets.token_hex(24)
        email = email.strip().lower()
        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(
                    insert(users).values(email=email, key_hash=hash_secret(key), created_us=_now_us())
                ).inserted_primary_key[0]  # type: ignore[index]
                conn.execute(insert(user_accounts).values(user_id=user_id, account_id=account_id, can_write=can_write))
        except IntegrityError as exc:
            raise AlreadyExists(f"user {email} already exists") from exc
        return key

    def _user_id(self, conn: Connection, email: str) -> int:
        row = conn.execute(select(users.c.id).where(users.c.email == email.strip().lower())).first()
        if row is None:
            raise NotFound(f"no user {email.strip().lower()}")
        return int(row.id)

    def grant_user(self, email: str, account_id: str, can_write: bool = True) -> None:
        """Give an existing user access to one more account (or change its scope there); its key is unchanged."""
        self._require(account_id)
        with self.engine.begin() as conn:
            user_id = self._user_id(conn, email)
            where = (user_accounts.c.user_id == user_id, user_accounts.c.account_id == account_id)
            if conn.execute(select(user_accounts.c.user_id).where(*where)).first() is None:
                conn.execute(insert(user_accounts).values(user_id=user_id, account_id=account_id, can_write=can_write))
            else:
                conn.execute(update(user_accounts).where(*where).values(can_write=can_write))

    def rotate_user_key(self, email: str) -> str:
        """Issue a new global API key; the old one stops working at once."""
        key = secrets.token_hex(24)
        with self.engine.begin() as conn:
            user_id = self._user_id(conn, email)
            conn.execute(update(users).where(users.c.id == user_id).values(key_hash=hash_secret(key)))
        return key

    def set_password(self, email: str, password: str) -> None:
        """ValueError when the password breaks the rules (passwords.check_password_rules); NotFound: no user."""
        hashed = hash_password(password)
        with self.engine.begin() as conn:
            user_id = self._user_id(conn, email)
            conn.execute(update(users).where(users.c.id == user_id).values(password_hash=hashed))

    def check_password(self, email: str, password: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(users.c.password_hash).where(users.c.email == email.strip().lower())).first()
        return verify_password(password, row.password_hash if row else None)

    def list_users(self, account_id: str | None = None) -> list[UserInfo]:
        """Every user, or those with access to `account_id`; each with all the accounts it reaches."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(users.c.id, users.c.email, users.c.password_hash, users.c.created_us).order_by(users.c.email)
            ).all()
            grants = conn.execute(
                select(user_accounts.c.user_id, user_accounts.c.account_id, user_accounts.c.can_write)
            ).all()
        reach: dict[int, dict[str, bool]] = {}
        for g in grants:
            reach.setdefault(int(g.user_id), {})[g.account_id] = bool(g.can_write)
        return [
            UserInfo(r.email, reach.get(int(r.id), {}), r.password_hash is not None, _when(r.created_us))
            for r in rows
            if account_id is None or account_id in reach.get(int(r.id), {})
        ]

    def delete_user(self, email: str, account_id: str | None = None) -> bool:
        """Remove the user (key, password, every grant), or with `account_id` only its access to that account.
        False when there was nothing to remove."""
        with self.engine.begin() as conn:
            row = conn.execute(select(users.c.id).where(users.c.email == email.strip().lower())).first()
            if row is None:
                return False
            if account_id is not None:
                result = conn.execute(
                    delete(user_accounts).where(
                        user_accounts.c.user_id == row.id, user_accounts.c.account_id == account_id
                    )
                )
            else:
                conn.execute(delete(user_accounts).where(user_accounts.c.user_id == row.id))
                result = conn.execute(delete(users).where(users.c.id == row.id))
        return bool(result.rowcount)

    def grant_for_token(self, token: str) -> Grant | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(api_tokens.c.id, api_tokens.c.account_id, api_tokens.c.can_write, api_tokens.c.revoked).where(
                    api_tokens.c.token_hash == hash_secret(token)
                )
            ).first()
        if row is None or row.revoked:
            return None
        return Grant(principal=f"token:{row.id}", accounts={row.account_id: bool(row.can_write)})

    def grant_for_user(self, email: str, key: str) -> Grant | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(users.c.id, users.c.key_hash).where(users.c.email == email.strip().lower())
            ).first()
            if row is None or not hmac.compare_digest(row.key_hash, hash_secret(key)):
                return None
            grants = conn.execute(
                select(user_accounts.c.account_id, user_accounts.c.can_write).where(user_accounts.c.user_id == row.id)
            ).all()
        return Grant(principal=email.strip().lower(), accounts={g.account_id: bool(g.can_write) for g in grants})
