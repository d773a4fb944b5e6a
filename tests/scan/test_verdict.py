"""How findings and policy add up to a verdict: severity order, thresholds, policy, reasons, categories and the
fingerprints."""

from __future__ import annotations

from mailsec.mime import parse_message
from mailsec.model import THREAT_CATEGORIES, Disposition, Envelope, Finding
from mailsec.scan import scan_message
from mailsec.scan.features import extract_text
from mailsec.scan.fingerprint import edf_hash, hamming, htmltext_structure_hash
from mailsec.scan.policy import PolicyOutcome
from mailsec.scan.verdict import THRESHOLDS, combine, disposition_for
from support import make_eml

D = Disposition


def f(name: str, detection: Disposition, score: float, category: str | None = None) -> Finding:
    return Finding(name=name, detection=detection, score=score, reason=f"{name} fired.", category=category)


def test_no_findings_is_none() -> None:
    verdict = combine([])
    assert verdict.disposition is D.NONE
    assert verdict.threat_categories == () and verdict.detection_reasons == ()


def test_severity_order_worst_reaching_threshold_wins() -> None:
    findings = [f("BULKY", D.BULK, 4), f("SPAMMY", D.SPAM, 6), f("SPOOFED", D.SPOOF, 6)]
    assert disposition_for(findings) is D.SPOOF
    findings.append(f("BEC", D.MALICIOUS_BEC, 9, "BEC"))
    assert disposition_for(findings) is D.MALICIOUS_BEC


def test_weak_evidence_adds_up_and_malice_counts_as_suspicion() -> None:
    assert disposition_for([f("A", D.SPAM, 2)]) is D.NONE
    assert disposition_for([f("A", D.SPAM, 3)]) is D.BULK  # spam-like but unsure: graymail
    assert disposition_for([f("A", D.SPAM, 3), f("B", D.SPAM, 2.5)]) is D.SPAM
    assert disposition_for([f("LINK", D.MALICIOUS, 6)]) is D.SUSPICIOUS
    assert disposition_for([f("LINK", D.MALICIOUS, 6), f("TEXT", D.MALICIOUS, 2)]) is D.MALICIOUS
    assert disposition_for([f("X", D.BULK, THRESHOLDS[D.BULK])]) is D.BULK


def test_negative_evidence_lowers_but_a_strong_single_finding_decides_alone() -> None:
    dmarc_pass = f("DMARC_PASS", D.NONE, -3)
    assert disposition_for([f("A", D.SPAM, 3), f("B", D.SPAM, 3)]) is D.SPAM
    assert disposition_for([f("A", D.SPAM, 3), f("B", D.SPAM, 3), dmarc_pass]) is D.BULK
    macro = f("AUTOEXEC_MACRO", D.MALICIOUS, 9, "Malware")
    assert disposition_for([macro, dmarc_pass]) is D.MALICIOUS


def test_encrypted_attachment_alone_is_not_a_threat_but_is_recorded() -> None:
    verdict = combine([f("ENCRYPTED_ZIP", D.ENCRYPTED, 1)], encrypted=frozenset({"ab" * 32}))
    assert verdict.disposition is D.NONE
    assert verdict.encrypted_attachments == frozenset({"ab" * 32})


def test_reasons_ordered_by_score_and_categories_from_vocabulary() -> None:
    findings = [
        f("TEXT", D.MALICIOUS, 3, "Phishing"),
        f("LINK", D.MALICIOUS, 6, "CredentialHarvester"),
        f("BULKY", D.BULK, 3),
        f("BOGUS", D.MALICIOUS, 0.5, "NotACategory"),
    ]
    verdict = combine(findings)
    assert verdict.disposition is D.MALICIOUS
    assert verdict.detection_reasons[:2] == ("LINK fired.", "TEXT fired.")
    assert verdict.threat_categories[:2] == ("CredentialHarvester", "Phishing")
    assert "Bulk" not in verdict.threat_categories  # below the final disposition
    assert set(verdict.threat_categories) <= set(THREAT_CATEGORIES)
    assert verdict.findings[: len(findings)] == tuple(findings)


def test_block_policy_makes_malicious_with_pattern() -> None:
    outcome = PolicyOutcome(blocked=True, properties={"blocklisted_pattern": "evil.example"})
    verdict = combine([], outcome)
    assert verdict.disposition is D.MALICIOUS
    assert verdict.properties["blocklisted_pattern"] == "evil.example"
    assert "Blocklisted" in verdict.threat_categories
    assert any("evil.example" in r for r in verdict.detection_reasons)
    assert any(x.name == "BLOCKLISTED" for x in verdict.findings)


def test_acceptable_sender_exempts_spam_but_not_malware() -> None:
    allowed = PolicyOutcome(allowed=True, properties={"allowlisted_pattern": "partner.example"})
    spam = combine([f("SPAMMY", D.SPAM, 6, "ContentSpam")], allowed)
    assert spam.disposition is D.NONE
    assert any("partner.example" in r for r in spam.detection_reasons)
    assert spam.properties["allowlisted_pattern"] == "partner.example"
    malware = combine([f("MACRO", D.MALICIOUS, 9, "Malware")], allowed)
    assert malware.disposition is D.MALICIOUS
    suspicious = combine([f("LINK", D.SUSPICIOUS, 6)], allowed)
    assert suspicious.disposition is D.SUSPICIOUS


def test_trusted_sender_clears_everything_but_keeps_the_findings() -> None:
    trusted = PolicyOutcome(allowed=True, trusted_sender=True, properties={"allowlisted_pattern": "ceo@corp.example"})
    verdict = combine([f("MACRO", D.MALICIOUS, 9, "Malware")], trusted)
    assert verdict.disposition is D.NONE
    assert [x.name for x in verdict.findings] == ["MACRO"]
    assert verdict.threat_categories == ()
    assert "trusted" in verdict.detection_reasons[0]


def test_policy_findings_are_included() -> None:
    outcome = PolicyOutcome(findings=(f("POLICY_NOTE", D.NONE, 0),))
    assert [x.name for x in combine([], outcome).findings] == ["POLICY_NOTE"]


CAMPAIGN = (
    "Dear customer, your mailbox {user} has exceeded its storage limit. To keep receiving messages you must "
    "verify your account within 24 hours by signing in at the secure portal below. Failure to verify will result "
    "in permanent suspension of your e-mail account and loss of all stored messages. Regards, IT help desk team "
    "for {company}. This is an automated message, do not reply."
)


def _mt(body: str, html: str | None = None):  # type: ignore[no-untyped-def]
    return extract_text(parse_message(make_eml(subject="Mailbox full", body=body, html=html)))


def test_edf_hash_is_stable_and_similar_messages_are_near() -> None:
    a = _mt(CAMPAIGN.format(user="bob@corp.example", company="Corp"))
    a_again = _mt(CAMPAIGN.format(user="bob@corp.example", company="Corp"))
    b = _mt(CAMPAIGN.format(user="carol@other.example", company="Other"))
    unrelated = _mt("The quarterly planning meeting moves to Thursday; please bring the budget spreadsheet and notes.")
    assert edf_hash(a) == edf_hash(a_again)
    assert len(edf_hash(a)) == 16 and int(edf_hash(a), 16) >= 0
    assert hamming(edf_hash(a), edf_hash(b)) <= 12
    assert hamming(edf_hash(a), edf_hash(unrelated)) > hamming(edf_hash(a), edf_hash(b)) + 8


def test_structure_hash_follows_the_tag_skeleton_not_the_words() -> None:
    html = "<html><body><table><tr><td><p>{}</p><a href='https://x.example/{}'>go</a></td></tr></table></body></html>"
    a = _mt("x", html.format("Hello Bob", "1"))
    b = _mt("x", html.format("Hi Carol, different words here", "2"))
    c = _mt("x", "<html><body><div><h1>News</h1><ul><li>one</li><li>two</li></ul></div></body></html>")
    assert htmltext_structure_hash(a) == htmltext_structure_hash(b)
    assert htmltext_structure_hash(a) != htmltext_structure_hash(c)


def test_scan_message_fills_the_verdict() -> None:
    raw = make_eml(
        subject="Weekly deals",
        body="Our best offers this week.",
        headers={"List-Unsubscribe": "<mailto:u@esp.example>", "Precedence": "bulk", "X-Mailgun-Sid": "abc"},
    )
    verdict = scan_message(parse_message(raw), Envelope(), model=False)
    assert verdict.disposition is D.BULK
    assert verdict.threat_categories == ("Bulk",)
    assert verdict.detection_reasons and "Mailgun" in verdict.detection_reasons[0]
    assert verdict.edf_hash and verdict.htmltext_structure_hash


def test_a_failing_analyzer_becomes_a_finding(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mailsec.scan as scan

    def broken(*_args: object) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(scan, "analyze_links", broken)
    verdict = scan.scan_message(parse_message(make_eml()), Envelope(), model=False)
    errors = [x for x in verdict.findings if x.name == "ANALYZER_ERROR"]
    assert len(errors) == 1 and "links" in (errors[0].detail or "")
    assert verdict.disposition is D.NONE


def _phish_text(p: float) -> Finding:
    return Finding(name="CONTENT_PHISHING", detection=D.MALICIOUS, score=5.0 + 2.0 * (p - 0.5) / 0.5,
                   reason="The text reads like phishing.", value=f"{p:.3f}", category="Phishing")  # fmt: skip


def test_sure_phishing_text_plus_an_independent_deception_is_malicious() -> None:
    mismatch = Finding(name="LINK_TEXT_MISMATCH", detection=D.SUSPICIOUS, score=2.0,
                       reason="A link shows bank.example but goes to evil.example.", category="Link")  # fmt: skip
    alone = combine([_phish_text(0.9)])
    assert alone.disposition is D.SUSPICIOUS  # content alone is never MALICIOUS
    both = combine([_phish_text(0.9), mismatch])
    assert both.disposition is D.MALICIOUS
    added = [x for x in both.findings if x.name == "PHISHING_CORROBORATED"]
    assert len(added) == 1 and added[0].detail == "LINK_TEXT_MISMATCH"
    assert "90%" in added[0].reason and "evil.example" in added[0].reason
    assert "Phishing" in both.threat_categories
    # an unsure classifier, a shortener (ordinary in newsletters) or a second combine do not add it
    assert combine([_phish_text(0.55), mismatch]).disposition is D.SUSPICIOUS
    assert combine([_phish_text(0.62), mismatch]).disposition is D.MALICIOUS
    shortener = f("LINK_SHORTENER", D.SUSPICIOUS, 1.0, "Link")
    assert combine([_phish_text(0.95), shortener]).disposition is D.SUSPICIOUS
    again = combine(list(both.findings))
    assert [x.name for x in again.findings].count("PHISHING_CORROBORATED") == 1
    # an authenticated sender needs a surer classifier
    dmarc_pass = f("DMARC_PASS", D.NONE, -1.0)
    assert combine([_phish_text(0.72), mismatch, dmarc_pass]).disposition is D.SUSPICIOUS
    assert combine([_phish_text(0.95), mismatch, dmarc_pass]).disposition is D.MALICIOUS
