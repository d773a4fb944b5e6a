"""The held-out sample a content model update must not do worse on than the shipped model: a fixed, evenly spaced
selection of the labelled corpora (`learn_holdout_dir`, the shared corpora layout), read once per process. Quality
is the share of messages whose most likely label is the right one, overall and on ham (false positives matter most)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mailsec.mime import parse_message
from mailsec.scan.content import ContentModel
from mailsec.scan.features import extract_text, model_tokens

log = logging.getLogger(__name__)

GROUPS = (
    ("ham", "spamassassin/easy-ham-1"),
    ("ham", "spamassassin/hard-ham-1"),
    ("ham", "modern-ham"),
    ("spam", "spamassassin/spam-1"),
    ("phishing", "phishing_pot"),
    ("phishing", "phish-other"),
)
PER_GROUP = 40
MARGIN = 0.01
"""An update may cost at most this much accuracy (overall, and on ham) against the shipped model."""
_SKIP = {".md", ".py", ".json", ".jsonl", ".txt"}


@dataclass(frozen=True)
class Holdout:
    labels: tuple[str, ...]
    tokens: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Quality:
    accuracy: float
    ham_accuracy: float
    messages: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": round(self.accuracy, 4), "ham_accuracy": round(self.ham_accuracy, 4),
                "messages": self.messages}  # fmt: skip


def _files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in _SKIP and p.stem.upper() != "LICENSE"
    )  # fmt: skip


def sample_files(root: Path) -> list[tuple[str, Path]]:
    """(label, file) of the sample: up to PER_GROUP evenly spaced files of each group found under `root`."""
    out: list[tuple[str, Path]] = []
    for label, rel in GROUPS:
        files = _files(root / rel) if (root / rel).is_dir() else []
        step = max(1, len(files) // PER_GROUP)
        out.extend((label, path) for path in files[::step][:PER_GROUP])
    return out


@lru_cache(maxsize=2)
def load_holdout(root: str) -> Holdout | None:
    """The sample's labels and model tokens; None when `root` holds none of the groups."""
    labels: list[str] = []
    tokens: list[tuple[str, ...]] = []
    for label, path in sample_files(Path(root)):
        try:
            tokens.append(tuple(model_tokens(extract_text(parse_message(path.read_bytes())))))
        except Exception as exc:
            log.warning("holdout message %s unreadable: %s", path, exc)
            continue
        labels.append(label)
    return Holdout(tuple(labels), tuple(tokens)) if labels else None


def quality(model: ContentModel, holdout: Holdout) -> Quality:
    predicted = []
    for toks in holdout.tokens:
        probs = model.probabilities_of_tokens(toks)
        predicted.append(max(probs, key=lambda k: probs[k]))
    right = np.array([p == t for p, t in zip(predicted, holdout.labels, strict=True)])
    ham = np.array([t == "ham" for t in holdout.labels])
    return Quality(
        accuracy=float(right.mean()),
        ham_accuracy=float(right[ham].mean()) if ham.any() else 1.0,
        messages=len(holdout.labels),
    )


def below_floor(candidate: Quality, shipped: Quality) -> str | None:
    """Why `candidate` is refused, or None."""
    if candidate.accuracy < shipped.accuracy - MARGIN:
        return (f"held-out accuracy would fall to {candidate.accuracy:.1%}, below the floor of "
                f"{shipped.accuracy - MARGIN:.1%} (shipped model {shipped.accuracy:.1%})")  # fmt: skip
    if candidate.ham_accuracy < shipped.ham_accuracy - MARGIN:
        return (f"held-out ham accuracy would fall to {candidate.ham_accuracy:.1%}, below the floor of "
                f"{shipped.ham_accuracy - MARGIN:.1%} (shipped model {shipped.ham_accuracy:.1%})")  # fmt: skip
    return None
