"""Detection: analyzers that return explained findings, and the verdict they add up to.

`scan_message` is a pure function of its inputs: the parsed message, the envelope, the account's policy, the injected
resolvers and the content model. No database, no network except through the resolvers. Each analyzer runs guarded:
a bug in one becomes an `ANALYZER_ERROR` finding (score 0) and a log line, never an exception out of the scan; one
that runs past its time budget (`budget.ANALYZER_SECONDS`) becomes `ANALYZER_TIMEOUT` (SUSPICIOUS)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mailsec.model import Disposition, Envelope, Finding, ParsedMessage, Verdict
from mailsec.scan import budget, fingerprint
from mailsec.scan.attachments import AttachmentOutcome, analyze_attachments
from mailsec.scan.auth import AuthOutcome, check_authentication
from mailsec.scan.bulk import bulk_finding, recognise
from mailsec.scan.content import ContentModel, analyze_content, shipped_model
from mailsec.scan.disguise import analyze_disguise
from mailsec.scan.features import MessageText, extract_text
from mailsec.scan.history import SenderHistory, history_findings
from mailsec.scan.identity import SenderIdentity, identify, identity_findings
from mailsec.scan.impersonation import analyze_impersonation
from mailsec.scan.learned import Learned, learned_findings, relieve
from mailsec.scan.links import analyze_links
from mailsec.scan.lure import Lure, find_lure
from mailsec.scan.policy import EMPTY_POLICY, Policy, PolicyOutcome, evaluate_policy
from mailsec.scan.resolvers import Resolvers
from mailsec.scan.structure import analyze_structure
from mailsec.scan.unread import analyze_unread, unchecked_attachments
from mailsec.scan.verdict import combine

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["ContentModel", "Learned", "SenderHistory", "scan_message", "shipped_model"]


def _timeout(name: str, used: float) -> Finding:
    """A message whose analysis was cut short is not clean: SUSPICIOUS on its own, and it says which checks are
    missing."""
    return Finding(
        name="ANALYZER_TIMEOUT",
        detection=Disposition.SUSPICIOUS,
        score=5.0,
        reason=f"The {name} analyzer ran past its time budget ({budget.seconds_for(name):g} s) on this message; "
        "its checks are incomplete.",
        detail=f"{name}: {used:.2f} s",
    )


def _guarded(name: str, errors: list[Finding], default: T, fn: Callable[[], T]) -> T:
    """`fn()`, or `default` and a finding when it fails or runs past its budget. Inside a scan the scan's timer
    bounds it (`budget.one_timer`); a call on its own arms a timer of its own."""
    deadlines = budget.current()
    if deadlines is None:
        with budget.Deadlines():
            return _guarded(name, errors, default, fn)
    limit = budget.seconds_for(name)
    try:
        started = time.perf_counter()
        deadlines.deadline = started + limit
        try:
            result = fn()
        finally:
            deadlines.deadline = math.inf
        used = time.perf_counter() - started
        if used > limit and budget.armed:  # a thread cannot be interrupted: the overrun is still reported
            log.warning("analyzer %s took %.2f s", name, used)
            errors.append(_timeout(name, used))
        return result
    except budget.AnalyzerTimeout:
        log.warning("analyzer %s stopped after %g s", name, limit)
        errors.append(_timeout(name, limit))
        return default
    except Exception as exc:
        log.exception("analyzer %s failed", name)
        errors.append(
            Finding(
                name="ANALYZER_ERROR",
                detection=Disposition.NONE,
                score=0.0,
                reason=f"The {name} analyzer failed on this message ({type(exc).__name__}); its checks are missing.",
                detail=f"{name}: {type(exc).__name__}: {exc}"[:500],
            )
        )
        return default


@budget.one_timer
def scan_message(
    parsed: ParsedMessage,
    envelope: Envelope,
    policy: Policy | None = None,
    resolvers: Resolvers | None = None,
    model: ContentModel | Any | None = None,
    auth: AuthOutcome | None = None,
    history: SenderHistory | None = None,
    learned: Learned | None = None,
) -> Verdict:
    """Run every analyzer on an already parsed message and combine their findings with the policy.

    `model` is the content model; None means the one shipped in the package, `False` means no content model.
    `history` is the account's record of this sender (read from the store by the pipeline); None means unknown.
    `learned`: the account's reclassifications that apply to this message (`scan/learned.py`)."""
    policy = policy or EMPTY_POLICY
    resolvers = resolvers or Resolvers()
    content_model: ContentModel | None = shipped_model() if model is None else (model or None)
    errors: list[Finding] = []
    empty_text = MessageText("", "", "", (), ())
    mt = _guarded("text", errors, empty_text, lambda: extract_text(parsed))
    who = _guarded("identity", errors, SenderIdentity(), lambda: identify(parsed, envelope))
    if auth is None:  # `auth`: results recorded when the message was received (a rescan without DNS)
        auth = _guarded(
            "authentication", errors, AuthOutcome(), lambda: check_authentication(parsed, envelope, resolvers, who)
        )
    who = who.authenticate(auth.authenticated_domain) if auth.authenticated_domain else who
    attachments = _guarded("attachments", errors, AttachmentOutcome(), lambda: analyze_attachments(parsed))
    none: list[Finding] = []
    links = _guarded("links", errors, none, lambda: list(analyze_links(parsed, policy, who)))
    impersonation = _guarded(
        "impersonation", errors, none, lambda: list(analyze_impersonation(parsed, envelope, policy, who))
    )
    signals: list[Finding] = []  # each guarded call gets its own empty default: a failure must not share a list
    signals += _guarded("identity", errors, [], lambda: identity_findings(who))
    signals += _guarded("history", errors, [], lambda: history_findings(history, who))
    signals += _guarded("learned", errors, [], lambda: learned_findings(learned, who))
    signals += _guarded("bulk", errors, [], lambda: bulk_finding(recognise(parsed)))
    signals += _guarded("disguise", errors, [], lambda: analyze_disguise(parsed))
    found_lure = _guarded("lure", errors, None, lambda: find_lure(parsed))  # None: it failed, content retries it
    lure = Lure(()) if found_lure is None else found_lure
    evidence = [*links, *attachments.findings, *impersonation, *signals]
    signals += _guarded("structure", errors, [], lambda: analyze_structure(parsed, who, evidence, lure))
    content = _guarded("content", errors, none, lambda: analyze_content(parsed, mt, content_model, found_lure))
    unread = _guarded("unread", errors, none, lambda: analyze_unread(parsed))
    outcome = _guarded(
        "policy", errors, PolicyOutcome(), lambda: evaluate_policy(parsed, envelope, policy, auth.validation, who)
    )
    edf = _guarded("fingerprint", errors, None, lambda: fingerprint.edf_hash(mt))
    structure = _guarded(
        "fingerprint", errors, None, lambda: fingerprint.htmltext_structure_hash(mt, parsed.text_body or "")
    )
    unchecked = unchecked_attachments(parsed, errors)
    findings = [
        *auth.findings, *links, *attachments.findings, *impersonation, *signals, *content, *unread, *unchecked, *errors
    ]  # fmt: skip
    budget.armed = True
    verdict = _guarded(
        "verdict",
        errors,
        Verdict(findings=tuple(findings)),
        lambda: combine(
            findings,
            outcome,
            validation=auth.validation,
            sender_info=auth.sender_info,
            attachment_detections=attachments.detections,
            encrypted=attachments.encrypted,
            edf_hash=edf,
            htmltext_structure_hash=structure,
        ),
    )
    return relieve(verdict) if learned is not None else verdict
