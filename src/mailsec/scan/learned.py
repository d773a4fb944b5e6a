"""What the account has learned from its analysts' reclassifications, as an input to the scan (the pipeline reads it
from the store, as it reads the sender history): a remembered campaign this message belongs to, and a verdict an
analyst gave on this sender. Bad lessons become findings that decide on their own; clean lessons lift the verdict
back to NONE afterwards, within limits: never over malware, never over a block policy, and a sender's relief only
for mail of the kind that was cleared and only when this message is authenticated for that sender."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailsec.model import Disposition, Finding, Verdict
from mailsec.scan import registry
from mailsec.scan.identity import SenderIdentity
from mailsec.scan.registry import spec
from mailsec.scan.verdict import category_of, level

D = Disposition
BAD = frozenset({D.MALICIOUS_BEC, D.MALICIOUS, D.SUSPICIOUS, D.SPOOF, D.SPAM, D.BULK})
DECIDING_SCORE = {D.MALICIOUS_BEC: 8.0, D.MALICIOUS: 8.0, D.SUSPICIOUS: 5.0, D.SPOOF: 5.0, D.SPAM: 5.0, D.BULK: 3.0}
_CATEGORY = {D.MALICIOUS_BEC: "BEC", D.MALICIOUS: "Phishing", D.SPOOF: "Spoof", D.SPAM: "ContentSpam", D.BULK: "Bulk"}
NEVER_CLEARED = frozenset({"BLOCKLISTED"})
"""Besides every finding of the Malware category."""


@dataclass(frozen=True)
class Lesson:
    """One reclassification that applies to the message being scanned."""

    submission_id: str
    requested: Disposition
    original: Disposition | None
    how: str
    """Why it applies, e.g. "the same text fingerprint (edf_hash)" or "the sender bob@x.example"."""
    authenticated: bool = True
    """Whether the reclassified message was authenticated for its sender: a bad verdict on forged mail is not held
    against the real sender's authenticated mail."""


@dataclass(frozen=True)
class Learned:
    campaign: Lesson | None = None
    sender: Lesson | None = None


def learned_findings(learned: Learned | None, who: SenderIdentity) -> list[Finding]:
    if learned is None:
        return []
    out: list[Finding] = []
    c = learned.campaign
    if c is not None and c.requested in BAD:
        out.append(
            spec("LEARNED_CAMPAIGN").make(
                f"An analyst reclassified a message like this one as {c.requested.value} (submission "
                f"{c.submission_id}): {c.how}.",
                detection=c.requested,
                score=DECIDING_SCORE[c.requested],
                category=_CATEGORY.get(c.requested),
                value=c.submission_id,
                detail=(c.original or D.NONE).value,
            )
        )
    elif c is not None and c.requested is D.NONE:
        out.append(
            spec("LEARNED_CAMPAIGN_CLEAN").make(
                f"An analyst reclassified a message like this one as clean (submission {c.submission_id}, was "
                f"{c.original.value if c.original else 'unknown'}): {c.how}.",
                value=c.submission_id,
                detail=(c.original or D.NONE).value,
            )
        )
    s = learned.sender
    if s is not None and s.requested in BAD and (s.authenticated or not who.authenticated):
        out.append(
            spec("LEARNED_SENDER").make(
                f"An analyst reclassified earlier mail from {s.how} as {s.requested.value} (submission "
                f"{s.submission_id}).",
                detection=s.requested,
                score=DECIDING_SCORE[s.requested],
                category=_CATEGORY.get(s.requested),
                field="from",
                value=s.submission_id,
            )
        )
    elif s is not None and s.requested is D.NONE and who.authenticated:
        out.append(
            spec("LEARNED_SENDER_RELIEF").make(
                f"An analyst found earlier mail from {s.how} was a false positive (submission {s.submission_id}, "
                f"was {s.original.value if s.original else 'unknown'}); this message is authenticated for it.",
                field="from",
                value=s.submission_id,
                detail=(s.original or D.NONE).value,
            )
        )
    return out


def _cleared_up_to(finding: Finding) -> Disposition:
    try:
        return Disposition(finding.detail or "NONE")
    except ValueError:
        return D.NONE


def _worse_only_by_wording(verdict: Verdict, target: Disposition) -> bool:
    """Whether everything that makes the verdict worse than `target` is the classifier's reading of the text: the
    judgment an analyst overrules when they call a campaign `target`. New evidence (a deceptive link, a spoof, an
    attachment) keeps its say."""
    for f in verdict.findings:
        lv = level(f)
        if f.score > 0 and lv is not None and lv.severity > target.severity:
            declared = registry.REGISTRY.get(f.name)
            if declared is None or declared.analyzer != "content":
                return False
    return True


def relieve(verdict: Verdict) -> Verdict:
    """The verdict with the analyst's lesson applied where the scan says worse than the analyst did: a clean lesson
    returns it to NONE when it is no worse than what the analyst cleared (a campaign: what its message was; a
    sender: that kind of mail); a campaign called SPAM (say) caps at SPAM a near-copy that only its wording makes
    worse. Never over malware or a block policy. Unchanged otherwise."""
    if verdict.disposition is D.NONE:
        return verdict
    if any(f.score > 0 and (f.category == "Malware" or f.name in NEVER_CLEARED) for f in verdict.findings):
        return verdict
    if "blocklisted_pattern" in verdict.properties:
        return verdict
    campaign = next((f for f in verdict.findings if f.name == "LEARNED_CAMPAIGN"), None)
    if campaign is not None and verdict.disposition.severity > campaign.detection.severity:
        if _worse_only_by_wording(verdict, campaign.detection):
            why = (
                f"Would be {verdict.disposition.value} on its wording, but {campaign.reason[0].lower()}"
                f"{campaign.reason[1:]}"
            )
            category = category_of(campaign)
            return replace(
                verdict,
                disposition=campaign.detection,
                threat_categories=(category,) if category else (),
                detection_reasons=(why,),
            )
        return verdict
    clean = [f for f in verdict.findings if f.name in ("LEARNED_CAMPAIGN_CLEAN", "LEARNED_SENDER_RELIEF")]
    if not clean:
        return verdict
    lesson = max(clean, key=lambda f: _cleared_up_to(f).severity)
    if verdict.disposition.severity > _cleared_up_to(lesson).severity:
        return verdict
    why = f"Would be {verdict.disposition.value}, but {lesson.reason[0].lower()}{lesson.reason[1:]}"
    return replace(verdict, disposition=D.NONE, threat_categories=(), detection_reasons=(why,))
