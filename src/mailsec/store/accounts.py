"""Accounts, users with global API keys, and API tokens. Secrets are random and stored only as SHA-256 hashes
(they carry 256 bits of entropy, so a slow hash adds nothing); the clear value is shown once, at creation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from mailsec import ids
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

    def create_user(self, email: str, account_id: str, can_write: bool = True) -> str:
        """Create the user (or add the account to an existing one) and issue a new global API key."""
        self._require(account_id)
        key = secrets.token_hex(24)
        email = email.strip().lower()
        with self.engine.begin() as conn:
            row = conn.execute(select(users.c.id).where(users.c.email == email)).first()
            if row is None:
                user_id = conn.execute(
                    insert(users).values(email=email, key_hash=hash_secret(key), created_us=_now_us())
                ).inserted_primary_key[0]  # type: ignore[index]
            else:
                user_id = row.id
                conn.execute(users.update().where(users.c.id == user_id).values(key_hash=hash_secret(key)))
            exists = conn.execute(
                select(user_accounts.c.user_id).where(
                    user_accounts.c.user_id == user_id, user_accounts.c.account_id == account_id
                )
            ).first()
            if exists is None:
                conn.execute(insert(user_accounts).values(user_id=user_id, account_id=account_id, can_write=can_write))
        return key

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
