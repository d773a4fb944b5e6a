"""The form a message is relayed in. RFC 5321 caps a line at 998 octets and next hops refuse longer ones (Dovecot
LMTP, Postfix with strict limits, Exchange), yet real mail has them: like Postfix, the gateway re-encodes each MIME
part holding such a line (quoted-printable for text, base64 otherwise) and folds over-long header lines at a space,
so the content is unchanged once decoded. Header fields named `X-MailSec-*` that arrived from outside are removed:
only mailsec's own, added after this, may claim to speak for it. Pure functions over bytes."""

from __future__ import annotations

import base64
import quopri
import re
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from io import BytesIO

MAX_LINE = 998  # octets, without the CRLF (RFC 5321 4.5.3.1.6)
FOLD_AT = 900  # where an over-long header line is folded (at the last space before it)

_HEAD_END = re.compile(rb"\r?\n\r?\n|\r\r")
_FIELD_START = re.compile(rb"(?m)^(?![ \t])")
_OWN_FIELD = re.compile(rb"(?i)x-mailsec-[^:\r\n]*:")


def has_long_line(data: bytes) -> bool:
    """Whether a line (split at CRLF, LF or CR) is longer than MAX_LINE. `splitlines` runs in C: 0.2 ms for a
    typical message, where a regex for 999 non-break octets costs 9 ms (it restarts at every position)."""
    return len(data) > MAX_LINE and max(map(len, data.splitlines())) > MAX_LINE


def _split_head(raw: bytes) -> tuple[bytes, bytes]:
    if raw.startswith((b"\r\n", b"\n")):
        return b"", raw
    m = _HEAD_END.search(raw)
    return (raw[: m.start()], raw[m.start() :]) if m else (raw, b"")


def strip_own_headers(raw: bytes) -> bytes:
    """`raw` without top-level `X-MailSec-*` header fields (each with its continuation lines)."""
    head, rest = _split_head(raw)
    if b"x-mailsec-" not in head.lower():
        return raw
    fields = [head[a:b] for a, b in _field_spans(head)]
    kept = [f for f in fields if not _OWN_FIELD.match(f)]
    joined = b"".join(kept)
    if kept and fields and fields[-1] not in kept:  # the last field carried no line end of its own
        joined = joined.rstrip(b"\r\n")
    return joined + rest


def _field_spans(head: bytes) -> list[tuple[int, int]]:
    starts = [m.start() for m in _FIELD_START.finditer(head) if m.start() < len(head)]
    return list(zip(starts, [*starts[1:], len(head)], strict=True))


def _fold(line: bytes) -> bytes:
    """A header line folded at spaces so no piece passes FOLD_AT octets where a space allows it."""
    out: list[bytes] = []
    while len(line) > MAX_LINE:
        cut = max(line.rfind(b" ", 1, FOLD_AT), line.rfind(b"\t", 1, FOLD_AT))
        if cut <= 0:
            cut = max(line.find(b" ", FOLD_AT), line.find(b"\t", FOLD_AT))
            if cut <= 0:
                break  # nothing to fold at: a line no encoding may change
        out.append(line[:cut])
        line = line[cut:]
    out.append(line)
    return b"\r\n".join(out)


def _fold_head(head: bytes) -> bytes:
    if not has_long_line(head):
        return head
    return b"".join(
        _fold(m.group(1)) + m.group(2) for m in re.finditer(rb"([^\r\n]*)(\r\n|\r|\n|$)", head) if m.group(0)
    )


def _reencode_part(part: Message) -> bool:
    payload = part._payload  # type: ignore[attr-defined]  # as parsed: get_payload() replaces 8-bit bytes
    if not isinstance(payload, str) or not has_long_line(payload.encode("utf-8", "surrogateescape")):
        return False
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return False
    del part["Content-Transfer-Encoding"]
    if part.get_content_maintype() == "text":
        encoded = quopri.encodestring(data).decode("ascii")
        part["Content-Transfer-Encoding"] = "quoted-printable"
    else:
        text = base64.b64encode(data).decode("ascii")
        encoded = "\n".join(text[i : i + 76] for i in range(0, len(text), 76)) + "\n"
        part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(encoded)
    return True


def reencode_long_lines(raw: bytes) -> bytes:
    """`raw` with every body line within MAX_LINE octets: the parts that hold a longer one re-encoded, over-long
    header lines folded. A message without such lines comes back as it is, byte for byte."""
    if not has_long_line(raw):
        return raw
    head, rest = _split_head(raw)
    if not has_long_line(rest):
        return _fold_head(head) + rest
    try:
        msg = BytesParser(policy=compat32).parsebytes(raw)
        changed = [_reencode_part(part) for part in msg.walk() if not part.is_multipart()]
        if not any(changed):
            return _fold_head(head) + rest
        out = BytesIO()
        BytesGenerator(out, mangle_from_=False, maxheaderlen=0).flatten(msg)
    except (RecursionError, LookupError, ValueError, TypeError):  # hostile structure: relayed as it came
        return raw
    new_head, new_rest = _split_head(out.getvalue())
    return _fold_head(new_head) + new_rest


def relay_form(raw: bytes) -> bytes:
    """What the gateway relays of a received message, before it prepends its own headers."""
    return reencode_long_lines(strip_own_headers(raw))
