"""Imported once, by the queue workers' fork server only (never by `serve` itself): everything a worker holds that
does not change — the parser, the analyzers, the content model, oletools, the public suffix list — is loaded here,
then frozen out of the garbage collector's reach, and every worker forked from this process shares those pages
copy-on-write instead of loading its own copy (~170 MB each before)."""

from __future__ import annotations

import gc
import logging
import signal

log = logging.getLogger("mailsec.gateway.preload")


def preload() -> None:
    # The fork server ignores SIGTERM: systemd's stop signals the whole group, and the workers (which set their
    # own handler) must finish their message; the server itself ends when `serve` closes its end (or dies).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        from mailsec.gateway.worker import warm_up

        warm_up()
    except Exception:  # a worker warms up on its own if this failed; the fork server must start regardless
        log.exception("preloading the scanner for the queue workers failed")
    gc.collect()
    gc.freeze()  # collections in the workers leave the shared objects (and their pages) alone


preload()
