"""Integrations to backends: one live backend per integration and process, so its pooled sessions serve every
request (API, bulk job, auto-move) until the integration changes."""

from __future__ import annotations

import threading
from pathlib import Path

from mailsec.mailbox import secrets
from mailsec.mailbox.base import MailboxBackend
from mailsec.mailbox.gmail import GmailBackend
from mailsec.mailbox.graph import GraphBackend
from mailsec.mailbox.imap import ImapBackend, ImapConfig
from mailsec.store.integrations import Integration

_live: dict[tuple[str, int], MailboxBackend] = {}
_lock = threading.Lock()


def open_backend(integration: Integration, data_dir: Path) -> MailboxBackend:
    """A new backend for the integration (its secret decrypted with the data directory's key)."""
    secret = secrets.decrypt(data_dir, integration.secret)
    options = dict(integration.options)
    if integration.kind == "imap":
        return ImapBackend(ImapConfig.from_url(integration.url, secret, **options))
    if integration.kind == "graph":
        return GraphBackend.from_integration(integration.url, secret, options)
    if integration.kind == "gmail":
        return GmailBackend.from_integration(integration.url, secret, options)
    raise ValueError(f"unknown mailbox kind {integration.kind!r}")


def backend_for(integration: Integration, data_dir: Path) -> MailboxBackend:
    key = (integration.id, integration.created_us)
    with _lock:
        found = _live.get(key)
        if found is None:
            found = _live[key] = open_backend(integration, data_dir)
        return found


def forget(integration_id: str) -> None:
    """Close the live backend of a removed integration."""
    with _lock:
        for key in [k for k in _live if k[0] == integration_id]:
            _live.pop(key).close()


def close_all() -> None:
    with _lock:
        while _live:
            _live.popitem()[1].close()
