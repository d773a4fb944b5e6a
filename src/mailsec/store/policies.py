"""Account settings rows (allow policies, blocked senders, trusted domains, impersonation registry, URL ignore
patterns, content policies, sending domain restrictions) in the `policies` table, one row per entry with its fields
as JSON, and the pure `Policy` the scanner reads, built from them.

The scanner's `Policy` is cached per account and revalidated with one cheap indexed query (row count, newest
change, highest id of the account's policy and domain rows), so a write made by any process (API server, CLI) is
seen by the next scan everywhere, without reloading every row for every message."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, bindparam, delete, func, insert, select, update

from mailsec.scan.policy import AllowPolicy, BlockPolicy, ImpersonationEntry, Policy, TrustedDomain
from mailsec.store.schema import domains, policies

ALLOW = "allow_policy"
BLOCK = "block_sender"
TRUSTED = "trusted_domain"
IMPERSONATION = "impersonation_registry"
URL_IGNORE = "url_ignore_pattern"
CONTENT = "content_policy"
SENDING_RESTRICTION = "sending_domain_restriction"
KINDS = (ALLOW, BLOCK, TRUSTED, IMPERSONATION, URL_IGNORE, CONTENT, SENDING_RESTRICTION)


class PolicyNotFound(LookupError):
    """A batch named an id that is not one of the account's entries of that kind; nothing was changed."""

    def __init__(self, entry_id: int | str) -> None:
        super().__init__(f"no entry with id {entry_id}")
        self.entry_id = entry_id


@dataclass(frozen=True)
class PolicyRow:
    id: int
    account_id: str
    kind: str
    data: dict[str, Any]
    created_us: int
    updated_us: int


@dataclass
class BatchResult:
    deletes: list[int] = field(default_factory=list)
    patches: list[PolicyRow] = field(default_factory=list)
    puts: list[PolicyRow] = field(default_factory=list)
    posts: list[PolicyRow] = field(default_factory=list)


def _stats(table: Any) -> list[Any]:
    where = table.c.account_id == bindparam("account")
    return [
        select(func.count()).where(where).scalar_subquery(),
        select(func.max(table.c.updated_us)).where(where).scalar_subquery(),
        select(func.max(table.c.id)).where(where).scalar_subquery(),
    ]


# What changes whenever an account's settings or domains do: row count, newest change and highest id of each table.
_FINGERPRINT = select(*_stats(policies), *_stats(domains))


def _now_us() -> int:
    return time.time_ns() // 1000


def _row(r: Any) -> PolicyRow:
    return PolicyRow(int(r.id), r.account_id, r.kind, json.loads(r.data_json or "{}"), r.created_us, r.updated_us)


def _as_id(value: int | str) -> int | None:
    text = str(value).strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return int(text)


class PolicyRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[tuple[int, ...], Policy]] = {}
        self._lock = threading.Lock()

    # -- rows ----------------------------------------------------------------------------------------------------

    def list(self, account_id: str, kind: str) -> list[PolicyRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(policies)
                .where(policies.c.account_id == account_id, policies.c.kind == kind)
                .order_by(policies.c.id)
            ).all()
        return [_row(r) for r in rows]

    def get(self, account_id: str, kind: str, entry_id: int | str) -> PolicyRow | None:
        pk = _as_id(entry_id)
        if pk is None:
            return None
        with self.engine.connect() as conn:
            r = conn.execute(
                select(policies).where(
                    policies.c.id == pk, policies.c.account_id == account_id, policies.c.kind == kind
                )
            ).first()
        return _row(r) if r else None

    def create(self, account_id: str, kind: str, data: Mapping[str, Any]) -> PolicyRow:
        with self.engine.begin() as conn:
            return self._create(conn, account_id, kind, data)

    def update(
        self, account_id: str, kind: str, entry_id: int | str, data: Mapping[str, Any], replace: bool = False
    ) -> PolicyRow | None:
        """Merge `data` into the entry (PATCH), or replace its fields (PUT). None when the entry is not there."""
        with self.engine.begin() as conn:
            return self._update(conn, account_id, kind, entry_id, data, replace)

    def delete(self, account_id: str, kind: str, entry_id: int | str) -> bool:
        pk = _as_id(entry_id)
        if pk is None:
            return False
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(policies).where(
                    policies.c.id == pk, policies.c.account_id == account_id, policies.c.kind == kind
                )
            )
        return result.rowcount > 0

    def batch(
        self,
        account_id: str,
        kind: str,
        deletes: Iterable[int | str] = (),
        patches: Iterable[tuple[int | str, Mapping[str, Any]]] = (),
        puts: Iterable[tuple[int | str, Mapping[str, Any]]] = (),
        posts: Iterable[Mapping[str, Any]] = (),
    ) -> BatchResult:
        """Deletes, then patches, then replacements, then creations, in one transaction: all or nothing."""
        out = BatchResult()
        with self.engine.begin() as conn:
            for entry_id in deletes:
                pk = _as_id(entry_id)
                result = conn.execute(
                    delete(policies).where(
                        policies.c.id == pk, policies.c.account_id == account_id, policies.c.kind == kind
                    )
                )
                if pk is None or result.rowcount == 0:
                    raise PolicyNotFound(entry_id)
                out.deletes.append(pk)
            for replace, items, into in ((False, patches, out.patches), (True, puts, out.puts)):
                for entry_id, data in items:
                    row = self._update(conn, account_id, kind, entry_id, data, replace)
                    if row is None:
                        raise PolicyNotFound(entry_id)
                    into.append(row)
            for data in posts:
                out.posts.append(self._create(conn, account_id, kind, data))
        return out

    def _create(self, conn: Any, account_id: str, kind: str, data: Mapping[str, Any]) -> PolicyRow:
        now = _now_us()
        pk = conn.execute(
            insert(policies).values(
                account_id=account_id, kind=kind, data_json=json.dumps(dict(data)), created_us=now, updated_us=now
            )
        ).inserted_primary_key[0]
        return PolicyRow(int(pk), account_id, kind, dict(data), now, now)

    def _update(
        self, conn: Any, account_id: str, kind: str, entry_id: int | str, data: Mapping[str, Any], replace: bool
    ) -> PolicyRow | None:
        pk = _as_id(entry_id)
        if pk is None:
            return None
        where = (policies.c.id == pk, policies.c.account_id == account_id, policies.c.kind == kind)
        r = conn.execute(select(policies).where(*where)).first()
        if r is None:
            return None
        current = _row(r)
        merged = dict(data) if replace else {**current.data, **data}
        now = max(_now_us(), current.updated_us + 1)
        conn.execute(update(policies).where(*where).values(data_json=json.dumps(merged), updated_us=now))
        return PolicyRow(pk, account_id, kind, merged, current.created_us, now)

    # -- the scanner's view --------------------------------------------------------------------------------------

    def _fingerprint(self, account_id: str) -> tuple[int, ...]:
        with self.engine.connect() as conn:
            row = conn.execute(_FINGERPRINT, {"account": account_id}).one()
        return tuple(int(x or 0) for x in row)

    def policy(self, account_id: str) -> Policy:
        """The account's current policy for the scanner (cached; revalidated with one small query)."""
        key = self._fingerprint(account_id)
        with self._lock:
            cached = self._cache.get(account_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        built = self._build(account_id)
        with self._lock:
            self._cache[account_id] = (key, built)
        return built

    def _build(self, account_id: str) -> Policy:
        with self.engine.connect() as conn:
            rows = [
                _row(r)
                for r in conn.execute(
                    select(policies).where(policies.c.account_id == account_id).order_by(policies.c.id)
                ).all()
            ]
            protected = tuple(
                conn.execute(
                    select(domains.c.domain).where(domains.c.account_id == account_id).order_by(domains.c.domain)
                ).scalars()
            )
        return build_policy(rows, protected)


def _flag(data: Mapping[str, Any], name: str, *aliases: str, default: bool = False) -> bool:
    for key in (name, *aliases):
        if data.get(key) is not None:
            return bool(data[key])
    return default


def build_policy(rows: Iterable[PolicyRow], protected_domains: Iterable[str] = ()) -> Policy:
    """Rows of the settings API → the pure `Policy` dataclass (entries without a pattern are skipped)."""
    allow: list[AllowPolicy] = []
    block: list[BlockPolicy] = []
    trusted: list[TrustedDomain] = []
    imp: list[ImpersonationEntry] = []
    ignore: list[str] = []
    extra: dict[str, list[dict[str, Any]]] = {CONTENT: [], SENDING_RESTRICTION: []}
    for row in rows:
        d = row.data
        pattern = str(d.get("pattern") or "")
        if row.kind == ALLOW and pattern:
            allow.append(
                AllowPolicy(
                    pattern=pattern,
                    pattern_type=str(d.get("pattern_type") or "UNKNOWN"),
                    is_regex=_flag(d, "is_regex"),
                    is_acceptable_sender=_flag(d, "is_acceptable_sender", "is_spoof"),
                    is_exempt_recipient=_flag(d, "is_exempt_recipient", "is_recipient"),
                    is_trusted_sender=_flag(d, "is_trusted_sender", "is_sender"),
                    verify_sender=_flag(d, "verify_sender", default=True),
                    id=row.id,
                )
            )
        elif row.kind == BLOCK and pattern:
            block.append(BlockPolicy(pattern, str(d.get("pattern_type") or "UNKNOWN"), _flag(d, "is_regex"), id=row.id))
        elif row.kind == TRUSTED and pattern:
            trusted.append(
                TrustedDomain(
                    pattern, _flag(d, "is_regex"), _flag(d, "is_recent"), _flag(d, "is_similarity"), id=row.id
                )
            )
        elif row.kind == IMPERSONATION and d.get("email"):
            imp.append(
                ImpersonationEntry(str(d.get("name") or ""), str(d["email"]), _flag(d, "is_email_regex"), id=row.id)
            )
        elif row.kind == URL_IGNORE and pattern:
            ignore.append(pattern)
        elif row.kind in extra:
            extra[row.kind].append({"id": row.id, **d})
    return Policy(
        allow=tuple(allow),
        block=tuple(block),
        trusted_domains=tuple(trusted),
        protected_domains=tuple(protected_domains),
        impersonation=tuple(imp),
        url_ignore_patterns=tuple(ignore),
        extra={k: tuple(v) for k, v in extra.items() if v},
    )
