"""Settings entries and protected domains are numbered from one sequence: an id is never handed out twice, not after
a delete and not across kinds, on SQLite and PostgreSQL, and a database made before the sequence continues past
the ids it already holds."""

from __future__ import annotations

from alembic import command
from sqlalchemy import insert, text

from mailsec.config import load_settings
from mailsec.ids import parse_numeric_id
from mailsec.services import Services, open_services
from mailsec.store import policies as kinds
from mailsec.store.db import alembic_config, create_db_engine
from mailsec.store.policies import set_quarantine_policy
from mailsec.store.queue import QueueRepo
from mailsec.store.schema import accounts, policies


def test_ids_are_never_reused(services: Services) -> None:
    account = services.accounts.create_account("Ids").id
    repo = services.policies
    first = repo.create(account, kinds.ALLOW, {"pattern": "a.example"})
    assert repo.delete(account, kinds.ALLOW, first.id)
    second = repo.create(account, kinds.ALLOW, {"pattern": "b.example"})
    assert second.id > first.id
    set_quarantine_policy(services.engine, account, ["MALICIOUS"])
    QueueRepo(services.engine).set_quarantine_dispositions(account, ["SPOOF"])
    block = repo.create(account, kinds.BLOCK, {"pattern": "c.example"})
    domain = services.domains.add(account, "ids.example", next_hop="smtp://127.0.0.1:2526")
    assert services.domains.delete(account, domain.id)
    again = services.domains.add(account, "ids.example", next_hop="smtp://127.0.0.1:2526")
    handed_out = [first.id, second.id, block.id, domain.id, again.id]
    assert len(set(handed_out)) == len(handed_out)
    assert handed_out == sorted(handed_out)


def test_existing_database_continues_past_its_ids(db_url: str, tmp_path: object) -> None:
    engine = create_db_engine(db_url)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0008")
        conn.execute(insert(accounts).values(id="a" * 32, name="Old", created_us=1, settings_json="{}"))
        conn.execute(
            insert(policies).values(
                id=41, account_id="a" * 32, kind=kinds.ALLOW, data_json="{}", created_us=1, updated_us=1
            )
        )
        conn.execute(  # the columns of revision 0008 (later revisions add more)
            text(
                "INSERT INTO domains (id, account_id, domain, mode, next_hop, settings_json, created_us, updated_us)"
                " VALUES (57, :account, 'old.example', 'BCC', '', '{}', 1, 1)"
            ),
            {"account": "a" * 32},
        )
    engine.dispose()
    svc = open_services(load_settings(env={}, data_dir=tmp_path, database_url=db_url))  # type: ignore[arg-type]
    try:
        created = svc.policies.create("a" * 32, kinds.BLOCK, {"pattern": "x.example"})
        assert created.id == 58
    finally:
        svc.close()


def test_only_plain_ascii_digits_name_an_entry() -> None:
    assert parse_numeric_id("12") == 12
    assert parse_numeric_id(12) == 12
    arabic_indic = "\u0661\u0662"  # ١٢
    for bad in (
        "\u00b2",
        arabic_indic,
        arabic_indic[0],
        "012",
        "0",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1\n",
        "1_0",
        "1e3",
        "",
        "9" * 19,
        True,
        None,
        1.0,
    ):
        assert parse_numeric_id(bad) is None, bad
