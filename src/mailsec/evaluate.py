"""Labelled folders of messages: training the content model, scoring folders through the full scanner, and the
campaign-grouped cross-validation that reports detection quality on messages the model never saw.

Labels are `phishing`, `spam`, `bulk` and `ham`. A message counts as caught when its disposition is at least:
phishing → SPOOF (MALICIOUS-BEC, MALICIOUS, SUSPICIOUS or SPOOF); spam → BULK; bulk → BULK. For ham the rate is the
false-positive rate: SPAM or worse (BULK is allowed for newsletters)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailsec.mime import parse_message
from mailsec.model import Disposition, Envelope, ParsedMessage, Verdict
from mailsec.scan import scan_message
from mailsec.scan.content import LABELS, ContentModel, train_content_model
from mailsec.scan.features import extract_text, model_document, normalise
from mailsec.scan.fingerprint import edf_hash, htmltext_structure_hash
from mailsec.scan.fraud import reads_like_advance_fee
from mailsec.scan.impersonation import FREEMAIL

_SKIP_SUFFIXES = {".md", ".py", ".json", ".jsonl", ".pyc", ".txt"}
_SKIP_STEMS = {"LICENSE", "README", "COPYING", "NOTICE"}
DISPOSITIONS = ("MALICIOUS-BEC", "MALICIOUS", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "ENCRYPTED", "NONE")
HELD_BY_DEFAULT = frozenset({"MALICIOUS", "MALICIOUS-BEC", "SPOOF"})  # config.Settings.quarantine_dispositions
CAUGHT_AT = {"phishing": Disposition.SPOOF, "spam": Disposition.BULK, "bulk": Disposition.BULK, "ham": Disposition.SPAM}


def list_messages(folder: Path) -> list[Path]:
    """Every message file under `folder` (or the file itself), sorted, so training and evaluation are reproducible."""
    if folder.is_file():
        return [folder]
    out = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() in _SKIP_SUFFIXES or path.stem.upper() in _SKIP_STEMS:
            continue
        out.append(path)
    return out


def parse_specs(specs: Sequence[str]) -> list[tuple[str, Path]]:
    """`LABEL=PATH` arguments → (label, path); raises ValueError naming the bad one."""
    out = []
    for spec in specs:
        label, sep, path = spec.partition("=")
        label = label.strip().lower()
        if not sep or not path:
            raise ValueError(f"{spec!r}: expected LABEL=PATH")
        if label not in LABELS:
            raise ValueError(f"{spec!r}: label must be one of {', '.join(LABELS)}")
        if not Path(path).exists():
            raise ValueError(f"{spec!r}: no such file or folder")
        out.append((label, Path(path)))
    return out


def caught(label: str, disposition: Disposition) -> bool:
    """For ham: a false positive. For the others: detected."""
    return disposition.severity >= CAUGHT_AT[label].severity and disposition not in (
        Disposition.ENCRYPTED,
        Disposition.EXTERNAL,
        Disposition.UNKNOWN,
    )


def training_label(label: str, parsed: ParsedMessage) -> str:
    """The class a message trains: advance-fee fraud filed as spam (the 2002 corpus has 419 letters among its spam)
    is phishing-class mail, so it trains the phishing class (scan/fraud.py)."""
    if label == "spam" and reads_like_advance_fee(f"{parsed.subject or ''} {extract_text(parsed).body}"):
        return "phishing"
    return label


def group_weights(groups: Sequence[int]) -> list[float]:
    """A training weight per message: 1/sqrt(size of its source or campaign group), so that a campaign repeated 150
    times or a list with 1,000 posts counts for more than one message but not 150 or 1,000 times more: the model
    learns from many sources rather than from the largest."""
    sizes = Counter(groups)
    return [1.0 / sizes[g] ** 0.5 for g in groups]


def train_from_folders(
    specs: Sequence[tuple[str, Path]], c: float = 32.0, on_item: Callable[[], None] | None = None
) -> ContentModel:
    samples = load_samples(specs, on_item=on_item)
    parsed = [s.parsed for s in samples]
    given = [s.label for s in samples]
    labels = [training_label(s.label, s.parsed) for s in samples]
    groups = campaign_groups(parsed, given, [s.source for s in samples])
    docs = [model_document(extract_text(p)) for p in parsed]
    model = train_content_model(docs, labels, c=c, weights=group_weights(groups))
    model.meta["sources"] = {label: given.count(label) for label in sorted(set(given))}
    model.meta["relabelled_fraud"] = sum(1 for g, lb in zip(given, labels, strict=True) if g != lb)
    model.meta["weights"] = "1/sqrt(source or campaign group size)"
    return model


@dataclass
class GroupResult:
    label: str
    name: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def caught(self) -> int:
        return sum(n for d, n in self.counts.items() if caught(self.label, Disposition(d)))

    @property
    def rate(self) -> float:
        return self.caught / self.total if self.total else 0.0

    @property
    def held(self) -> int:
        """Messages the default quarantine policy holds."""
        return sum(n for d, n in self.counts.items() if d in HELD_BY_DEFAULT)

    @property
    def held_rate(self) -> float:
        return self.held / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, Any]:
        kind = "false_positive_rate" if self.label == "ham" else "detection_rate"
        return {
            "label": self.label,
            "name": self.name,
            "total": self.total,
            "dispositions": {d: self.counts.get(d, 0) for d in DISPOSITIONS if self.counts.get(d, 0)},
            "flagged": self.caught,
            kind: round(self.rate, 4),
            "held": self.held,
            "held_rate": round(self.held_rate, 4),
            "flagged_means": f"{CAUGHT_AT[self.label].value} or worse",
        }


_PREFIX_RE = re.compile(r"^(?:\s*(?:re|fwd?|aw|tr|sv)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


def campaign_key_subject(subject: str) -> str:
    subject = _PREFIX_RE.sub("", subject or "")
    return " ".join(normalise(subject).split())


def campaign_groups(
    messages: Sequence[ParsedMessage], labels: Sequence[str] | None = None, sources: Sequence[str] | None = None
) -> list[int]:
    """Group messages into campaigns: the same normalised subject, the same From address, the same text simhash or
    the same rich HTML skeleton put two messages in one group (union-find), so a campaign never spans train and test.
    The corpora's anonymised address (`...@example.com`) is no sender and joins nothing. For ham the sender joins
    nothing either: a person writing on many threads is not a campaign, and chaining them would hold out whole
    mailing lists at once. With `sources` (see `message_source`), messages of one source are one group too."""
    parent = list(range(len(messages)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, parsed in enumerate(messages):
        mt = extract_text(parsed)
        keys = []
        subject = campaign_key_subject(parsed.subject)
        if len(subject) >= 8:
            keys.append(("subject", subject))
        sender = parsed.from_.email.lower() if parsed.from_ else ""
        if sender and not sender.endswith("@example.com") and (labels is None or labels[i] != "ham"):
            keys.append(("from", sender))
        if len(mt.body) >= 200:
            keys.append(("edf", edf_hash(mt)))
        if len(mt.html_tags) >= 40:
            keys.append(("html", htmltext_structure_hash(mt)))
        if sources is not None and sources[i]:
            keys.append(("source", sources[i]))
        for key in keys:
            j = first.setdefault(key, i)
            if j != i:
                parent[find(i)] = find(j)
    roots: dict[int, int] = {}
    return [roots.setdefault(find(i), len(roots)) for i in range(len(messages))]


MANIFEST = "manifest.jsonl"
_ANONYMOUS_DOMAINS = frozenset({"example.com", "pot"})


def read_manifest(root: Path) -> dict[str, str]:
    """`file` → `source_repository` from a corpus's `manifest.jsonl` (modern-ham has one), else nothing."""
    path = root / MANIFEST
    if not root.is_dir() or not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
            out[str(entry["file"])] = str(entry.get("source_repository") or entry.get("method") or "")
        except (ValueError, KeyError, TypeError):
            continue
    return out


def list_name(parsed: ParsedMessage) -> str:
    """The mailing list a message came through, from List-Id, else X-BeenThere or List-Post."""
    for header in ("List-Id", "X-BeenThere", "List-Post"):
        value = (parsed.header(header) or "").strip().lower()
        if value:
            match = re.search(r"<([^>]+)>", value)
            return match.group(1) if match else value
    return ""


def sender_key(parsed: ParsedMessage) -> str:
    """Who sent it, as a source: the From domain, or the whole address at a free-mail provider (where the domain is
    everyone); nothing for anonymised or removed addresses."""
    address = parsed.from_.email.lower() if parsed.from_ and parsed.from_.email else ""
    domain = address.rpartition("@")[2]
    if not domain or "." not in domain or domain in _ANONYMOUS_DOMAINS:
        return ""
    return address if domain in FREEMAIL else domain


def message_source(label: str, corpus: str, relative: Path, parsed: ParsedMessage, manifest: dict[str, str]) -> str:
    """The source family a message belongs to, which must never be split between training and test: the source
    repository a manifest names (modern-ham: one list archive or one product's templates), the mailing list for
    ham, and for phishing and spam its folder plus the sender's domain. Empty when none is known (campaign
    grouping still applies)."""
    key = relative.as_posix()
    if manifest.get(key):
        return f"{corpus}:{manifest[key]}"
    if label == "ham":
        name = list_name(parsed)
        return f"{corpus}:list:{name}" if name else ""
    sender = sender_key(parsed)
    folder = relative.parts[0] if len(relative.parts) > 1 else ""
    return f"{corpus}/{folder}:{sender}" if sender else ""


@dataclass(frozen=True)
class Sample:
    """One labelled corpus message: `corpus` is the folder given on the command line, `folder` the sub-folder
    inside it that reports group by, `source` its source family (`message_source`)."""

    label: str
    corpus: str
    folder: str
    name: str
    source: str
    parsed: ParsedMessage


def load_samples(specs: Sequence[tuple[str, Path]], on_item: Callable[[], None] | None = None) -> list[Sample]:
    out = []
    for label, root in specs:
        manifest = read_manifest(root)
        corpus = root.name
        for path in list_messages(root):
            relative = path.relative_to(root) if root.is_dir() else Path(path.name)
            parsed = parse_message(path.read_bytes())
            folder = relative.parent.as_posix()
            out.append(
                Sample(
                    label=label,
                    corpus=corpus,
                    folder=corpus if folder == "." else f"{corpus}/{folder}",
                    name=f"{corpus}/{relative.as_posix()}",
                    source=message_source(label, corpus, relative, parsed, manifest),
                    parsed=parsed,
                )
            )
            if on_item:
                on_item()
    return out


@dataclass
class CrossValidation:
    labels: list[str]
    names: list[str]
    groups: list[int]
    folds: list[int]
    verdicts: list[Verdict]
    probabilities: list[dict[str, float]]


def cross_validate(
    items: Sequence[tuple[str, str, ParsedMessage]],
    n_folds: int = 5,
    c: float = 32.0,
    scan: bool = True,
    on_fold: Callable[[int], None] | None = None,
    sources: Sequence[str] | None = None,
) -> CrossValidation:
    """Out-of-fold verdicts for every message: `items` are (label, name, parsed); folds are whole campaigns and
    whole sources (`GroupKFold` over `campaign_groups`), and each fold is scanned by the full scanner with a model
    trained on the other folds only (advance-fee spam training the phishing class, `training_label`)."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    labels = [label for label, _, _ in items]
    parsed = [p for _, _, p in items]
    docs = [model_document(extract_text(p)) for p in parsed]
    trained_as = [training_label(label, p) for label, p in zip(labels, parsed, strict=True)]
    groups = campaign_groups(parsed, labels, sources)
    weights = group_weights(groups)
    fold_of = [0] * len(items)
    verdicts: list[Verdict | None] = [None] * len(items)
    probs: list[dict[str, float]] = [{} for _ in items]
    splitter = GroupKFold(n_splits=min(n_folds, len(set(groups))))
    for k, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(items)), labels, groups)):
        model = train_content_model(
            [docs[i] for i in train_idx],
            [trained_as[i] for i in train_idx],
            c=c,
            weights=[weights[i] for i in train_idx],
        )
        rows = model.probabilities_many([docs[i] for i in test_idx])
        for i, row in zip(test_idx, rows, strict=True):
            fold_of[i] = k
            probs[i] = {label: float(p) for label, p in zip(model.labels, row, strict=True)}
            if scan:
                verdicts[i] = scan_message(parsed[i], Envelope(), model=model)
        if on_fold:
            on_fold(k)
    return CrossValidation(
        labels=labels,
        names=[name for _, name, _ in items],
        groups=groups,
        folds=fold_of,
        verdicts=[v or Verdict() for v in verdicts],
        probabilities=probs,
    )


def cross_validate_samples(
    samples: Sequence[Sample], n_folds: int = 5, c: float = 32.0, on_fold: Callable[[int], None] | None = None
) -> CrossValidation:
    """`cross_validate` grouped by source as well as by campaign."""
    return cross_validate(
        [(s.label, s.name, s.parsed) for s in samples],
        n_folds=n_folds,
        c=c,
        on_fold=on_fold,
        sources=[s.source for s in samples],
    )


def summarise(
    samples: Sequence[Sample], dispositions: Sequence[Disposition], key: Callable[[Sample], str]
) -> list[GroupResult]:
    """Dispositions counted per (label, key(sample)), in first-seen order."""
    results: dict[tuple[str, str], GroupResult] = {}
    for sample, disposition in zip(samples, dispositions, strict=True):
        name = key(sample)
        group = results.setdefault((sample.label, name), GroupResult(sample.label, name))
        group.counts[disposition.value] += 1
    return list(results.values())
