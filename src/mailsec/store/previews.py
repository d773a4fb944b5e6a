"""The preview cache: rendered PNGs keyed by message content and renderer version, so a message is rendered once."""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from mailsec.store.schema import preview_cache


class PreviewCacheRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(preview_cache.c.png, preview_cache.c.data_json).where(preview_cache.c.key == key)
            ).first()
        if row is None:
            return None
        return bytes(row.png), json.loads(row.data_json or "{}")

    def put(self, key: str, png: bytes, data: dict[str, Any]) -> None:
        """Store a render; a concurrent render of the same message that stored first wins (same content)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(preview_cache).values(
                        key=key,
                        png=png,
                        data_json=json.dumps(data, separators=(",", ":")),
                        created_us=time.time_ns() // 1000,
                    )
                )
        except IntegrityError:
            pass

    def prune(self, older_than_us: int) -> int:
        with self.engine.begin() as conn:
            return int(conn.execute(delete(preview_cache).where(preview_cache.c.created_us < older_than_us)).rowcount)
