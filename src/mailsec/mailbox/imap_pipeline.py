"""IMAP command pipelining (RFC 3501 §5.5) on a logged-in connection's socket: several tagged commands written in
one go, their responses read back and sorted by tag. imapclient waits for each reply, so a batch of N commands costs
N round trips there and one here.

Only for commands whose results do not depend on each other ambiguously: UID commands, and SELECT between them.
A server may run a folder's commands in parallel (Dovecot answers two pipelined SEARCHes before either's tagged OK),
so an untagged response is only known to belong to the commands since the last SELECT: it goes to the oldest
command not yet completed, and callers read a folder's responses from all its replies together (a SELECT waits for
the commands before it and the ones after wait for it). Hostile or broken servers get a clear `PipelineError`, and
the connection is then of no more use: the caller drops it."""

from __future__ import annotations

import itertools
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from imapclient import imap_utf7

FLIGHT_BYTES = 32 * 1024  # commands written before their replies are read: fits any socket buffer, so no deadlock
MAX_LINE = 1024 * 1024
MAX_LITERAL = 16 * 1024 * 1024
_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_TAGGED = re.compile(rb"^(\S+) (OK|NO|BAD)\b ?(.*)\r\n$", re.DOTALL)


class PipelineError(Exception):
    """The server broke the protocol, closed the session or left data unread: the connection is no more use."""


class CommandFailed(Exception):
    """A command of the batch was refused (NO or BAD): the session is fine, the request is not."""


@dataclass(frozen=True)
class Untagged:
    """One untagged response (after `* `): its text with each literal left as its `{n}` marker, and the literals'
    bytes in order."""

    text: bytes
    literals: tuple[bytes, ...] = ()


@dataclass
class Reply:
    command: bytes
    status: str = ""  # OK, NO or BAD
    text: str = ""
    untagged: list[Untagged] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "OK"


def quoted(value: str) -> bytes:
    """An IMAP quoted string: US-ASCII without CR, LF or NUL (what a command line can carry)."""
    if not value.isascii() or any(c in value for c in "\r\n\0"):
        raise ValueError(f"{value!r} cannot be sent as an IMAP quoted string")
    return b'"' + value.replace("\\", "\\\\").replace('"', '\\"').encode("ascii") + b'"'


def mailbox(name: str) -> bytes:
    """A folder name as a command carries it: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    return quoted(imap_utf7.encode(name).decode("ascii"))


def uid_set(uids: Sequence[int]) -> bytes:
    """`1:3,7,9:10`: consecutive UIDs as ranges, so a large set stays a short line."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an empty UID set")
    parts: list[str] = []
    for _, run in itertools.groupby(enumerate(ordered), key=lambda p: p[1] - p[0]):
        values = [v for _, v in run]
        parts.append(str(values[0]) if len(values) == 1 else f"{values[0]}:{values[-1]}")
    return ",".join(parts).encode("ascii")


class Pipeline:
    """The pipelined sender of one connection. Its tags (`ms1`, `ms2`, ...) differ from imaplib's (four capitals
    and a number), and each batch is read to its last tagged reply, so the connection is left as imapclient expects
    it: nothing sent that is not answered, nothing received that is not read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._counter = itertools.count(1)
        self._buffer = bytearray()
        self._at = 0  # what of `_buffer` is read already: a large reply is not copied once per line or per recv

    def run(self, commands: Sequence[bytes]) -> list[Reply]:
        """Send the commands (each without tag and CRLF), in flights of at most FLIGHT_BYTES; their replies in the
        same order. Refusals are in the replies (`check` raises for them)."""
        replies: list[Reply] = []
        flight: list[tuple[bytes, Reply]] = []
        size = 0
        for command in commands:
            if b"\r" in command or b"\n" in command:
                raise ValueError("an IMAP command is one line")
            tag = b"ms%d" % next(self._counter)
            line = tag + b" " + command + b"\r\n"
            if flight and size + len(line) > FLIGHT_BYTES:
                self._exchange(flight)
                flight, size = [], 0
            reply = Reply(command)
            replies.append(reply)
            flight.append((line, reply))
            size += len(line)
        if flight:
            self._exchange(flight)
        return replies

    def _exchange(self, flight: list[tuple[bytes, Reply]]) -> None:
        self.sock.sendall(b"".join(line for line, _ in flight))
        pending = {line.split(b" ", 1)[0]: reply for line, reply in flight}
        order = list(pending)
        while pending:
            text, literals = self._response()
            if text.startswith(b"* "):
                if text[2:].upper().startswith(b"BYE"):
                    raise PipelineError(f"the server closed the session: {_show(text)}")
                oldest = next(t for t in order if t in pending)
                pending[oldest].untagged.append(Untagged(text[2:].rstrip(b"\r\n"), literals))
                continue
            match = _TAGGED.match(text)
            if match is None or match.group(1) not in pending:
                raise PipelineError(f"unexpected response {_show(text)}")
            reply = pending.pop(match.group(1))
            reply.status, reply.text = match.group(2).decode(), match.group(3).decode("utf-8", "replace")
        if self._at < len(self._buffer):
            raise PipelineError(f"the server sent more than was asked for: {_show(bytes(self._buffer[self._at :]))}")

    def _response(self) -> tuple[bytes, tuple[bytes, ...]]:
        """One response: its lines joined, each literal's bytes taken out (its `{n}` marker stays in the text)."""
        text = b""
        literals: list[bytes] = []
        while True:
            line = self._line()
            text += line
            if len(text) > MAX_LINE:
                raise PipelineError("a response longer than 1 MiB")
            found = _LITERAL.search(line)
            if found is None:
                return text, tuple(literals)
            size = int(found.group(1))
            if size > MAX_LITERAL:
                raise PipelineError(f"a literal of {size} bytes")
            literals.append(self._exactly(size))

    def _line(self) -> bytes:
        while (end := self._buffer.find(b"\r\n", self._at)) < 0:
            if len(self._buffer) - self._at > MAX_LINE:
                raise PipelineError("a response line longer than 1 MiB")
            self._fill()
        line = bytes(self._buffer[self._at : end + 2])
        self._at = end + 2
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self._buffer) - self._at < size:
            self._fill()
        data = bytes(self._buffer[self._at : self._at + size])
        self._at += size
        return data

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise PipelineError("the server closed the connection")
        del self._buffer[: self._at]
        self._at = 0
        self._buffer += data


def check(replies: Sequence[Reply]) -> None:
    """Raise `CommandFailed` for the first refused command."""
    for reply in replies:
        if not reply.ok:
            verb = reply.command.split(b" ", 2)
            name = b" ".join(verb[:2] if verb[0].upper() == b"UID" else verb[:1]).decode("ascii", "replace")
            raise CommandFailed(f"{name} refused: {reply.status} {reply.text}".strip())


def _show(data: bytes) -> str:
    return repr(data[:200])
