"""The long-lived parts one process shares: settings, database engine, blob store and repositories."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from mailsec.config import Settings
from mailsec.store.accounts import AccountRepo
from mailsec.store.blobs import BlobStore
from mailsec.store.db import ensure_private_dir, open_database
from mailsec.store.domains import DomainRepo
from mailsec.store.messages import MessageRepo
from mailsec.store.policies import PolicyRepo
from mailsec.store.queue import dispose_queue_engine
from mailsec.store.search_jobs import SearchService


@dataclass
class Services:
    settings: Settings
    engine: Engine
    blobs: BlobStore
    accounts: AccountRepo
    messages: MessageRepo
    searches: SearchService
    domains: DomainRepo
    policies: PolicyRepo

    def close(self) -> None:
        self.searches.close()
        dispose_queue_engine(self.engine)
        self.engine.dispose()


def open_services(settings: Settings) -> Services:
    ensure_private_dir(settings.data_dir)
    engine = open_database(settings.resolved_database_url)
    return Services(
        settings=settings,
        engine=engine,
        blobs=BlobStore(settings.resolved_blob_dir),
        accounts=AccountRepo(engine),
        messages=MessageRepo(engine),
        searches=SearchService(
            engine, settings.search_budget_seconds, per_account=settings.search_concurrency_per_account
        ),
        domains=DomainRepo(engine),
        policies=PolicyRepo(engine),
    )
