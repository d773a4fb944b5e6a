"""Fixtures for the mailbox backends: a private Dovecot with a master user (see tests/gateway/gw_support.py)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))

from gw_support import Dovecot, make_dovecot

from mailsec.mailbox import registry

USERS = ["ann@corp.example", "bob@corp.example", "cat@corp.example"]


def private_root(name: str) -> Path:
    """Dovecot's unprivileged processes must read the users file: not under pytest's 0700 temp directory."""
    root = Path(tempfile.mkdtemp(prefix=f"mailsec-{name}-"))
    root.chmod(0o755)
    return root


@pytest.fixture(scope="session")
def mail_dovecot() -> Iterator[Dovecot]:
    dv = make_dovecot(private_root("mbox"), USERS)
    yield dv
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_without_move() -> Iterator[Dovecot]:
    """A Dovecot that does not offer MOVE (RFC 6851): moves fall back to COPY + EXPUNGE."""
    dv = make_dovecot(
        private_root("nomove"),
        USERS,
        extra_config="imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ UIDPLUS SPECIAL-USE",
    )
    yield dv
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


@pytest.fixture(autouse=True)
def close_live_backends() -> Iterator[None]:
    """Each test makes integrations of its own: their pooled sessions end with it (Dovecot allows 10 per user)."""
    yield
    registry.close_all()
