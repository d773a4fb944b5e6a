"""The stdlib `FeedParser` (compat32) algorithm, run over a message that is all in memory.

`FeedParser` is built for data arriving in pieces: every line goes through a deque, a generator per MIME level and a
`NeedMoreData` check, and every multipart compiles a fresh boundary regex. With the whole message at hand the same
algorithm runs as plain recursion over a list of lines, and a part's body is one slice up to the next boundary line.
The `Message` tree it builds is the stdlib's, field for field (headers, payloads, preamble, epilogue, defects); any
surprise hands the message to the stdlib parser instead, so hostile input gets exactly the stdlib's answer.

Nesting deeper than `MAX_DEPTH` is hostile (the stdlib parser would die of RecursionError around depth 1,000 and the
message would read as empty): below that depth the parts are read in one loop, without recursion, and every leaf part
is attached directly to the part at the cap, marked with `NestingTooDeepDefect`. Leaves at any depth stay visible."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable
from email import errors
from email.feedparser import FeedParser
from email.message import Message
from email.policy import compat32
from io import StringIO
from itertools import compress, count, repeat

MAX_DEPTH = 200  # deeper nesting is hostile: flattened, see _Parser._parse_flat

_NLCRE = re.compile(r"\r\n|\r|\n")
_NLCRE_bol = re.compile(r"(\r\n|\r|\n)")

_headerRE = re.compile(r"^(From |[\041-\071\073-\176]*:|[\t ])")

_Matcher = Callable[[str], object]


def _strip_eol(text: str) -> str:
    """`text` without one trailing \\r\\n, \\r or \\n: what the stdlib cuts with `(\\r\\n|\\r|\\n)\\Z`, which scans
    the whole text (a part's payload can be megabytes)."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith(("\r", "\n")):
        return text[:-1]
    return text


class NestingTooDeepDefect(errors.MessageDefect):
    """The parts below this one nest deeper than MAX_DEPTH; its leaf parts were attached to it directly."""


_MISSING = object()


class IndexedMessage(Message):
    """A compat32 `Message` whose header look-ups go through an index built on first use: `Message.get` and `in`
    walk every header, and reading a part's type, disposition, filename, charset and encoding asks a dozen times.
    The index is rebuilt whenever the header list is replaced or changes length, and dropped by `replace_header`
    (the one stdlib edit in place), so it never answers for headers that changed."""

    _hindex: tuple[list[tuple[str, str]], int, dict[str, tuple[str, str]], dict[str, object]] | None = None

    def _cache(self) -> tuple[list[tuple[str, str]], int, dict[str, tuple[str, str]], dict[str, object]]:
        headers: list[tuple[str, str]] = self._headers  # type: ignore[attr-defined]  # Message's own list
        cached = self._hindex
        if cached is not None and cached[0] is headers and cached[1] == len(headers):
            return cached
        index: dict[str, tuple[str, str]] = {}
        for k, v in headers:
            index.setdefault(k.lower(), (k, v))
        cached = self._hindex = (headers, len(headers), index, {})
        return cached

    def _header_index(self) -> dict[str, tuple[str, str]]:
        return self._cache()[2]

    def _get_params_preserve(self, failobj, header):  # the stdlib signature
        """A header's parameters, parsed once (type, filename, name and charset each parse Content-Type again)."""
        params = self._cache()[3]
        key = header.lower()
        if key not in params:
            params[key] = super()._get_params_preserve(_MISSING, header)  # type: ignore[misc]
        found = params[key]
        return failobj if found is _MISSING else list(found)  # type: ignore[call-overload]

    def get(self, name, failobj=None):  # the stdlib signature (overloaded in typeshed)
        hit = self._header_index().get(name.lower())
        if hit is None:
            return failobj
        return self.policy.header_fetch_parse(*hit)

    def __contains__(self, name):  # the stdlib signature
        return name.lower() in self._header_index()

    def replace_header(self, _name, _value):  # the stdlib signature
        self._hindex = None
        super().replace_header(_name, _value)
        self._hindex = None


def _boundary_match(line: str, separator: str) -> tuple[bool, str | None] | None:
    """What `(?P<sep>SEP)(?P<end>--)?(?P<ws>[ \\t]*)(?P<linesep>\\r\\n|\\r|\\n)?$` finds in one line: (end, linesep),
    or None. A line holds at most one line break, at its very end, so no regex (and no compile per boundary)."""
    if not line.startswith(separator):
        return None
    rest = line[len(separator) :]
    end = rest.startswith("--")
    if end:
        rest = rest[2:]
    if rest.endswith("\r\n"):
        body, linesep = rest[:-2], "\r\n"
    elif rest.endswith(("\r", "\n")):
        body, linesep = rest[:-1], rest[-1]
    else:
        body, linesep = rest, None
    if body.strip(" \t"):
        return None
    return end, linesep


class _Boundary:
    """The end-of-part test for one multipart's boundary lines; it knows its separator, so the flat reader can look
    enclosing boundaries up by name."""

    __slots__ = ("separator",)

    def __init__(self, separator: str) -> None:
        self.separator = separator

    def __call__(self, line: str) -> tuple[bool, str | None] | None:
        return _boundary_match(line, self.separator)


class _Parser:
    def __init__(self, text: str) -> None:
        # What BufferedSubFile yields for data fed in one piece and closed: lines split at \r\n, \r or \n, ends kept.
        self.lines: list[str] = StringIO(text, newline="").readlines()
        self.n = len(self.lines)
        self.pos = 0
        self.eof: list[tuple[_Matcher, bool]] = []  # (predicate, is a boundary matcher)
        self.dashes: list[int] | None = None  # indexes of the lines that start with "--", built on first need
        self.stack: list[Message] = []
        self.cur: Message | None = None
        self.last: Message | None = None
        self.depth = 0
        self.dashes_valid = True  # False once a different line was pushed back over a read one

    # -- BufferedSubFile ------------------------------------------------------------------------------------------
    def readline(self) -> str:
        if self.pos >= self.n:
            return ""
        line = self.lines[self.pos]
        for ateof, _ in self.eof:
            if ateof(line):
                return ""
        self.pos += 1
        return line

    def unreadline(self, line: str) -> None:
        if line == "":
            # The stdlib pushes back the '' it read at a (false) EOF; the next read pops it and reports EOF, which
            # is what reading at this position reports anyway.
            return
        self.pos -= 1
        if self.lines[self.pos] is not line:
            self.lines[self.pos] = line  # a different line pushed back (unix-from at the end of the headers)
            self.dashes_valid = False

    def _eof_index(self) -> int:
        """Where the next false (or real) EOF is, from the current position."""
        eof = self.eof
        if not eof:
            return self.n
        lines = self.lines
        if self.dashes_valid and all(is_boundary for _, is_boundary in eof):
            if self.dashes is None:
                self.dashes = list(compress(count(), map(str.startswith, lines, repeat("--"))))
            dashes = self.dashes
            for k in range(bisect_left(dashes, self.pos), len(dashes)):
                i = dashes[k]
                line = lines[i]
                for ateof, _ in eof:
                    if ateof(line):
                        return i
            return self.n
        for i in range(self.pos, self.n):
            line = lines[i]
            for ateof, _ in eof:
                if ateof(line):
                    return i
        return self.n

    def read_rest(self) -> list[str]:
        start = self.pos
        self.pos = self._eof_index()
        return self.lines[start : self.pos]

    # -- FeedParser ---------------------------------------------------------------------------------------------
    def close(self) -> Message:
        self._parsegen()
        root = self._pop_message()
        if root.get_content_maintype() == "multipart" and not root.is_multipart():
            root.defects.append(errors.MultipartInvariantViolationDefect())
        return root

    def _new_message(self) -> Message:
        msg = IndexedMessage(policy=compat32)
        if self.cur and self.cur.get_content_type() == "multipart/digest":
            msg.set_default_type("message/rfc822")
        if self.stack:
            self.stack[-1].attach(msg)
        self.stack.append(msg)
        self.cur = msg
        self.last = msg
        return msg

    def _pop_message(self) -> Message:
        retval = self.stack.pop()
        self.cur = self.stack[-1] if self.stack else None
        return retval

    def _parsegen(self) -> None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                self._parse_flat()
            else:
                self._parse_one()
        finally:
            self.depth -= 1

    def _parse_one(self) -> None:
        cur = self._new_message()
        self._read_headers(cur)
        self._parse_one_body(cur)

    def _read_headers(self, cur: Message) -> None:
        """The header lines: up to the first line that is no header (a blank one is consumed) or a false EOF."""
        lines, eof, match = self.lines, self.eof, _headerRE.match
        boundary_only = all(is_boundary for _, is_boundary in eof)
        start = pos = self.pos
        end = -1
        while pos < self.n:
            line = lines[pos]
            if eof and (not boundary_only or line.startswith("--")) and any(ateof(line) for ateof, _ in eof):
                break
            if not match(line):
                end = pos
                if _NLCRE.match(line):
                    pos += 1
                else:
                    cur.defects.append(errors.MissingHeaderBodySeparatorDefect())
                break
            pos += 1
        headers = lines[start : pos if end < 0 else end]
        self.pos = pos
        self._parse_headers(cur, headers)

    def _parse_one_body(self, cur: Message) -> None:
        if cur.get_content_type() == "message/delivery-status":
            while True:
                self.eof.append((_NLCRE.match, False))
                self._parsegen()
                self._pop_message()
                self.eof.pop()
                self.readline()
                line = self.readline()
                if line == "":
                    break
                self.unreadline(line)
            return
        maintype = cur.get_content_maintype()
        if maintype == "message":
            self._parsegen()
            self._pop_message()
            return
        if maintype == "multipart":
            self._parse_multipart(cur)
            return
        cur.set_payload("".join(self.read_rest()))

    def _parse_multipart(self, cur: Message) -> None:
        boundary = cur.get_boundary()
        if boundary is None:
            cur.defects.append(errors.NoBoundaryInMultipartDefect())
            cur.set_payload("".join(self.read_rest()))
            return
        if str(cur.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
            cur.defects.append(errors.InvalidMultipartContentTransferEncodingDefect())
        match = _Boundary("--" + boundary)

        capturing_preamble = True
        preamble: list[str] = []
        linesep: str | None = None
        close_boundary_seen = False
        while True:
            line = self.readline()
            if line == "":
                break
            mo = match(line)
            if mo:
                if mo[0]:
                    close_boundary_seen = True
                    linesep = mo[1]
                    break
                if capturing_preamble:
                    if preamble:
                        preamble[-1] = _strip_eol(preamble[-1])
                        cur.preamble = "".join(preamble)
                    capturing_preamble = False
                    self.unreadline(line)
                    continue
                while True:  # consume any run of boundary lines
                    line = self.readline()
                    if not match(line):
                        self.unreadline(line)
                        break
                self.eof.append((match, True))
                self._parsegen()
                last = self.last
                assert last is not None
                if last.get_content_maintype() == "multipart":
                    epilogue = last.epilogue
                    if epilogue == "":
                        last.epilogue = None
                    elif epilogue is not None:
                        last.epilogue = _strip_eol(epilogue)
                else:
                    payload = last._payload  # type: ignore[attr-defined]  # what the stdlib parser itself trims
                    if isinstance(payload, str):
                        last._payload = _strip_eol(payload)  # type: ignore[attr-defined]
                self.eof.pop()
                self._pop_message()
                self.last = self.cur
            else:
                preamble.append(line)
        if capturing_preamble:
            cur.defects.append(errors.StartBoundaryNotFoundDefect())
            cur.set_payload("".join(preamble))
            self.read_rest()
            cur.epilogue = ""
            return
        if not close_boundary_seen:
            cur.defects.append(errors.CloseBoundaryNotFoundDefect())
            return
        epilogue_lines = [""] if linesep else []
        epilogue_lines += self.read_rest()
        if epilogue_lines:
            firstline = epilogue_lines[0]
            bolmo = _NLCRE_bol.match(firstline)
            if bolmo:
                epilogue_lines[0] = firstline[len(bolmo.group(0)) :]
        cur.epilogue = "".join(epilogue_lines)

    def _parse_flat(self) -> None:
        """A part nested past MAX_DEPTH, read in one loop instead of recursion: its headers, then every leaf part
        below it (through any multipart and message/* levels) attached to it directly, in order. Boundaries work as
        in the stdlib (a line of an enclosing part's boundary ends the inner ones); preambles and epilogues are
        dropped. Boundaries are looked up by name, so a thousand open levels cost no more per line than one."""
        top = self._new_message()
        top.defects.append(NestingTooDeepDefect())
        outer_seps = {m.separator for m, _ in self.eof if isinstance(m, _Boundary)}
        outer_other = [m for m, _ in self.eof if not isinstance(m, _Boundary)]
        seps: list[str] = []  # the open multiparts' separators, outermost first
        digests: list[bool] = []
        level_of: dict[str, int] = {}  # separator -> its outermost open level

        def stop(line: str) -> tuple[int, bool] | None:
            """(level, is a close boundary) of the boundary line `line`; level -1 for an enclosing part's."""
            if outer_other and any(ateof(line) for ateof in outer_other):
                return -1, False
            if not line.startswith("--"):
                return None
            body = line.rstrip("\r\n").rstrip(" \t")
            if body in outer_seps or (body.endswith("--") and body[:-2] in outer_seps):
                return -1, False
            level = level_of.get(body)
            if body.endswith("--"):
                closing = level_of.get(body[:-2])
                if closing is not None and (level is None or closing < level):
                    return closing, True
            return None if level is None else (level, False)

        def read() -> tuple[list[str], tuple[int, bool] | None]:
            lines, start = self.lines, self.pos
            while self.pos < self.n:
                hit = stop(lines[self.pos])
                if hit is not None:
                    return lines[start : self.pos], hit
                self.pos += 1
            return lines[start:], None

        def new_part(digest: bool) -> Message:
            part = IndexedMessage(policy=compat32)
            if digest:
                part.set_default_type("message/rfc822")
            self.eof.append((lambda line: stop(line) is not None, True))
            try:
                self._read_headers(part)
            finally:
                self.eof.pop()
            return part

        def close_level() -> None:
            sep = seps.pop()
            digests.pop()
            if level_of.get(sep) == len(seps):
                del level_of[sep]

        self._read_headers(top)
        leaves: list[Message] = []
        cur: Message | None = top
        while cur is not None:
            boundary = cur.get_boundary() if cur.get_content_maintype() == "multipart" else None
            if boundary is not None:
                sep = "--" + boundary
                level_of.setdefault(sep, len(seps))
                seps.append(sep)
                digests.append(cur.get_content_type() == "multipart/digest")
                _, hit = read()
            elif cur.get_content_maintype() == "message" and cur.get_content_type() != "message/delivery-status":
                cur = new_part(False)
                continue
            else:
                body, hit = read()
                if cur is top:
                    cur.set_payload("".join(body))
                else:
                    cur.set_payload(_strip_eol("".join(body)) if seps else "".join(body))
                    leaves.append(cur)
            cur = None
            while hit is not None and hit[0] >= 0:
                level, closing = hit
                while len(seps) > level + 1:
                    close_level()
                self.pos += 1
                if closing:
                    close_level()
                    _, hit = read()  # the epilogue
                    continue
                while self.pos < self.n and (run := stop(self.lines[self.pos])) is not None and run[0] == level:
                    self.pos += 1
                cur = new_part(digests[-1])
                break
        if leaves:
            top._payload = leaves  # type: ignore[attr-defined]  # what Message.attach builds, in one step

    def _parse_headers(self, cur: Message, lines: list[str]) -> None:
        headers: list[tuple[str, str]] = cur._headers  # type: ignore[attr-defined]  # where Message.set_raw appends
        name: str | None = None  # the header being read, its first value line and its continuation lines
        value = ""
        more: list[str] = []
        for lineno, line in enumerate(lines):
            if line[0] in " \t":
                if name is None:
                    cur.defects.append(errors.FirstHeaderLineIsContinuationDefect(line))
                    continue
                more.append(line)
                continue
            if name is not None:  # compat32's header_source_parse
                headers.append((name, (value.lstrip(" \t") + "".join(more)).rstrip("\r\n")))
                name, more = None, []
            if line.startswith("From "):
                if lineno == 0:
                    cur.set_unixfrom(_strip_eol(line))
                    continue
                if lineno == len(lines) - 1:
                    self.unreadline(line)
                    return
                cur.defects.append(errors.MisplacedEnvelopeHeaderDefect(line))
                continue
            i = line.find(":")
            if i == 0:
                cur.defects.append(errors.InvalidHeaderDefect("Missing header name."))
                continue
            if i < 0:
                raise AssertionError("header line with no colon")  # the stdlib asserts; fall back to it
            name, value = line[:i], line[i + 1 :]
        if name is not None:
            headers.append((name, (value.lstrip(" \t") + "".join(more)).rstrip("\r\n")))


def stdlib_parse(text: str) -> Message:
    """The reference: what `message_from_bytes(policy=compat32)` builds, fed in one piece."""
    feed = FeedParser(policy=compat32)
    feed.feed(text)
    return feed.close()


def parse_structure(text: str) -> Message:
    """The compat32 `Message` tree of `text` (bytes decoded ascii/surrogateescape), as the stdlib builds it."""
    try:
        return _Parser(text).close()
    except Exception:  # too deep, or anything unforeseen: the stdlib's own answer, whatever it is
        return stdlib_parse(text)
