"""Fixtures for the gateway tests: Dovecot (LMTP + IMAP on loopback) and `mailsec serve --smtp`."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from gw_support import Dovecot, Gateway, make_dovecot, self_signed, start_gateway


def private_root(name: str) -> Path:
    """Dovecot's unprivileged processes must read the users file: not under pytest's 0700 temp directory."""
    root = Path(tempfile.mkdtemp(prefix=f"mailsec-{name}-"))
    root.chmod(0o755)
    return root


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    dv = make_dovecot(
        private_root("dovecot"),
        ["bob@corp.example", "ann@corp.example", "carol@hold.example", "kim@kill.example", "sam@strict.example"],
    )
    yield dv
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot_flaky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A second Dovecot that tests stop and start (next hop down, then back)."""
    dv = make_dovecot(private_root("dovecot2"), ["dave@down.example", "erin@downhold.example"])
    yield dv
    dv.stop()
    shutil.rmtree(dv.root, ignore_errors=True)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot, dovecot_flaky: Dovecot) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("gateway")
    cert, key = self_signed(root)
    gw = start_gateway(
        root / "data", dovecot, dovecot_flaky, MAILSEC_TLS_CERT=str(cert), MAILSEC_TLS_KEY=str(key),
        MAILSEC_MAX_MESSAGE_BYTES=str(2 * 1024 * 1024),
    )  # fmt: skip
    yield gw
    gw.server.stop()
    gw.services.close()
