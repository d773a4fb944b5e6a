"""What a message says, reduced once per scan for the content classifier and the fingerprints.

Only the visible text counts: Subject, the From display name, the body (HTML rendered to text) and the kinds of
attachments. Dates, years, Received hosts, recipient addresses and the corpora's anonymisation tokens never reach a
feature: digits are masked, addresses and URLs become placeholders, so the model learns what a message says and not
when or to whom it was sent."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from selectolax.lexbor import LexborHTMLParser

from mailsec.htmldepth import limit_html_nesting
from mailsec.model import ParsedMessage

MAX_HTML_CHARS = 400_000
MAX_BODY_CHARS = 20_000
MAX_TAGS = 4000
MAX_SUBJECT_CHARS = 2000

_URL_RE = re.compile(r"(?i)\b(?:https?://|www\.)\S+")
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")  # anchored: linear on long runs
_DIGITS_RE = re.compile(r"\d+(?:[ap]m\b)?", re.I)
_ANON_WORDS = ("alice", "example", "yyyy", "zzzz", "taint")
_ANON_RE = re.compile(r"\b(?:" + "|".join(_ANON_WORDS) + r")\b")
_CALENDAR_RE = re.compile(
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar|apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?"
    r"|nov(?:ember)?|dec(?:ember)?|mon(?:day)?|tue(?:s|sday)?|wed(?:nesday)?|thu(?:rs|rsday)?|fri(?:day)?"
    r"|sat(?:urday)?|sun(?:day)?|[ap]m|gmt|utc|[a-z]?[ecmp][sd]t)\b"
)
_SPACE_RE = re.compile(r"\s+")
_WORD_RE = re.compile(r"(?u)\b\w\w+\b")


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


def _html_text_and_tags(html: str) -> tuple[str, tuple[str, ...]]:
    try:
        tree = LexborHTMLParser(limit_html_nesting(html[:MAX_HTML_CHARS]))
        tags = []
        root = tree.root
        if root is not None:
            for node in root.traverse():
                tags.append(node.tag or "")
                if len(tags) >= MAX_TAGS:
                    break
        for node in tree.css("script, style, head"):
            node.decompose()
        body = tree.body or tree.root
        text = body.text(separator=" ") if body is not None else ""
        return text or "", tuple(tags)
    except Exception:
        return "", ()


def _attachment_kind(name: str, content_type: str) -> str:
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    kind = _ATTACHMENT_KINDS.get(ext)
    if kind:
        return kind
    major = content_type.partition("/")[0].lower()
    return {"image": "image", "text": "text", "message": "message"}.get(major, "other")


def extract_text(parsed: ParsedMessage) -> MessageText:
    """The visible text of a message: the plain part when it says something, else the HTML rendered to text."""
    html_text, tags = _html_text_and_tags(parsed.html_body) if parsed.html_body else ("", ())
    plain = parsed.text_body or ""
    body = plain if len(plain.strip()) >= max(40, len(html_text) // 4) else (html_text or plain)
    body = _SPACE_RE.sub(" ", body[: MAX_BODY_CHARS * 2]).strip()[:MAX_BODY_CHARS]
    kinds = tuple(sorted({_attachment_kind(a.name or "", a.content_type or "") for a in parsed.attachments}))
    return MessageText(
        subject=(parsed.subject or "")[:MAX_SUBJECT_CHARS],
        sender_name=((parsed.from_.name if parsed.from_ else "") or "")[:MAX_SUBJECT_CHARS],
        body=body,
        html_tags=tags,
        attachment_kinds=kinds,
    )


@lru_cache(maxsize=16)  # a scan normalises subject and body for the classifier, then again for `edf_hash`
def normalise(text: str) -> str:
    """Lower case; URLs, addresses, numbers, month and weekday names and time zones masked; anonymisation tokens
    dropped. The corpora's ham is from 2002 and its phishing from 2022-2026: a date in any form must not count."""
    text = text.lower()
    if "http" in text or "www." in text:  # each substitution only when its pattern can match: same output, less work
        text = _URL_RE.sub(" zzurl ", text)
    if "@" in text:
        text = _EMAIL_RE.sub(" zzemail ", text)
    text = _DIGITS_RE.sub("0", text)
    text = _CALENDAR_RE.sub(" zzdate ", text)
    if any(word in text for word in _ANON_WORDS):
        text = _ANON_RE.sub(" ", text)
    return text


def model_document(mt: MessageText) -> str:
    """The one string the classifier reads. The subject is repeated to weigh it like a short paragraph."""
    subject = normalise(mt.subject)
    parts = [subject, subject, normalise(mt.sender_name), normalise(mt.body)]
    parts.extend(f"zzatt{kind}" for kind in mt.attachment_kinds)
    return " ".join(parts)


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text)
