"""The account's content model: an analyst's label is learned online (a paraphrase the campaign memory would not
match changes verdict too), versioned, shown by `mailsec model status`, undone by `mailsec model rollback` (which
gives the mail scanned since its earlier verdicts back), and refused with its reason when no held-out sample is there
to check it on or when it would fall below the shipped model's floor on that sample."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from learn_helpers import PROMO, reclassify, store
from typer.testing import CliRunner

from mailsec.cli import app
from mailsec.config import load_settings
from mailsec.learn.holdout import Quality, below_floor, sample_files
from mailsec.learn.model import account_model, status
from mailsec.model import Disposition
from mailsec.services import Services, open_services
from mailsec.store.schema import learn_models

D = Disposition
PARAPHRASES = [
    "Premium garden furniture at wholesale prices this season: exclusive selection, free delivery to your door and a "
    "discount on your next order. Reply for the catalogue.",
    "Our exclusive premium garden furniture selection is now at wholesale prices with free delivery and a discount "
    "for your next order.",
]


def test_update_status_and_rollback_restores_the_previous_verdicts(tmp_path: Path, corpora: Path) -> None:
    data = tmp_path / "data"
    services = open_services(load_settings(env={}, data_dir=data, learn_holdout_dir=str(corpora)))
    try:
        account = services.accounts.create_account("Corp").id
        before = [store(services, account, text, subject="Garden", sender="a@b.example") for text in PARAPHRASES]
        earlier = [p.verdict.disposition for p in before]
        assert D.SPAM not in earlier
        promo = store(services, account, PROMO)
        outcome = reclassify(services, account, promo, D.SPAM, "sub-promo")
        assert outcome.model.startswith("version 1: accepted (spam")
        assert account_model(services, account) is not None
        after = [store(services, account, text, subject="Garden 2", sender="c@d.example") for text in PARAPHRASES]
        assert [p.verdict.disposition for p in after] == [D.SPAM, D.SPAM]
        for p in after:  # the model changed them, not the campaign memory
            assert {f.name for f in p.verdict.findings} & {"CONTENT_SPAM"}
            assert not any(f.name.startswith("LEARNED_") for f in p.verdict.findings)
    finally:
        services.close()

    runner = CliRunner()
    env = {"MAILSEC_DATA_DIR": str(data), "MAILSEC_DATABASE_URL": "", "MAILSEC_CONFIG": ""}
    shown = runner.invoke(app, ["model", "status", "--account", account], env=env)
    assert shown.exit_code == 0, shown.output
    assert "active: 1" in shown.stdout and "sub-promo" in shown.stdout and "accepted" in shown.stdout
    back = runner.invoke(app, ["model", "rollback", "--account", account], env=env)
    assert back.exit_code == 0, (back.stdout, back.stderr)
    for p, was in zip(after, earlier, strict=True):
        assert f"{p.id}: SPAM -> {was.value}" in back.stdout
    assert "rolled back version 1; active: 0" in back.stdout
    again = runner.invoke(app, ["model", "rollback", "--account", account], env=env)
    assert again.exit_code == 1 and "nothing to roll back" in again.stderr

    services = open_services(load_settings(env={}, data_dir=data))
    try:
        assert account_model(services, account) is None
        assert [v.state for v in status(services, account)[1]] == ["rolled_back"]
        fresh = store(services, account, PARAPHRASES[1] + " Thanks.", subject="Garden 3", sender="e@f.example")
        assert fresh.verdict.disposition is earlier[1]
    finally:
        services.close()


def test_an_update_without_a_held_out_sample_is_refused(services: Services) -> None:
    account = services.accounts.create_account("Corp").id
    promo = store(services, account, PROMO)
    outcome = reclassify(services, account, promo, D.SPAM, "sub-1")
    assert "refused: no held-out sample" in outcome.model
    active, versions = status(services, account)
    assert active == 0 and [v.state for v in versions] == ["refused"]
    assert account_model(services, account) is None


def test_updates_that_would_fall_below_the_floor_are_refused(services: Services, corpora: Path) -> None:
    """Teaching "ham" on the held-out sample's own phishing messages costs held-out accuracy one message at a
    time, until an update would pass the floor: that one is refused and the active model stays above it."""
    svc = replace(services, settings=replace(services.settings, learn_holdout_dir=str(corpora)))
    account = svc.accounts.create_account("Corp").id
    phish = [path for label, path in sample_files(corpora) if label == "phishing"][:8]
    outcomes = []
    for i, path in enumerate(phish):
        from mailsec.pipeline import process_message

        p = process_message(svc, path.read_bytes(), account)
        outcomes.append(reclassify(svc, account, p, D.NONE, f"sub-{i}").model)
        if "below the floor" in outcomes[-1]:
            break
    assert "below the floor" in outcomes[-1], outcomes
    assert any("accepted" in o for o in outcomes[:-1]), outcomes
    with svc.engine.connect() as conn:
        rows = conn.execute(learn_models.select().order_by(learn_models.c.version)).all()
    refused = rows[-1]
    assert refused.state == "refused" and refused.delta is None
    assert status(svc, account)[0] == max(r.version for r in rows if r.state == "active")


def test_floor() -> None:
    shipped = Quality(accuracy=0.95, ham_accuracy=0.99, messages=200)
    assert below_floor(Quality(0.945, 0.985, 200), shipped) is None
    assert "below the floor of 94.0%" in (below_floor(Quality(0.93, 0.99, 200), shipped) or "")
    assert "ham accuracy" in (below_floor(Quality(0.95, 0.97, 200), shipped) or "")


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> None:
    from mailsec.learn import model

    model._cache.clear()
