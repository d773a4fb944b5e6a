"""The account's history with its senders: counted per account on SQLite and PostgreSQL, read before the scan and
written after it by the pipeline, and turned into findings by the pure scanner."""

from __future__ import annotations

from mailsec.mime import parse_message
from mailsec.model import Envelope
from mailsec.pipeline import process_message
from mailsec.scan import scan_message
from mailsec.scan.history import MIN_ACCOUNT_MESSAGES, Contact, SenderHistory, history_findings
from mailsec.scan.identity import identify
from mailsec.services import Services
from mailsec.store.history import DAY_US, HistoryRepo
from support import make_eml

T0 = 1_780_000_000_000_000  # some day in 2026, in microseconds


def test_counters_days_and_account_scope(services: Services) -> None:
    a = services.accounts.create_account("A").id
    b = services.accounts.create_account("B").id
    repo = HistoryRepo(services.engine)
    repo.record_inbound(a, "partner.example", "ann@partner.example", held=False, when_us=T0)
    repo.record_inbound(a, "partner.example", "ann@partner.example", held=False, when_us=T0 + 3600_000_000)
    repo.record_inbound(a, "partner.example", "bob@partner.example", held=False, when_us=T0 + DAY_US)
    repo.record_inbound(a, "evil.example", "x@evil.example", held=True, when_us=T0)
    repo.record_outbound(a, ["Ann@Partner.example", "ann@partner.example", "not-an-address"], when_us=T0)
    h = repo.read(a, "partner.example", "ann@partner.example")
    assert h.account_messages == 4
    assert h.domain == Contact(inbound=3, days=2, outbound=1, flagged=0, first_us=T0)
    assert h.address is not None and (h.address.inbound, h.address.days, h.address.outbound) == (2, 1, 1)
    bad = repo.read(a, "evil.example", "x@evil.example").domain
    assert bad is not None and (bad.inbound, bad.flagged, bad.days) == (0, 1, 0)
    repo.record_reclassified(a, "partner.example", "bob@partner.example")
    assert repo.read(a, "partner.example", "").domain.flagged == 1  # type: ignore[union-attr]
    other = repo.read(b, "partner.example", "ann@partner.example")
    assert other == SenderHistory(account_messages=0, domain=None, address=None)


def test_findings_from_history_need_authentication_for_relief() -> None:
    who = identify(parse_message(make_eml(sender="ann@partner.example")), Envelope())
    authed = who.authenticate("partner.example")
    known = SenderHistory(1000, Contact(inbound=40, days=9, outbound=3), Contact(inbound=5, days=3, outbound=2))
    names = {f.name: f.score for f in history_findings(known, authed)}
    assert names == {"SENDER_REPLIED_TO": -2.0, "SENDER_KNOWN": -2.0}
    assert history_findings(known, who) == []  # a forged From must not borrow a known sender's record
    fresh = SenderHistory(1000, None, None)
    assert [f.name for f in history_findings(fresh, authed)] == ["SENDER_FIRST_CONTACT"]
    assert history_findings(SenderHistory(MIN_ACCOUNT_MESSAGES - 1), authed) == []  # a young account knows nobody
    burnt = SenderHistory(1000, Contact(inbound=40, days=9, flagged=1), None)
    assert [f.name for f in history_findings(burnt, authed)] == ["SENDER_RECLASSIFIED"]
    # free mailboxes are judged per address: gmail.com as a whole is no acquaintance
    gmail = identify(parse_message(make_eml(sender="stranger@gmail.com")), Envelope()).authenticate("gmail.com")
    assert [f.name for f in history_findings(SenderHistory(1000, Contact(inbound=99, days=50), None), gmail)] == [
        "SENDER_FIRST_CONTACT"
    ]


def test_relief_lowers_the_verdict_and_first_contact_raises_it() -> None:
    raw = make_eml(sender="ann@partner.example", subject="invoice", body="Please see the invoice.")
    parsed = parse_message(raw)
    base = scan_message(parsed, Envelope(), model=False)
    first = scan_message(parsed, Envelope(), model=False, history=SenderHistory(1000))
    assert "SENDER_FIRST_CONTACT" in {f.name for f in first.findings}
    assert "SENDER_FIRST_CONTACT" not in {f.name for f in base.findings}


def test_pipeline_reads_and_records_history(services: Services) -> None:
    acc = services.accounts.create_account("A").id
    services.domains.add(acc, "corp.example", verified=True)
    repo = HistoryRepo(services.engine)
    for i in range(MIN_ACCOUNT_MESSAGES):
        repo.record_inbound(acc, f"d{i % 7}.example", f"n{i}@d{i % 7}.example", held=False, when_us=T0)
    out = make_eml(sender="me@corp.example", to="ann@partner.example, colleague@corp.example", subject="hi")
    process_message(services, out, acc, Envelope(mail_from="me@corp.example"))
    h = repo.read(acc, "partner.example", "ann@partner.example")
    assert h.domain is not None and h.domain.outbound == 1 and h.domain.inbound == 0
    assert repo.read(acc, "corp.example", "colleague@corp.example").domain is None  # own domain: not a contact
    fresh = process_message(services, make_eml(sender="who@stranger.example", subject="x"), acc)
    assert "SENDER_FIRST_CONTACT" in {f.name for f in fresh.verdict.findings}
    known = process_message(services, make_eml(sender="ann@partner.example", subject="re: hi"), acc)
    assert "SENDER_FIRST_CONTACT" not in {f.name for f in known.verdict.findings}
    after = repo.read(acc, "stranger.example", "who@stranger.example")
    assert after.domain is not None and after.domain.inbound == 1
    assert after.account_messages == MIN_ACCOUNT_MESSAGES + 2
