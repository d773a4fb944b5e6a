"""What a message says, reduced once per scan for the content classifier and the fingerprints.

Only the visible text counts: Subject, the From display name, the body (HTML rendered to text) and the kinds of
attachments. Dates, years, Received hosts, recipient addresses and the corpora's anonymisation tokens never reach a
feature: digits are masked, addresses and URLs become placeholders, so the model learns what a message says and not
when or to whom it was sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from mailsec.htmltree import TEXT_MAX_CHARS, parse_html, text_and_tags
from mailsec.model import ParsedMessage

MAX_HTML_CHARS = TEXT_MAX_CHARS
MAX_BODY_CHARS = 20_000
MAX_SUBJECT_CHARS = 2000

_URL_RE = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")  # anchored: linear on long runs
# A run of digits with its separators, an ISO "T"/"Z" or a following am/pm is one number: 2002-08-29T12:00Z,
# 8/29/02 12:05 PM and 1.2.3 all become "0", so neither a date's value nor its era's format is a feature. Spelled
# \d\d* so that the search skips to digits in C.
_DIGITS_RE = re.compile(r"\d\d*(?:[-/.:,t]\d+)*(?:\s?[ap]m\b|z\b)?", re.I)
_VERSION_RE = re.compile(r"\bv0")  # v3.14.1 is a version as 1.2.3 is: the "v" is a modern habit
_ANON_WORDS = ("alice", "example", "yyyy", "zzzz", "taint")
_ANON_RE = re.compile(r"\b(?:" + "|".join(_ANON_WORDS) + r")\b")
_CALENDAR_RE = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?"
    r"|nov(?:ember)?|dec(?:ember)?|mon(?:day)?|tue(?:s|sday)?|wed(?:nesday)?|thu(?:rs|rsday)?|fri(?:day)?"
    r"|sat(?:urday)?|sun(?:day)?|[ap]m|gmt|utc|[a-z]?[ecmp][sd]t)\b"
)
# Footers that list software appends (Mailman, Google Groups, Yahoo! Groups, SourceForge, ILUG): written by the list,
# not the author, and in the corpora a marker of the list's era; phishing that reached a list carries them too.
# (marker in the lower-cased tail, the separator that opens the footer before it, how far back that may be)
_FOOTER_MARKERS = (
    ("mailing list", "__________", 100),
    ("this sf.net email is sponsored", "-----", 20),
    ("yahoo! groups sponsor", "-----", 20),
    ("received this message because you", "", 0),
    ("received this email because you", "", 0),
    ("irish linux users' group", "-- ", 4),
)
FOOTER_WINDOW = 3000
_VIA_LIST_RE = re.compile(r"(?i)\s+(?:via|on behalf of)\s+\S.*$")
# The attachment kinds the model reads: those that carry risk. Plain-text, image, calendar and message parts say
# more about the mail client and the era (2002 ham has almost none) than about intent.
MODEL_ATTACHMENT_KINDS = frozenset({"office", "pdf", "html", "archive", "exec"})
# The words of the classifier's token_pattern r"(?u)\b\w\w+\b": scanning left to right, a greedy \w\w+ takes each run
# of two or more word characters whole, from boundary to boundary, as the \b ask; starting with a character set, it
# is searched faster.
_WORD_RE = re.compile(r"\w\w+")


_ATTACHMENT_KINDS = {
    "doc": "office", "docx": "office", "docm": "office", "xls": "office", "xlsx": "office", "xlsm": "office",
    "ppt": "office", "pptx": "office", "rtf": "office", "pdf": "pdf", "htm": "html", "html": "html", "shtml": "html",
    "svg": "html", "zip": "archive", "rar": "archive", "7z": "archive", "gz": "archive", "tar": "archive",
    "iso": "archive", "img": "archive", "exe": "exec", "scr": "exec", "js": "exec", "vbs": "exec", "bat": "exec",
    "cmd": "exec", "msi": "exec", "lnk": "exec", "hta": "exec", "jar": "exec", "ps1": "exec", "png": "image",
    "jpg": "image", "jpeg": "image", "gif": "image", "bmp": "image", "ics": "calendar", "eml": "message",
}  # fmt: skip


@dataclass(frozen=True)
class MessageText:
    subject: str
    sender_name: str
    body: str
    html_tags: tuple[str, ...]
    attachment_kinds: tuple[str, ...]


def _html_text_and_tags(parsed: ParsedMessage) -> tuple[str, tuple[str, ...]]:
    """The visible text and tag names of the HTML body: read by the parse that found its links when mime kept them
    (`html_view`, for this very body), else parsed here."""
    html = parsed.html_body
    view = parsed.html_view
    if view is not None and view.source is html:
        return view.text, view.tags
    try:
        tree = parse_html(html[:MAX_HTML_CHARS])
    except Exception:
        return "", ()
    return text_and_tags(tree)


def _attachment_kind(name: str, content_type: str) -> str:
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    kind = _ATTACHMENT_KINDS.get(ext)
    if kind:
        return kind
    major = content_type.partition("/")[0].lower()
    return {"image": "image", "text": "text", "message": "message"}.get(major, "other")


def _strip_list_footer(body: str) -> str:
    """The body up to the first list footer in its last FOOTER_WINDOW characters: found by its marker, cut at the
    separator line before it (plain finds, no regex: list mail is common)."""
    start = max(0, len(body) - FOOTER_WINDOW)
    tail = body[start:].lower()
    cut = len(tail)
    for marker, separator, reach in _FOOTER_MARKERS:
        at = tail.find(marker)
        if at == -1 or at >= cut:
            continue
        if not separator:  # a sentence: "[-- ]You [have ]received this message because you ..."
            begin = at
            for opening in ("you have ", "you "):
                if tail.endswith(opening, 0, begin):
                    begin -= len(opening)
                    break
            cut = begin - 3 if tail.endswith("-- ", 0, begin) else begin
            continue
        sep = tail.rfind(separator, max(0, at - reach), at)
        if sep != -1:
            cut = min(cut, len(tail[:sep].rstrip(separator[0])))  # from the start of the separator's run
    return body[: start + cut].rstrip() if cut < len(tail) else body


def _sender_name(parsed: ParsedMessage) -> str:
    """The From display name, without the " via <list>" that a list rewriting From for DMARC adds."""
    name = (parsed.from_.name if parsed.from_ else "") or ""
    if " " in name and (parsed.header("List-Id") or parsed.header("List-Post")):
        return _VIA_LIST_RE.sub("", name)
    return name


def extract_text(parsed: ParsedMessage) -> MessageText:
    """The visible text of a message: the plain part when it says something, else the HTML rendered to text."""
    html_text, tags = _html_text_and_tags(parsed) if parsed.html_body else ("", ())
    plain = parsed.text_body or ""
    body = plain if len(plain.strip()) >= max(40, len(html_text) // 4) else (html_text or plain)
    # runs of whitespace as one space: split() and the regex \s agree on what is whitespace (str.isspace), 3x faster
    body = _strip_list_footer(" ".join(body[: MAX_BODY_CHARS * 2].split()))[:MAX_BODY_CHARS]
    kinds = tuple(sorted({_attachment_kind(a.name or "", a.content_type or "") for a in parsed.attachments}))
    return MessageText(
        subject=(parsed.subject or "")[:MAX_SUBJECT_CHARS],
        sender_name=_sender_name(parsed)[:MAX_SUBJECT_CHARS],
        body=body,
        html_tags=tags,
        attachment_kinds=kinds,
    )


def _mask_urls(text: str) -> str:
    """`_URL_RE.sub(" zzurl ", text)` for lower-cased text, the pattern tried only where "http" or "www." starts (7x
    less CPU): in lower-cased text no other place can match (its case-insensitive "s" may also be U+017F, the long
    s, but only after "http")."""
    parts = []
    pos = scan = 0  # copied up to `pos`; candidates from `scan` on
    http, www = text.find("http"), text.find("www.")
    while http != -1 or www != -1:
        at = http if www == -1 or (http != -1 and http < www) else www
        m = _URL_RE.match(text, at)  # \b looks at the character before `at`, as in a search of the whole text
        if m:
            parts.append(text[pos:at])
            parts.append(" zzurl ")
            pos = scan = m.end()
        else:
            scan = at + 1
        if http != -1 and http < scan:
            http = text.find("http", scan)
        if www != -1 and www < scan:
            www = text.find("www.", scan)
    parts.append(text[pos:])
    return "".join(parts)


_DOMAIN_RE = re.compile(r"[\w-]+(?:\.[\w-]+)+")  # the part of _EMAIL_RE after the "@"


def _local_char(c: str) -> bool:
    return c.isalnum() or c in "_.+-"  # [\w.+-]: re's \w is str.isalnum() or "_"


def _mask_emails(text: str) -> str:
    r"""`_EMAIL_RE.sub(" zzemail ", text)`, found from each "@" instead of trying the pattern at every position (10x
    less CPU). A match is the whole run of [\w.+-] before an "@" (the lookbehind) and the longest domain after it."""
    parts = []
    pos = 0  # where the last match ended: the next one starts at or after it
    at = text.find("@")
    while at != -1:
        start = at
        while start > pos and _local_char(text[start - 1]):
            start -= 1
        if start < at and (start > pos or start == 0 or not _local_char(text[start - 1])):
            m = _DOMAIN_RE.match(text, at + 1)
            if m:
                parts.append(text[pos:start])
                parts.append(" zzemail ")
                pos = m.end()
        at = text.find("@", max(at + 1, pos))
    parts.append(text[pos:])
    return "".join(parts)


@lru_cache(maxsize=16)  # a scan normalises subject and body for the classifier, then again for `edf_hash`
def normalise(text: str) -> str:
    """Lower case; URLs, addresses, numbers, month and weekday names and time zones masked; anonymisation tokens
    dropped. The corpora's ham is from 2002 and its phishing from 2022-2026: a date in any form must not count."""
    text = text.lower()
    if "http" in text or "www." in text:  # each substitution only when its pattern can match: same output, less work
        text = _mask_urls(text)
    if "@" in text:
        text = _mask_emails(text)
    text = _DIGITS_RE.sub("0", text)
    if "v0" in text:
        text = _VERSION_RE.sub("0", text)
    text = _CALENDAR_RE.sub(" zzdate ", text)
    if any(word in text for word in _ANON_WORDS):
        text = _ANON_RE.sub(" ", text)
    return text


def model_document(mt: MessageText) -> str:
    """The one string the classifier reads. The subject is repeated to weigh it like a short paragraph."""
    subject = normalise(mt.subject)
    parts = [subject, subject, normalise(mt.sender_name), normalise(mt.body)]
    parts.extend(f"zzatt{kind}" for kind in mt.attachment_kinds if kind in MODEL_ATTACHMENT_KINDS)
    return " ".join(parts)


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)


@lru_cache(maxsize=16)  # the classifier and `edf_hash` read the same normalised subject and body
def normalised_words(text: str) -> tuple[str, ...]:
    """`words(normalise(text))`, memoised per scan."""
    return tuple(_WORD_RE.findall(normalise(text)))


def model_tokens(mt: MessageText) -> list[str]:
    """`words(model_document(mt))` without building the document: no mask and no word crosses the spaces that join
    its parts, so the words of the whole are the words of each part in turn."""
    subject = normalised_words(mt.subject)
    return [
        *subject,
        *subject,
        *normalised_words(mt.sender_name),
        *normalised_words(mt.body),
        *(f"zzatt{kind}" for kind in mt.attachment_kinds if kind in MODEL_ATTACHMENT_KINDS),
    ]
