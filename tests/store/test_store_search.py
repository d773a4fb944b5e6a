"""Every search filter on ingested corpus messages, on SQLite and PostgreSQL. The expected answer of each test is
computed from the files themselves with the stdlib `email` parser (policy.default), never with mailsec's code."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailsec.config import load_settings
from mailsec.model import Disposition, Operation, Verdict
from mailsec.pipeline import process_message
from mailsec.services import Services, open_services
from mailsec.store.records import from_us, to_us
from mailsec.store.search import SearchError, SearchParams, run_search
from support import PostgresServer

HAM = 250
PHISH = 150


def _header_addresses(msg: EmailMessage, name: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        values = msg.get_all(name) or []
        for value in values:
            for a in getattr(value, "addresses", ()):
                out.append((a.display_name or "", (a.addr_spec or "").lower()))
    except Exception:
        pass
    return [(n, e) for n, e in out if e and "@" in e]


def _text(msg: EmailMessage, name: str) -> str:
    try:
        value = msg.get(name)
    except Exception:
        return ""
    return " ".join(str(value).split()) if value is not None else ""


_HREF = re.compile(r"""(?i)href\s*=\s*["']?\s*https?://([^/\s"'<>?#:]+)""")
_URL = re.compile(r"""(?i)https?://([^/\s"'<>?#:()\[\]]+)""")


@dataclass
class Expected:
    """What the stdlib sees in one file."""

    path: Path
    raw: bytes
    froms: list[tuple[str, str]]
    senders: set[str]
    recipients: set[str]
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    reply_to: list[str]
    subject: str
    message_id: str
    attachments: list[tuple[str, str, str, str]]  # name, md5, sha1, sha256
    link_hosts: set[str]
    text: str
    id: str = ""
    pk: int = 0
    scanned_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def searchable(self) -> str:
        parts = [e for _, e in self.froms] + [n for n, _ in self.froms]
        parts += [e for _, e in self.to + self.cc] + [n for n, _ in self.to + self.cc]
        parts += sorted(self.senders) + sorted(self.recipients) + self.reply_to
        parts += [self.subject, self.message_id]
        parts += [x for a in self.attachments for x in a]
        return "\n".join(p for p in parts if p).lower()


def expected_of(path: Path) -> Expected:
    raw = path.read_bytes()
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    froms = _header_addresses(msg, "From")
    senders = {e for _, e in froms}
    return_path = _text(msg, "Return-Path").strip("<> ").lower()
    if "@" in return_path:
        senders = {return_path}
    elif not senders:
        senders = set()
    to, cc = _header_addresses(msg, "To"), _header_addresses(msg, "Cc")
    delivered: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To"):
        try:
            values = [str(v).strip().strip("<>").lower() for v in msg.get_all(name) or [] if "@" in str(v)]
        except Exception:
            values = []
        if values:
            delivered = values[:1]
            break
    recipients = {e for _, e in to + cc} | set(delivered)
    attachments = []
    link_hosts: set[str] = set()
    texts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        try:
            payload = part.get_payload(decode=True) or b""
        except Exception:
            payload = b""
        if ctype in ("text/plain", "text/html") and disposition != "attachment" and not filename:
            try:
                body = part.get_content()
            except Exception:
                body = payload.decode("latin-1")
            texts.append(body)
            hosts = _HREF.findall(body) if ctype == "text/html" else _URL.findall(body)
            link_hosts.update(h.lower().rstrip(".") for h in hosts)
        elif ctype != "message/rfc822" or filename:
            digests = (hashlib.md5(payload).hexdigest(), hashlib.sha1(payload).hexdigest())
            attachments.append((filename or "", *digests, hashlib.sha256(payload).hexdigest()))
    return Expected(
        path=path,
        raw=raw,
        froms=froms,
        senders=senders | {e for _, e in froms},
        recipients=recipients,
        to=to,
        cc=cc,
        reply_to=[e for _, e in _header_addresses(msg, "Reply-To")],
        subject=_text(msg, "Subject"),
        message_id=_text(msg, "Message-ID"),
        attachments=attachments,
        link_hosts=link_hosts,
        text="\n".join(texts).lower(),
    )


def _in_domain(address_or_host: str, domain: str) -> bool:
    host = address_or_host.rpartition("@")[2]
    return host == domain or host.endswith("." + domain)


@dataclass
class CorpusDB:
    services: Services
    account: str
    other_account: str
    messages: list[Expected]

    def search(self, **kwargs: object) -> set[str]:
        """Every id the search returns, following cursors (so per_page never hides a result)."""
        kwargs.setdefault("detections_only", False)
        kwargs.setdefault("per_page", 1000)
        params = SearchParams(**kwargs)  # type: ignore[arg-type]
        out: list[int] = []
        while True:
            page = run_search(self.services.engine, self.account, params)
            out.extend(page.pks)
            if not page.next:
                break
            params.cursor = page.next
        assert len(out) == len(set(out)), "a message came back twice"
        by_pk = {m.pk: m.id for m in self.messages}
        return {by_pk[pk] for pk in out}

    def diff(self, got: set[str], expected: set[str]) -> str:
        paths = {m.id: m.path.name for m in self.messages}
        missing = sorted(paths[i] for i in expected - got)[:5]
        extra = sorted(paths[i] for i in got - expected)[:5]
        return f"missing {missing}, extra {extra}"

    def ids(self, predicate: object) -> set[str]:
        return {m.id for m in self.messages if predicate(m)}  # type: ignore[operator]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def corpus_db(
    request: pytest.FixtureRequest, corpora: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CorpusDB]:
    tmp = tmp_path_factory.mktemp(f"corpus-{request.param}")
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.create_database()
    services = open_services(load_settings(env={}, data_dir=tmp / "data", database_url=url))
    files = sorted((corpora / "spamassassin" / "hard-ham-1").glob("*.eml"))[:HAM]
    files += sorted((corpora / "phishing_pot").glob("*.eml"))[:PHISH]
    account = services.accounts.create_account("corpus").id
    other = services.accounts.create_account("other").id
    expected = []
    for path in files:
        exp = expected_of(path)
        result = process_message(services, exp.raw, account)
        exp.id, exp.pk = result.id, result.pk
        stored = services.messages.get(account, result.id)
        assert stored is not None
        exp.scanned_at = stored.scanned_at
        expected.append(exp)
    # The other account holds copies of a few messages: they must never show up in the first account's searches.
    for exp in expected[:40]:
        process_message(services, exp.raw, other)
    yield CorpusDB(services, account, other, expected)
    services.close()


def test_every_file_is_stored_once(corpus_db: CorpusDB) -> None:
    assert len({m.id for m in corpus_db.messages}) == HAM + PHISH
    assert corpus_db.services.messages.count(corpus_db.account) == HAM + PHISH
    assert corpus_db.search() == {m.id for m in corpus_db.messages}


def test_detections_only_defaults_to_true(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    flagged = {m.id for m in corpus_db.messages[::7]}
    for m in corpus_db.messages[::7]:
        stored = svc.messages.get(corpus_db.account, m.id)
        assert stored is not None
        if stored.final_disposition == "NONE":
            svc.messages.update_verdict(stored.pk, Verdict(disposition=Disposition.SPAM))
    detections = set()
    for m in corpus_db.messages:
        stored = svc.messages.get(corpus_db.account, m.id)
        assert stored is not None
        if stored.final_disposition != "NONE":
            detections.add(m.id)
    assert flagged <= detections
    assert corpus_db.search(detections_only=True) == detections
    page = run_search(svc.engine, corpus_db.account, SearchParams(per_page=1000))
    assert {m.id for m in svc.messages.get_many(page.pks)} == detections
    assert corpus_db.search(detections_only=False) == {m.id for m in corpus_db.messages}


def test_final_disposition(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    wanted = {
        Disposition.MALICIOUS: corpus_db.messages[1::11],
        Disposition.MALICIOUS_BEC: corpus_db.messages[2::23],
        Disposition.SUSPICIOUS: corpus_db.messages[3::13],
        Disposition.BULK: corpus_db.messages[4::17],
    }
    for disposition, chosen in wanted.items():
        for m in chosen:
            svc.messages.update_verdict(m.pk, Verdict(disposition=disposition))
    actual = {}
    for m in corpus_db.messages:
        stored = svc.messages.get(corpus_db.account, m.id)
        assert stored is not None
        actual[m.id] = stored.final_disposition
    for name in ("MALICIOUS", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE"):
        accepted = {"MALICIOUS", "MALICIOUS-BEC"} if name == "MALICIOUS" else {name}
        expected = {i for i, d in actual.items() if d in accepted}
        assert corpus_db.search(final_disposition=name) == expected, name
        assert corpus_db.search(final_disposition=name.lower()) == expected, name
    bec = {i for i, d in actual.items() if d == "MALICIOUS-BEC"}
    assert bec and corpus_db.search(final_disposition="MALICIOUS") >= bec
    with pytest.raises(SearchError):
        corpus_db.search(final_disposition="EVIL")


def _most_common(values: list[str], skip: set[str] = frozenset()) -> list[tuple[str, int]]:  # type: ignore[assignment]
    return [(v, n) for v, n in Counter(values).most_common() if v and v not in skip]


def test_sender_address_and_domain(corpus_db: CorpusDB) -> None:
    addresses = _most_common([a for m in corpus_db.messages for a in m.senders])
    assert addresses[0][1] > 1
    for address, _ in addresses[:3] + addresses[-2:]:
        expected = corpus_db.ids(lambda m, a=address: a in m.senders)
        got = corpus_db.search(sender=address)
        assert got == expected, (address, corpus_db.diff(got, expected))
        assert corpus_db.search(sender=address.upper()) == expected, address
    domains = _most_common([a.rpartition("@")[2] for m in corpus_db.messages for a in m.senders])
    for domain, _ in domains[:3]:
        expected = corpus_db.ids(lambda m, d=domain: any(_in_domain(a, d) for a in m.senders))
        assert corpus_db.search(sender=domain) == expected, domain
        assert corpus_db.search(sender="@" + domain) == expected, domain
    # A parent domain matches its subdomains.
    sub = next(d for d, _ in domains if d.count(".") >= 2)
    parent = sub.split(".", 1)[1]
    expected = corpus_db.ids(lambda m: any(_in_domain(a, parent) for a in m.senders))
    assert corpus_db.search(sender=parent) == expected
    assert corpus_db.search(sender="nobody@nowhere.invalid") == set()


def test_recipient_address_and_domain(corpus_db: CorpusDB) -> None:
    addresses = _most_common([a for m in corpus_db.messages for a in m.recipients])
    for address, _ in addresses[:3] + addresses[-2:]:
        expected = corpus_db.ids(lambda m, a=address: a in m.recipients)
        assert corpus_db.search(recipient=address) == expected, address
    domains = _most_common([a.rpartition("@")[2] for m in corpus_db.messages for a in m.recipients])
    for domain, _ in domains[:3] + domains[-2:]:
        expected = corpus_db.ids(lambda m, d=domain: any(_in_domain(a, d) for a in m.recipients))
        assert corpus_db.search(recipient=domain) == expected, domain


def test_domain_covers_sender_recipient_and_links(corpus_db: CorpusDB) -> None:
    link_only = _most_common(
        [h for m in corpus_db.messages for h in m.link_hosts if h.count(".") >= 1],
    )
    candidates = [d for d, _ in link_only[:3]]
    candidates += [a.rpartition("@")[2] for m in corpus_db.messages[:5] for a in sorted(m.senders)][:2]
    for domain in candidates:
        must = corpus_db.ids(
            lambda m, d=domain: (
                any(_in_domain(a, d) for a in m.senders | m.recipients) or any(_in_domain(h, d) for h in m.link_hosts)
            )
        )
        got = corpus_db.search(domain=domain)
        assert must <= got, (domain, sorted(must - got)[:5])
        # Anything more must at least name the domain somewhere in its text (a link the regexes above missed).
        extra = {m.id: m for m in corpus_db.messages if m.id in got - must}
        for m in extra.values():
            assert domain in m.text or domain.encode() in m.raw.lower(), (domain, m.path)


def test_attachment_hashes_and_names_via_query(corpus_db: CorpusDB) -> None:
    hashes = _most_common([a[3] for m in corpus_db.messages for a in m.attachments])
    assert hashes, "the corpus slice has no attachments"
    checked = 0
    for sha256, _ in hashes[:8]:
        expected = corpus_db.ids(lambda m, h=sha256: any(a[3] == h for a in m.attachments))
        assert corpus_db.search(query=sha256) == expected, sha256
        assert corpus_db.search(query=sha256.upper()) == expected, sha256
        checked += 1
    md5s = _most_common([a[1] for m in corpus_db.messages for a in m.attachments])
    for md5, _ in md5s[:3]:
        assert corpus_db.search(query=md5) == corpus_db.ids(lambda m, h=md5: any(a[1] == h for a in m.attachments))
    names = _most_common([a[0] for m in corpus_db.messages for a in m.attachments if a[0].isascii()])
    for name, _ in names[:3]:
        expected = corpus_db.ids(lambda m, n=name.lower(): n in m.searchable())
        assert corpus_db.search(query=name) >= corpus_db.ids(lambda m, n=name: any(a[0] == n for a in m.attachments))
        assert corpus_db.search(query=name) == expected, name
    assert checked


def _subject_words(corpus_db: CorpusDB) -> list[str]:
    words = [
        w for m in corpus_db.messages for w in set(re.findall(r"[a-z]{5,}", m.subject.lower())) if m.subject.isascii()
    ]
    return [w for w, n in Counter(words).most_common() if n >= 2][:6]


def test_subject_keywords_any_order(corpus_db: CorpusDB) -> None:
    words = _subject_words(corpus_db)
    assert len(words) >= 2
    for w in words:
        expected = corpus_db.ids(lambda m, w=w: w in m.subject.lower())
        assert corpus_db.search(subject=w) == expected, w
    pair = f"{words[1].upper()} {words[0]}"
    expected = corpus_db.ids(lambda m: words[0] in m.subject.lower() and words[1] in m.subject.lower())
    assert corpus_db.search(subject=pair) == expected


def test_exact_subject(corpus_db: CorpusDB) -> None:
    subjects = _most_common([m.subject for m in corpus_db.messages if m.subject.isascii()])
    for subject, _ in subjects[:3] + subjects[-2:]:
        expected = corpus_db.ids(lambda m, s=subject: m.subject.lower() == s.lower())
        assert corpus_db.search(exact_subject=subject) == expected, subject
        assert corpus_db.search(exact_subject=subject.swapcase()) == expected, subject
    some = subjects[0][0]
    assert corpus_db.search(exact_subject=some[:-1]) == corpus_db.ids(lambda m: m.subject.lower() == some[:-1].lower())


def test_message_id_and_alert_id(corpus_db: CorpusDB) -> None:
    for m in corpus_db.messages[::37]:
        if not m.message_id:
            continue
        expected = corpus_db.ids(lambda x, mid=m.message_id: x.message_id == mid)
        assert corpus_db.search(message_id=m.message_id) == expected, m.message_id
        assert corpus_db.search(message_id=m.message_id.strip("<>")) == expected, m.message_id
    for m in corpus_db.messages[::41]:
        stored = corpus_db.services.messages.get(corpus_db.account, m.id)
        assert stored is not None
        assert m.id.startswith(stored.alert_id + "-")
        assert corpus_db.search(alert_id=stored.alert_id) == {m.id}
    assert corpus_db.search(alert_id="0000000000AAAAA-2020-01-01T00:00:00") == set()


def test_query_terms_are_and_of_substrings(corpus_db: CorpusDB) -> None:
    words = _subject_words(corpus_db)
    senders = _most_common([a.rpartition("@")[2] for m in corpus_db.messages for a in m.senders])
    queries = [words[0], words[0].upper(), f"{words[0]} {words[1]}", f"{senders[0][0]} {words[0]}", senders[1][0]]
    queries += [m.message_id.strip("<>") for m in corpus_db.messages[5:8] if m.message_id]
    for q in queries:
        terms = q.lower().split()
        expected = corpus_db.ids(lambda m, ts=terms: all(t in m.searchable() for t in ts))
        assert corpus_db.search(query=q) == expected, q
    # Short terms (below the trigram length) are substrings too.
    two = next(w[:2] for w in words if w[:2] != "no")
    got = corpus_db.search(query=f"{words[0]} {two}")
    assert got == corpus_db.ids(lambda m: words[0] in m.searchable() and two in m.searchable())
    # Received date-time (yyyy-mm-ddThh:mm:ss) is searchable.
    m = corpus_db.messages[3]
    stamp = m.scanned_at.strftime("%Y-%m-%dT%H:%M:%S")
    assert m.id in corpus_db.search(query=stamp)
    # LIKE wildcards are literal (detection reasons are searchable too, and some say "probability 62%").
    for q in ("e%e", "o_o", "s%"):
        assert corpus_db.search(query=q) == corpus_db.ids(lambda m, q=q: q in m.searchable()), q
    assert corpus_db.search(query="zzqx_%_qq") == set()


def test_time_range(corpus_db: CorpusDB) -> None:
    ordered = sorted(corpus_db.messages, key=lambda m: (m.scanned_at, m.pk))
    middle = ordered[len(ordered) // 2]
    later = ordered[(3 * len(ordered)) // 4]
    expected = corpus_db.ids(lambda m: m.scanned_at >= middle.scanned_at)
    assert corpus_db.search(start=middle.scanned_at) == expected
    expected = corpus_db.ids(lambda m: middle.scanned_at <= m.scanned_at <= later.scanned_at)
    assert corpus_db.search(start=middle.scanned_at, end=later.scanned_at) == expected
    assert corpus_db.search(end=middle.scanned_at - timedelta(days=1)) == set()
    assert corpus_db.search(start=datetime.now(UTC) - timedelta(days=400)) == {m.id for m in corpus_db.messages}
    with pytest.raises(SearchError):
        corpus_db.search(start=datetime.now(UTC) + timedelta(days=1))
    with pytest.raises(SearchError):
        corpus_db.search(start=later.scanned_at, end=middle.scanned_at - timedelta(seconds=1))


def test_time_boundaries_are_exact_to_the_microsecond(corpus_db: CorpusDB) -> None:
    for m in corpus_db.messages[::9]:
        assert from_us(to_us(m.scanned_at)) == m.scanned_at
        assert m.id in corpus_db.search(start=m.scanned_at, end=m.scanned_at)


def test_message_action(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    plan = {
        "MOVED": (Operation.MOVE, corpus_db.messages[0:30:3]),
        "PREVIEW": (Operation.PREVIEW, corpus_db.messages[1:40:4]),
        "QUARANTINE_RELEASED": (Operation.RELEASE, corpus_db.messages[2:20:5]),
        "SUBMITTED": (Operation.RECLASSIFY, corpus_db.messages[60:70]),
    }
    for _, (op, chosen) in plan.items():
        for m in chosen:
            svc.messages.add_action(m.pk, op, folder="JunkEmail", requested_by="test@example.com")
    svc.messages.add_action(corpus_db.messages[100].pk, Operation.QUARANTINE_RELEASE)
    for name, (_, chosen) in plan.items():
        expected = {m.id for m in chosen}
        if name == "QUARANTINE_RELEASED":
            expected.add(corpus_db.messages[100].id)
        assert corpus_db.search(message_action=name) == expected, name
        assert corpus_db.search(message_action=name.lower()) == expected, name
    with pytest.raises(SearchError):
        corpus_db.search(message_action="DELETED")


def test_delivery_status(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    for m in corpus_db.messages[::10]:
        svc.messages.set_state(m.pk, delivery_status="quarantined", is_quarantined=True)
    for m in corpus_db.messages[5::25]:
        svc.messages.set_state(m.pk, delivery_status="delivered")
    quarantined = {m.id for m in corpus_db.messages[::10]} - {m.id for m in corpus_db.messages[5::25]}
    delivered = {m.id for m in corpus_db.messages[5::25]}
    assert corpus_db.search(delivery_status="quarantined") == quarantined
    assert corpus_db.search(delivery_status="DELIVERED") == delivered
    assert corpus_db.search(delivery_status="bounced") == set()


def test_smtp_helo_ip(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    by_ip: dict[str, set[str]] = {}
    for m in corpus_db.messages:
        stored = svc.messages.get(corpus_db.account, m.id)
        assert stored is not None
        ip = stored.smtp_helo_server_ip
        if ip:
            by_ip.setdefault(ip, set()).add(m.id)
    assert by_ip
    # Independently: the IP must appear in a Received header of every message it names.
    for ip, expected in sorted(by_ip.items(), key=lambda kv: -len(kv[1]))[:4]:
        assert corpus_db.search(smtp_helo_ip=ip) == expected
        for m in corpus_db.messages:
            if m.id in expected:
                assert ip.encode() in m.raw
    assert corpus_db.search(smtp_helo_ip="203.0.113.254") == set()


def test_paging_bounds(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    total = len(corpus_db.messages)
    with pytest.raises(SearchError):
        run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=1001))
    with pytest.raises(SearchError):
        run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=0))
    with pytest.raises(SearchError):
        run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, page=0))
    full = run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=1000))
    assert len(full.pks) == total and full.next is None
    pages: list[int] = []
    page_no = 1
    while True:
        page = run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=37, page=page_no))
        if not page.pks:
            break
        pages.extend(page.pks)
        page_no += 1
    assert pages == full.pks
    assert page_no == -(-total // 37) + 1
    far = run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, page=10_000, per_page=50))
    assert far.pks == []
    with pytest.raises(SearchError):
        run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, cursor="not-a-cursor"))


def test_cursor_paging_forward_and_back(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    full = run_search(svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=1000)).pks
    pages = []
    params = SearchParams(detections_only=False, per_page=45)
    page = run_search(svc.engine, corpus_db.account, params)
    assert page.previous is None
    pages.append(page)
    while page.next:
        page = run_search(
            svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=45, cursor=page.next)
        )
        pages.append(page)
    assert [pk for p in pages for pk in p.pks] == full
    back = pages[-1]
    for expected in reversed(pages[:-1]):
        assert back.previous
        back = run_search(
            svc.engine, corpus_db.account, SearchParams(detections_only=False, per_page=45, cursor=back.previous)
        )
        assert back.pks == expected.pks
    assert back.previous is None


def test_no_data_crosses_accounts(corpus_db: CorpusDB) -> None:
    svc = corpus_db.services
    other_page = run_search(svc.engine, corpus_db.other_account, SearchParams(detections_only=False, per_page=1000))
    mine = {m.pk for m in corpus_db.messages}
    assert len(other_page.pks) == 40 and not set(other_page.pks) & mine
    m = corpus_db.messages[0]
    assert svc.messages.get(corpus_db.other_account, m.id) is None
    assert svc.messages.get(corpus_db.other_account, m.id.split("-")[0]) is None
    sender = sorted(m.senders)[0]
    got = run_search(
        svc.engine, corpus_db.other_account, SearchParams(detections_only=False, per_page=1000, sender=sender)
    )
    assert not set(got.pks) & mine
