"""Hostile input: mutated real messages never raise out of parse + scan, and each finishes in bounded time.

A seeded mutation fuzzer (byte flips, truncations, header duplication, MIME boundary damage, splices, encoding
garbage) over small corpus messages. The default run mutates FUZZ_DEFAULT messages; the `slow` run does 10,000."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import pytest

from mailsec.evaluate import list_messages
from mailsec.mime import parse_message
from mailsec.model import Envelope, Verdict
from mailsec.scan import scan_message
from support import make_eml

FUZZ_DEFAULT = 3000
FUZZ_FULL = 10_000
MAX_SEED_BYTES = 12_000
BOUND_SECONDS = 5.0  # a hang guard, not a speed test
_BOUNDARY_RE = re.compile(rb'boundary="?([^";\r\n]+)', re.I)


def _seeds(corpora: Path | None) -> list[bytes]:
    seeds = [
        make_eml(html="<html><body><a href='http://x.example'>x</a><form><input></form></body></html>"),
        make_eml(attachments=[("a.zip", "application/zip", b"PK\x03\x04" + b"\x00" * 40)]),
    ]
    if corpora is None:
        return seeds
    for folder in ("phishing_pot", "spamassassin/spam-1", "spamassassin/easy-ham-1", "spamassassin/hard-ham-1"):
        small = [p for p in list_messages(corpora / folder) if p.stat().st_size <= MAX_SEED_BYTES]
        seeds.extend(p.read_bytes() for p in small[:: max(1, len(small) // 25)])
    return seeds


def _mutate(rng: random.Random, raw: bytes, donor: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(data)
        if op == 0 and n:  # byte flips
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(n)] = rng.randrange(256)
        elif op == 1 and n:  # truncation
            del data[rng.randrange(n) :]
        elif op == 2:  # duplicate a header line many times
            lines = bytes(data).split(b"\n")
            head = [i for i, line in enumerate(lines[:60]) if b":" in line]
            if head:
                i = rng.choice(head)
                lines[i:i] = [lines[i]] * rng.choice((2, 10, 300))
                data = bytearray(b"\n".join(lines))
        elif op == 3:  # damage MIME boundaries
            m = _BOUNDARY_RE.search(data)
            if m:
                b = m.group(1)
                data = bytearray(bytes(data).replace(b"--" + b, rng.choice([b"--", b"--" + b[:-1], b"-" + b + b"="])))
        elif op == 4 and n:  # splice another message in
            at = rng.randrange(n)
            data[at:at] = donor[rng.randrange(max(1, len(donor))) :][:4000]
        elif op == 5 and n:  # delete a chunk
            a = rng.randrange(n)
            del data[a : a + rng.randint(1, 2000)]
        elif op == 6:  # line-ending chaos
            data = bytearray(bytes(data).replace(b"\n", rng.choice([b"\r\n", b"\r", b"\n\n", b""]), rng.randint(1, 50)))
        elif op == 7:  # hostile encodings and headers
            bad = rng.choice([
                b"Content-Transfer-Encoding: base64\n", b"Content-Type: multipart/mixed; boundary=\"\"\n",
                b"Content-Type: text/html; charset=x-unknown-\xff\n", b"Subject: =?utf-8?b?####?=\n",
                b"From: \"\xff\xfe\" <@@>\n", b"Content-Type: message/rfc822\n", b"Date: Mon, 99 Foo 99999 99:99\n",
            ])  # fmt: skip
            data[0:0] = bad
        else:  # nested multiparts
            depth = rng.randint(5, 60)
            nest = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth))
            data.extend(b"\n" + nest + b"\n<html><body>" + b"<div>" * 500 + b"x\n")
    return bytes(data)


def _run(corpora: Path | None, count: int, seed: int) -> tuple[int, float]:
    rng = random.Random(seed)
    seeds = _seeds(corpora)
    worst = 0.0
    scan_message(parse_message(seeds[0]), Envelope())  # warm-up: lazy imports (scikit-learn) are not the message's
    for _ in range(count):
        raw = _mutate(rng, rng.choice(seeds), rng.choice(seeds))
        started = time.perf_counter()
        verdict = scan_message(parse_message(raw), Envelope())
        elapsed = time.perf_counter() - started
        assert isinstance(verdict, Verdict)
        assert not any(f.name == "ANALYZER_ERROR" for f in verdict.findings if f.detail and "text" in f.detail[:5])
        worst = max(worst, elapsed)
        assert elapsed < BOUND_SECONDS, f"a mutated message took {elapsed:.2f}s"
    return count, worst


def _corpora_or_none(request: pytest.FixtureRequest) -> Path | None:
    try:
        return request.getfixturevalue("corpora")  # type: ignore[no-any-return]
    except pytest.skip.Exception:
        return None


def test_mutated_messages_never_raise(request: pytest.FixtureRequest) -> None:
    count, worst = _run(_corpora_or_none(request), FUZZ_DEFAULT, seed=20261125)
    print(f"fuzz: {count} mutated messages, slowest {worst * 1000:.0f} ms")


@pytest.mark.slow
def test_ten_thousand_mutated_messages(request: pytest.FixtureRequest) -> None:
    count, worst = _run(_corpora_or_none(request), FUZZ_FULL, seed=7)
    print(f"fuzz: {count} mutated messages, slowest {worst * 1000:.0f} ms")
