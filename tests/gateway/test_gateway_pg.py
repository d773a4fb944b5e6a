"""The main end-to-end gateway flow again, with `mailsec serve` on PostgreSQL (queue claims with SKIP LOCKED, the
quarantine policy, release): a representative subset of test_gateway_flow.py, run by this module's `gateway`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gw_support import Dovecot, Gateway, start_gateway
from test_gateway_flow import (
    test_corpus_messages_end_in_inbox_or_quarantine,
    test_multi_account_message_is_split_per_account,
    test_next_hop_down_defers_then_delivers,
    test_release_delivers_and_is_logged,
)

from support import PostgresServer

__all__ = [
    "test_corpus_messages_end_in_inbox_or_quarantine",
    "test_multi_account_message_is_split_per_account",
    "test_next_hop_down_defers_then_delivers",
    "test_release_delivers_and_is_logged",
]


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot, dovecot_flaky: Dovecot, pg_server: PostgresServer
) -> Iterator[Gateway]:
    """Overrides the SQLite gateway of conftest.py for the tests imported above."""
    root = tmp_path_factory.mktemp("gateway-pg") / "data"
    gw = start_gateway(root, dovecot, dovecot_flaky, pg_server.create_database())
    assert gw.services.engine.dialect.name == "postgresql"
    yield gw
    gw.server.stop()
    gw.services.close()
