"""The one sequence that numbers settings entries (every kind) and protected domains: an id is never handed out
twice, not after a delete and not across kinds, so an id in an old script or log can never name a newer entry."""

from __future__ import annotations

from sqlalchemy import Connection, delete, insert

from mailsec.store.schema import settings_ids


def next_settings_id(conn: Connection) -> int:
    """A new id, inside the caller's transaction (the row is dropped again: the sequence remembers)."""
    pk = int(conn.execute(insert(settings_ids)).inserted_primary_key[0])  # type: ignore[index]
    conn.execute(delete(settings_ids).where(settings_ids.c.id == pk))
    return pk
