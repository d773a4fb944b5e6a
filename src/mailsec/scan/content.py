"""Content analysis: a linear text classifier (phishing, spam, bulk vs ham) and bulk-mail header signals.

The model is a hashed set of word uni- and bigrams (scikit-learn `HashingVectorizer`, binary, stateless), weighted by
inverse document frequency and L2-normalised, and a multinomial logistic regression; only the idf vector and the
weights are stored. It is saved as plain numpy arrays plus JSON metadata in a
zip (`.npz`, loaded with `allow_pickle=False`): no pickle, so a model file cannot run code, and no network to load."""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mailsec.model import Disposition, Finding, ParsedMessage
from mailsec.scan.features import MessageText, model_document, model_tokens
from mailsec.scan.fraud import fraud_ingredients
from mailsec.scan.lure import Lure, find_lure

log = logging.getLogger(__name__)

LABELS = ("ham", "bulk", "spam", "phishing")
SHIPPED_MODEL = "content_model.npz"
FORMAT = "mailsec-content-1"
VECTORIZER = {
    "n_features": 2**18,
    "ngram_range": [1, 2],
    "token_pattern": r"(?u)\b\w\w+\b",
    "alternate_sign": False,
    "binary": True,
    "lowercase": False,
}

# Probability thresholds (strong, weak): at or above the first a finding fires strongly enough to decide alone; at
# or above the second it fires weakly, to add up with other evidence. Tuned on out-of-fold predictions
# (docs/detection.md).
PHISHING_THRESHOLDS = (0.5, 0.3)
# Without a link elsewhere, a risky attachment, a diverted reply, a brand claim or a free mailbox (scan/lure.py) the
# text must be this sure to decide alone: modern business mail reads like phishing to a model whose ham is from 2002.
# 0.8 until mail its sender's own system sent stopped being decided by its text at all (`Lure.self_consistent`, the
# product templates that needed the margin); out of fold no other ham message without a lure reads above 0.69.
NO_LURE_PHISHING_THRESHOLD = 0.7
SPAM_THRESHOLDS = (0.6, 0.3)
BULK_THRESHOLDS = (0.6, 0.4)
# The classifier splits the mass that is not ham between spam, bulk and phishing; a message it finds unlike ham but
# cannot place in one class (ham 0.45, spam 0.28, phishing 0.27) is still unwanted mail: at or above this summed
# probability it is at least BULK, which keeps it out of the inbox without calling a newsletter SPAM.
UNWANTED_THRESHOLD = 0.5
UNWANTED_SCORE = 3.0


def _vectorizer(params: dict[str, Any]) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=int(params["n_features"]),
        ngram_range=tuple(params["ngram_range"]),
        token_pattern=params["token_pattern"],
        alternate_sign=bool(params["alternate_sign"]),
        binary=bool(params["binary"]),
        norm=None,
        lowercase=bool(params["lowercase"]),
        dtype=np.float32,
    )


@dataclass
class ContentModel:
    """Weights of a linear model over hashed features: `coef` is (labels x features), one row per label."""

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    idf: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    _vec: Any = field(default=None, init=False, repr=False)

    @property
    def vectorizer(self) -> Any:
        if self._vec is None:
            self._vec = _vectorizer(self.meta.get("vectorizer", VECTORIZER))
        return self._vec

    def probabilities_many(self, documents: list[str]) -> np.ndarray:
        """Row by row over the sparse counts: scipy's general matmul densifies the weights on every call."""
        counts = self.vectorizer.transform(documents).tocsr()
        logits = np.tile(self.intercept, (len(documents), 1))
        for row in range(counts.shape[0]):
            lo, hi = counts.indptr[row], counts.indptr[row + 1]
            cols = counts.indices[lo:hi]
            values = counts.data[lo:hi].astype(np.float32) * self.idf[cols]
            norm = float(np.sqrt(np.dot(values, values)))
            if norm > 0:
                logits[row] += self.coef[:, cols] @ (values / norm)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def probabilities(self, document: str) -> dict[str, float]:
        row = self.probabilities_many([document])[0]
        return {label: float(p) for label, p in zip(self.labels, row, strict=True)}

    def probabilities_of_tokens(self, tokens: Sequence[str]) -> dict[str, float]:
        """`probabilities` of the document whose `token_pattern` words are `tokens`, without the vectorizer: the
        distinct uni- and bigrams hashed straight to their columns (the same murmurhash3 and modulo as
        `HashingVectorizer`), then the same arithmetic as `probabilities_many` on the same sorted columns, so the
        probabilities are bit for bit the same (~3x less CPU: no analyzer chain, no sparse matrix)."""
        if self.meta.get("vectorizer", VECTORIZER) != VECTORIZER:
            return self.probabilities(" ".join(tokens))
        from sklearn.utils.murmurhash import murmurhash3_32  # here: importing scikit-learn takes a second

        grams = set(tokens)
        grams.update(map(" ".join, itertools.pairwise(tokens)))
        try:
            hashes = np.fromiter(map(murmurhash3_32, grams), dtype=np.int64, count=len(grams))
        except UnicodeEncodeError:  # a lone surrogate: let the vectorizer fail (or not) exactly as it would
            return self.probabilities(" ".join(tokens))
        cols = np.abs(hashes) % self.coef.shape[1]  # abs(-2**31) % n, as HashingVectorizer defines it
        cols.sort()
        cols = cols[np.concatenate(([True], cols[1:] != cols[:-1]))] if len(cols) else cols  # np.unique, 2x faster
        logits = self.intercept.copy()
        values = self.idf[cols]
        norm = float(np.sqrt(np.dot(values, values)))
        if norm > 0:
            logits += self.coef[:, cols] @ (values / norm)
        logits -= logits.max()
        exp = np.exp(logits)
        row = exp / exp.sum()
        return {label: float(p) for label, p in zip(self.labels, row, strict=True)}

    def save(self, path: Path) -> None:
        """A zip of .npy arrays with fixed timestamps, so the same training gives the same bytes."""
        meta = dict(self.meta, labels=list(self.labels), format=FORMAT)
        arrays = {
            "coef": self.coef.astype(np.float16),
            "intercept": self.intercept.astype(np.float64),
            "idf": self.idf.astype(np.float16),
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8),
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            for name, array in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())

    @classmethod
    def load(cls, path: Path | Any) -> ContentModel:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise ValueError(f"not a mailsec content model: format {meta.get('format')!r}")
            coef = data["coef"].astype(np.float32)
            intercept = data["intercept"].astype(np.float64)
            idf = data["idf"].astype(np.float32)
        labels = tuple(meta.pop("labels"))
        n = int(meta["vectorizer"]["n_features"])
        if coef.shape != (len(labels), n) or intercept.shape != (len(labels),) or idf.shape != (n,):
            raise ValueError("content model arrays do not match its labels and features")
        return cls(labels=labels, coef=coef, intercept=intercept, idf=idf, meta=meta)


def _weighted(x: Any, idf: np.ndarray) -> Any:
    from scipy import sparse
    from sklearn.preprocessing import normalize

    return normalize(x @ sparse.diags(idf.astype(np.float32)), norm="l2", copy=False)


def train_content_model(
    documents: list[str], labels: list[str], c: float = 32.0, weights: Sequence[float] | None = None
) -> ContentModel:
    """Fit the classifier on model documents (see `features.model_document`). Deterministic for the same input.
    `weights` (one per document) let a family of many near-copies count as less than its size."""
    from sklearn.linear_model import LogisticRegression

    unknown = sorted(set(labels) - set(LABELS))
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(unknown)}; use {', '.join(LABELS)}")
    classes = [label for label in LABELS if label in set(labels)]
    if len(classes) < 2:
        raise ValueError("training needs at least two labels, e.g. ham and spam")
    counts = _vectorizer(VECTORIZER).transform(documents)
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = (np.log((1.0 + counts.shape[0]) / (1.0 + df)) + 1.0).astype(np.float16).astype(np.float32)
    x = _weighted(counts, idf)
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", tol=1e-5)
    clf.fit(x, labels, sample_weight=None if weights is None else np.asarray(weights, dtype=np.float64))
    order = [list(clf.classes_).index(label) for label in classes]
    if len(classes) == 2:
        w = clf.coef_[0].astype(np.float32)
        coef = np.vstack([np.zeros_like(w), w])
        intercept = np.array([0.0, float(clf.intercept_[0])])
    else:
        coef = clf.coef_[order].astype(np.float32)
        intercept = clf.intercept_[order].astype(np.float64)
    counts = {label: labels.count(label) for label in classes}
    meta = {"vectorizer": VECTORIZER, "C": c, "trained_on": counts}
    return ContentModel(labels=tuple(classes), coef=coef, intercept=intercept, idf=idf, meta=meta)


@lru_cache(maxsize=1)
def shipped_model() -> ContentModel | None:
    """The model in the package, loaded once per process; None (and a warning) if it is missing or unreadable."""
    try:
        ref = resources.files("mailsec.scan") / "data" / SHIPPED_MODEL
        with resources.as_file(ref) as path:
            return ContentModel.load(path)
    except Exception as exc:
        log.warning("content model not loaded: %s", exc)
        return None


def _scaled(p: float, lo: float, hi: float, low_score: float, high_score: float) -> float:
    return round(low_score + (high_score - low_score) * min(1.0, (p - lo) / max(1e-9, 1.0 - lo)), 2)


@dataclass(frozen=True)
class _ClassRule:
    """How one label's probability becomes a finding: its name, disposition, category and score range."""

    name: str
    label: str
    thresholds: tuple[float, float]
    detection: Disposition
    category: str
    reads_like: str
    strong_scores: tuple[float, float]
    weak_score: float


# Strong findings start at the SUSPICIOUS/SPAM threshold of 5 (out-of-fold calibration, docs/detection.md); phishing
# text without a lure decides only from NO_LURE_PHISHING_THRESHOLD.
_RULES = (
    _ClassRule("CONTENT_PHISHING", "phishing", PHISHING_THRESHOLDS, Disposition.MALICIOUS, "Phishing",
               "phishing", (5.0, 7.0), 2.5),
    _ClassRule("CONTENT_SPAM", "spam", SPAM_THRESHOLDS, Disposition.SPAM, "ContentSpam",
               "unsolicited mail", (5.0, 7.0), 2.5),
    _ClassRule("CONTENT_BULK", "bulk", BULK_THRESHOLDS, Disposition.BULK, "Bulk",
               "a newsletter or marketing mail", (3.0, 3.0), 1.5),
)  # fmt: skip


def _class_finding(rule: _ClassRule, p: float, detail: str, lure: Lure | None = None) -> Finding | None:
    """The finding for one label: scaled from the strong score range above the strong threshold, the weak score
    between the two thresholds, nothing below. Phishing text in a message that asks for nothing outside its sender's
    own domain (`lure.py`) needs NO_LURE_PHISHING_THRESHOLD to decide alone."""
    strong, weak = rule.thresholds
    if p < weak:
        return None
    why = ""
    if rule.label == "phishing" and lure is not None:
        if not lure and lure.self_consistent:
            strong = math.inf
            why = "; it asks for nothing outside the sender's own domain, whose own system wrote and sent it"
        elif not lure:
            strong = max(strong, NO_LURE_PHISHING_THRESHOLD)
            why = "; it asks for nothing outside the sender's own domain"
        else:
            why = f"; it points to {lure.evidence}"
    score = _scaled(p, strong, 1.0, *rule.strong_scores) if p >= strong else rule.weak_score
    return Finding(
        name=rule.name,
        detection=rule.detection,
        score=score,
        reason=f"The text reads like {rule.reads_like} (classifier probability {p:.0%}){why}.",
        field="body",
        value=f"{p:.3f}",
        detail=detail,
        category=rule.category,
    )


# An advance-fee letter asks for nothing but a reply, and the archive it comes from removed every address; its
# story (a large sum, a dead benefactor, a transfer, secrecy, ...) is what it asks for.
FRAUD_STORY_INGREDIENTS = 2


def fraud_story(mt: MessageText) -> Lure | None:
    kinds = fraud_ingredients(f"{mt.subject} {mt.body}")
    if len(kinds) < FRAUD_STORY_INGREDIENTS:
        return None
    return Lure(("fraud",), f"an advance-fee story ({', '.join(sorted(kinds))})")


def classify(mt: MessageText, model: ContentModel, lure: Lure | None = None) -> list[Finding]:
    """Findings from the classifier's probabilities: one per label that reaches its weak threshold, plus
    CONTENT_UNWANTED when the non-ham labels together are likely but none decides. Content alone can make a message
    SUSPICIOUS, never MALICIOUS (the verdict's PHISHING_CORROBORATED needs another analyzer)."""
    if isinstance(model, ContentModel):
        probs = model.probabilities_of_tokens(model_tokens(mt))
    else:
        probs = model.probabilities(model_document(mt))
    if (
        lure is not None
        and not lure
        and PHISHING_THRESHOLDS[0] <= probs.get("phishing", 0.0)
        and (lure.self_consistent or probs.get("phishing", 0.0) < NO_LURE_PHISHING_THRESHOLD)
    ):
        lure = fraud_story(mt) or lure
    detail = ", ".join(f"{k}={v:.2f}" for k, v in sorted(probs.items()))
    findings = [
        f for rule in _RULES if (f := _class_finding(rule, probs.get(rule.label, 0.0), detail, lure)) is not None
    ]
    talk_only = lure is not None and not lure
    unwanted = sum(p for label, p in probs.items() if label != "ham" and not (talk_only and label == "phishing"))
    decided = any(f.score >= UNWANTED_SCORE for f in findings)
    if unwanted >= UNWANTED_THRESHOLD and not decided and "ham" in probs:
        parts = " + ".join(f"{label} {probs[label]:.0%}" for label in LABELS if label != "ham" and label in probs)
        findings.append(
            Finding(
                name="CONTENT_UNWANTED",
                detection=Disposition.BULK,
                score=UNWANTED_SCORE,
                reason=f"The text reads unlike wanted mail, though not clearly as one kind: {parts} = {unwanted:.0%}.",
                field="body",
                detail=detail,
                category="Bulk",
            )
        )
    return findings


_ESP_HEADERS = {
    "x-mailgun-sid": "Mailgun", "x-mailgun-tag": "Mailgun", "x-ses-outgoing": "Amazon SES",
    "x-ses-configuration-set": "Amazon SES", "x-sg-eid": "SendGrid", "x-sg-id": "SendGrid", "x-mc-user": "Mailchimp",
    "x-mandrill-user": "Mandrill", "x-campaign": "a campaign tool", "x-campaignid": "a campaign tool",
    "x-campaign-id": "a campaign tool", "x-sfmc-stack": "Salesforce Marketing Cloud", "x-msys-api": "SparkPost",
    "x-mailjet-campaign": "Mailjet", "x-mailjet-trackopen": "Mailjet", "x-sib-id": "Brevo",
    "x-hs-cid": "HubSpot", "x-marketo-id": "Marketo", "x-cmail-trackingid": "Campaign Monitor",
    "x-ems-campaign": "an e-mail marketing service", "x-rpcampaign": "an e-mail marketing service",
    "x-listmember": "a list manager",
}  # fmt: skip
_ESP_MAILERS = (
    "mailchimp", "sendgrid", "constant contact", "exacttarget", "marketo", "hubspot", "sendinblue", "brevo", "mailjet",
    "campaign monitor", "acoustic", "klaviyo", "mailerlite", "getresponse", "aweber", "phplist", "listmanager",
)  # fmt: skip
_DISCUSSION_LIST = ("list-post", "x-mailman-version", "x-beenthere", "mailing-list")
BULK_HEADER_THRESHOLD = 3.0


def bulk_header_findings(parsed: ParsedMessage) -> list[Finding]:
    """Graymail recognised by how it was sent: unsubscribe headers, `Precedence: bulk`, ESP signatures. A discussion
    list (mailman, List-Post) is not marketing, so its markers count against."""
    names = parsed.header_names()
    points = 0.0
    evidence = []
    esp = next((vendor for header, vendor in _ESP_HEADERS.items() if header in names), None)
    mailer = (parsed.header("X-Mailer") or "").lower()
    if esp is None:
        esp = next((m for m in _ESP_MAILERS if m in mailer), None)
    if esp:
        points += 2.0
        evidence.append(f"sent through {esp}")
    if "list-unsubscribe" in names:
        points += 1.5
        evidence.append("a List-Unsubscribe header")
    if "list-unsubscribe-post" in names:
        points += 1.0
        evidence.append("one-click unsubscribe")
    precedence = (parsed.header("Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk"):
        points += 1.5
        evidence.append(f"Precedence: {precedence}")
    if "feedback-id" in names or "x-feedback-id" in names:
        points += 1.0
        evidence.append("a Feedback-ID header")
    if any(h in names for h in _DISCUSSION_LIST):
        points -= 1.0
    if points < BULK_HEADER_THRESHOLD:
        return []
    return [
        Finding(
            name="BULK_HEADERS",
            detection=Disposition.BULK,
            score=round(points, 2),
            reason="Bulk mail: " + ", ".join(evidence) + ".",
            field="headers",
            category="Bulk",
        )
    ]


def analyze_content(
    parsed: ParsedMessage, mt: MessageText, model: ContentModel | None, lure: Lure | None = None
) -> list[Finding]:
    """`lure`: the message's, when the scan has found it already (None: found here)."""
    findings = bulk_header_findings(parsed)
    if model is not None:
        findings.extend(classify(mt, model, find_lure(parsed) if lure is None else lure))
    return findings
