"""Domains for the link and impersonation analyzers: registered domains (offline public suffix list), IDN decoding
and lookalike matching (Unicode confusables, ASCII tricks such as 1→l and rn→m, small edit distances, a brand name
embedded in a hyphenated label). Shared so a link to `paypa1.com` and a sender at `paypa1.com` are judged alike."""

from __future__ import annotations

import contextlib
import ipaddress
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources

from confusable_homoglyphs import confusables
from publicsuffixlist import PublicSuffixList
from rapidfuzz.distance import OSA

_ASCII_SKELETON = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l", "!": "l", "3": "e", "5": "s", "$": "s"})
_MULTI = (("rn", "m"), ("vv", "w"))
# Free mailbox providers: anyone can have an address there, so neither a sender there nor its authentication says
# which organisation wrote.
FREEMAIL = frozenset(
    [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "ymail.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mail.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "yandex.ru",
        "yandex.com",
        "mail.ru",
        "protonmail.com",
        "proton.me",
        "zoho.com",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
    ]
)


@cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def data_lines(name: str) -> tuple[str, ...]:
    text = resources.files("mailsec.scan").joinpath("data", name).read_text("utf-8")
    return tuple(ln.strip().lower() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#"))


@cache
def brand_domains() -> tuple[str, ...]:
    """The shipped list of well-known brand domains (scan/data/brands.txt)."""
    return data_lines("brands.txt")


@cache
def established_domains() -> frozenset[str]:
    """Registered domains that are themselves, never lookalikes (scan/data/established.txt plus the brands)."""
    return frozenset(data_lines("established.txt")) | frozenset(brand_domains())


def is_established(domain: str) -> bool:
    return registered_domain(domain) in established_domains()


@cache
def brand_names() -> tuple[tuple[str, frozenset[str]], ...]:
    """(name as it appears in a display name, the registered domains the brand sends from), longest names first:
    scan/data/brand_names.txt plus the name of every brands.txt domain of five letters or more."""
    owned: dict[str, set[str]] = {}
    for line in data_lines("brand_names.txt"):
        name, _, domains = line.partition(":")
        owned.setdefault(" ".join(name.split()), set()).update(domains.split())
    for domain in brand_domains():
        label = _label(registered_domain(domain))
        if len(label) >= 5:
            owned.setdefault(label, set()).add(registered_domain(domain))
    return tuple(sorted(((n, frozenset(d)) for n, d in owned.items()), key=lambda x: (-len(x[0]), x[0])))


@cache
def _free_hosting() -> tuple[tuple[str, str], ...]:
    out = []
    for line in data_lines("free_hosting.txt"):
        host, _, path = line.partition("/")
        out.append((host, "/" + path if path else ""))
    return tuple(out)


# Object stores hold build artifacts and images as much as pages: only a page there (`.html`, a folder) counts.
OBJECT_STORES = frozenset({"storage.googleapis.com", "firebasestorage.googleapis.com", "s3.amazonaws.com",
                           "blob.core.windows.net", "r2.dev"})  # fmt: skip
_PAGE_SUFFIXES = (".html", ".htm", ".shtml", ".xhtml", ".php", ".svg", "/")


@cache
def _free_hosting_by_suffix() -> dict[str, tuple[tuple[int, str, str], ...]]:
    """The entries of data/free_hosting.txt by host, each with its line's rank (the first line that matches wins)."""
    by_suffix: dict[str, list[tuple[int, str, str]]] = {}
    for rank, (suffix, prefix) in enumerate(_free_hosting()):
        by_suffix.setdefault(suffix, []).append((rank, suffix, prefix))
    return {suffix: tuple(entries) for suffix, entries in by_suffix.items()}


@lru_cache(maxsize=4096)
def _free_hosting_entries(host: str) -> tuple[tuple[int, str, str], ...]:
    """The entries whose host is `host` or a parent of it, in file order: looked up by each of the host's dot
    suffixes, instead of testing every line of the file on every link."""
    table = _free_hosting_by_suffix()
    names = [host, *(host[at + 1 :] for at, c in enumerate(host) if c == ".")]
    return tuple(sorted(entry for name in names for entry in table.get(name, ())))


def free_hosting(host: str, path: str = "") -> str | None:
    """The free hosting, form or file-drop service `host` (with `path`) is on (data/free_hosting.txt), else None."""
    for _rank, suffix, prefix in _free_hosting_entries(host.lower().rstrip(".")):
        if not prefix or path.startswith(prefix):
            last = path.rpartition("/")[2]
            if suffix in OBJECT_STORES and not (path.lower().endswith(_PAGE_SUFFIXES) or "." not in last):
                return None
            return suffix + prefix
    return None


@cache
def shortener_domains() -> frozenset[str]:
    """The shipped list of URL shorteners (scan/data/shorteners.txt)."""
    return frozenset(data_lines("shorteners.txt"))


@lru_cache(maxsize=4096)
def ip_literal(host: str) -> str | None:
    """The IP a host names literally (`10.0.0.1`, `[::1]`, and the decimal/hex forms browsers accept), else None."""
    h = host.strip("[]")
    try:
        return str(ipaddress.ip_address(h))
    except ValueError:
        pass
    if h.isascii() and h.isdigit() and len(h) <= 10:
        try:
            return str(ipaddress.IPv4Address(int(h)))
        except ValueError:
            return None
    if h.lower().startswith("0x") and len(h) <= 10:
        try:
            return str(ipaddress.IPv4Address(int(h, 16)))
        except ValueError:
            return None
    return None


@lru_cache(maxsize=4096)
def decode_idn(host: str) -> str:
    """The Unicode form of a host with `xn--` labels; the host itself when it has none or they do not decode."""
    if "xn--" not in host:
        return host
    out = []
    for label in host.split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError, ValueError):
                label = label[4:].encode("ascii").decode("punycode")
        out.append(label)
    return ".".join(out)


@lru_cache(maxsize=4096)
def registered_domain(host: str) -> str:
    """The registrable domain (`a.b.example.co.uk` → `example.co.uk`); the host itself when the list cannot say."""
    host = host.strip().strip(".").lower()
    if not host or ip_literal(host):
        return host
    try:
        return _psl().privatesuffix(host) or host
    except Exception:
        return host


def _label(domain: str) -> str:
    """The registrable label: `paypal` for `paypal.co.uk`."""
    try:
        suffix = _psl().publicsuffix(domain) or ""
    except Exception:
        suffix = ""
    return domain[: -len(suffix) - 1] if suffix and domain.endswith("." + suffix) else domain.partition(".")[0]


def same_name(a: str, b: str) -> bool:
    """Two registered domains with the same name under different suffixes (`amazon.com`, `amazon.co.uk`)."""
    return _label(registered_domain(a)) == _label(registered_domain(b))


@lru_cache(maxsize=8192)
def _char_skeleton(ch: str) -> str:
    if ch.isascii():
        return ch
    try:
        found = confusables.is_confusable(ch, greedy=True, preferred_aliases=["latin"])
    except Exception:
        found = False
    if found:
        for glyph in found[0].get("homoglyphs", []):
            c = glyph.get("c", "")
            if c and c.isascii():
                return c.lower()
    decomposed = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in decomposed if c.isascii())
    return base or ch


@lru_cache(maxsize=8192)
def skeleton(text: str) -> str:
    """A form in which visually confusable strings are equal: `p\u0430ypa1` (Cyrillic a, digit 1) → `paypal`."""
    s = unicodedata.normalize("NFKC", text).casefold()
    s = "".join(_char_skeleton(c) for c in s).lower().translate(_ASCII_SKELETON)
    for a, b in _MULTI:
        s = s.replace(a, b)
    return s


@dataclass(frozen=True)
class Lookalike:
    """`domain` imitates `target`; `kind` is punycode, homoglyph, typo or embedded."""

    domain: str
    target: str
    kind: str

    def describe(self) -> str:
        return {
            "punycode": "an internationalised (punycode) name that renders like",
            "homoglyph": "a name made of look-alike characters imitating",
            "typo": "a one- or two-letter misspelling of",
            "embedded": "a name built around the brand of",
        }[self.kind]


@lru_cache(maxsize=512)
def _targets(targets: tuple[str, ...]) -> tuple[tuple[str, str, str], ...]:
    out = []
    for t in targets:
        t = t.strip().lower().strip(".")
        if t:
            rd = registered_domain(t)
            label = _label(rd)
            out.append((rd, label, skeleton(label)))
    return tuple(out)


@lru_cache(maxsize=512)
def _target_domains(targets: tuple[str, ...]) -> frozenset[str]:
    return frozenset(t[0] for t in _targets(targets))


@lru_cache(maxsize=512)
def _typo_targets(targets: tuple[str, ...]) -> dict[int, tuple[tuple[str, str], ...]]:
    """By label length: the (registered domain, label) of the targets that a label of that length can be a typo of
    (labels of five letters or more, within the edit limit in length), in the order of `targets`."""
    out: dict[int, list[tuple[str, str]]] = {}
    for t_rd, t_label, _ in _targets(targets):
        if len(t_label) >= 5:
            limit = 1 if len(t_label) < 9 else 2
            for length in range(len(t_label) - limit, len(t_label) + limit + 1):
                out.setdefault(length, []).append((t_rd, t_label))
    return {length: tuple(found) for length, found in out.items()}


def _typo_candidates(targets: tuple[str, ...], length: int) -> tuple[tuple[str, str], ...]:
    return _typo_targets(targets).get(length, ())


@lru_cache(maxsize=8192)
def _find(host: str, targets: tuple[str, ...]) -> Lookalike | None:
    host = host.strip().strip(".").lower()
    if not host or ip_literal(host):
        return None
    rd = registered_domain(host)
    label = _label(rd)
    unicode_label = decode_idn(label)
    is_idn = unicode_label != label
    sk = skeleton(unicode_label)
    if rd in _target_domains(targets) or rd in established_domains():
        return None
    for t_rd, t_label, t_sk in _targets(targets):
        if label == t_label:  # the same name under another suffix (amazon.de) is usually the brand itself
            continue
        if len(t_sk) < 3:
            continue
        if sk == t_sk:
            return Lookalike(rd, t_rd, "punycode" if is_idn else "homoglyph")
    if is_idn:
        return None
    for t_rd, t_label in _typo_candidates(targets, len(label)):
        if label != t_label:
            limit = 1 if len(t_label) < 9 else 2
            grown = t_label in label and len(label) - len(t_label) >= 2  # onmicrosoft, mypaypal: not a typo
            if not grown and abs(len(label) - len(t_label)) <= limit and OSA.distance(label, t_label) <= limit:
                return Lookalike(rd, t_rd, "typo")
    if "-" in label:
        tokens = set(sk.split("-"))
        for t_rd, _, t_sk in _targets(targets):
            if len(t_sk) >= 3 and t_sk in tokens:
                return Lookalike(rd, t_rd, "embedded")
    return None


def find_lookalike(host: str, targets: Iterable[str]) -> Lookalike | None:
    """The target domain `host` imitates without being it (or a subdomain of it), else None. An established domain
    (`established_domains`) imitates nothing: `qmail.org` is one letter from `gmail.com` and a project of its own."""
    return _find(host, tuple(targets))
