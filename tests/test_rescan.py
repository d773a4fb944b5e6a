"""`mailsec rescan`: stored messages re-scanned with the account's current policy; the new verdict is recorded,
the delivery mode kept, a RETRO_SCAN trace line added, and each change printed."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.model import DeliveryMode
from mailsec.pipeline import process_message
from mailsec.services import open_services
from mailsec.store import policies as kinds
from support import make_eml

HAM = (
    "Hello from the Gardening Club!\n\nThis month we planted tomatoes and basil in the community garden. The next "
    "meeting is on Saturday at ten in the library hall.\n\nSee you there,\nThe Gardening Club committee\n"
)


def test_rescan_applies_a_new_block_policy(tmp_path: Path) -> None:
    data = tmp_path / "data"
    services = open_services(load_settings(env={}, data_dir=data))
    try:
        account = services.accounts.create_account("Retro").id
        blocked = [
            process_message(
                services,
                make_eml(subject=f"club {i}", sender=f"n{i}@club.example", body=HAM),
                account,
                mode=DeliveryMode.BCC,
            )
            for i in range(3)
        ]
        kept = process_message(services, make_eml(subject="other", sender="x@elsewhere.example", body=HAM), account)
        old = {p.id: str(p.verdict.disposition) for p in [*blocked, kept]}
        assert all(d != "MALICIOUS" for d in old.values())
        services.policies.create(
            account, kinds.BLOCK, {"pattern": "club.example", "pattern_type": "DOMAIN", "is_regex": False}
        )
    finally:
        services.close()

    runner = CliRunner()
    env = {"MAILSEC_DATA_DIR": str(data), "MAILSEC_DATABASE_URL": "", "MAILSEC_CONFIG": ""}
    # A filter that selects nothing changes nothing.
    none = runner.invoke(app, ["rescan", "--account", account, "--sender", "nobody.example", "-q"], env=env)
    assert none.exit_code == 0, none.output
    assert "rescanned: 0" in none.stdout and "changed: 0" in none.stdout
    bad = runner.invoke(app, ["rescan", "--account", account, "--disposition", "EVIL"], env=env)
    assert bad.exit_code != 0 and "unknown disposition" in bad.stderr

    result = runner.invoke(app, ["rescan", "--account", account, "--sender", "club.example", "-q"], env=env)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    for p in blocked:
        assert f"{p.id}: {old[p.id]} -> MALICIOUS" in result.stdout
    assert kept.id not in result.stdout
    assert "rescanned: 3" in result.stdout and "changed: 3" in result.stdout and "failed: 0" in result.stdout

    services = open_services(load_settings(env={}, data_dir=data))
    try:
        for p in blocked:
            m = services.messages.get(account, p.id)
            assert m is not None
            assert m.final_disposition == "MALICIOUS" and m.delivery_mode == "BCC"
            assert m.verdict.properties["blocklisted_pattern"] == "club.example"
            lines = [t.message for t in services.messages.trace(m.pk)["inbound"]]
            assert any("RETRO_SCAN" in line and f"{old[p.id]} -> MALICIOUS" in line for line in lines), lines
        other = services.messages.get(account, kept.id)
        assert other is not None and other.final_disposition == old[kept.id]
    finally:
        services.close()

    # Everything again, restricted to what is now MALICIOUS: nothing changes a second time.
    again = runner.invoke(app, ["rescan", "--account", account, "--disposition", "MALICIOUS", "-q"], env=env)
    assert again.exit_code == 0
    assert "rescanned: 3" in again.stdout and "changed: 0" in again.stdout
