"""`mailsec user create` never rotates an existing user's key behind its back: it refuses unless --rotate-key,
and with it the old key stops working and the new one reaches both accounts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.services import open_services


def test_existing_users_key_is_rotated_only_when_asked(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MAILSEC_DATA_DIR": str(tmp_path / "data"), "MAILSEC_DATABASE_URL": "", "MAILSEC_CONFIG": ""}

    def run(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, list(args), env=env)
        return result.exit_code, result.stdout.strip(), result.stderr

    first = run("account", "create", "First")[1].splitlines()[-1]
    second = run("account", "create", "Second")[1].splitlines()[-1]
    code, out, _ = run("user", "create", "soc@acme.example", "--account", first)
    assert code == 0
    key = out.splitlines()[-1]
    code, out, err = run("user", "create", "SOC@acme.example", "--account", second)
    assert code != 0 and out == "" and "--rotate-key" in err
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data"))
    try:
        grant = services.accounts.grant_for_user("soc@acme.example", key)
        assert grant is not None and grant.can_read(first) and not grant.can_read(second)
        code, out, err = run("user", "create", "soc@acme.example", "--account", second, "--rotate-key")
        assert code == 0 and "no longer works" in err
        new_key = out.splitlines()[-1]
        assert services.accounts.grant_for_user("soc@acme.example", key) is None
        grant = services.accounts.grant_for_user("soc@acme.example", new_key)
        assert grant is not None and grant.can_read(first) and grant.can_read(second)
    finally:
        services.close()
