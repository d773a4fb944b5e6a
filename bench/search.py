"""Search latency at 1,000,000 messages, on SQLite and on PostgreSQL.

The database is filled from the corpora without scanning each message: the ~4,750 corpus messages are parsed once
(`mailsec.mime.parse_message`), then every stored message takes its body from one corpus message, its sender,
recipients and subject from others, a unique postfix id and a time spread over the year before the fill. Rows are
built by the repository's own code (`mailsec.store.messages.message_values` / `term_values`, i.e. `MessageRecord`),
so `search_text`, `message_terms` and the FTS / trigram index are what ingest would write. Verdicts follow the
corpus label (phish → MALICIOUS/SUSPICIOUS/SPOOF, spam → SPAM/BULK, ham → mostly NONE); 2% of messages get an action
log entry. Attachments/links/trace rows are not written (no search reads them).

Built databases are cached under bench/.cache/ (SQLite file, PostgreSQL cluster); reruns only measure.

    nice -n 10 .venv/bin/python bench/search.py [--messages 1000000] [--engines sqlite,postgresql] [--runs 50]
        [--rebuild] [--fill-only] [--no-doc] [--console]

`--console` measures the console instead (issue 15): the store query of the search page for typical search-box
texts, the dashboard's figures, and the real pages over HTTP; its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import dataclasses
import functools
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from sqlalchemy import Engine, Table, create_engine, event, text  # noqa: E402

from mailsec import ids  # noqa: E402
from mailsec.evaluate import list_messages  # noqa: E402
from mailsec.mime import parse_message  # noqa: E402
from mailsec.model import Disposition, Envelope, Finding, ParsedMessage, Verdict  # noqa: E402
from mailsec.store import records  # noqa: E402
from mailsec.store.db import open_database  # noqa: E402
from mailsec.store.messages import message_values, term_values  # noqa: E402
from mailsec.store.records import MessageRecord, from_us, to_us  # noqa: E402
from mailsec.store.schema import action_log, message_terms, messages  # noqa: E402
from mailsec.store.search import SearchParams, run_search  # noqa: E402
from support import CORPORA, PostgresServer, free_port  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- bench:search -->", "<!-- /bench:search -->"
FOLDERS = {
    "phishing_pot": "phish",
    "spamassassin/spam-1": "spam",
    "spamassassin/easy-ham-1": "ham",
    "spamassassin/hard-ham-1": "ham",
}
LABEL_WEIGHTS = {"ham": 0.80, "spam": 0.12, "phish": 0.08}
DISPOSITIONS = {
    "phish": [(Disposition.MALICIOUS, 0.5), (Disposition.SUSPICIOUS, 0.3), (Disposition.SPOOF, 0.2)],
    "spam": [(Disposition.SPAM, 0.6), (Disposition.BULK, 0.4)],
    "ham": [(Disposition.NONE, 0.95), (Disposition.BULK, 0.05)],
}
ACTIONS = [("MOVE", 0.010), ("PREVIEW", 0.005), ("RELEASE", 0.003), ("SUBMISSION", 0.002)]
BATCH = 10_000
COPIES = 10
ACCOUNT = "b" * 32
TABLES = ("messages", "message_terms", "action_log")


# -- templates ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Template:
    label: str
    parsed: ParsedMessage
    raw_sha256: str
    raw_size: int
    envelope_from: str
    envelope_to: tuple[str, ...]


def _memoize_pure_helpers() -> None:
    """`terms()` re-derives the link domains of the body on every message; they are pure functions of a string,
    so memoizing them gives the same rows at a fraction of the cost."""
    records.link_domain = functools.lru_cache(maxsize=200_000)(records.link_domain)  # type: ignore[assignment]
    records.domain_and_parents = functools.lru_cache(maxsize=200_000)(records.domain_and_parents)  # type: ignore[assignment]


def load_templates() -> list[Template]:
    """Parse every corpus message once (cached: parsing is the slow part)."""
    cache = CACHE / "search-templates.pkl"
    if cache.exists():
        with cache.open("rb") as f:
            cached: list[Template] = pickle.load(f)
        return cached
    import hashlib

    out: list[Template] = []
    t0 = time.monotonic()
    paths = [(label, p) for folder, label in FOLDERS.items() for p in list_messages(CORPORA / folder)]
    for n, (label, path) in enumerate(paths, 1):
        raw = path.read_bytes()
        parsed = parse_message(raw)
        rec = MessageRecord(ACCOUNT, "x", datetime.now(UTC), "", 0, "API", parsed, Envelope(), Verdict())  # type: ignore[arg-type]
        light = dataclasses.replace(parsed, text_body="", html_body="", inline_parts={})
        out.append(
            Template(label, light, hashlib.sha256(raw).hexdigest(), len(raw), rec.envelope_from, tuple(rec.envelope_to))
        )
        if n % 500 == 0:
            print(f"  parsed {n}/{len(paths)} corpus messages ({time.monotonic() - t0:.0f} s)", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    with cache.open("wb") as f:
        pickle.dump(out, f)
    return out


class BenchRecord(MessageRecord):
    """A MessageRecord whose raw bytes are the template's: the id hash comes from the template's digest."""

    @property
    def investigate_id(self) -> str:
        return f"{self.alert_id}-{self.raw_sha256[:8]}"


def verdict_for(disposition: Disposition) -> Verdict:
    if disposition == Disposition.NONE:
        return Verdict()
    reason = f"bench: corpus label says {disposition.value}"
    return Verdict(
        disposition=disposition,
        findings=(Finding("bench_label", disposition, 10.0, reason),),
        detection_reasons=(reason,),
        threat_categories=("Phishing",) if disposition in (Disposition.MALICIOUS, Disposition.SUSPICIOUS) else (),
    )


def _base62(n: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(digits[r])
    return "".join(reversed(out))


def _pick(rng: random.Random, choices: list[tuple[Any, float]]) -> Any:
    x = rng.random()
    for value, weight in choices:
        x -= weight
        if x < 0:
            return value
    return choices[-1][0]


@dataclasses.dataclass
class Batch:
    messages: list[dict[str, Any]]
    terms: list[dict[str, Any]]
    actions: list[dict[str, Any]]


@dataclasses.dataclass
class Base:
    """One distinct message built by `MessageRecord`; stored `copies` times under its own ids and times."""

    row: dict[str, Any]
    terms: list[tuple[str, str]]
    alert_lower: str
    ts: str


def build_bases(templates: list[Template], unique: int, rng: random.Random) -> list[Base]:
    _memoize_pure_helpers()
    by_label = {label: [t for t in templates if t.label == label] for label in LABEL_WEIGHTS}
    senders = [t for t in templates if t.parsed.from_ is not None]
    verdicts = {d: verdict_for(d) for choices in DISPOSITIONS.values() for d, _ in choices}
    base_time = datetime(2026, 1, 1, tzinfo=UTC)
    bases = []
    t0 = time.monotonic()
    for i in range(unique):
        label = _pick(rng, list(LABEL_WEIGHTS.items()))
        body = rng.choice(by_label[label])
        sender = rng.choice(senders)
        rcpt = rng.choice(templates)
        subj = rng.choice(templates)
        parsed = dataclasses.replace(
            body.parsed,
            from_=sender.parsed.from_,
            to=rcpt.parsed.to,
            cc=rcpt.parsed.cc,
            subject=subj.parsed.subject,
            message_id=f"{i}.{body.parsed.message_id}" if body.parsed.message_id else "",
        )
        rec = BenchRecord(
            account_id=ACCOUNT,
            postfix_id=_base62(i, 15),
            scanned_at=base_time,
            raw_sha256=body.raw_sha256,
            raw_size=body.raw_size,
            delivery_mode="API",  # type: ignore[arg-type]
            parsed=parsed,
            envelope=Envelope(mail_from=sender.envelope_from, rcpt_to=rcpt.envelope_to),
            verdict=verdicts[_pick(rng, DISPOSITIONS[label])],
        )
        terms = [(t["kind"], t["value"]) for t in term_values(0, rec)]
        bases.append(Base(message_values(rec), terms, rec.alert_id.lower(), ids.format_ts(base_time).lower()))
        if (i + 1) % 20_000 == 0:
            print(f"  built {i + 1:,}/{unique:,} distinct records ({time.monotonic() - t0:.0f} s)", flush=True)
    return bases


def generate(templates: list[Template], count: int, anchor_us: int, stats: dict[str, Any]) -> Iterator[Batch]:
    """Deterministic stream of rows, oldest first (pk order = time order, as ingest makes it).

    `count / COPIES` distinct records are built by `MessageRecord` (the costly part); each is then stored COPIES
    times at different times under its own postfix id, alert id and investigate id (patched into its row and
    search text exactly where `MessageRecord` puts them)."""
    rng = random.Random(20261125)
    bases = build_bases(templates, max(1, count // COPIES), rng)
    year = 365 * 86_400 * 1_000_000
    times = sorted(anchor_us - rng.randrange(year) for _ in range(count))
    sa: collections.Counter[str] = collections.Counter()
    ra: collections.Counter[str] = collections.Counter()
    dom: collections.Counter[str] = collections.Counter()
    batch = Batch([], [], [])
    action_choices = [*ACTIONS, (None, 1.0)]
    for i in range(count):
        pk = i + 1
        base = bases[rng.randrange(len(bases))]
        scanned_us = times[i]
        postfix_id = _base62(scanned_us, 10) + _base62(i, 5)
        ts = ids.format_ts(from_us(scanned_us))
        alert = f"{postfix_id}-{ts}"
        row = dict(base.row)
        row["pk"] = pk
        row["postfix_id"] = postfix_id
        row["alert_id"] = alert
        row["id"] = f"{alert}-{row['raw_sha256'][:8]}"
        row["scanned_us"] = scanned_us
        row["search_text"] = row["search_text"].replace(base.alert_lower, alert.lower()).replace(base.ts, ts.lower())
        batch.messages.append(row)
        for kind, value in base.terms:
            batch.terms.append(
                {"message_pk": pk, "account_id": ACCOUNT, "kind": kind, "value": value, "scanned_us": scanned_us}
            )
            if kind == "sa":
                sa[value] += 1
            elif kind == "ra":
                ra[value] += 1
            elif kind == "d":
                dom[value] += 1
        op = _pick(rng, action_choices)
        if op:
            batch.actions.append(
                {
                    "message_pk": pk,
                    "operation": op,
                    "completed_us": scanned_us + 60_000_000,
                    "status": "completed",
                    "folder": "JunkEmail" if op == "MOVE" else None,
                    "requested_by": "bench",
                }
            )
        if len(batch.messages) >= BATCH:
            yield batch
            batch = Batch([], [], [])
    if batch.messages:
        yield batch
    stats["senders"] = sa.most_common()
    stats["recipients"] = ra.most_common()
    stats["domains"] = dom.most_common(200)


# -- filling -----------------------------------------------------------------------------------------------------


def _sqlite_fill_engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-1000000", "temp_store=MEMORY"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    return engine


def _drop_secondary(conn: Any, dialect: str) -> list[str]:
    """Drop the secondary indexes (and the FTS insert trigger) of the bulk-filled tables; return their DDL."""
    ddl: list[str] = []
    if dialect == "sqlite":
        rows = conn.execute(
            text(
                "SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('messages','message_terms','action_log')"
                " AND sql IS NOT NULL AND type IN ('index','trigger') AND name != 'messages_fts_ai'"
                " UNION ALL SELECT type, name, sql FROM sqlite_master WHERE name = 'messages_fts_ai'"
            )
        ).all()
        for kind, name, sql in rows:
            ddl.append(sql)
            conn.execute(text(f'DROP {kind.upper()} "{name}"'))
    else:
        rows = conn.execute(
            text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename IN "
                "('messages','message_terms','action_log') AND i.indexname NOT IN "
                "(SELECT conname FROM pg_constraint)"
            )
        ).all()
        for name, sql in rows:
            ddl.append(sql)
            conn.execute(text(f'DROP INDEX "{name}"'))
    return ddl


def bulk_insert(conn: Any, dialect: str, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany (SQLite) / COPY (PostgreSQL) straight on the driver: SQLAlchemy's per-row parameter handling
    costs more than the database does at this volume. Same rows, same columns."""
    if not rows:
        return
    cols = list(rows[0])
    raw = conn.connection.driver_connection
    if dialect == "sqlite":
        values = [tuple(int(v) if isinstance(v, bool) else v for v in (r[c] for c in cols)) for r in rows]
        sql = f"INSERT INTO {table.name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        raw.executemany(sql, values)
        return
    with raw.cursor() as cur, cur.copy(f"COPY {table.name} ({', '.join(cols)}) FROM STDIN") as copy:
        for r in rows:
            copy.write_row(tuple(r[c] for c in cols))


def fill(targets: dict[str, Engine], templates: list[Template], count: int, anchor_us: int) -> dict[str, Any]:
    """One generation pass feeding every target database (generation is the costly part)."""
    stats: dict[str, Any] = {}
    t0 = time.monotonic()
    ddl: dict[str, list[str]] = {}
    for dialect, engine in targets.items():
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO accounts (id, name, created_us, settings_json) VALUES (:id, 'bench', :t, '{}')"),
                {"id": ACCOUNT, "t": anchor_us - 400 * 86_400 * 1_000_000},
            )
            ddl[dialect] = _drop_secondary(conn, dialect)
    done = 0
    spent = dict.fromkeys(targets, 0.0)

    def load(dialect: str, engine: Engine, batch: Batch) -> None:
        t1 = time.monotonic()
        tables = ((messages, batch.messages), (message_terms, batch.terms), (action_log, batch.actions))
        with engine.begin() as conn:
            for table, rows in tables:
                bulk_insert(conn, dialect, table, rows)
        spent[dialect] += time.monotonic() - t1

    pool = concurrent.futures.ThreadPoolExecutor(len(targets))
    pending: list[concurrent.futures.Future[None]] = []
    for batch in generate(templates, count, anchor_us, stats):
        for f in pending:  # one batch in flight per database while the next one is generated
            f.result()
        pending = [pool.submit(load, dialect, engine, batch) for dialect, engine in targets.items()]
        done += len(batch.messages)
        if done % 50_000 == 0 or done == count:
            rate = done / (time.monotonic() - t0)
            eta = (count - done) / rate
            inserts = ", ".join(f"{d} inserts {t:.0f} s" for d, t in spent.items())
            print(f"  {done:,}/{count:,} messages ({rate:,.0f}/s, ETA {eta:,.0f} s; {inserts})", flush=True)
    for f in pending:
        f.result()
    pool.shutdown()
    stats["fill_rows_s"] = time.monotonic() - t0
    stats["insert_s"] = spent

    def rebuild(dialect: str, engine: Engine) -> None:
        t1 = time.monotonic()
        with engine.begin() as conn:
            if dialect == "postgresql":
                conn.execute(text("SET maintenance_work_mem = '1GB'"))
                conn.execute(text("SELECT setval(pg_get_serial_sequence('messages', 'pk'), :n)"), {"n": count})
            for sql in ddl[dialect]:
                t2 = time.monotonic()
                conn.execute(text(sql))
                print(f"    [{dialect}] {sql[:80]} ({time.monotonic() - t2:.0f} s)", flush=True)
            if dialect == "sqlite":
                t2 = time.monotonic()
                conn.execute(text("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')"))
                print(f"    [{dialect}] FTS rebuild ({time.monotonic() - t2:.0f} s)", flush=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        stats[f"index_s_{dialect}"] = time.monotonic() - t1

    threads = [threading.Thread(target=rebuild, args=item) for item in targets.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


# -- databases ---------------------------------------------------------------------------------------------------


class CachedPostgres(PostgresServer):
    """The test fixture's throwaway cluster, but kept under bench/.cache and reused when it exists."""

    def start(self) -> None:
        if not (self.root / "data" / "PG_VERSION").exists():
            super().start()
            return
        if os.geteuid() == 0:
            self.proc_user = "postgres"
        from support import _pg_bin

        pg_ctl = _pg_bin("pg_ctl")
        assert pg_ctl
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
            f"-c synchronous_commit=off -c shared_buffers=256MB -c effective_cache_size=4GB -c work_mem=32MB"
        )
        self._run(pg_ctl, "-D", str(self.root / "data"), "-o", opts, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        from support import _pg_bin

        pg_ctl = _pg_bin("pg_ctl")
        if pg_ctl:
            self._run(pg_ctl, "-D", str(self.root / "data"), "-m", "fast", "stop")


def database_size(engine: Engine, dialect: str, path: Path | None) -> int:
    if dialect == "sqlite":
        assert path is not None
        return path.stat().st_size
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


@dataclasses.dataclass
class Target:
    dialect: str
    url: str
    meta_path: Path
    path: Path | None = None
    server: PostgresServer | None = None
    meta: dict[str, Any] | None = None


def open_target(dialect: str, count: int, rebuild: bool) -> Target:
    """The cached database of this engine (started, for PostgreSQL); `meta` is None when it needs filling."""
    meta_path = CACHE / f"search-{dialect}-{count}.json"
    if dialect == "sqlite":
        path = CACHE / f"search-{count}.db"
        if rebuild:
            meta_path.unlink(missing_ok=True)
        target = Target(dialect, f"sqlite:///{path}", meta_path, path=path)
        if not meta_path.exists():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    else:
        root = CACHE / f"pg-{count}"
        if rebuild and root.exists():
            subprocess.run(["rm", "-rf", str(root)], check=True)
            meta_path.unlink(missing_ok=True)
        server = CachedPostgres(root, port=free_port())
        server.start()
        target = Target(dialect, server.url(), meta_path, server=server)
        if not meta_path.exists():
            with create_engine(server.url(), isolation_level="AUTOCOMMIT").connect() as c:
                c.execute(text("DROP SCHEMA public CASCADE"))
                c.execute(text("CREATE SCHEMA public"))
    if meta_path.exists():
        target.meta = json.loads(meta_path.read_text())
    return target


def fill_targets(targets: list[Target], count: int, templates_fn: Callable[[], list[Template]]) -> None:
    todo = [t for t in targets if t.meta is None]
    if not todo:
        return
    for t in todo:
        open_database(t.url).dispose()  # the migrations, exactly as the app runs them
    anchor = datetime.now(UTC).replace(microsecond=0)
    print(f"filling {', '.join(t.dialect for t in todo)} with {count:,} messages", flush=True)
    engines = {t.dialect: _sqlite_fill_engine(t.path) if t.path else create_engine(t.url) for t in todo}
    stats = fill(engines, templates_fn(), count, to_us(anchor))
    for t in todo:
        engines[t.dialect].dispose()
        if t.path is not None:  # back to the app's journal mode
            with create_engine(t.url).connect() as c:
                c.execute(text("PRAGMA journal_mode=WAL"))
        engine = create_engine(t.url)
        meta = {
            **stats,
            "size": database_size(engine, t.dialect, t.path),
            "anchor": anchor.isoformat(),
            "count": count,
            "fill_total_s": stats["fill_rows_s"] + stats[f"index_s_{t.dialect}"],
        }
        engine.dispose()
        t.meta_path.write_text(json.dumps(meta))
        t.meta = meta
        print(f"  [{t.dialect}] filled in {meta['fill_total_s']:.0f} s, {meta['size'] / 2**30:.2f} GiB", flush=True)


# -- measuring ---------------------------------------------------------------------------------------------------


def _at_quantile(counts: list[list[Any]], q: float) -> str:
    """The value at quantile q of the frequency-sorted list (q=0 the commonest)."""
    return str(counts[min(len(counts) - 1, int(len(counts) * q))][0])


def searches(meta: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, kind, params) — kind 'filter' or 'query' picks the goal."""
    anchor = datetime.fromisoformat(meta["anchor"])
    senders, rcpts, domains = meta["senders"], meta["recipients"], meta["domains"]
    sender = _at_quantile(senders, 0.05)
    rare_sender = _at_quantile(senders, 0.9)
    rcpt = _at_quantile(rcpts, 0.05)
    domain = next(d for d, _ in domains if d not in ("example.com", "com"))
    range_ = {"start": anchor - timedelta(days=120), "end": anchor - timedelta(days=113)}
    return [
        ("listing, all mail (30 days)", "filter", {"detections_only": False}),
        ("listing, detections only (30 days)", "filter", {"detections_only": True}),
        (f"sender = {sender} (common)", "filter", {"sender": sender, "detections_only": False}),
        (f"sender = {rare_sender} (rare)", "filter", {"sender": rare_sender, "detections_only": False}),
        (f"recipient = {rcpt}", "filter", {"recipient": rcpt, "detections_only": False}),
        (f"domain = {domain}", "filter", {"domain": domain, "detections_only": False}),
        ("subject contains 'invoice'", "filter", {"subject": "invoice", "detections_only": False}),
        ("final_disposition = MALICIOUS", "filter", {"final_disposition": "MALICIOUS"}),
        ("time range: one week, 4 months ago", "filter", {**range_, "detections_only": False}),
        ("message_action = MOVED", "filter", {"message_action": "MOVED", "detections_only": False}),
        ("alert_id (exact)", "filter", {"alert_id": "@alert", "detections_only": False}),
        ("query: 1 common term 'list'", "query", {"query": "list", "detections_only": False}),
        ("query: 1 rare term", "query", {"query": "@rare", "detections_only": False}),
        ("query: 2 common terms 'list example'", "query", {"query": "list example", "detections_only": False}),
        ("query: common + rare term", "query", {"query": "example @rare", "detections_only": False}),
        ("page 50 at per_page 100", "filter", {"page": 50, "per_page": 100, "detections_only": False}),
        ("cursor paging, 100 pages of 100", "filter", {"per_page": 100, "detections_only": False, "walk": 100}),
    ]


def _resolve(engine: Engine, params: dict[str, Any], anchor: datetime, count: int) -> dict[str, Any]:
    """Fill in the values that need the data: a real alert id, a rare query term."""
    out = dict(params)
    if out.get("alert_id") == "@alert":
        with engine.connect() as conn:
            out["alert_id"] = conn.execute(
                text("SELECT alert_id FROM messages WHERE scanned_us <= :t ORDER BY scanned_us DESC LIMIT 1 OFFSET 7"),
                {"t": to_us(anchor - timedelta(days=3))},
            ).scalar_one()
    if "@rare" in str(out.get("query", "")):
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT subject_lower FROM messages WHERE scanned_us <= :t AND length(subject_lower) > 20 "
                    "ORDER BY scanned_us DESC LIMIT 1 OFFSET :skip"
                ),
                {"t": to_us(anchor - timedelta(days=2)), "skip": max(1, count // 250)},
            ).scalar_one()
        word = max(row.split(), key=len)
        out["query"] = out["query"].replace("@rare", word)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(fn: Callable[[], int], runs: int, warmup: int = 3) -> tuple[float, float, int]:
    rows = 0
    for _ in range(warmup):
        rows = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rows = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), percentile(times, 0.95), rows


def search_params(params: dict[str, Any]) -> SearchParams:
    return SearchParams(**{k: v for k, v in params.items() if k != "walk"})


def run_direct(engine: Engine, params: dict[str, Any], anchor: datetime, runs: int) -> tuple[float, float, int]:
    if "walk" in params:
        sp = search_params(params)
        page = run_search(engine, ACCOUNT, sp, now=anchor)
        times = []
        for _ in range(params["walk"]):
            t0 = time.perf_counter()
            page = run_search(engine, ACCOUNT, dataclasses.replace(sp, cursor=page.next), now=anchor)
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times), percentile(times, 0.95), len(page.pks)
    sp = search_params(params)
    return measure(lambda: len(run_search(engine, ACCOUNT, sp, now=anchor).pks), runs)


def run_http(url: str, params: dict[str, Any], anchor: datetime, runs: int) -> tuple[float, float, int, str]:
    """Through the live app (uvicorn in a thread), with explicit start/end so the cached data stays in the window."""
    import uvicorn

    from mailsec.api.app import create_app
    from mailsec.config import load_settings
    from mailsec.services import open_services

    settings = load_settings(
        env={"MAILSEC_RATE_LIMIT_PER_MINUTE": "0"}, data_dir=CACHE / "search-http", database_url=url
    )
    services = open_services(settings)
    token = services.accounts.create_token(ACCOUNT, can_write=False, name="bench")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    query = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in params.items()}
    query.setdefault("start", (anchor - timedelta(days=30)).isoformat())
    query.setdefault("end", anchor.isoformat())
    query = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items()}
    statuses: collections.Counter[int] = collections.Counter()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}/client/v4/accounts/{ACCOUNT}/email-security",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        ) as client:

            def once() -> int:
                r = client.get("/investigate", params=query)
                statuses[r.status_code] += 1
                return len(r.json()["result"])

            p50, p95, rows = measure(once, runs)
    finally:
        server.should_exit = True
        thread.join(10)
        services.close()
    return p50, p95, rows, ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))


def vacuum_once(target: Target, engine: Engine) -> None:
    """What autovacuum does on a live server after the bulk load: sets the visibility map, so index-only scans stay
    index-only (PostgreSQL; once per cached database)."""
    meta = target.meta
    if target.dialect != "postgresql" or meta is None or meta.get("vacuumed"):
        return
    t0 = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    meta["vacuumed"] = True
    target.meta_path.write_text(json.dumps(meta))
    print(f"  [{target.dialect}] VACUUM ANALYZE ({time.monotonic() - t0:.0f} s)", flush=True)


def bench_engine(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    dialect, url, server, meta = target.dialect, target.url, target.server, target.meta
    assert meta is not None
    results: dict[str, Any] = {
        "fill_s": meta["fill_total_s"],
        "size": meta["size"],
        "count": meta["count"],
        "rows": {},
    }
    try:
        if args.fill_only:
            return results
        engine = open_database(url)  # applies any newer migration (indexes) to the cached database
        vacuum_once(target, engine)
        anchor = datetime.fromisoformat(meta["anchor"])
        for name, kind, params in searches(meta):
            resolved = _resolve(engine, params, anchor, meta["count"])
            p50, p95, rows = run_direct(engine, resolved, anchor, args.runs)
            results["rows"][name] = {"kind": kind, "p50": p50, "p95": p95, "rows": rows, "params": str(resolved)}
            print(f"  [{dialect}] {name:<55} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  rows {rows}", flush=True)
        engine.dispose()
        http: dict[str, Any] = {}
        for name, params in (
            ("HTTP: listing, all mail (30 days)", {"detections_only": False}),
            ("HTTP: final_disposition = MALICIOUS", {"final_disposition": "MALICIOUS"}),
            ("HTTP: query 'list example'", {"query": "list example", "detections_only": False}),
            ("HTTP: per_page 1000", {"per_page": 1000, "detections_only": False}),
        ):
            p50, p95, rows, statuses = run_http(url, params, anchor, max(10, args.runs // 2))
            http[name] = {"p50": p50, "p95": p95, "rows": rows, "statuses": statuses}
            print(f"  [{dialect}] {name:<55} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  rows {rows} ({statuses})")
        results["http"] = http
    finally:
        if server is not None:
            server.stop()
    (CACHE / f"search-results-{dialect}.json").write_text(json.dumps(results, indent=1))
    return results


# -- the console (issue 15) -------------------------------------------------------------------------------------

CONSOLE_PER_PAGE = 50


def console_searches(meta: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, search box text) of the console's search page, operators as analysts type them."""
    sender = _at_quantile(meta["senders"], 0.05)
    domain = next(d for d, _ in meta["domains"] if d not in ("example.com", "com"))
    return [
        ("empty search box (30 days, all mail)", ""),
        ("is:detection", "is:detection"),
        ("disposition:malicious after:7d", "disposition:malicious after:7d"),
        (f"from:{sender}", f"from:{sender}"),
        (f"domain:{domain} is:detection", f"domain:{domain} is:detection"),
        ("invoice (free text)", "invoice"),
        ("list example (two free-text terms)", "list example"),
        ("subject:invoice after:90d", "subject:invoice after:90d"),
    ]


def console_page_rows(engine: Engine, q: str, now: datetime) -> int:
    """What the search page asks the store: the page of pks, then those rows (as `console/rows.py` reads them)."""
    from mailsec.console import query
    from mailsec.console.rows import message_row
    from mailsec.store.messages import MessageRepo

    params = query.parse(q, now=now)
    params.per_page = CONSOLE_PER_PAGE
    page = run_search(engine, ACCOUNT, params, now=now)
    return len([message_row(m) for m in MessageRepo(engine).get_many(page.pks)])


def console_http(url: str, paths: list[tuple[str, str]], runs: int) -> dict[str, Any]:
    """The console's pages through the live app (uvicorn in a thread), signed in with a token as a browser is."""
    import re

    import uvicorn

    from mailsec.api.app import create_app
    from mailsec.config import load_settings
    from mailsec.services import open_services

    settings = load_settings(env={"MAILSEC_RATE_LIMIT_PER_MINUTE": "0"}, data_dir=CACHE / "console-http",
                             database_url=url)  # fmt: skip
    services = open_services(settings)
    token = services.accounts.create_token(ACCOUNT, can_write=False, name="bench console")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            form = client.get("/signin").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', form)
            assert csrf is not None, "no sign-in form"
            signed = client.post("/signin", data={"csrf": csrf.group(1), "token": token})
            assert signed.status_code == 303, signed.status_code
            for name, path in paths:
                statuses: collections.Counter[int] = collections.Counter()

                def once(path: str = path, statuses: collections.Counter[int] = statuses) -> int:
                    r = client.get(path)
                    statuses[r.status_code] += 1
                    return r.text.count("<tr")

                p50, p95, rows = measure(once, runs)
                out[name] = {"p50": p50, "p95": p95, "rows": rows, "statuses": dict(statuses)}
                print(f"  [console http] {name:<50} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  <tr> {rows} {dict(statuses)}")
    finally:
        server.should_exit = True
        thread.join(10)
        services.close()
    return out


def bench_console(target: Target, runs: int) -> dict[str, Any]:
    from urllib.parse import quote

    from mailsec.store.dashboard import Bucket, DashboardRepo

    meta = target.meta
    assert meta is not None
    anchor = datetime.fromisoformat(meta["anchor"])
    engine = open_database(target.url)
    vacuum_once(target, engine)
    results: dict[str, Any] = {"count": meta["count"], "store": {}, "dashboard": {}, "http": {}}
    results["measured_at"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results["runs"], results["load"] = runs, os.getloadavg()[0]
    results["fill_s"], results["size"] = meta["fill_total_s"], meta["size"]
    try:
        for name, q in console_searches(meta):
            p50, p95, rows = measure(functools.partial(console_page_rows, engine, q, anchor), runs)
            results["store"][name] = {"p50": p50, "p95": p95, "rows": rows}
            print(f"  [{target.dialect}] console search {name:<45} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  rows {rows}")
        repo = DashboardRepo(engine)
        for name, length, bucket in (
            ("24 hours, hourly", timedelta(hours=24), Bucket.HOUR),
            ("7 days, daily", timedelta(days=7), Bucket.DAY),
            ("30 days, daily", timedelta(days=30), Bucket.DAY),
        ):

            def once(length: timedelta = length, bucket: Bucket = bucket) -> int:
                return repo.summary(ACCOUNT, anchor - length, anchor, bucket).total

            p50, p95, total = measure(once, max(5, runs // 5), warmup=1)
            results["dashboard"][name] = {"p50": p50, "p95": p95, "rows": total}
            print(f"  [{target.dialect}] dashboard {name:<50} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  messages {total}")
    finally:
        engine.dispose()
    paths = [(f"search page: {name}", f"/a/{ACCOUNT}/search?q={quote(q)}") for name, q in console_searches(meta)[:6]]
    paths += [
        ("dashboard page (7 days)", f"/a/{ACCOUNT}/dashboard?period=7d"),
        ("quarantine page", f"/a/{ACCOUNT}/quarantine"),
    ]
    results["http"] = console_http(target.url, paths, max(10, runs // 2))
    (CACHE / f"console-results-{target.dialect}.json").write_text(json.dumps(results, indent=1))
    return results


def _measured_when(results: dict[str, dict[str, Any]]) -> str:
    """When and how each engine's figures were taken: a run can measure one engine and keep the other's saved
    figures, on a shared machine whose load says how far to trust them."""
    labels = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    when = []
    for key, label in labels.items():
        r = results.get(key, {})
        if not r.get("measured_at"):
            continue
        runs = r.get("runs", 20)
        load = f", load average {r['load']:.1f} on 2 cores" if r.get("load") is not None else ""
        fill = f", filled in {r['fill_s'] / 60:.1f} min, {r['size'] / 2**30:.2f} GiB" if r.get("fill_s") else ""
        when.append(f"{label} {r['measured_at']} ({runs} runs, pages {max(10, runs // 2)}{load}{fill})")
    return f" Measured: {'; '.join(when)}; each engine filled by the same seeded generator." if when else ""


def _verdict(results: dict[str, dict[str, Any]]) -> str:
    """The slowest search page of each engine against the goal, so the table need not be read for the answer."""
    parts = []
    for key, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        pages = {k: v for k, v in results.get(key, {}).get("http", {}).items() if k.startswith("search page")}
        if pages:
            name, worst = max(pages.items(), key=lambda kv: kv[1]["p95"])
            met = "under" if worst["p95"] < 300 else "OVER"
            parts.append(f"{label} {worst['p95']:.0f} ms p95 (`{name.removeprefix('search page: ')}`), {met} 300 ms")
    return f" Slowest search page: {'; '.join(parts)}." if parts else ""


def _engine_rows(sqlite: dict[str, Any], pg: dict[str, Any], part: str, label: str, rows: bool) -> list[str]:
    """One table row per measured name of `part`, SQLite next to PostgreSQL (either may be missing)."""
    out = []
    for name in dict.fromkeys([*sqlite.get(part, {}), *pg.get(part, {})]):
        s, p = sqlite.get(part, {}).get(name), pg.get(part, {}).get(name)
        tail = f" {(s or p or {}).get('rows', '')} |" if rows else ""
        out.append(f"| {label.format(name)} | {_cell(s)} | {_cell(p)} |{tail}")
    return out


def write_console_doc(results: dict[str, dict[str, Any]]) -> str:
    from docsection import write_section

    sqlite, pg = results.get("sqlite", {}), results.get("postgresql", {})
    count = (sqlite or pg).get("count", 0)
    lines = [
        f"The console's pages on the same {count:,}-message store as above (`bench/search.py --console`). Goal: the "
        "search page answers in under 300 ms. p50 / p95 in ms, after 3 warm-up runs. Dates relative to the fill "
        "time."
        + (
            ""
            if pg
            else " PostgreSQL not measured in this run: its 1M fill (~40 min of CPU) did not fit beside the "
            "other work on the shared machine; `--engines postgresql --console` measures it."
        )
        + _measured_when(results)
        + _verdict(results),
        "",
        f"What the search page asks the store (`console/query.py` parse, `run_search`, the page's {CONSOLE_PER_PAGE} "
        "rows read):",
        "",
        "| search box | SQLite p50 / p95 | PostgreSQL p50 / p95 | rows |",
        "|---|---|---|---|",
    ]
    lines += _engine_rows(sqlite, pg, "store", "`{}`", rows=True)
    lines += [
        "",
        "Dashboard figures (`store/dashboard.py`: volume by disposition, top senders, domains, categories):",
        "",
        "| period | SQLite p50 / p95 | PostgreSQL p50 / p95 | messages counted |",
        "|---|---|---|---|",
    ]
    lines += _engine_rows(sqlite, pg, "dashboard", "{}", rows=True)
    lines += [
        "",
        "The real pages over HTTP (uvicorn + httpx, signed in with a read-only token; the whole HTML):",
        "",
        "| page | SQLite p50 / p95 | PostgreSQL p50 / p95 |",
        "|---|---|---|",
    ]
    lines += _engine_rows(sqlite, pg, "http", "{}", rows=False)
    body = "\n".join(lines)
    write_section("console", "Console speed (`bench/search.py --console`)", body, DOC)
    return body


# -- report ------------------------------------------------------------------------------------------------------


def _cell(r: dict[str, Any] | None) -> str:
    return f"{r['p50']:.1f} / {r['p95']:.1f}" if r else "-"


def write_doc(results: dict[str, dict[str, Any]], runs: int) -> str:
    sqlite, pg = results.get("sqlite", {}), results.get("postgresql", {})
    names = list(dict.fromkeys([*sqlite.get("rows", {}), *pg.get("rows", {})]))
    count = (sqlite or pg).get("count", 0)
    lines = [
        START,
        "## Search latency (`bench/search.py`)",
        "",
        f"{count:,} messages derived from the corpora (bodies, senders, recipients and subjects drawn from the "
        "4,753 corpus messages, times spread over one year, rows built by `MessageRecord` so `message_terms` and the "
        "FTS5 trigram / pg_trgm index are as ingest writes them; ~20% detections, 2% with an action-log entry). "
        f"Latency in ms through `mailsec.store.search.run_search`, p50 / p95 over {runs} runs after 3 warm-up runs, "
        "per_page 20 unless stated, default 30-day window unless stated, one account. Shared 2-core machine, "
        "PostgreSQL 15 with the test fixture's settings (fsync off, shared_buffers 256MB); the two engines were "
        "measured at the same time, on a machine other jobs kept busy.",
        "",
        "| search | SQLite p50 / p95 | PostgreSQL p50 / p95 | rows returned | goal |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        s, p = sqlite.get("rows", {}).get(name), pg.get("rows", {}).get(name)
        rows = (s or p or {}).get("rows", "")
        kind = (s or p or {}).get("kind", "filter")
        goal = "< 300 ms" if kind == "query" else "< 100 ms"
        lines.append(f"| {name} | {_cell(s)} | {_cell(p)} | {rows} | {goal} |")
    http_names = list(dict.fromkeys([*sqlite.get("http", {}), *pg.get("http", {})]))
    if http_names:
        lines += [
            "",
            "End to end through the live API (uvicorn + httpx, one client, the full message objects serialised):",
            "",
            "| request | SQLite p50 / p95 | PostgreSQL p50 / p95 | rows returned |",
            "|---|---|---|---|",
        ]
        for name in http_names:
            s, p = sqlite.get("http", {}).get(name), pg.get("http", {}).get(name)
            lines.append(f"| {name} | {_cell(s)} | {_cell(p)} | {(s or p or {}).get('rows', '')} |")
    lines += ["", "| database | fill time | size |", "|---|---|---|"]
    for label, r in (("SQLite", sqlite), ("PostgreSQL", pg)):
        if r:
            lines.append(f"| {label} | {r['fill_s'] / 60:.1f} min | {r['size'] / 2**30:.2f} GiB |")
    lines += [
        "",
        "Method: 100,000 distinct messages are built by `MessageRecord` from the parsed corpus (body, sender, "
        "recipients, subject drawn independently); each is stored 10 times under its own postfix id, alert id, "
        "investigate id and time (patched where `MessageRecord` puts them, search text included). Bulk load "
        "without secondary indexes (SQLite executemany with journal off; PostgreSQL COPY), indexes and the FTS "
        "index built afterwards, then ANALYZE (and VACUUM on PostgreSQL). Attachment/link/trace rows are not "
        "written: no search reads them.",
        "",
        "Search compiler changes found by profiling (EXPLAIN QUERY PLAN / EXPLAIN ANALYZE): sender/recipient/domain "
        "filters became `pk IN (message_terms of that value inside the window)`, so `ix_terms_lookup` drives them "
        "(before: every message of the window probed for its terms, 47 ms at 20k messages and growing); the FTS5 "
        "match list is bounded to the pk range of the window (a common term no longer materialises every match of "
        "every year); subject words also narrow through the text index.",
        "",
        "Open: on PostgreSQL a `query` term of middling frequency (the 'rare' term above occurs in ~4,400 messages "
        "over the year) misses the 300 ms goal: the pg_trgm bitmap fetches every year's match from the heap before "
        "the time filter (EXPLAIN ANALYZE: 5,300 heap blocks, 90% outside the window). Bounding by the window's pk "
        "range as on SQLite does not work there (PostgreSQL answers min/max(pk) over the window with a pkey scan, "
        "780 ms). Candidates: a composite GIN (btree_gin: scanned_us + trigram) in a new migration, or bounding by "
        "pk from a stored time-to-pk map.",
    ]
    lines.append(END)
    section = "\n".join(lines)
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in doc and END in doc:
        doc = doc[: doc.index(START)] + section + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(doc)
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rebuild", action="store_true", help="refill the cached databases")
    parser.add_argument("--fill-only", action="store_true")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--doc-only", action="store_true", help="rewrite the doc section from the saved results")
    parser.add_argument("--console", action="store_true", help="measure only the console's search and dashboard")
    args = parser.parse_args()
    if not CORPORA.is_dir():
        sys.exit(f"corpora not found at {CORPORA}")
    CACHE.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MAILSEC_RATE_LIMIT_PER_MINUTE", "0")
    templates: list[Template] = []

    def templates_fn() -> list[Template]:
        if not templates:
            templates.extend(load_templates())
        return templates

    engines = [] if args.doc_only else [d.strip() for d in args.engines.split(",")]
    targets = [open_target(d, args.messages, args.rebuild) for d in engines]
    try:
        fill_targets(targets, args.messages, templates_fn)
    except BaseException:
        for t in targets:
            if t.server is not None:
                t.server.stop()
        raise
    if args.console:
        console_results = {}
        for target in targets:
            try:
                if not args.fill_only:
                    console_results[target.dialect] = bench_console(target, args.runs)
            finally:
                if target.server is not None:
                    target.server.stop()
        for dialect in ("sqlite", "postgresql"):
            path = CACHE / f"console-results-{dialect}.json"
            if dialect not in console_results and path.exists():
                saved = json.loads(path.read_text())
                if saved.get("count") == args.messages:
                    console_results[dialect] = saved
        if console_results and not args.no_doc:
            print(write_console_doc(console_results))
        return
    for target in targets:
        bench_engine(target, args)
    if not args.fill_only and not args.no_doc:
        results = {}
        for dialect in ("sqlite", "postgresql"):
            path = CACHE / f"search-results-{dialect}.json"
            if path.exists():
                data = json.loads(path.read_text())
                if data.get("count") == args.messages:
                    results[dialect] = data
        print(write_doc(results, args.runs))


if __name__ == "__main__":
    main()
