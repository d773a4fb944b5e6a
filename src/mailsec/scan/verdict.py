"""Findings plus the account's policy → the verdict.

Like rspamd symbols, each finding carries a score and the disposition it argues for. The score of a disposition is
the sum of the scores of every finding arguing for it or for something worse (evidence of malice is also evidence
of suspicion), plus the neutral findings (negative scores such as aligned DMARC lower every level). The verdict is
the worst disposition, in the design's severity order, whose sum reaches its threshold; a single finding that
reaches a threshold on its own (an auto-executing macro) decides regardless of negative evidence. Phishing text the
classifier is sure of plus a deception found by another analyzer adds PHISHING_CORROBORATED (content alone is never
MALICIOUS; two independent analyzers agreeing can be).
Bulk mail sent by an ESP (BULK_SENDER) is BULK at worst when only its wording argues for more.
Then policy: a block policy makes the message MALICIOUS; an acceptable-sender allow policy exempts it from SPOOF,
SPAM and BULK; only a trusted-sender policy clears MALICIOUS."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from mailsec.model import THREAT_CATEGORIES, Disposition, Finding, SenderInfo, Validation, Verdict
from mailsec.scan import registry
from mailsec.scan.policy import PolicyOutcome

log = logging.getLogger(__name__)

D = Disposition
LADDER = (D.MALICIOUS_BEC, D.MALICIOUS, D.SUSPICIOUS, D.SPOOF, D.SPAM, D.BULK)
THRESHOLDS: dict[Disposition, float] = {
    D.MALICIOUS_BEC: 8.0,
    D.MALICIOUS: 8.0,
    D.SUSPICIOUS: 5.0,
    D.SPOOF: 5.0,
    D.SPAM: 5.0,
    D.BULK: 3.0,
}
_LEVEL = {D.ENCRYPTED: D.SUSPICIOUS}
_DEFAULT_CATEGORY = {
    D.MALICIOUS_BEC: "BEC",
    D.SPOOF: "Spoof",
    D.SPAM: "ContentSpam",
    D.BULK: "Bulk",
    D.ENCRYPTED: "Encrypted",
}
ALLOW_EXEMPT = frozenset({D.SPOOF, D.SPAM, D.BULK})

# Content alone never makes a message MALICIOUS: a modern newsletter can read like phishing. Two independent analyzers
# agreeing can: text the classifier calls phishing with at least this probability, plus a deception another analyzer
# found in the links, the sender or the attachments. The added score lifts CONTENT_PHISHING (5.4 to 7 from
# probability 0.6) over the MALICIOUS threshold; an authenticated sender (DMARC pass, -1) needs a surer classifier.
# Out of fold no ham message with a deception finding reads above 0.4 (docs/detection.md), so 0.6 keeps a margin.
CORROBORATED_PHISHING = 0.6
CORROBORATION_SCORE = 3.0
# From the classifier's weak phishing threshold (content.PHISHING_THRESHOLDS) a deception makes the message
# SUSPICIOUS (PHISHING_SUSPECTED, 2.5: with the weak content score 2.5 it reaches 5); out of fold 2 of 3,480 ham
# messages have both (docs/detection.md).
SUSPECTED_PHISHING = 0.3
DECEPTIONS = registry.DECEPTIONS


def level(finding: Finding) -> Disposition | None:
    """The ladder step a finding argues for; None for neutral findings (NONE, EXTERNAL, UNKNOWN)."""
    d = _LEVEL.get(finding.detection, finding.detection)
    return d if d in THRESHOLDS else None


def level_scores(findings: Iterable[Finding]) -> dict[Disposition, float]:
    """Per ladder step: the summed score of the evidence for it or for worse, plus the neutral scores."""
    findings = list(findings)
    neutral = sum(f.score for f in findings if level(f) is None)
    out = {}
    for step in LADDER:
        out[step] = neutral + sum(
            f.score for f in findings if (lv := level(f)) is not None and lv.severity >= step.severity
        )
    return out


def corroboration(findings: Sequence[Finding]) -> Finding | None:
    """PHISHING_CORROBORATED when the classifier's phishing finding (its probability in `value`) is sure enough and
    another analyzer found a deception; PHISHING_SUSPECTED (SUSPICIOUS) when the classifier only leans to phishing
    (from its weak threshold) and another analyzer found a deception: two doubtful signals that agree are a doubt
    worth tagging, not a certainty. The reason names both. None otherwise."""
    content = next((f for f in findings if f.name == "CONTENT_PHISHING" and f.score > 0), None)
    if content is None or any(f.name in ("PHISHING_CORROBORATED", "PHISHING_SUSPECTED") for f in findings):
        return None
    try:
        p = float(content.value or "")
    except ValueError:
        return None
    if not p >= SUSPECTED_PHISHING:
        return None
    evidence = sorted((f for f in findings if f.name in DECEPTIONS and f.score > 0), key=lambda f: -f.score)
    if not evidence:
        return None
    sure = p >= CORROBORATED_PHISHING
    return registry.spec("PHISHING_CORROBORATED" if sure else "PHISHING_SUSPECTED").make(
        f"{'Phishing' if sure else 'Phishing-like'} text (classifier probability {p:.0%}) and independent evidence "
        f"agree: {evidence[0].reason}",
        field="body",
        detail=", ".join(dict.fromkeys(f.name for f in evidence)),
    )


VOUCHED = frozenset({"DMARC_PASS", "SENDER_AUTHENTICATED", "SENDER_KNOWN", "SENDER_REPLIED_TO"})


def bulk_cap(findings: Sequence[Finding], disposition: Disposition) -> str | None:
    """Why a SPAM-or-worse verdict drops to BULK: the message was sent in bulk by an ESP or list manager
    (BULK_SENDER) and every finding arguing for SPAM or worse is about its wording. Phishing wording is capped only
    when the sender is vouched for (authenticated, or known to the account): phishers rent ESP accounts too. None
    when the cap does not apply."""
    if disposition.severity <= D.BULK.severity or not any(f.name == "BULK_SENDER" for f in findings):
        return None
    vouched = any(f.name in VOUCHED and f.score < 0 for f in findings)
    for f in findings:
        lv = level(f)
        if f.score > 0 and lv is not None and lv.severity > D.BULK.severity:
            declared = registry.REGISTRY.get(f.name)
            if declared is None or declared.analyzer != "content":
                return None
            if f.name == "CONTENT_PHISHING" and not vouched:
                return None
    return f"Would be {disposition.value} on its wording alone, but it is bulk mail from an ESP: BULK at worst."


def disposition_for(findings: Sequence[Finding], exempt: frozenset[Disposition] = frozenset()) -> Disposition:
    scores = level_scores(findings)
    for step in LADDER:
        if step in exempt:
            continue
        if scores[step] >= THRESHOLDS[step]:
            return step
        if any((lv := level(f)) is not None and lv.severity >= step.severity and f.score >= THRESHOLDS[step]
               for f in findings):  # fmt: skip
            return step
    return D.NONE


def category_of(finding: Finding) -> str | None:
    name = finding.category or _DEFAULT_CATEGORY.get(finding.detection)
    if name and name not in THREAT_CATEGORIES:
        log.warning("finding %s names unknown threat category %r", finding.name, name)
        return None
    return name


def _ranked(findings: Sequence[Finding]) -> list[Finding]:
    return sorted((f for f in findings if f.score > 0), key=lambda f: -f.score)


def combine(
    findings: Sequence[Finding],
    policy: PolicyOutcome | None = None,
    *,
    validation: Validation | None = None,
    sender_info: SenderInfo | None = None,
    attachment_detections: Mapping[str, str] | None = None,
    encrypted: frozenset[str] = frozenset(),
    edf_hash: str | None = None,
    htmltext_structure_hash: str | None = None,
) -> Verdict:
    policy = policy or PolicyOutcome()
    findings = list(findings) + [f for f in policy.findings if isinstance(f, Finding) and f not in findings]
    corroborated = corroboration(findings)
    if corroborated is not None:
        findings.append(corroborated)
    scored = [f for f in findings if not (policy.blocked and f.name == "BLOCKLISTED")]
    properties: dict[str, object] = dict(policy.properties)
    exempt = ALLOW_EXEMPT if policy.allowed else frozenset()
    disposition = disposition_for(scored, exempt)
    policy_reasons: list[str] = []
    capped = bulk_cap(scored, disposition)
    if capped:
        disposition = D.BULK
        policy_reasons.append(capped)
    policy_categories: list[str] = []
    if policy.blocked:
        pattern = properties.get("blocklisted_pattern")
        if not any(f.name == "BLOCKLISTED" for f in findings):
            findings.append(
                Finding(
                    name="BLOCKLISTED",
                    detection=D.MALICIOUS,
                    score=THRESHOLDS[D.MALICIOUS],
                    reason=(
                        f"The sender matches the block policy {pattern!r}." if pattern else "Matches a block policy."
                    ),
                    field="from",
                    value=str(pattern) if pattern else None,
                    category="Blocklisted",
                )
            )
        if disposition.severity < D.MALICIOUS.severity:
            disposition = D.MALICIOUS
        policy_categories.append("Blocklisted")
    elif policy.trusted_sender:
        if disposition is not D.NONE:
            pattern = properties.get("allowlisted_pattern")
            policy_reasons.append(
                f"Would be {disposition.value}, but the sender is trusted by the allow policy {pattern!r}."
                if pattern
                else f"Would be {disposition.value}, but the sender is trusted by an allow policy."
            )
        disposition = D.NONE
    elif policy.allowed:
        before = disposition_for(scored)
        if before is not disposition and not capped:
            pattern = properties.get("allowlisted_pattern")
            by = f"the allow policy {pattern!r}" if pattern else "an allow policy"
            policy_reasons.append(f"Would be {before.value}, but {by} exempts it from SPOOF, SPAM and BULK.")

    reasons: list[str] = []
    categories: list[str] = list(policy_categories)
    ranked = _ranked(findings)
    if disposition is not D.NONE:
        for f in ranked:
            if f.reason not in reasons:
                reasons.append(f.reason)
            lv = level(f)
            cat = category_of(f)
            if cat and cat not in categories and lv is not None and lv.severity >= disposition.severity:
                categories.append(cat)
        if not categories:
            fallback = _DEFAULT_CATEGORY.get(disposition)
            if fallback:
                categories.append(fallback)
    reasons = policy_reasons + reasons
    return Verdict(
        disposition=disposition,
        findings=tuple(findings),
        threat_categories=tuple(categories),
        detection_reasons=tuple(reasons),
        validation=validation or Validation(),
        sender_info=sender_info or SenderInfo(),
        properties=properties,
        edf_hash=edf_hash,
        htmltext_structure_hash=htmltext_structure_hash,
        attachment_detections=dict(attachment_detections or {}),
        encrypted_attachments=frozenset(encrypted),
    )
