"""`mailsec train` and `mailsec eval` on small labelled folders, through the real CLI, plus campaign grouping."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.evaluate import (
    campaign_groups,
    cross_validate_samples,
    list_messages,
    load_samples,
    message_source,
    parse_specs,
)
from mailsec.mime import parse_message
from support import make_eml

runner = CliRunner()

PHISH_BODY = (
    "Your mailbox password expires today. Verify your account now or it will be suspended. Click here to sign in "
    "and confirm your identity with the security team. Account {n}."
)
HAM_BODY = "Hi, the release notes for version {n} are attached to the ticket; please review them before Friday. Bob"
SPAM_BODY = "Cheap meds, lose weight fast, work from home and earn money! Limited offer {n}, order now, free bonus!"
NEWSLETTER = {"List-Unsubscribe": "<https://esp.example/u>", "X-Mailgun-Sid": "x", "Precedence": "bulk"}


def _folder(
    root: Path, name: str, body: str, subject: str, n: int = 3, headers: dict[str, str] | None = None, sender: str = ""
) -> Path:
    folder = root / name
    folder.mkdir()
    for i in range(n):
        raw = make_eml(
            subject=f"{subject} {i}", body=body.format(n=i), headers=headers, **({"sender": sender} if sender else {})
        )
        (folder / f"{i:03d}.eml").write_bytes(raw)
    (folder / "LICENSE").write_text("not a message")
    return folder


def test_eval_json_counts_dispositions_and_rates(tmp_path: Path) -> None:
    phish = _folder(tmp_path, "phish", PHISH_BODY, "Security alert")
    ham = _folder(tmp_path, "ham", HAM_BODY, "Release notes")
    bulk = _folder(tmp_path, "bulk", HAM_BODY, "Newsletter", headers=NEWSLETTER)
    # Counting is under test here, not the shipped model (docs/detection.md measures that): train one on these folders.
    model = tmp_path / "m.npz"
    assert runner.invoke(app, ["train", f"phishing={phish}", f"ham={ham}", "-o", str(model)]).exit_code == 0
    specs = [f"phishing={phish}", f"ham={ham}", f"bulk={bulk}"]
    result = runner.invoke(app, ["eval", *specs, "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    groups = {g["label"]: g for g in json.loads(result.stdout)["groups"]}
    assert groups["phishing"]["total"] == 3 and groups["ham"]["total"] == 3
    assert sum(groups["phishing"]["dispositions"].values()) == 3
    assert groups["phishing"]["detection_rate"] == groups["phishing"]["flagged"] / 3
    assert groups["ham"]["false_positive_rate"] == 0.0
    assert groups["bulk"]["dispositions"] == {"BULK": 3} and groups["bulk"]["detection_rate"] == 1.0


def test_eval_table_and_bad_arguments(tmp_path: Path) -> None:
    ham = _folder(tmp_path, "ham", HAM_BODY, "Notes", n=1)
    result = runner.invoke(app, ["eval", f"ham={ham}"])
    assert result.exit_code == 0 and "ham" in result.stdout and "NONE" in result.stdout
    assert runner.invoke(app, ["eval", f"weird={ham}"]).exit_code != 0
    assert runner.invoke(app, ["eval", f"ham={tmp_path / 'missing'}"]).exit_code != 0


def test_train_then_eval_with_the_trained_model(tmp_path: Path) -> None:
    # composed elsewhere than its From domain (make_eml's Message-ID is @sender.example): mail its sender's own
    # system sent is never condemned for its words alone (scan/lure.py)
    phish = _folder(tmp_path, "phish", PHISH_BODY, "Security alert", n=4, sender="it@mail-verify.example")
    spam = _folder(tmp_path, "spam", SPAM_BODY, "Deal", n=4)
    ham = _folder(tmp_path, "ham", HAM_BODY, "Release notes", n=4)
    out = tmp_path / "m.npz"
    result = runner.invoke(app, ["train", f"phishing={phish}", f"spam={spam}", f"ham={ham}", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and result.stdout.strip().endswith("m.npz")
    result = runner.invoke(app, ["eval", f"phishing={phish}", f"ham={ham}", "--model", str(out), "--json"])
    groups = {g["label"]: g for g in json.loads(result.stdout)["groups"]}
    assert groups["phishing"]["detection_rate"] == 1.0
    assert groups["ham"]["false_positive_rate"] == 0.0


def test_list_and_specs(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "x", HAM_BODY, "s", n=2)
    assert [p.name for p in list_messages(folder)] == ["000.eml", "001.eml"]
    assert parse_specs([f"HAM={folder}"]) == [("ham", folder)]


def test_campaign_groups_join_one_campaign_and_keep_others_apart() -> None:
    same_a = make_eml(subject="Re: Your invoice #1234 is overdue", sender="a@x1.example", body="pay now")
    same_b = make_eml(subject="Your invoice #9876 is overdue", sender="b@x2.example", body="pay soon")
    other = make_eml(subject="Lunch on Thursday?", sender="c@x3.example", body="pizza?")
    anonymised = make_eml(subject="Something else entirely", sender="alice@example.com", body="x")
    anonymised2 = make_eml(subject="A different topic", sender="alice@example.com", body="y")
    groups = campaign_groups([parse_message(r) for r in (same_a, same_b, other, anonymised, anonymised2)])
    assert groups[0] == groups[1]
    assert len({groups[0], groups[2], groups[3], groups[4]}) == 4


def test_sources_from_manifest_list_and_sender_domain(tmp_path: Path) -> None:
    corpus = tmp_path / "modern"
    (corpus / "real").mkdir(parents=True)
    (corpus / "real" / "a.eml").write_bytes(make_eml(subject="Re: patch", body=HAM_BODY.format(n=1)))
    (corpus / "real" / "b.eml").write_bytes(
        make_eml(subject="Question", body=HAM_BODY.format(n=2), headers={"List-Id": "Dev <dev.lists.example>"})
    )
    (corpus / "manifest.jsonl").write_text(json.dumps({"file": "real/a.eml", "source_repository": "org/list-a"}) + "\n")
    samples = load_samples([("ham", corpus)])
    assert [s.name for s in samples] == ["modern/real/a.eml", "modern/real/b.eml"]  # the manifest is no message
    assert [s.folder for s in samples] == ["modern/real", "modern/real"]
    assert [s.source for s in samples] == ["modern:org/list-a", "modern:list:dev.lists.example"]
    phish = parse_message(make_eml(sender="x@bad-domain.example", body=PHISH_BODY.format(n=1)))
    free = parse_message(make_eml(sender="scammer@gmail.com", body=PHISH_BODY.format(n=1)))
    removed = parse_message(make_eml(sender="[removed]", body=PHISH_BODY.format(n=1)))
    assert message_source("phishing", "po", Path("lists/m.eml"), phish, {}) == "po/lists:bad-domain.example"
    assert message_source("phishing", "po", Path("m.eml"), free, {}) == "po/:scammer@gmail.com"
    assert message_source("phishing", "po", Path("m.eml"), removed, {}) == ""


def test_one_source_is_never_in_train_and_test(tmp_path: Path) -> None:
    subjects = ["Lunch", "Build", "Review", "Ticket", "Slides", "Budget"]
    messages = [
        parse_message(make_eml(subject=f"{s} {i}", body=f"{s} talk {i} " * 5, sender=f"p{i}@one.example"))
        for i, s in enumerate(subjects)
    ]
    groups = campaign_groups(messages, ["phishing"] * 3 + ["ham"] * 3, ["src-a", "src-a", "", "", "src-b", "src-b"])
    assert groups[0] == groups[1] and groups[4] == groups[5]
    assert len({groups[0], groups[2], groups[3], groups[4]}) == 4


def _sources(root: Path, name: str, body: str, subjects: list[str]) -> Path:
    """One message per sender domain, each with its own subject: each its own source."""
    folder = root / name
    folder.mkdir()
    for i, subject in enumerate(subjects):
        raw = make_eml(subject=subject, sender=f"x@{name}{chr(97 + i)}.example", body=body.format(n=i))
        (folder / f"{i:03d}.eml").write_bytes(raw)
    return folder


def test_eval_cross_validates_by_source_through_the_cli(tmp_path: Path) -> None:
    phish = _sources(tmp_path, "phish", PHISH_BODY, ["Alert", "Mailbox full", "Verify now", "Locked", "Sign in", "Ups"])
    ham = _sources(tmp_path, "ham", HAM_BODY, ["Notes", "Lunch", "Build", "Review", "Slides", "Budget"])
    result = runner.invoke(app, ["eval", f"phishing={phish}", f"ham={ham}", "--folds", "3", "--by-source", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    groups = {g["label"]: g for g in report["groups"]}
    assert groups["phishing"]["total"] == 6 and groups["ham"]["total"] == 6
    assert 0.0 <= groups["phishing"]["held_rate"] <= groups["phishing"]["detection_rate"]
    assert {f["name"] for f in report["folders"]} == {"phish", "ham"}
    assert {s["name"] for s in report["sources"]} >= {"phish/:phisha.example", "(campaigns)"}
    assert runner.invoke(app, ["eval", f"ham={ham}", "--folds", "1"]).exit_code != 0
    one_class = runner.invoke(app, ["eval", f"ham={ham}", "--folds", "2"])
    assert one_class.exit_code != 0 and "two labels" in one_class.output


def test_cross_validation_trains_without_the_held_out_source(tmp_path: Path) -> None:
    phish = _sources(tmp_path, "phish", PHISH_BODY, ["Alert", "Mailbox full", "Verify now", "Locked", "Sign in", "Ups"])
    for i, subject in enumerate(["Invoice", "Parcel held", "Tax refund"]):
        raw = make_eml(subject=subject, sender=f"n{i}@same.example", body=f"{subject}: " + PHISH_BODY.format(n=i))
        (phish / f"same-{i}.eml").write_bytes(raw)
    ham = _sources(tmp_path, "ham", HAM_BODY, ["Notes", "Lunch", "Build", "Review", "Slides", "Budget"])
    samples = load_samples([("phishing", phish), ("ham", ham)])
    cv = cross_validate_samples(samples, n_folds=3)
    same = [i for i, s in enumerate(samples) if s.source == "phish/:same.example"]
    assert len(same) == 3 and len({cv.folds[i] for i in same}) == 1  # one sender domain: one fold
