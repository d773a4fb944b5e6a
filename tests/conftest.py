"""Fixtures shared by every test. Storage fixtures run each test on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailsec.config import load_settings
from mailsec.services import Services, open_services
from support import CORPORA, LiveServer, PostgresServer, database_url, make_live_server


@pytest.fixture(scope="session")
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip(f"corpora not found at {CORPORA} (tests that need real mail read ../shared/corpora)")
    return CORPORA


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(Path("/tmp") / f"mailsec-pg-{tmp_path_factory.getbasetemp().name}")
    try:
        server.start()
    except FileNotFoundError as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return database_url(request, tmp_path)


@pytest.fixture
def services(db_url: str, tmp_path: Path) -> Iterator[Services]:
    svc = open_services(load_settings(env={}, data_dir=tmp_path / "data", database_url=db_url))
    yield svc
    svc.close()


@pytest.fixture
def sqlite_services(tmp_path: Path) -> Iterator[Services]:
    svc = open_services(load_settings(env={}, data_dir=tmp_path / "data"))
    yield svc
    svc.close()


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    """`mailsec serve` in a subprocess on a free port, on SQLite and on PostgreSQL."""
    server = make_live_server(tmp_path / "live", db_url)
    server.start()
    yield server
    server.stop()
