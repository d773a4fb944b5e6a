"""Console sessions in the store, on SQLite and PostgreSQL: only the hash of the id is kept, the grant is derived
from the credential on every use (revocation and removal take effect at once), idle and old sessions are gone."""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import select, update

from mailsec.services import Services
from mailsec.store.console_sessions import TOKEN, USER, ConsoleSessionRepo
from mailsec.store.schema import console_sessions


def test_only_the_hash_of_the_id_is_stored(services: Services) -> None:
    account = services.accounts.create_account("A").id
    token = services.accounts.create_token(account)
    grant = services.accounts.grant_for_token(token)
    assert grant is not None
    repo = ConsoleSessionRepo(services.engine)
    session_id = repo.create(TOKEN, grant.principal.removeprefix("token:"))
    with services.engine.connect() as conn:
        stored = conn.execute(select(console_sessions.c.id_hash)).scalars().all()
    assert stored == [hashlib.sha256(session_id.encode()).hexdigest()]
    session = repo.touch(session_id, 60, 3600)
    assert session is not None
    assert repo.grant(session) == grant
    assert repo.touch(session_id + "x", 60, 3600) is None
    assert repo.touch("", 60, 3600) is None


def test_a_revoked_token_gives_no_grant(services: Services) -> None:
    account = services.accounts.create_account("A").id
    token = services.accounts.create_token(account, can_write=False)
    [info] = services.accounts.list_tokens(account)
    repo = ConsoleSessionRepo(services.engine)
    session = repo.touch(repo.create(TOKEN, info.id), 60, 3600)
    assert session is not None
    grant = repo.grant(session)
    assert grant is not None and grant.can_read(account) and not grant.can_write(account)
    services.accounts.revoke_token(info.id)
    assert repo.grant(session) is None
    assert services.accounts.grant_for_token(token) is None  # the API agrees


def test_a_user_session_follows_the_users_grants(services: Services) -> None:
    first = services.accounts.create_account("A").id
    second = services.accounts.create_account("B").id
    services.accounts.create_user("soc@corp.example", first)
    repo = ConsoleSessionRepo(services.engine)
    session = repo.touch(repo.create(USER, "soc@corp.example"), 60, 3600)
    assert session is not None
    assert repo.grant(session).accounts == {first: True}  # type: ignore[union-attr]
    services.accounts.grant_user("soc@corp.example", second, can_write=False)
    assert repo.grant(session).accounts == {first: True, second: False}  # type: ignore[union-attr]
    services.accounts.delete_user("soc@corp.example")
    assert repo.grant(session) is None


def test_idle_and_old_sessions_are_gone(services: Services) -> None:
    repo = ConsoleSessionRepo(services.engine)
    idle = repo.create(USER, "a@corp.example")
    old = repo.create(USER, "b@corp.example")
    busy = repo.create(USER, "c@corp.example")
    ten_minutes_us = 600 * 1_000_000
    with services.engine.begin() as conn:
        for session_id, seen_back, created_back in ((idle, 2, 2), (old, 0, 7), (busy, 0, 0)):
            conn.execute(
                update(console_sessions)
                .where(console_sessions.c.id_hash == hashlib.sha256(session_id.encode()).hexdigest())
                .values(
                    last_seen_us=console_sessions.c.last_seen_us - seen_back * ten_minutes_us,
                    created_us=console_sessions.c.created_us - created_back * ten_minutes_us,
                )
            )
    assert repo.touch(idle, 900, 3600) is None  # 20 minutes idle, 15 allowed
    assert repo.touch(idle, 3600, 7200) is None  # and it was deleted, not only refused
    assert repo.touch(old, 900, 3600) is None  # 70 minutes old, 60 allowed
    touched = repo.touch(busy, 900, 3600)
    assert touched is not None
    assert repo.touch(busy, 900, 3600) == touched  # used again at once: no write
    with services.engine.begin() as conn:
        conn.execute(update(console_sessions).values(last_seen_us=console_sessions.c.last_seen_us - 120_000_000))
    before = time.time_ns() // 1000
    refreshed = repo.touch(busy, 900, 3600)
    assert refreshed is not None and refreshed.last_seen_us >= before  # two minutes on: the idle clock restarts


def test_purge_forgets_idle_sessions(services: Services) -> None:
    repo = ConsoleSessionRepo(services.engine)
    kept = repo.create(USER, "a@corp.example")
    gone = repo.create(USER, "b@corp.example")
    with services.engine.begin() as conn:
        conn.execute(
            update(console_sessions)
            .where(console_sessions.c.id_hash == hashlib.sha256(gone.encode()).hexdigest())
            .values(last_seen_us=1)
        )
    assert repo.purge_idle(900) == 1
    assert repo.touch(kept, 900, 3600) is not None
    assert repo.delete(kept) is True
    assert repo.delete(kept) is False


def test_csrf_token_is_bound_to_the_session(services: Services) -> None:
    repo = ConsoleSessionRepo(services.engine)
    one = repo.touch(repo.create(USER, "a@corp.example"), 60, 3600)
    two = repo.touch(repo.create(USER, "a@corp.example"), 60, 3600)
    assert one is not None and two is not None
    assert one.csrf_ok(one.csrf_token())
    assert not one.csrf_ok(two.csrf_token())
    assert not one.csrf_ok("")
    assert not one.csrf_ok("\udcff" * 64)
