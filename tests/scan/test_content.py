"""The content classifier and the bulk-header signals: crafted texts, corpus messages, training and the model file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_fraud import LETTER as FRAUD_LETTER

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, Finding
from mailsec.scan import scan_message
from mailsec.scan.content import (
    NO_LURE_PHISHING_THRESHOLD,
    PHISHING_THRESHOLDS,
    ContentModel,
    bulk_header_findings,
    classify,
    shipped_model,
    train_content_model,
)
from mailsec.scan.features import extract_text, model_document
from mailsec.scan.lure import Lure
from support import make_eml

PHISH = make_eml(
    subject="Action required: your account has been suspended",
    sender="Microsoft Account Team <no-reply@secure-login-verify.example>",
    body=(
        "Dear user, we detected unusual sign-in activity on your account. Your mailbox will be suspended and your "
        "password will expire today. Verify your account now to avoid permanent closure: click here to confirm your "
        "identity and update your billing information. Microsoft account security team."
    ),
)
SPAM = make_eml(
    subject="MAKE MONEY FAST - guaranteed income from home!!!",
    sender="Opportunity <deals@cheap-offers.example>",
    body=(
        "Earn $5000 a week working from home! This is not a scam. Order now and receive a FREE bonus. Limited time "
        "offer: lowest mortgage rates, cheap insurance, lose weight fast. Act now! Click here to be removed from our "
        "mailing list. 100% satisfaction guaranteed. Call toll free today."
    ),
)
HAM = make_eml(
    subject="Re: patch for the resolver timeout",
    sender="Bob Smith <bob@dev.example>",
    body=(
        "> I think the timeout should be configurable.\n\nAgreed. I pushed a patch that reads it from the config "
        "file; the default stays at two seconds. Could you run the test suite on your box? On mine the SPF tests "
        "pass but the DKIM ones are flaky when the DNS server starts slowly. Thanks, Bob"
    ),
)


@pytest.fixture(scope="module")
def model() -> ContentModel:
    m = shipped_model()
    assert m is not None, "the shipped model must load (make model)"
    return m


def _names(raw: bytes, model: ContentModel) -> set[str]:
    return {f.name for f in classify(extract_text(parse_message(raw)), model)}


def test_shipped_model_is_small_and_pickle_free(model: ContentModel) -> None:
    path = Path(__file__).resolve().parents[2] / "src" / "mailsec" / "scan" / "data" / "content_model.npz"
    assert path.stat().st_size < 5_000_000
    assert set(model.labels) >= {"ham", "spam", "phishing"}
    assert model.coef.shape[0] == len(model.labels)


def test_crafted_phish_spam_and_ham(model: ContentModel) -> None:
    assert "CONTENT_PHISHING" in _names(PHISH, model)
    assert "CONTENT_SPAM" in _names(SPAM, model)
    assert _names(HAM, model) == set()


def test_full_scan_on_crafted_messages() -> None:
    assert scan_message(parse_message(PHISH), Envelope()).disposition in (Disposition.SUSPICIOUS, Disposition.MALICIOUS)
    assert scan_message(parse_message(SPAM), Envelope()).disposition.severity >= Disposition.BULK.severity
    ham = scan_message(parse_message(HAM), Envelope())
    assert ham.disposition is Disposition.NONE and ham.detection_reasons == ()


def test_no_feature_from_dates_hosts_or_recipients() -> None:
    a = make_eml(subject="Invoice 2002", to="alice@example.com", body="Meeting on 12 Aug 2002 at 10:30.")
    b = make_eml(subject="Invoice 2025", to="zed@elsewhere.example", body="Meeting on 03 Jan 2025 at 18:45.")
    a = a.replace(b"Date:", b"Received: from mx.old-isp.example (1.2.3.4) by example.com; Mon, 12 Aug 2002\nDate:")
    docs = [model_document(extract_text(parse_message(raw))) for raw in (a, b)]
    assert docs[0] == docs[1]
    assert "2002" not in docs[0] and "alice" not in docs[0] and "example" not in docs[0] and "isp" not in docs[0]


def test_training_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    docs = [model_document(extract_text(parse_message(raw))) for raw in (PHISH, SPAM, HAM)] * 4
    labels = ["phishing", "spam", "ham"] * 4
    first, second = train_content_model(docs, labels), train_content_model(docs, labels)
    first.save(tmp_path / "a.npz")
    second.save(tmp_path / "b.npz")
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.npz", "b.npz")]
    assert digest[0] == digest[1]
    loaded = ContentModel.load(tmp_path / "a.npz")
    assert loaded.labels == ("ham", "spam", "phishing")
    probs = loaded.probabilities(docs[0])
    assert max(probs, key=lambda k: probs[k]) == "phishing"
    two = train_content_model(docs, ["spam" if x == "phishing" else x for x in labels])
    assert two.labels == ("ham", "spam") and two.coef.shape[0] == 2
    with pytest.raises(ValueError):
        train_content_model(docs, ["nonsense"] * len(docs))


def test_a_hostile_model_file_is_refused(tmp_path: Path) -> None:
    import io
    import pickle
    import zipfile

    path = tmp_path / "evil.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.npy", pickle.dumps({"format": "x"}))
    with pytest.raises(ValueError):
        ContentModel.load(path)
    _ = io


class _Fixed:
    """A stand-in model with fixed probabilities, to test how probabilities become findings."""

    def __init__(self, **probs: float) -> None:
        self.probs = probs

    def probabilities(self, document: str) -> dict[str, float]:
        return self.probs


def _classified(**probs: float) -> dict[str, Finding]:
    mt = extract_text(parse_message(HAM))
    return {f.name: f for f in classify(mt, _Fixed(**probs))}  # type: ignore[arg-type]


def test_probabilities_become_findings_with_thresholds() -> None:
    strong = _classified(ham=0.05, spam=0.05, phishing=0.9)
    assert set(strong) == {"CONTENT_PHISHING"}
    assert strong["CONTENT_PHISHING"].value == "0.900" and strong["CONTENT_PHISHING"].score >= 5.0
    assert "90%" in strong["CONTENT_PHISHING"].reason
    weak = _classified(ham=0.6, spam=0.05, phishing=0.35)
    assert set(weak) == {"CONTENT_PHISHING"} and weak["CONTENT_PHISHING"].score < 3.0
    assert _classified(ham=0.9, spam=0.05, phishing=0.05) == {}
    spam = _classified(ham=0.1, spam=0.8, phishing=0.1)
    assert set(spam) == {"CONTENT_SPAM"} and spam["CONTENT_SPAM"].detection is Disposition.SPAM


def test_unwanted_mass_split_between_classes_is_bulk() -> None:
    """Spam 28% + phishing 28%: neither class fires, but the message is unlike ham: BULK, not SPAM."""
    split = _classified(ham=0.44, spam=0.28, phishing=0.28)
    assert "CONTENT_UNWANTED" in split
    unwanted = split["CONTENT_UNWANTED"]
    assert unwanted.detection is Disposition.BULK and unwanted.category == "Bulk" and "56%" in unwanted.reason
    from mailsec.scan.verdict import disposition_for

    assert disposition_for(list(split.values())) is Disposition.BULK
    assert "CONTENT_UNWANTED" not in _classified(ham=0.55, spam=0.25, phishing=0.2)
    assert "CONTENT_UNWANTED" not in _classified(ham=0.1, spam=0.8, phishing=0.1)  # spam decides on its own


def test_phishing_text_that_asks_for_nothing_outside_needs_to_be_sure() -> None:
    """Without a lure (scan/lure.py) phishing-like wording decides only from NO_LURE_PHISHING_THRESHOLD, and its
    probability no longer counts towards CONTENT_UNWANTED; with one, the usual threshold applies."""
    mt = extract_text(parse_message(HAM))
    unsure = _Fixed(ham=0.3, spam=0.05, phishing=0.65)
    talk = {f.name: f for f in classify(mt, unsure, Lure(()))}  # type: ignore[arg-type]
    assert set(talk) == {"CONTENT_PHISHING"} and talk["CONTENT_PHISHING"].score < 5.0
    assert "asks for nothing outside the sender's own domain" in talk["CONTENT_PHISHING"].reason
    pointed = {f.name: f for f in classify(mt, unsure, Lure(("link",), "a link to evil.example"))}  # type: ignore[arg-type]
    assert pointed["CONTENT_PHISHING"].score >= 5.0 and "a link to evil.example" in pointed["CONTENT_PHISHING"].reason
    sure = _Fixed(ham=0.02, spam=0.03, phishing=0.95)
    assert classify(mt, sure, Lure(()))[0].score >= 5.0  # type: ignore[arg-type]
    assert PHISHING_THRESHOLDS[0] < NO_LURE_PHISHING_THRESHOLD


def test_phishing_text_alone_never_condemns_mail_its_senders_own_system_sent() -> None:
    """No lure and Message-ID/Return-Path on the From domain (a product's password reset or sign-in code): however
    sure the classifier, its text only adds weak evidence; an advance-fee story still counts as the lure."""
    mt = extract_text(parse_message(HAM))
    sure = _Fixed(ham=0.02, spam=0.03, phishing=0.95)
    own = {f.name: f for f in classify(mt, sure, Lure((), self_consistent=True))}  # type: ignore[arg-type]
    assert set(own) == {"CONTENT_PHISHING"} and own["CONTENT_PHISHING"].score < 5.0
    assert "whose own system wrote and sent it" in own["CONTENT_PHISHING"].reason
    letter = extract_text(parse_message(make_eml(body=FRAUD_LETTER)))
    story = classify(letter, sure, Lure((), self_consistent=True))  # type: ignore[arg-type]
    assert story[0].score >= 5.0 and "advance-fee story" in story[0].reason


def test_bulk_headers() -> None:
    newsletter = make_eml(headers={"List-Unsubscribe": "<https://esp.example/u>", "List-Unsubscribe-Post": "x=y",
                                   "Feedback-ID": "1:2:esp"})  # fmt: skip
    found = bulk_header_findings(parse_message(newsletter))
    assert [f.name for f in found] == ["BULK_HEADERS"] and found[0].detection is Disposition.BULK
    assert "List-Unsubscribe" in found[0].reason
    ses = make_eml(headers={"X-SES-Outgoing": "2024.01.01-1.2.3.4", "Precedence": "bulk"})
    assert "Amazon SES" in bulk_header_findings(parse_message(ses))[0].reason
    discussion = make_eml(headers={"List-Unsubscribe": "<mailto:x>", "Precedence": "bulk", "List-Post": "<mailto:l>"})
    assert bulk_header_findings(parse_message(discussion)) == []
    assert bulk_header_findings(parse_message(HAM)) == []


@pytest.mark.parametrize(
    ("relpath", "worst_ok"),
    [
        ("phishing_pot/sample-1002.eml", None),
        ("spamassassin/easy-ham-1/00001.7c53336b37003a9286aba55d2945844c.eml", Disposition.BULK),
    ],
)
def test_known_corpus_messages(corpora: Path, relpath: str, worst_ok: Disposition | None) -> None:
    """Sanity check on messages the shipped model was trained on (not an evaluation: see docs/detection.md)."""
    verdict = scan_message(parse_message((corpora / relpath).read_bytes()), Envelope())
    if worst_ok is None:
        assert verdict.disposition.severity >= Disposition.SPOOF.severity
        assert "Phishing" in verdict.threat_categories
    else:
        assert verdict.disposition.severity <= worst_ok.severity
