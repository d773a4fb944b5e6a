"""Protected domains: which account owns a domain, how its mail reaches mailsec (DIRECT, BCC, JOURNAL) and the
next hop for delivery.

A domain belongs to one account. The rules live here, so every path (API, batch, CLI) obeys them: a public suffix,
a name with control characters, or a domain above or below one another account protects is refused, with a message
that never names the other account. A domain claimed through the API is PENDING (the gateway takes no mail for it)
until its account publishes a DNS TXT record; the operator may verify a domain directly. Every claim, refusal,
verification, change and release is written to `domain_audit`."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList
from sqlalchemy import Connection, Engine, delete, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from mailsec.store.accounts import AlreadyExists
from mailsec.store.schema import domain_audit, domains
from mailsec.store.settings_ids import next_settings_id

MODES = ("DIRECT", "BCC", "JOURNAL", "API", "RETRO_SCAN")
ACTIVE = "ACTIVE"
PENDING = "PENDING"
CHALLENGE_LABEL = "_mailsec-challenge"
CHALLENGE_PREFIX = "mailsec-domain-verification="
PENDING_CLAIM_SECONDS = 7 * 86400  # an unproven claim stops blocking other accounts after this
RECHECK_SECONDS = 10.0  # at most one TXT lookup per domain in this time, however often the API is asked

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CONTROL = re.compile(r"[\x00-\x20\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff]")


class DomainRefused(ValueError):
    """The account may not protect this name; the message names no other account."""


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
    status: str = ACTIVE
    verify_token: str | None = None
    checked_us: int | None = None

    @property
    def challenge_name(self) -> str:
        return f"{CHALLENGE_LABEL}.{self.domain}"

    @property
    def challenge_value(self) -> str:
        return f"{CHALLENGE_PREFIX}{self.verify_token or ''}"


@dataclass(frozen=True)
class AuditEntry:
    at_us: int
    account_id: str
    domain: str
    event: str
    actor: str
    detail: str


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
        r.status or ACTIVE,
        r.verify_token,
        r.checked_us,
    )


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def normalize_domain(name: str) -> str:
    """The lowercase A-label form of a domain name; ValueError for anything that is not one."""
    shown = name[:80]
    if _CONTROL.search(name.strip()):
        raise ValueError(f"{shown!r} is not a domain name: it contains spaces or control characters")
    name = name.strip().lower().rstrip(".")
    if not name or "@" in name:
        raise ValueError(f"{shown!r} is not a domain name")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:  # not a name IDNA can spell: a caller's 400, never a crash
            raise ValueError(f"{shown!r} is not a domain name") from exc
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{shown!r} is not a domain name")
    return name


def claimable_domain(name: str) -> str:
    """`normalize_domain`, refusing what no account may own: a public suffix (`com`, `co.uk`, `github.io`)."""
    name = normalize_domain(name)
    if _psl().is_public(name):
        raise DomainRefused(f"{name} is a public suffix; protect a domain registered under it")
    return name


def validate_transport(value: str) -> str:
    """A next hop as the gateway can use it: `smtp://HOST[:PORT]`, `lmtp://HOST[:PORT]` or `HOST[:PORT]` (SMTP).
    No other scheme, no user, path or query; the host is a DNS name or an IP that is not link-local (cloud metadata
    services), multicast or unspecified."""
    value = value.strip(" ")
    if not value:
        return ""
    shown = value[:80]
    if _CONTROL.search(value) or len(value) > 300:
        raise ValueError(f"transport {shown!r} is not smtp://HOST:PORT, lmtp://HOST:PORT or HOST[:PORT]")
    parts = urlsplit(value if "://" in value else f"smtp://{value}")
    bad = ValueError(f"transport {shown!r} is not smtp://HOST:PORT, lmtp://HOST:PORT or HOST[:PORT]")
    if parts.scheme.lower() not in ("smtp", "lmtp") or parts.username or parts.password:
        raise bad
    if parts.path not in ("", "/") or parts.query or parts.fragment or not parts.hostname:
        raise bad
    try:
        port = parts.port
    except ValueError as exc:
        raise bad from exc
    if port == 0:
        raise bad
    host = parts.hostname
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        normalize_domain(host)
        return value
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or (ip.is_reserved and not ip.is_loopback):
        raise ValueError(f"transport {shown!r}: {host} is not an address mail may be relayed to")
    return value


def _lock_key(name: str) -> int:
    """One advisory lock per registrable domain: every name that can overlap `name` shares it."""
    base = _psl().privatesuffix(name) or name
    return int.from_bytes(hashlib.sha256(base.encode()).digest()[:8], "big", signed=True)


def _overlapping(conn: Connection, name: str) -> list[Any]:
    """Rows for `name`, each of its parent domains, and each of its subdomains."""
    labels = name.split(".")
    parents = [".".join(labels[i:]) for i in range(len(labels))]
    return list(
        conn.execute(
            select(domains).where(or_(domains.c.domain.in_(parents), domains.c.domain.like(f"%.{name}")))
        ).all()
    )


def _audit(conn: Connection, account_id: str, domain: str, event: str, actor: str, detail: str = "") -> None:
    conn.execute(
        insert(domain_audit).values(
            at_us=_now_us(), account_id=account_id, domain=domain, event=event, actor=actor[:200], detail=detail[:500]
        )
    )


class DomainRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _begin_claim(self, conn: Connection, name: str) -> None:
        """Serialise claims that may overlap: an advisory lock on PostgreSQL; on SQLite the caller's first
        statement is a write, which takes the database's single write lock."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(name)})

    def _check_free(self, conn: Connection, account_id: str, name: str, actor: str, exclude_id: int | None) -> None:
        """Raise unless `account_id` may own `name`. Another account's ACTIVE domain above or below `name` blocks
        it; another account's PENDING claim blocks only the same name, and only for PENDING_CLAIM_SECONDS (an
        unproven claim cannot hold a domain hostage)."""
        now = _now_us()
        for r in _overlapping(conn, name):
            if r.id == exclude_id:
                continue
            if r.account_id == account_id:
                if r.domain == name:
                    raise AlreadyExists(f"domain {name} is already protected by this account")
                continue
            if (r.status or ACTIVE) == PENDING:
                if r.domain != name:
                    continue
                if now - r.created_us > PENDING_CLAIM_SECONDS * 1_000_000:
                    conn.execute(delete(domains).where(domains.c.id == r.id))
                    _audit(conn, r.account_id, r.domain, "claim_expired", actor, "superseded by a newer claim")
                    continue
            raise DomainRefused(
                f"domain {name} cannot be protected by this account: it, a domain above it or a domain below it "
                "is already protected"
            )

    def add(
        self,
        account_id: str,
        domain: str,
        mode: str = "DIRECT",
        next_hop: str = "",
        settings: dict[str, Any] | None = None,
        *,
        verified: bool = False,
        actor: str = "",
    ) -> Domain:
        """Protect a domain for an account. Unless `verified` (the operator's word), it stays PENDING until the
        TXT record `challenge_name` holds `challenge_value`."""
        mode = mode.upper()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        name = claimable_domain(domain)
        next_hop = validate_transport(next_hop)
        status, token = (ACTIVE, None) if verified else (PENDING, secrets.token_hex(16))
        now = _now_us()
        try:
            with self.engine.begin() as conn:
                self._begin_claim(conn, name)
                _audit(conn, account_id, name, "claimed", actor, f"{status} {mode}")
                self._check_free(conn, account_id, name, actor, None)
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
                        status=status,
                        verify_token=token,
                    )
                )
        except DomainRefused:
            self._audit_alone(account_id, name, "claim_refused", actor, "overlaps a domain of another account")
            raise
        except IntegrityError as exc:  # a claim on the same name that won the race
            self._audit_alone(account_id, name, "claim_refused", actor, "claimed concurrently")
            raise DomainRefused(f"domain {name} cannot be protected by this account: it is already protected") from exc
        return Domain(int(pk), account_id, name, mode, next_hop, settings or {}, now, now, status, token)

    def _audit_alone(self, account_id: str, domain: str, event: str, actor: str, detail: str) -> None:
        with self.engine.begin() as conn:
            _audit(conn, account_id, domain, event, actor, detail)

    def update(self, account_id: str, domain_id: int, *, actor: str = "", **changes: Any) -> Domain | None:
        values: dict[str, Any] = {"updated_us": _now_us()}
        if changes.get("mode") is not None:
            values["mode"] = changes["mode"].upper()
            if values["mode"] not in MODES:
                raise ValueError(f"mode must be one of {', '.join(MODES)}")
        if changes.get("next_hop") is not None:
            values["next_hop"] = validate_transport(changes["next_hop"])
        if "settings" in changes and changes["settings"] is not None:
            values["settings_json"] = json.dumps(changes["settings"])
        with self.engine.begin() as conn:
            result = conn.execute(
                update(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id).values(**values)
            )
            if result.rowcount:
                current = conn.execute(select(domains.c.domain).where(domains.c.id == domain_id)).scalar_one()
                shown = {k: v for k, v in values.items() if k in ("mode", "next_hop")}
                _audit(conn, account_id, current, "updated", actor, json.dumps(shown))
        return self.get(account_id, domain_id)

    def get(self, account_id: str, domain_id: int) -> Domain | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id)
            ).first()
        return _row(r) if r else None

    def find(self, account_id: str, name_or_id: str) -> Domain | None:
        """An account's domain by numeric id or by name."""
        if name_or_id.isdigit() and len(name_or_id) <= 18:
            return self.get(account_id, int(name_or_id))
        try:
            name = normalize_domain(name_or_id)
        except ValueError:
            return None
        with self.engine.connect() as conn:
            r = conn.execute(
                select(domains).where(domains.c.domain == name, domains.c.account_id == account_id)
            ).first()
        return _row(r) if r else None

    def list(self, account_id: str) -> list[Domain]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(domains).where(domains.c.account_id == account_id).order_by(domains.c.id)).all()
        return [_row(r) for r in rows]

    def delete(self, account_id: str, domain_id: int, *, actor: str = "") -> bool:
        with self.engine.begin() as conn:
            name = conn.execute(
                select(domains.c.domain).where(domains.c.id == domain_id, domains.c.account_id == account_id)
            ).scalar()
            if name is None:
                return False
            conn.execute(delete(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id))
            _audit(conn, account_id, name, "deleted", actor)
        return True

    def mark_verified(self, account_id: str, domain_id: int, *, actor: str = "", how: str = "operator") -> Domain:
        """Make a domain ACTIVE. `how` is "operator" (the token is dropped: verified by other means) or "dns_txt".
        Refused when another account meanwhile protects an overlapping domain."""
        with self.engine.begin() as conn:
            r = conn.execute(
                select(domains).where(domains.c.id == domain_id, domains.c.account_id == account_id)
            ).first()
            if r is None:
                raise LookupError(f"no domain {domain_id} in this account")
            self._begin_claim(conn, r.domain)
            _audit(conn, account_id, r.domain, "verified", actor, how)
            self._check_free(conn, account_id, r.domain, actor, r.id)
            values: dict[str, Any] = {"status": ACTIVE, "updated_us": _now_us()}
            if how == "operator":
                values["verify_token"] = None
            conn.execute(update(domains).where(domains.c.id == r.id).values(**values))
        found = self.get(account_id, domain_id)
        assert found is not None
        return found

    def check_txt(
        self, account_id: str, domain_id: int, txt: Callable[[str], Sequence[str]], *, actor: str = ""
    ) -> Domain | None:
        """Look for the challenge record of a PENDING domain (at most once per RECHECK_SECONDS) and make the domain
        ACTIVE when it is there. DNS failures leave the domain PENDING."""
        found = self.get(account_id, domain_id)
        if found is None or found.status != PENDING or not found.verify_token:
            return found
        now = _now_us()
        if found.checked_us is not None and now - found.checked_us < RECHECK_SECONDS * 1_000_000:
            return found
        with self.engine.begin() as conn:
            conn.execute(update(domains).where(domains.c.id == domain_id).values(checked_us=now))
        try:
            records = [r.strip() for r in txt(found.challenge_name)]
        except Exception:
            records = []
        if found.challenge_value not in records:
            return self.get(account_id, domain_id)
        try:
            return self.mark_verified(account_id, domain_id, actor=actor, how="dns_txt")
        except DomainRefused:
            return self.get(account_id, domain_id)

    def audit(
        self, domain: str | None = None, account_id: str | None = None, limit: int = 1000
    ) -> tuple[AuditEntry, ...]:
        stmt = select(domain_audit).order_by(domain_audit.c.at_us, domain_audit.c.id).limit(limit)
        if domain is not None:
            stmt = stmt.where(domain_audit.c.domain == domain)
        if account_id is not None:
            stmt = stmt.where(domain_audit.c.account_id == account_id)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return tuple(AuditEntry(r.at_us, r.account_id, r.domain, r.event, r.actor, r.detail) for r in rows)

    def claimed(self, name: str) -> Domain | None:
        """The claim on exactly this name, ACTIVE or PENDING, whichever account holds it."""
        with self.engine.connect() as conn:
            row = conn.execute(select(domains).where(domains.c.domain == name)).first()
        return _row(row) if row is not None else None

    def owner_of(self, address_or_domain: str) -> Domain | None:
        """The ACTIVE protected domain a recipient belongs to: an exact domain match, else its closest parent.
        PENDING domains receive no mail."""
        name = address_or_domain.rpartition("@")[2].strip().lower().rstrip(".")
        labels = name.split(".")
        candidates = [".".join(labels[i:]) for i in range(len(labels))]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(domains).where(domains.c.domain.in_(candidates), domains.c.status == ACTIVE)
            ).all()
        by_name = {r.domain: r for r in rows}
        for cand in candidates:
            if cand in by_name:
                return _row(by_name[cand])
        return None
