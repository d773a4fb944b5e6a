"""The administrator's commands: tokens (list, revoke, effective at once on a running server), users (create without
silent key rotation, grant, rotate-key, list, delete, set-password), domains (edit, remove), and clear errors:
the directory looked in, the date option and its format, --since after --until; ids printed whole."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.services import open_services
from support import LiveServer, make_eml


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {
        "MAILSEC_DATA_DIR": str(tmp_path / "data"),
        "MAILSEC_DATABASE_URL": "",
        "MAILSEC_CONFIG": "",
        "COLUMNS": "40",
    }

    def invoke(*args: str, ok: bool = True, stdin: str | None = None):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), env=env, input=stdin)
        if ok:
            assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        else:
            assert result.exit_code != 0, (args, result.stdout)
        return result

    return invoke


def last(result) -> str:  # type: ignore[no-untyped-def]
    return result.stdout.strip().splitlines()[-1]


def says(text: str, needle: str) -> bool:
    """`needle` in `text` wherever the terminal-width console wrapped it."""
    return "".join(needle.split()) in "".join(text.split())


def test_token_list_never_shows_secrets(run) -> None:  # type: ignore[no-untyped-def]
    account = last(run("account", "create", "Tokens"))
    rw = last(run("token", "create", "--account", account, "--name", "automation"))
    ro = last(run("token", "create", "--account", account, "--read-only"))
    listed = run("token", "list", "--account", account, "--json").stdout
    assert rw not in listed and ro not in listed and "msk_" not in listed
    rows = [json.loads(line) for line in listed.splitlines()]
    assert [(r["read_only"], r["revoked"], r["name"]) for r in rows] == [
        (False, False, "automation"),
        (True, False, ""),
    ]
    assert all(re.fullmatch(r"[0-9a-f]{32}", r["id"]) and r["created_at"].endswith("Z") for r in rows)
    run("token", "revoke", rows[0]["id"])
    after = [json.loads(line) for line in run("token", "list", "--account", account, "--json").stdout.splitlines()]
    assert [r["revoked"] for r in after] == [True, False]
    assert rows[1]["id"] in run("token", "list", "--account", account).stdout
    missing = run("token", "revoke", "f" * 32, ok=False)
    assert says(missing.stderr, "no token")


def test_revoked_token_stops_working_at_once_on_a_running_server(live_server: LiveServer) -> None:
    account = live_server.create_account()
    token = live_server.create_token(account)
    url = f"{live_server.base_url}/accounts/{account}/email-security/settings/allow_policies"
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(url, headers=headers).status_code == 200
    token_id = json.loads(live_server.last_line("token", "list", "--account", account, "--json"))["id"]
    live_server.cli("token", "revoke", token_id)
    refused = httpx.get(url, headers=headers)
    assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == 9109


def test_users(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = last(run("account", "create", "A"))
    b = last(run("account", "create", "B"))
    key = last(run("user", "create", "SOC@acme.example", "--account", a))
    again = run("user", "create", "soc@acme.example", "--account", b, ok=False)
    assert says(again.stderr, "already exists") and says(again.stderr, "rotate-key")
    run("user", "grant", "soc@acme.example", "--account", b, "--read-only")
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data"))
    try:
        grant = services.accounts.grant_for_user("soc@acme.example", key)  # the key survived both commands
        assert grant is not None and grant.can_write(a) and grant.can_read(b) and not grant.can_write(b)
        new_key = last(run("user", "rotate-key", "soc@acme.example"))
        assert new_key != key and services.accounts.grant_for_user("soc@acme.example", key) is None
        assert services.accounts.grant_for_user("soc@acme.example", new_key) is not None
        listed = [json.loads(line) for line in run("user", "list", "--json").stdout.splitlines()]
        assert listed[0]["email"] == "soc@acme.example" and listed[0]["has_password"] is False
        assert {(x["id"], x["read_only"]) for x in listed[0]["accounts"]} == {(a, False), (b, True)}
        assert new_key not in run("user", "list").stdout
        short = run("user", "set-password", "soc@acme.example", "--password-stdin", stdin="short\n", ok=False)
        assert says(short.stderr, "at least 10")
        run("user", "set-password", "soc@acme.example", "--password-stdin", stdin="correct horse battery\n")
        last(run("user", "create", "two@acme.example", "--account", a))
        run("user", "set-password", "two@acme.example", "--password-stdin", stdin="correct horse battery\n")
        assert services.accounts.check_password("soc@acme.example", "correct horse battery")
        assert not services.accounts.check_password("soc@acme.example", "correct horse batterx")
        assert not services.accounts.check_password("nobody@acme.example", "correct horse battery")
        from sqlalchemy import select

        from mailsec.store.schema import users

        with services.engine.connect() as conn:
            hashes = conn.execute(select(users.c.password_hash).order_by(users.c.email)).scalars().all()
        assert all(h.startswith("scrypt$") and "correct" not in h for h in hashes)
        assert hashes[0] != hashes[1]  # salted: the same password never gives the same hash
        assert json.loads(run("user", "list", "--account", b, "--json").stdout)["has_password"] is True
        run("user", "delete", "soc@acme.example", "--account", b)
        grant = services.accounts.grant_for_user("soc@acme.example", new_key)
        assert grant is not None and not grant.can_read(b) and grant.can_write(a)
        run("user", "delete", "soc@acme.example")
        assert services.accounts.grant_for_user("soc@acme.example", new_key) is None
        assert says(run("user", "delete", "soc@acme.example", ok=False).stderr, "no user")
        assert says(run("user", "rotate-key", "ghost@acme.example", ok=False).stderr, "no user")
        assert says(run("user", "set-password", "ghost@acme.example", ok=False).stderr, "no user")
    finally:
        services.close()


def test_domain_edit_and_remove(run) -> None:  # type: ignore[no-untyped-def]
    account = last(run("account", "create", "Mail"))
    domain_id = last(run("domain", "add", "corp.example", "--account", account, "--next-hop", "smtp://127.0.0.1:2526"))
    assert last(run("domain", "edit", "corp.example", "--account", account, "--mode", "BCC", "--next-hop", "")) == (
        domain_id
    )
    assert run("domain", "list", "--account", account).stdout.split("\t")[1:3] == ["corp.example", "BCC"]
    run("domain", "edit", domain_id, "--account", account, "--mode", "DIRECT", "--next-hop", "lmtp://127.0.0.1:24")
    assert run("domain", "list", "--account", account).stdout.strip().split("\t")[2:] == [
        "DIRECT",
        "lmtp://127.0.0.1:24",
        "ACTIVE",
    ]
    bad = run("domain", "edit", "corp.example", "--account", account, "--next-hop", "", ok=False)
    assert says(bad.stderr, "DIRECT mode needs --next-hop")
    assert says(run("domain", "edit", "corp.example", "--account", account, ok=False).stderr, "nothing to change")
    other = last(run("account", "create", "Other"))
    assert says(run("domain", "remove", "corp.example", "--account", other, ok=False).stderr, "protects no domain")
    run("domain", "remove", "CORP.example", "--account", account)
    assert run("domain", "list", "--account", account).stdout == ""
    assert says(run("domain", "remove", domain_id, "--account", account, ok=False).stderr, "protects no domain")


def test_errors_name_the_directory_and_the_date_format(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = run("token", "create", "--account", "0" * 32, ok=False)
    assert says(missing.stderr, f"data directory {(tmp_path / 'data').resolve()}")
    account = last(run("account", "create", "Dates"))
    for command in ("rescan", "search"):
        bad = run(command, "--account", account, "--since", "yesterday", ok=False)
        assert says(bad.stderr, "--since") and says(bad.stderr, "YYYY-MM-DD")
        bad = run(command, "--account", account, "--until", "2026-13-01", ok=False)
        assert says(bad.stderr, "--until")
        backwards = run(command, "--account", account, "--since", "2026-11-02", "--until", "2026-11-01", ok=False)
        assert says(backwards.stderr, "--since") and says(backwards.stderr, "is after --until")
        run(command, "--account", account, "--since", "2026-11-01", "--until", "2026-11-02T10:00Z")


def test_search_table_prints_ids_whole_on_a_narrow_terminal(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    account = last(run("account", "create", "Narrow"))
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "m.eml").write_bytes(make_eml(subject="a subject long enough to be cut on a forty column terminal"))
    run("ingest", "--account", account, "-q", str(folder))
    ids = [
        json.loads(line)["id"] for line in run("search", "--account", account, "--all", "--json").stdout.splitlines()
    ]
    table = run("search", "--account", account, "--all").stdout
    assert ids and all(i in table.split() for i in ids)
