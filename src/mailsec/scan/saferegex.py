"""Regular expressions written by tenants (policy patterns, impersonation addresses, URL ignore patterns) run on
RE2: matching time is linear in the input, so no pattern (`(a+)+b`) can stall a worker. Python's `re` stays for our
own fixed patterns. A pattern RE2 cannot run (back-references, look-around) is refused when it is saved."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

import re2

MAX_PATTERN_LENGTH = 1024
MAX_PROGRAM_BYTES = 1 << 20  # memory RE2 may use for one compiled pattern


class UntrustedPattern(Protocol):
    def search(self, text: str) -> Any: ...

    def fullmatch(self, text: str) -> Any: ...


def _options(ignore_case: bool) -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_PROGRAM_BYTES
    options.case_sensitive = not ignore_case
    return options


def check_pattern(pattern: str) -> None:
    """ValueError (with a message for the API's 400) unless the pattern is one RE2 runs within our limits."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"longer than {MAX_PATTERN_LENGTH} characters")
    if "\x00" in pattern:
        raise ValueError("contains a NUL character")
    try:
        re2.compile(pattern, _options(True))
    except re2.error as exc:
        detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"not a regular expression this server runs (linear-time RE2 syntax: {detail[:200]})") from exc


@lru_cache(maxsize=4096)
def compile_untrusted(pattern: str, ignore_case: bool = True) -> UntrustedPattern | None:
    """The compiled pattern, or None for one that cannot run (stored before validation existed): it matches
    nothing rather than crash or stall the scan."""
    try:
        check_pattern(pattern)
        return re2.compile(pattern, _options(ignore_case))
    except ValueError:
        return None
