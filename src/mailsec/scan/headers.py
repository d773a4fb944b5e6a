"""Header lookups by name, answered from one index per scan.

`ParsedMessage.header`/`header_all` lower-case every header name on every call, and the analyzers ask for a dozen
names per message (a phishing message often carries a hundred headers or more). Inside `scan_message` (`indexed`)
the names are lower-cased once; outside it, these helpers ask the message itself, with the same answers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mailsec.model import ParsedMessage

_local = threading.local()


@contextmanager
def indexed(parsed: ParsedMessage) -> Iterator[None]:
    """Answer lookups on `parsed` from an index while the block runs (the scan does not change the message)."""
    index: dict[str, list[str]] = {}
    for name, value in parsed.headers:
        index.setdefault(name.lower(), []).append(value)
    previous = getattr(_local, "scan", None)
    _local.scan = (parsed, index)
    try:
        yield
    finally:
        _local.scan = previous


def _index(parsed: ParsedMessage) -> dict[str, list[str]] | None:
    scan = getattr(_local, "scan", None)
    return scan[1] if scan is not None and scan[0] is parsed else None


def header(parsed: ParsedMessage, name: str) -> str | None:
    """`parsed.header(name)`: the first value of that header, case-insensitively, or None."""
    index = _index(parsed)
    if index is None:
        return parsed.header(name)
    values = index.get(name.lower())
    return values[0] if values else None


def header_all(parsed: ParsedMessage, name: str) -> list[str]:
    """`parsed.header_all(name)`: every value of that header, top to bottom."""
    index = _index(parsed)
    if index is None:
        return parsed.header_all(name)
    return list(index.get(name.lower(), ()))


def header_names(parsed: ParsedMessage) -> set[str]:
    """The lower-cased names of all headers."""
    index = _index(parsed)
    return set(index) if index is not None else {k.lower() for k, _ in parsed.headers}
