"""Auto-move as a retro-action (SQLite and PostgreSQL, real Dovecot): a rescan that changes a delivered message's
disposition moves its copies in every recipient's mailbox when the account's auto-move rule names a folder for the
new disposition; unchanged messages, and a rescan told not to, move nothing."""

from __future__ import annotations

from gw_support import Dovecot
from move_support import corp_account, deliver_many, folders_holding
from typer.testing import CliRunner

from mailsec import rescan
from mailsec.actions import auto_move
from mailsec.cli import app
from mailsec.services import Services
from mailsec.store import policies as kinds

ANN, BOB = "ann@corp.example", "bob@corp.example"


def _block(services: Services, account: str, domain: str) -> None:
    services.policies.create(account, kinds.BLOCK, {"pattern": domain, "pattern_type": "DOMAIN", "is_regex": False})


def test_a_rescan_that_changes_the_disposition_moves_the_delivered_copies(
    services: Services, mail_dovecot: Dovecot
) -> None:
    account = corp_account(services, mail_dovecot)
    bad = deliver_many(services, account, [ANN, BOB], 2, sender="alice@sender.example")
    good = deliver_many(services, account, [ANN], 1, sender="carol@partner.example")
    auto_move.set_rules(services.engine, account, {"MALICIOUS": "JunkEmail"})
    _block(services, account, "sender.example")

    summary = rescan.rescan(services, account, [m.pk for m in bad + good])

    assert sorted(c.id for c in summary.changed) == sorted(m.id for m in bad)
    assert all(c.new == "MALICIOUS" for c in summary.changed)
    assert sorted((i.id, i.recipient, i.status) for i in summary.moves) == sorted(
        (m.id, rcpt, "moved") for m in bad for rcpt in (ANN, BOB)
    )
    for m in bad:
        assert folders_holding(mail_dovecot, ANN, m.internet_message_id) == ["Junk"]
        assert folders_holding(mail_dovecot, BOB, m.internet_message_id) == ["Junk"]
        stored = services.messages.get(account, m.id)
        assert stored is not None and stored.delivery_status == "moved"
        states = [(r["address"], r["status"], r["folder"]) for r in services.messages.recipient_states(m.pk)]
        assert sorted(states) == [(ANN, "moved", "JunkEmail"), (BOB, "moved", "JunkEmail")]
        log = services.messages.actions([m.pk])[m.pk]
        assert [(a.operation, a.folder, a.requested_by, a.status) for a in log] == [
            ("MOVE", "JunkEmail", auto_move.REQUESTED_BY, "completed")
        ]
        trace = [t.message for t in services.messages.trace(m.pk)["outbound"]]
        assert any("move to JunkEmail by auto-move" in line for line in trace), trace
    assert folders_holding(mail_dovecot, ANN, good[0].internet_message_id) == ["INBOX"]
    assert services.messages.actions([good[0].pk])[good[0].pk] == []

    again = rescan.rescan(services, account, [m.pk for m in bad + good])  # nothing changes: nothing moves
    assert again.changed == [] and again.moves == []


def test_a_rescan_without_a_rule_or_told_not_to_moves_nothing(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    [first] = deliver_many(services, account, [ANN], 1, sender="dan@spam.example")
    [second] = deliver_many(services, account, [ANN], 1, sender="eve@spam.example")
    auto_move.set_rules(services.engine, account, {"SPAM": "JunkEmail"})  # no rule for MALICIOUS
    _block(services, account, "spam.example")

    summary = rescan.rescan(services, account, [first.pk])
    assert [c.new for c in summary.changed] == ["MALICIOUS"] and summary.moves == []
    auto_move.set_rules(services.engine, account, {"MALICIOUS": "JunkEmail"})
    held_back = rescan.rescan(services, account, [second.pk], move_after=False)
    assert [c.new for c in held_back.changed] == ["MALICIOUS"] and held_back.moves == []
    for m in (first, second):
        assert folders_holding(mail_dovecot, ANN, m.internet_message_id) == ["INBOX"]
        stored = services.messages.get(account, m.id)
        assert stored is not None and stored.delivery_status == "delivered"


def test_the_cli_prints_each_moved_copy_and_no_move_holds_back(services: Services, mail_dovecot: Dovecot) -> None:
    account = corp_account(services, mail_dovecot)
    [first] = deliver_many(services, account, [ANN], 1, sender="fay@phish.example")
    [second] = deliver_many(services, account, [ANN], 1, sender="gus@phish.example")
    auto_move.set_rules(services.engine, account, {"MALICIOUS": "JunkEmail"})
    _block(services, account, "phish.example")
    env = {
        "MAILSEC_DATA_DIR": str(services.settings.data_dir),
        "MAILSEC_DATABASE_URL": services.settings.resolved_database_url,
        "MAILSEC_CONFIG": "",
    }
    runner = CliRunner()
    held = runner.invoke(
        app, ["rescan", "--account", account, "--sender", "gus@phish.example", "--no-move", "-q"], env=env
    )
    assert held.exit_code == 0, held.output
    assert f"{second.id}: NONE -> MALICIOUS" in held.stdout and "moved:" not in held.stdout
    assert folders_holding(mail_dovecot, ANN, second.internet_message_id) == ["INBOX"]

    moved = runner.invoke(app, ["rescan", "--account", account, "--sender", "fay@phish.example", "-q"], env=env)
    assert moved.exit_code == 0, moved.output
    assert f"{first.id}: <{ANN}> moved JunkEmail" in moved.stdout
    assert "moved: 1 of 1 mailbox copies" in moved.stdout
    assert folders_holding(mail_dovecot, ANN, first.internet_message_id) == ["Junk"]
