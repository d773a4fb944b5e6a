"""Identifier shapes: postfix_id (15 base62, time-ordered), alert_id, investigate id, and the references the API
accepts (either id, raw or percent-encoded)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from urllib.parse import quote

from mailsec import ids

INVESTIGATE_RE = re.compile(r"^[0-9A-Za-z]{15}-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}-[0-9a-f]{8}$")


def test_postfix_id_shape_and_uniqueness() -> None:
    made = [ids.new_postfix_id() for _ in range(5000)]
    assert all(re.fullmatch(r"[0-9A-Za-z]{15}", p) for p in made)
    assert len(set(made)) == len(made)


def test_postfix_ids_sort_by_time() -> None:
    base = 1_795_000_000_000_000
    stamps = [base + d for d in (0, 1, 61, 3_600_000_000, 86_400_000_000 * 400, 10**15)]
    made = [ids.new_postfix_id(us) for us in stamps]
    assert made == sorted(made)
    real = []
    for _ in range(5):
        real.append(ids.new_postfix_id())
        time.sleep(0.002)
    assert real == sorted(real)


def test_alert_and_investigate_ids() -> None:
    at = datetime(2026, 11, 24, 10, 0, 5, 123456, tzinfo=UTC)
    pid = ids.new_postfix_id()
    assert ids.alert_id(pid, at) == f"{pid}-2026-11-24T10:00:05"
    iid = ids.investigate_id(pid, at, b"raw bytes")
    assert INVESTIGATE_RE.match(iid) and iid.startswith(ids.alert_id(pid, at) + "-")
    assert iid != ids.investigate_id(pid, at, b"other bytes")
    assert ids.investigate_id(pid, at, b"raw bytes") == iid  # deterministic
    # Other time zones are written in UTC.
    from datetime import timedelta, timezone

    assert ids.alert_id(pid, at.astimezone(timezone(timedelta(hours=5)))) == f"{pid}-2026-11-24T10:00:05"


def test_references_raw_and_percent_encoded() -> None:
    at = datetime(2026, 1, 5, 10, 0, 0, tzinfo=UTC)
    pid = ids.new_postfix_id()
    iid = ids.investigate_id(pid, at, b"x")
    for ref in (iid, quote(iid, safe=""), iid.replace(":", "%3a"), f" {iid} "):
        assert ids.postfix_id_of(ref) == pid
        assert ids.normalize_message_ref(ref) == iid
    assert ids.postfix_id_of(pid) == pid
    assert ids.postfix_id_of("4Njp3P0STMz2c02Q") == "4Njp3P0STMz2c02Q"  # the real service also uses 16
    for bad in ("", "short", "has space in it!", "../../etc/passwd", pid + "-2026-01-05", "x" * 200, iid + "0"):
        assert ids.postfix_id_of(bad) is None, bad


def test_account_ids() -> None:
    made = ids.new_account_id()
    assert re.fullmatch(r"[0-9a-f]{32}", made) and ids.is_account_id(made)
    assert not ids.is_account_id(made.upper()) and not ids.is_account_id(made[:-1]) and not ids.is_account_id("")
