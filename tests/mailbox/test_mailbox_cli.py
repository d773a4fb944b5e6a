"""`mailsec mailbox add|list|test|remove` against a real Dovecot: the id printed last, the secret stored encrypted
(key file 0600 in the data directory), a login test that shows the folders, and a clear failure for a bad secret."""

from __future__ import annotations

import stat
from pathlib import Path

from gw_support import MASTER_PASSWORD, MASTER_USER, Dovecot
from sqlalchemy import select

from mailsec.config import load_settings
from mailsec.mailbox.secrets import KEY_FILE
from mailsec.services import open_services
from mailsec.store.schema import mailbox_integrations
from support import make_live_server


def test_add_list_test_remove(tmp_path: Path, mail_dovecot: Dovecot) -> None:
    server = make_live_server(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'mailsec.db'}")
    account = server.create_account("CLI")
    secret = tmp_path / "admin.pw"
    secret.write_text(MASTER_PASSWORD + "\n")
    url = f"imap://127.0.0.1:{mail_dovecot.imap_port}"
    added = server.cli("mailbox", "add", "--account", account, "--domain", "corp.example", "--url", url,
                       "--master-user", MASTER_USER, "--password-file", str(secret))  # fmt: skip
    integration = added.stdout.strip().splitlines()[-1]
    assert len(integration) == 32
    listed = server.cli("mailbox", "list", "--account", account).stdout
    assert integration in listed and "corp.example" in listed and MASTER_PASSWORD not in listed
    key = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data", database_url=server.database_url))
    try:
        with services.engine.connect() as conn:
            stored = conn.execute(select(mailbox_integrations.c.secret)).scalar_one()
        assert MASTER_PASSWORD.encode() not in bytes(stored)
    finally:
        services.close()
    tested = server.cli("mailbox", "test", integration, "--account", account, "--recipient", "ann@corp.example")
    assert "JunkEmail=Junk" in tested.stdout and "DeletedItems=Trash" in tested.stdout, tested.stderr

    secret.write_text("wrong\n")
    bad = server.last_line("mailbox", "add", "--account", account, "--domain", "corp.example", "--url", url,
                           "--master-user", MASTER_USER, "--password-file", str(secret))  # fmt: skip
    failed = server.cli("mailbox", "test", bad, "--account", account, "--recipient", "ann@corp.example", check=False)
    assert failed.returncode != 0 and "refused" in failed.stderr

    assert server.last_line("mailbox", "remove", integration, "--account", account) == integration
    assert integration not in server.cli("mailbox", "list", "--account", account).stdout
    gone = server.cli("mailbox", "remove", integration, "--account", account, check=False)
    assert gone.returncode != 0
    nofile = server.cli("mailbox", "add", "--account", account, "--domain", "x.example", "--url", url,
                        "--master-user", "a", "--password-file", str(tmp_path / "missing"), check=False)  # fmt: skip
    assert nofile.returncode != 0 and "cannot read" in nofile.stderr


def test_auto_move_rules(tmp_path: Path) -> None:
    server = make_live_server(tmp_path / "data", f"sqlite:///{tmp_path / 'data' / 'mailsec.db'}")
    account = server.create_account("Rules")
    shown = server.cli(
        "mailbox", "auto-move", "--account", account, "spam=JunkEmail", "MALICIOUS=RecoverableItemsPurges"
    )
    assert shown.stdout.split() == ["SPAM=JunkEmail", "MALICIOUS=RecoverableItemsPurges"]
    bad = server.cli("mailbox", "auto-move", "--account", account, "SPAM=Attic", check=False)
    assert bad.returncode != 0 and "Attic" in bad.stderr
    assert server.cli("mailbox", "auto-move", "--account", account).stdout.split()[0] == "SPAM=JunkEmail"
    cleared = server.cli("mailbox", "auto-move", "--account", account, "--clear")
    assert cleared.stdout.strip() == "" and "no auto-move rules" in cleared.stderr
