"""Protected domains: which account owns a domain, how its mail reaches mailsec (DIRECT, BCC, JOURNAL) and the
next hop for delivery."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from mailsec.store.accounts import AlreadyExists
from mailsec.store.schema import domains
from mailsec.store.settings_ids import next_settings_id

MODES = ("DIRECT", "BCC", "JOURNAL", "API", "RETRO_SCAN")


@dataclass(frozen=True)
class Domain:
    id: int
    account_id: str
    domain: str
    mode: str
    next_hop: str
    settings: dict[str, Any] = field(default_factory=dict)
    created_us: int = 0
    updated_us: int = 0


def _now_us() -> int:
    return time.time_ns() // 1000


def _row(r: Any) -> Domain:
    return Domain(
        r.id,
        r.account_id,
        r.domain,
        r.mode,
        r.next_hop,
        json.loads(r.settings_json or "{}"),
        r.created_us,
        r.updated_us,
    )


def normalize_domain(name: str) -> str:
    name = name.strip().lower().rstrip(".")
    if not name or " " in name or "@" in name:
        raise ValueError(f"{name!r} is not a domain name")
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError as exc:  # not a name IDNA can spell: a caller's 400, never a crash
        raise ValueError(f"{name!r} is not a domain name") from exc


class DomainRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(
        self,
        account_id: str,
        domain: str,
        mode: str = "DIRECT",
        next_hop: str = "",
        settings: dict[str, Any] | None = None,
    ) -> Domain:
        mode = mode.upper()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        name = normalize_domain(domain)
        now = _now_us()
        try:
            with self.engine.begin() as conn:
                pk = next_settings_id(conn)
                conn.execute(
                    insert(domains).values(
                        id=pk,
                        account_id=account_id,
                        domain=name,
                        mode=mode,
                        next_hop=next_hop,
                        settings_json=json.dumps(settings or {}),
                        created_us=now,
                        updated_us=now,
                    )
                )
        except IntegrityError as exc:
            raise AlreadyExists(f"domain {name} is already protected") from exc
        return Domain(int(pk), account_id, name, mode, next_hop, settings or {}, now, now)

    def update(self, account_id: str, domain_id: int, **changes: Any) -> Domain | None:
        values: dict[str, Any] = {"updated_us": _now_us()}
        for key in ("mode", "next_hop"):
            if changes.get(key) is not None:
                values[key] = changes[key].upper() if key == "mode" else changes[key]
        if "settings" in changes and changes["settings"] is not None:
            values["settings_json"] = json.dumps(changes["settings"])
        with self.engine.begin() as conn:
            conn.execute(
                update(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id).values(**values)
            )
        return self.get(account_id, domain_id)

    def get(self, account_id: str, domain_id: int) -> Domain | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id)
            ).first()
        return _row(r) if r else None

    def list(self, account_id: str) -> list[Domain]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(domains).where(domains.c.account_id == account_id).order_by(domains.c.id)).all()
        return [_row(r) for r in rows]

    def delete(self, account_id: str, domain_id: int) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(delete(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id))
        return result.rowcount > 0

    def owner_of(self, address_or_domain: str) -> Domain | None:
        """The protected domain a recipient belongs to: an exact domain match, else its closest parent."""
        name = address_or_domain.rpartition("@")[2].strip().lower().rstrip(".")
        labels = name.split(".")
        candidates = [".".join(labels[i:]) for i in range(len(labels))]
        with self.engine.connect() as conn:
            rows = conn.execute(select(domains).where(domains.c.domain.in_(candidates))).all()
        by_name = {r.domain: r for r in rows}
        for cand in candidates:
            if cand in by_name:
                return _row(by_name[cand])
        return None
