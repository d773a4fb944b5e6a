"""The scanner's fast paths answer exactly as the plain loops they replaced (issue 12: speed without a changed
verdict). Each is checked against the plain statement of its rule on many inputs; the whole-corpus check is
`bench/scan_verdicts.py`."""

from __future__ import annotations

import itertools
import re
import unicodedata
import zlib

import numpy as np
from rapidfuzz.distance import OSA

from mailsec.scan import disguise, fingerprint, lookalike
from mailsec.scan.lookalike import OBJECT_STORES, brand_domains, free_hosting

_PAGE_SUFFIXES = (".html", ".htm", ".shtml", ".xhtml", ".php", ".svg", "/")


def free_hosting_by_every_line(host: str, path: str = "") -> str | None:
    """Every line of data/free_hosting.txt tried in order, the first that matches host and path wins."""
    host = host.lower().rstrip(".")
    for suffix, prefix in lookalike._free_hosting():
        if (host == suffix or host.endswith("." + suffix)) and (not prefix or path.startswith(prefix)):
            last = path.rpartition("/")[2]
            if suffix in OBJECT_STORES and not (path.lower().endswith(_PAGE_SUFFIXES) or "." not in last):
                return None
            return suffix + prefix
    return None


def test_free_hosting_by_suffix_answers_as_every_line_in_order() -> None:
    entries = lookalike._free_hosting()
    assert len(entries) > 50
    hosts = set()
    for suffix, _ in entries:
        first, _, rest = suffix.partition(".")
        hosts.update({suffix, f"x.{suffix}", f"a.b.{suffix}.", suffix.upper(), f"x{suffix}", rest, f"{first}.evil"})
    hosts.update({"", ".", "a..b", "com", "google.com", "docs.google.com", "sites.google.com.evil.example"})
    paths = ["", "/", "/forms/d/x/viewform", "/forms", "/page.html", "/img.png", "/bucket/", "/a/b", "/login.php"]
    checked = 0
    for host, path in itertools.product(sorted(hosts), paths):
        assert free_hosting(host, path) == free_hosting_by_every_line(host, path), (host, path)
        checked += free_hosting_by_every_line(host, path) is not None
    assert checked > 100  # the sample reaches the matching branches, not only misses


def typo_by_every_target(label: str, targets: tuple[str, ...]) -> str | None:
    for t_rd, t_label, _ in lookalike._targets(targets):
        if len(t_label) >= 5 and label != t_label:
            limit = 1 if len(t_label) < 9 else 2
            grown = t_label in label and len(label) - len(t_label) >= 2
            if not grown and abs(len(label) - len(t_label)) <= limit and OSA.distance(label, t_label) <= limit:
                return t_rd
    return None


def typo_by_length(label: str, targets: tuple[str, ...]) -> str | None:
    for t_rd, t_label in lookalike._typo_candidates(targets, len(label)):
        if label != t_label:
            limit = 1 if len(t_label) < 9 else 2
            grown = t_label in label and len(label) - len(t_label) >= 2
            if not grown and abs(len(label) - len(t_label)) <= limit and OSA.distance(label, t_label) <= limit:
                return t_rd
    return None


def test_typo_candidates_by_length_find_the_same_first_target() -> None:
    targets = brand_domains()
    labels = set()
    for domain in targets:
        label = domain.partition(".")[0]
        labels.update({label, label[1:], label[:-1], label + "s", "x" + label, label + "xy", label[:-2], label[::-1]})
        labels.update(label[:i] + "q" + label[i + 1 :] for i in range(len(label)))
    found = 0
    for label in sorted(labels):
        assert typo_by_length(label, targets) == typo_by_every_target(label, targets), label
        found += typo_by_every_target(label, targets) is not None
    assert found > 100


def test_ascii_text_needs_no_per_character_check() -> None:
    """No ASCII character is a format character, in the letter ranges checked, or of a script other than Latin: only
    the capital-I-for-l reading (disguise.py) can find ASCII text disguised."""
    for cp in range(128):
        ch = chr(cp)
        assert unicodedata.category(ch) != "Cf"
        assert disguise._script(ch) in ("LATIN", "")
        assert (disguise._script(ch) == "LATIN") == ch.isalpha()
    assert disguise._disguise("Your Ledger account") is None
    assert disguise._disguise("Your L\u0435dger account")  # a Cyrillic e still gives it away


def test_simhash_counts_bits_as_the_column_sums_do() -> None:
    rng = np.random.default_rng(12)
    for n in (1, 2, 3, 4, 5, 64, 999, 3000, 5000):
        tokens = tuple(f"w{int(x)}" for x in rng.integers(0, 400, n))
        encoded = [t.encode() for t in tokens[: fingerprint.MAX_TOKENS]]
        grams = [b" ".join(p) for p in itertools.pairwise(encoded)] if len(encoded) > 3 else encoded
        expected = 0
        for bit in range(64):
            votes = 0
            for gram in grams:
                h = (zlib.crc32(gram) << 32) | zlib.crc32(gram, fingerprint._SEED)
                votes += (h >> bit) & 1
            expected |= (votes * 2 > len(grams)) << bit
        assert fingerprint.simhash(tokens) == expected, n


def test_split_and_the_regex_whitespace_agree_on_every_character() -> None:
    """extract_text collapses whitespace with str.split instead of re.sub(r"\\s+", " ", ...).strip()."""
    every = "".join(map(chr, range(0xD800))) + "".join(map(chr, range(0xE000, 0x110000)))
    assert re.findall(r"\s", every) == [c for c in every if c.isspace()]
    sample = " \u2003lead\x1c\x1fing\t\n\r\x0b\x0c x\u00a0y\u3000 z\u200b "
    assert " ".join(sample.split()) == re.sub(r"\s+", " ", sample).strip()
