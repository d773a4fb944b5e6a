"""File ingest (SQLite and PostgreSQL): .eml files, directories, mbox and Maildir; a summary with reasons; no
crash on any input; trace lines for each step; re-ingest stores nothing twice."""

from __future__ import annotations

import mailbox
from pathlib import Path

from mailsec.config import load_settings
from mailsec.ingest import ingest_paths
from mailsec.model import DeliveryMode
from mailsec.services import Services, open_services
from support import make_eml


def _tree(root: Path) -> dict[str, bytes]:
    """A folder with every kind of input; returns the raw bytes of each message it holds."""
    msgs = {f"plain{i}": make_eml(subject=f"plain {i}") for i in range(3)}
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.eml").write_bytes(msgs["plain0"])
    (root / "dir" / "sub" / "b.eml").write_bytes(msgs["plain1"])
    (root / "dir" / "sub" / "no-extension").write_bytes(msgs["plain2"])
    (root / "dir" / ".hidden").mkdir()
    (root / "dir" / ".hidden" / "skip.eml").write_bytes(make_eml(subject="hidden"))
    box = mailbox.mbox(str(root / "inbox.mbox"))
    for i in range(3):
        raw = make_eml(subject=f"mbox {i}", body=f"From the start\nline {i}\n")
        msgs[f"mbox{i}"] = raw
        box.add(raw)
    box.flush()
    box.close()
    md = mailbox.Maildir(str(root / "Maildir"))
    for i in range(2):
        raw = make_eml(subject=f"maildir {i}")
        msgs[f"maildir{i}"] = raw
        md.add(raw)
    (root / "Maildir" / "tmp" / "partial").write_bytes(b"From: half")
    return msgs


def test_every_kind_of_input(services: Services, tmp_path: Path) -> None:
    msgs = _tree(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.eml").write_bytes(b"")
    (bad / "binary.eml").write_bytes(bytes(range(256)) * 10)
    (bad / "text.txt").write_text("just some notes\nwithout any header\n")
    account = services.accounts.create_account("A").id
    paths = [tmp_path / "dir", tmp_path / "inbox.mbox", tmp_path / "Maildir", bad, tmp_path / "missing.eml"]
    summary = ingest_paths(services, account, paths)
    assert summary.stored == len(msgs) == 8
    reasons = dict(summary.failed)
    assert reasons[str(bad / "empty.eml")] == "empty file"
    assert "not an e-mail" in reasons[str(bad / "binary.eml")]
    assert "not an e-mail" in reasons[str(bad / "text.txt")]
    assert reasons[str(tmp_path / "missing.eml")] == "no such file or directory"
    assert len(summary.failed) == 4
    subjects = set()
    for mid in summary.ids:
        stored = services.messages.get(account, mid)
        assert stored is not None
        subjects.add(stored.subject)
        assert stored.delivery_mode == "API"
        assert services.blobs.get(stored.raw_sha256) in msgs.values()
        lines = [e.message for e in services.messages.trace(stored.pk)["inbound"]]
        for step in ("received", "parsed", "scanned", "stored as"):
            assert any(line.startswith(step) or step in line for line in lines), (step, lines)
    assert "hidden" not in subjects
    again = ingest_paths(services, account, paths, mode=DeliveryMode.BCC)
    assert (again.stored, again.duplicates, len(again.failed)) == (0, 8, 4)
    assert services.messages.count(account) == 8
    # The same files for another account are that account's own copies.
    other = services.accounts.create_account("B").id
    assert ingest_paths(services, other, [tmp_path / "dir"], mode=DeliveryMode.BCC).stored == 3
    for m in services.messages.get_many(services.messages.iter_pks(other)):
        assert m.delivery_mode == "BCC"


def test_size_limit_and_progress_callback(tmp_path: Path) -> None:
    services = open_services(load_settings(env={}, data_dir=tmp_path / "data", max_message_bytes=2000))
    try:
        account = services.accounts.create_account("A").id
        small, big = tmp_path / "small.eml", tmp_path / "big.eml"
        small.write_bytes(make_eml(subject="small"))
        big.write_bytes(make_eml(subject="big", body="x" * 5000))
        seen: list[tuple[str, str]] = []
        summary = ingest_paths(
            services, account, [small, big], on_item=lambda item, outcome: seen.append((item.label, outcome))
        )
        assert summary.stored == 1
        assert "max_message_bytes" in dict(summary.failed)[str(big)]
        assert seen == [(str(small), "stored"), (str(big), "failed")]
    finally:
        services.close()


def test_hostile_bytes_never_stop_the_run(sqlite_services: Services, tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    folder.mkdir()
    samples = [
        b"From: a@example.com\r\nSubject: \xff\xfe\x00\r\n\r\n\x00\x00",
        b"From: a@example.com\nContent-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: message/rfc822\n\n",
        b"Subject: " + b"A" * 300_000 + b"\r\n\r\nbody",
        b"From b@example.com Mon Jan  1 00:00:00 2026\nFrom: b@example.com\n\nmbox with one message\n",
        b"X: y\r\n\r\n" + bytes(range(256)) * 100,
    ]
    for i, raw in enumerate(samples):
        (folder / f"{i}.eml").write_bytes(raw)
    account = sqlite_services.accounts.create_account("A").id
    summary = ingest_paths(sqlite_services, account, [folder])
    assert summary.stored == len(samples) and not summary.failed
    for mid in summary.ids:
        stored = sqlite_services.messages.get(account, mid)
        assert stored is not None
        assert sqlite_services.blobs.get(stored.raw_sha256) in samples or stored.raw_size > 0
