"""Credential forms in HTML (a message body or an attached page): a password input, or a form that posts to a web
address. Phishing pages often hide the markup behind `unescape('%3C...')`, `atob('...')` or `document.write`, so a
bounded number of those blobs are decoded once and searched as well."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser

from mailsec.htmldepth import limit_html_nesting

MAX_HTML = 2_000_000
MAX_BLOBS = 20
MAX_BLOB = 500_000

_PASSWORD_RE = re.compile(r"""(?i)<input\b[^>]{0,400}?\btype\s*=\s*["']?password\b""")
_ACTION_RE = re.compile(r"""(?i)<form\b[^>]{0,800}?\baction\s*=\s*["']?(https?://[^"'\s>]+)""")
_UNESCAPE_RE = re.compile(r"""(?i)(?:unescape|decodeURIComponent)\s*\(\s*["']((?:%[0-9a-f]{2}|[^"'%]){20,})["']""")
_ATOB_RE = re.compile(r"""(?i)atob\s*\(\s*["']([A-Za-z0-9+/=\s]{24,})["']""")
_B64_HTML_RE = re.compile(r"""(?i)data:text/html;base64,([A-Za-z0-9+/=]{24,})""")
_PCT_RUN_RE = re.compile(r"(?:%[0-9a-fA-F]{2}){40,}")


@dataclass(frozen=True)
class FormEvidence:
    """What a page asks for: `password` if it has a password input; `actions` the web addresses its forms post to."""

    password: bool
    actions: tuple[str, ...]
    obfuscated: bool

    @property
    def any(self) -> bool:
        return self.password or bool(self.actions)


def _decoded_blobs(html: str) -> list[str]:
    out: list[str] = []
    low = html.lower()
    wanted = []
    if "unescape" in low or "decodeuricomponent" in low:
        wanted.append((_UNESCAPE_RE, "pct"))
    if "%3c" in low:
        wanted.append((_PCT_RUN_RE, "pct"))
    if "atob" in low:
        wanted.append((_ATOB_RE, "b64"))
    if "base64," in low:
        wanted.append((_B64_HTML_RE, "b64"))
    for rx, kind in wanted:
        for m in rx.finditer(html):
            if len(out) >= MAX_BLOBS:
                return out
            blob = (m.group(1) if m.groups() else m.group(0))[:MAX_BLOB]
            if kind == "pct":
                out.append(unquote(blob))
            else:
                try:
                    out.append(
                        base64.b64decode("".join(blob.split()) + "==", validate=False).decode("utf-8", "replace")
                    )
                except (binascii.Error, ValueError):
                    continue
    return out


_FORM_RE = re.compile(r"(?is)<form\b(.{0,20000}?)(?:</form>|$)")
_SENSITIVE_RE = re.compile(
    r"""(?i)<input\b[^>]{0,400}?\bname\s*=\s*["']?[\w-]*(?:pass|pwd|login|user|email|card|cvv|cvc|ssn|pin|account)"""
)
_POST_RE = re.compile(r"""(?i)^[^>]{0,800}?\bmethod\s*=\s*["']?post""")


def _scan(html: str) -> tuple[bool, list[str]]:
    """Password input present; web addresses of forms that post or ask for account-like fields (not search boxes)."""
    password = bool(_PASSWORD_RE.search(html))
    actions = []
    if "<form" in html.lower():
        for fm in _FORM_RE.finditer(html):
            body = fm.group(1)
            am = _ACTION_RE.match("<form" + body)
            if am and (_POST_RE.match(body) or _SENSITIVE_RE.search(body) or _PASSWORD_RE.search(body)):
                actions.append(am.group(1))
            if len(actions) >= 20:
                break
    if not password and "password" in html.lower():
        try:
            tree = LexborHTMLParser(limit_html_nesting(html))  # hostile depth would make parsing quadratic
            password = bool(tree.css_first("input[type=password i]"))
        except Exception:
            pass
    return password, actions


def credential_form(html: str) -> FormEvidence | None:
    """The credential-form evidence in `html`, or None when it has no password input and posts nowhere."""
    html = html[:MAX_HTML]
    password, actions = _scan(html)
    obfuscated = False
    if not password:
        for blob in _decoded_blobs(html):
            p, a = _scan(blob)
            if p or a:
                obfuscated = True
            password = password or p
            actions.extend(a)
            if password:
                break
    if not password and not actions:
        return None
    return FormEvidence(password=password, actions=tuple(dict.fromkeys(actions)), obfuscated=obfuscated)
