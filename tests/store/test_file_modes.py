"""The data directory is 0700 and every database file (main, queue, their WAL and SHM) 0600, whatever the umask:
they hold message text and raw mail. Files an older version left open are tightened."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsec.config import load_settings
from mailsec.pipeline import process_message
from mailsec.services import open_services
from mailsec.store.queue import QueueRepo
from support import make_eml


@pytest.fixture
def open_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_directory_and_database_files_are_private(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "var"
    services = open_services(load_settings(env={}, data_dir=data))
    try:
        account = services.accounts.create_account("Private").id
        process_message(services, make_eml(subject="private"), account)
        QueueRepo(services.engine).delete_account(account)  # opens the queue database
        files = sorted(p for p in data.iterdir() if p.is_file())
        names = {p.name for p in files}
        assert {"mailsec.db", "mailsec.db-wal", "mailsec-queue.db"} <= names, names
        assert mode(data) == 0o700
        assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}
        assert mode(services.blobs.root) == 0o700
    finally:
        services.close()


def test_an_older_installs_open_files_are_tightened(tmp_path: Path, open_umask: None) -> None:
    data = tmp_path / "old"
    open_services(load_settings(env={}, data_dir=data)).close()
    os.chmod(data, 0o755)
    os.chmod(data / "mailsec.db", 0o644)
    services = open_services(load_settings(env={}, data_dir=data))
    services.close()
    assert mode(data) == 0o700 and mode(data / "mailsec.db") == 0o600


def test_a_config_file_others_can_read_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "mailsec.toml"
    config.write_text('database_url = "postgresql://mailsec:secret@db/mailsec"\n')
    config.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="mailsec.config"):
        load_settings(config, env={})
    assert "chmod 600" in caplog.text
    caplog.clear()
    config.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="mailsec.config"):
        load_settings(config, env={})
    assert caplog.text == ""
