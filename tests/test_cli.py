"""The `mailsec` command: commands that create an id or a secret print it as the last line of stdout, errors go
to stderr with a non-zero exit, and ingest/search print what they did."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.services import open_services
from support import MAILSEC, make_eml


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"MAILSEC_DATA_DIR": str(tmp_path / "data"), "MAILSEC_DATABASE_URL": "", "MAILSEC_CONFIG": ""}

    def invoke(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, (args, result.stdout, result.stderr, result.exception)
        return result

    return invoke


def last(result) -> str:  # type: ignore[no-untyped-def]
    return result.stdout.strip().splitlines()[-1]


def test_ids_and_secrets_are_the_last_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    account = last(run("account", "create", "Acme SOC"))
    assert re.fullmatch(r"[0-9a-f]{32}", account)
    fixed = "ab" * 16
    assert last(run("account", "create", "Fixed", "--id", fixed.upper())) == fixed
    token = last(run("token", "create", "--account", account))
    read_token = last(run("token", "create", "--account", account, "--read-only", "--name", "analyst"))
    key = last(run("user", "create", "soc@acme.example", "--account", account))
    assert token.startswith("msk_") and read_token.startswith("msk_") and token != read_token
    assert re.fullmatch(r"[0-9a-f]{48}", key)
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data"))
    try:
        grant = services.accounts.grant_for_token(token)
        assert grant is not None and grant.can_write(account)
        grant = services.accounts.grant_for_token(read_token)
        assert grant is not None and grant.can_read(account) and not grant.can_write(account)
        assert not grant.can_read(fixed)
        user = services.accounts.grant_for_user("SOC@acme.example", key)
        assert user is not None and user.can_write(account)
    finally:
        services.close()
    listed = run("account", "list").stdout
    assert account in listed and fixed in listed


def test_last_line_in_a_real_process(tmp_path: Path) -> None:
    env = {"MAILSEC_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([*MAILSEC, "account", "create", "Proc"], env=env, capture_output=True, text=True, check=True)
    assert re.fullmatch(r"[0-9a-f]{32}", out.stdout.strip().splitlines()[-1])
    assert "created account" in out.stderr


def test_errors_exit_non_zero(run) -> None:  # type: ignore[no-untyped-def]
    for args in (
        ("account", "create", "Bad", "--id", "not-hex"),
        ("token", "create", "--account", "0" * 32),
        ("user", "create", "x@example.com", "--account", "0" * 32),
        ("ingest", "--account", "0" * 32, "/nonexistent"),
        ("search", "--account", "0" * 32),
    ):
        result = run(*args, ok=False)
        assert result.exit_code != 0, args
        assert "error" in result.stderr.lower(), args
    account = last(run("account", "create", "Dup"))
    dup = run("account", "create", "Again", "--id", account, ok=False)
    assert dup.exit_code != 0 and "exists" in dup.stderr


def test_ingest_and_search(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    account = last(run("account", "create", "A"))
    folder = tmp_path / "mail"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.eml").write_bytes(make_eml(subject=f"cli message {i}", sender=f"s{i}@cli.example"))
    (folder / "junk.bin").write_bytes(b"\x00\x01\x02 not mail")
    out = run("ingest", "--account", account, "--mode", "BCC", str(folder)).stdout.splitlines()
    assert out[:3] == ["stored: 3", "duplicates: 0", "failed: 1"]
    assert "junk.bin" in out[3]
    again = run("ingest", "--account", account, "-q", str(folder)).stdout.splitlines()
    assert again[:3] == ["stored: 0", "duplicates: 3", "failed: 1"]
    lines = run("search", "--account", account, "--all", "--json", "--query", "cli message").stdout.splitlines()
    found = [json.loads(line) for line in lines]
    assert sorted(m["subject"] for m in found) == ["cli message 0", "cli message 1", "cli message 2"]
    assert all(m["final_disposition"] for m in found)
    one = run("search", "--account", account, "--all", "--json", "--sender", "s1@cli.example").stdout.splitlines()
    assert [json.loads(line)["subject"] for line in one] == ["cli message 1"]
    table = run("search", "--account", account, "--all", "--subject", "message 2")
    assert "cli message 2" in table.stdout
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data"))
    try:
        stored = services.messages.get(account, found[0]["id"])
        assert stored is not None and stored.delivery_mode == "BCC"
    finally:
        services.close()
