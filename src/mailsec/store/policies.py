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

from mailsec.ids import parse_numeric_id
from mailsec.model import Disposition
from mailsec.scan.policy import AllowPolicy, BlockPolicy, ImpersonationEntry, Policy, TrustedDomain
from mailsec.store.schema import domains, policies
from mailsec.store.settings_ids import next_settings_id

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
    return parse_numeric_id(value)


class PolicyRepo:
    def __init__(self, engine: Engine, revalidate_seconds: float = 0.0) -> None:
        self.engine = engine
        # 0: every `policy()` call checks the database (the API and ingest see their own writes at once); a queue
        # worker process sets a second, sparing the check per message (~1 ms) for a change that lands within it.
        self.revalidate_seconds = revalidate_seconds
        self._cache: dict[str, tuple[tuple[int, ...], Policy, float]] = {}
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
        pk = next_settings_id(conn)
        conn.execute(
            insert(policies).values(
                id=pk,
                account_id=account_id,
                kind=kind,
                data_json=json.dumps(dict(data)),
                created_us=now,
                updated_us=now,
            )
        )
        return PolicyRow(pk, account_id, kind, dict(data), now, now)

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
        """The account's current policy for the scanner (cached; revalidated with one small query, at most every
        `revalidate_seconds`)."""
        with self._lock:
            cached = self._cache.get(account_id)
        now = time.monotonic()
        if cached is not None and now - cached[2] < self.revalidate_seconds:
            return cached[1]
        key = self._fingerprint(account_id)
        if cached is not None and cached[0] == key:
            with self._lock:
                self._cache[account_id] = (key, cached[1], now)
            return cached[1]
        built = self._build(account_id)
        with self._lock:
            self._cache[account_id] = (key, built, now)
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


# -- the gateway's quarantine policy ---------------------------------------------------------------------------------

QUARANTINE = "quarantine"
# What a quarantine policy may name: the dispositions a verdict can have (model.Disposition).
QUARANTINE_VOCABULARY = tuple(d.value for d in Disposition)
MAX_SUBJECT_TAG = 64


@dataclass(frozen=True)
class QuarantinePolicy:
    """Which dispositions the gateway holds, and the tag put before the Subject of delivered ones (per disposition).
    Stored as the account's one `policies` row of kind `quarantine`: {"dispositions": [...], "subject_tag": {...}}."""

    dispositions: tuple[str, ...]
    subject_tag: dict[str, str] = field(default_factory=dict)
    is_default: bool = True
    updated_us: int | None = None

    def holds(self, disposition: str) -> bool:
        return disposition.upper() in self.dispositions

    def tag_for(self, disposition: str) -> str | None:
        return self.subject_tag.get(disposition.upper()) or None


def check_dispositions(values: Iterable[str]) -> tuple[str, ...]:
    """Upper-cased, de-duplicated, each one of QUARANTINE_VOCABULARY; ValueError naming the first that is not."""
    out: list[str] = []
    for value in values:
        name = str(value).strip().upper()
        if name not in QUARANTINE_VOCABULARY:
            raise ValueError(f"{str(value)[:40]!r} is not a disposition; use one of {', '.join(QUARANTINE_VOCABULARY)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def check_subject_tags(values: Mapping[str, str]) -> dict[str, str]:
    """Disposition -> tag. A tag is one line of printable text (any script; it is RFC 2047-encoded when needed)."""
    out: dict[str, str] = {}
    for disposition, tag in values.items():
        (name,) = check_dispositions([disposition])
        text = " ".join(str(tag).split())
        if not text:
            continue  # an empty tag means no tag
        if len(text) > MAX_SUBJECT_TAG or not text.isprintable():
            raise ValueError(f"subject tag for {name} must be printable and at most {MAX_SUBJECT_TAG} characters")
        out[name] = text
    return out


def _quarantine_policy(r: Any, default: Iterable[str]) -> QuarantinePolicy:
    if r is None:
        return QuarantinePolicy(tuple(d.upper() for d in default))
    try:
        data = json.loads(r.data_json or "{}")
    except ValueError:
        data = {}
    data = data if isinstance(data, dict) else {}
    held = data.get("dispositions")
    tags = data.get("subject_tag")
    return QuarantinePolicy(
        tuple(str(d).upper() for d in held) if isinstance(held, list) else tuple(d.upper() for d in default),
        {str(k).upper(): str(v) for k, v in tags.items() if v} if isinstance(tags, dict) else {},
        is_default=False,
        updated_us=int(r.updated_us),
    )


def get_quarantine_policy(engine: Engine, account_id: str, default: Iterable[str]) -> QuarantinePolicy:
    """The account's quarantine policy, or `default` (MAILSEC_QUARANTINE_DISPOSITIONS) with no tags."""
    with engine.connect() as conn:
        r = conn.execute(
            select(policies.c.data_json, policies.c.updated_us)
            .where(policies.c.account_id == account_id, policies.c.kind == QUARANTINE)
            .order_by(policies.c.id.desc())
            .limit(1)
        ).first()
    return _quarantine_policy(r, default)


def set_quarantine_policy(
    engine: Engine, account_id: str, dispositions: Iterable[str], subject_tag: Mapping[str, str] | None = None
) -> QuarantinePolicy:
    """Replace the account's policy (validated first: ValueError and nothing written on a bad value)."""
    held = check_dispositions(dispositions)
    tags = check_subject_tags(subject_tag or {})
    now = _now_us()
    with engine.begin() as conn:
        conn.execute(delete(policies).where(policies.c.account_id == account_id, policies.c.kind == QUARANTINE))
        conn.execute(
            insert(policies).values(
                id=next_settings_id(conn),
                account_id=account_id,
                kind=QUARANTINE,
                data_json=json.dumps({"dispositions": list(held), "subject_tag": tags}),
                created_us=now,
                updated_us=now,
            )
        )
    return QuarantinePolicy(held, tags, is_default=False, updated_us=now)


def reset_quarantine_policy(engine: Engine, account_id: str) -> bool:
    """Back to the default: the account's row is removed. True when there was one."""
    with engine.begin() as conn:
        result = conn.execute(
            delete(policies).where(policies.c.account_id == account_id, policies.c.kind == QUARANTINE)
        )
    return result.rowcount > 0
