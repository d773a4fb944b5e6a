"""The account's own content model: the shipped hashed linear model plus the changes its analysts' labels made.

An update is a few steps of online gradient descent (multinomial logistic loss) on one reclassified message, on the
columns of its own words only, until the model gives the analyst's label a probability of TARGET. The intercepts
never move, so mail sharing none of those words is scored as before. Each accepted update is a new version holding
its whole difference from the shipped model (sparse: only the touched columns); an update that would score the
held-out sample (`holdout.py`) worse than the floor is recorded as refused, with the reason. Rollback re-activates
the version before the active one (version 0 is the shipped model)."""

from __future__ import annotations

import io
import itertools
import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, func, insert, select, update

from mailsec.learn.campaigns import reading
from mailsec.learn.holdout import Quality, below_floor, load_holdout, quality
from mailsec.model import Disposition
from mailsec.scan.content import ContentModel, shipped_model
from mailsec.services import Services
from mailsec.store.schema import learn_models, messages

D = Disposition
LABEL_OF = {
    D.NONE: "ham", D.BULK: "bulk", D.SPAM: "spam", D.SUSPICIOUS: "phishing", D.SPOOF: "phishing",
    D.MALICIOUS: "phishing", D.MALICIOUS_BEC: "phishing",
}  # fmt: skip
TARGET = 0.8
LEARNING_RATE = 2.0
MAX_STEPS = 60
ACTIVE, SUPERSEDED, ROLLED_BACK, REFUSED = "active", "superseded", "rolled_back", "refused"
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, int], ContentModel] = OrderedDict()


@dataclass(frozen=True)
class ModelVersion:
    version: int
    parent: int
    state: str
    label: str
    reason: str
    submission_id: str | None
    quality: dict[str, Any]
    created_us: int


class ModelError(Exception):
    """Said to the user as is (e.g. nothing to roll back)."""


def _now_us() -> int:
    return time.time_ns() // 1000


def document_columns(model: ContentModel, tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The sorted hashed columns of the document's uni- and bigrams and their idf-weighted, L2-normalised values:
    what `ContentModel.probabilities_of_tokens` multiplies the weights with."""
    from sklearn.utils.murmurhash import murmurhash3_32

    grams = set(tokens)
    grams.update(map(" ".join, itertools.pairwise(tokens)))
    hashes = np.fromiter((murmurhash3_32(g) for g in grams), dtype=np.int64, count=len(grams))
    cols = np.unique(np.abs(hashes) % model.coef.shape[1])
    values = model.idf[cols].astype(np.float64)
    norm = float(np.sqrt(np.dot(values, values)))
    return cols, (values / norm if norm > 0 else values)


def _encode(cols: np.ndarray, delta: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, cols=cols.astype(np.int64), delta=delta.astype(np.float32))
    return buf.getvalue()


def _decode(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as data:
        return data["cols"].astype(np.int64), data["delta"].astype(np.float32)


def _apply(base: ContentModel, cols: np.ndarray, delta: np.ndarray, version: int) -> ContentModel:
    coef = base.coef.copy()
    coef[:, cols] += delta
    return ContentModel(
        labels=base.labels, coef=coef, intercept=base.intercept.copy(), idf=base.idf,
        meta=dict(base.meta, account_version=version),
    )  # fmt: skip


def fit_one(base: ContentModel, cols: np.ndarray, values: np.ndarray, label: str) -> tuple[np.ndarray, float, float]:
    """The change to `base.coef[:, cols]` that brings `label` to TARGET; with the probability before and after."""
    y = base.labels.index(label)
    w = base.coef[:, cols].astype(np.float64)
    start = w.copy()
    before = after = 0.0
    for step in range(MAX_STEPS + 1):
        logits = base.intercept + w @ values
        logits -= logits.max()
        p = np.exp(logits) / np.exp(logits).sum()
        if step == 0:
            before = float(p[y])
        after = float(p[y])
        if p[y] >= TARGET or step == MAX_STEPS:
            break
        grad = p.copy()
        grad[y] -= 1.0
        w -= LEARNING_RATE * np.outer(grad, values)
    return (w - start).astype(np.float32), before, after


class ModelRepo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def active(self, account_id: str) -> tuple[int, bytes | None]:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(learn_models.c.version, learn_models.c.delta).where(
                    learn_models.c.account_id == account_id, learn_models.c.state == ACTIVE
                )
            ).first()
        return (int(row.version), row.delta) if row is not None else (0, None)

    def active_version(self, account_id: str, conn: Connection | None = None) -> int:
        with reading(self.engine, conn) as db:
            v = db.execute(
                select(learn_models.c.version).where(
                    learn_models.c.account_id == account_id, learn_models.c.state == ACTIVE
                )
            ).scalar()
        return int(v or 0)

    def delta(self, account_id: str, version: int) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(learn_models.c.delta).where(
                    learn_models.c.account_id == account_id, learn_models.c.version == version
                )
            ).scalar()

    def versions(self, account_id: str) -> list[ModelVersion]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(learn_models).where(learn_models.c.account_id == account_id).order_by(learn_models.c.version)
            ).all()
        return [
            ModelVersion(
                version=r.version, parent=r.parent, state=r.state, label=r.label, reason=r.reason,
                submission_id=r.submission_id, quality=json.loads(r.quality_json), created_us=r.created_us,
            )
            for r in rows
        ]  # fmt: skip

    def add(
        self, account_id: str, parent: int, state: str, label: str, reason: str, submission_id: str | None,
        quality_: dict[str, Any], delta: bytes | None,
    ) -> int:  # fmt: skip
        with self.engine.begin() as conn:
            version = (
                int(
                    conn.execute(
                        select(func.coalesce(func.max(learn_models.c.version), 0)).where(
                            learn_models.c.account_id == account_id
                        )
                    ).scalar_one()
                )
                + 1
            )
            if state == ACTIVE:
                conn.execute(
                    update(learn_models)
                    .where(learn_models.c.account_id == account_id, learn_models.c.state == ACTIVE)
                    .values(state=SUPERSEDED)
                )
            conn.execute(
                insert(learn_models).values(
                    account_id=account_id, version=version, parent=parent, state=state, submission_id=submission_id,
                    label=label, reason=reason, quality_json=json.dumps(quality_, sort_keys=True), delta=delta,
                    created_us=_now_us(),
                )
            )  # fmt: skip
        return version

    def rollback(self, account_id: str) -> tuple[int, int]:
        """(rolled-back version, now-active version); ModelError when the shipped model is already active."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(learn_models.c.version, learn_models.c.parent).where(
                    learn_models.c.account_id == account_id, learn_models.c.state == ACTIVE
                )
            ).first()
            if row is None:
                raise ModelError("the shipped model is active: there is nothing to roll back")
            conn.execute(
                update(learn_models)
                .where(learn_models.c.account_id == account_id, learn_models.c.version == row.version)
                .values(state=ROLLED_BACK)
            )
            if row.parent:
                conn.execute(
                    update(learn_models)
                    .where(learn_models.c.account_id == account_id, learn_models.c.version == row.parent)
                    .values(state=ACTIVE)
                )
        _cache.clear()
        return int(row.version), int(row.parent)


def _base() -> ContentModel:
    model = shipped_model()
    if model is None:
        raise ModelError("the shipped content model is not available")
    return model


def _load_version(account_id: str, version: int, delta: bytes) -> ContentModel:
    key = (account_id, version)
    model = _cache.get(key)
    if model is None:
        cols, change = _decode(delta)
        model = _apply(_base(), cols, change, version)
        _cache[key] = model
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    else:
        _cache.move_to_end(key)
    return model


def account_model(services: Services, account_id: str, version: int | None = None) -> ContentModel | None:
    """The account's active content model (`version`: the active version when the caller has read it); None for
    the shipped one. The model itself is cached per version."""
    repo = ModelRepo(services.engine)
    version = repo.active_version(account_id) if version is None else version
    if version == 0:
        return None
    cached = _cache.get((account_id, version))
    if cached is not None:
        return cached
    delta = repo.delta(account_id, version)
    return _load_version(account_id, version, delta) if delta else None


@dataclass(frozen=True)
class ModelUpdate:
    version: int | None
    state: str
    reason: str


def learn_label(
    services: Services, account_id: str, tokens: Sequence[str], requested: Disposition, submission_id: str | None
) -> ModelUpdate:
    """One reclassified message's words, taught to the account's model, checked against the floor."""
    label = LABEL_OF.get(requested)
    base = _base()
    if label is None or label not in base.labels:
        return ModelUpdate(None, "skipped", f"{requested.value} is not a label the content model has")
    if not tokens:
        return ModelUpdate(None, "skipped", "the message has no text to learn from")
    repo = ModelRepo(services.engine)
    parent, parent_delta = repo.active(account_id)
    current = _load_version(account_id, parent, parent_delta) if parent and parent_delta else base
    cols, values = document_columns(base, tokens)
    change, before, after = fit_one(current, cols, values, label)
    if after <= before:
        return ModelUpdate(None, "skipped", f"the model already gives {label} {before:.0%}")
    old_cols, old_delta = _decode(parent_delta) if parent and parent_delta else (np.zeros(0, np.int64), None)
    all_cols = np.union1d(old_cols, cols)
    total = np.zeros((len(base.labels), len(all_cols)), dtype=np.float32)
    if old_delta is not None:
        total[:, np.searchsorted(all_cols, old_cols)] += old_delta
    total[:, np.searchsorted(all_cols, cols)] += change
    candidate = _apply(base, all_cols, total, -1)
    what = f"{label}: the message's {label} probability {before:.0%} -> {after:.0%}"
    holdout = load_holdout(services.settings.learn_holdout_dir) if services.settings.learn_holdout_dir else None
    if holdout is None:
        reason = ("refused: no held-out sample to check it on (set learn_holdout_dir, MAILSEC_LEARN_HOLDOUT_DIR, to "
                  "the labelled corpora)")  # fmt: skip
        version = repo.add(account_id, parent, REFUSED, label, reason, submission_id, {}, None)
        return ModelUpdate(version, REFUSED, reason)
    shipped_q, new_q = _shipped_quality(holdout), quality(candidate, holdout)
    figures = {"shipped": shipped_q.as_dict(), "candidate": new_q.as_dict(), "before": before, "after": after}
    refusal = below_floor(new_q, shipped_q)
    if refusal is not None:
        reason = f"refused ({what}): {refusal}"
        version = repo.add(account_id, parent, REFUSED, label, reason, submission_id, figures, None)
        return ModelUpdate(version, REFUSED, reason)
    reason = f"accepted ({what}); held-out accuracy {new_q.accuracy:.1%} (shipped {shipped_q.accuracy:.1%})"
    version = repo.add(account_id, parent, ACTIVE, label, reason, submission_id, figures, _encode(all_cols, total))
    return ModelUpdate(version, ACTIVE, reason)


_shipped_q: dict[int, Quality] = {}


def _shipped_quality(holdout: Any) -> Quality:
    key = id(holdout)
    if key not in _shipped_q:
        _shipped_q[key] = quality(_base(), holdout)
    return _shipped_q[key]


def status(services: Services, account_id: str) -> tuple[int, list[ModelVersion]]:
    repo = ModelRepo(services.engine)
    return repo.active_version(account_id), repo.versions(account_id)


@dataclass
class Rollback:
    rolled_back: int
    active: int
    changes: list[tuple[str, str, str]]
    """(id, old, new) of the messages whose verdict the re-scan changed back."""


def rollback(services: Services, account_id: str, rescan_since: bool = True) -> Rollback:
    """Re-activate the version before the active one and, `rescan_since`, re-scan the messages scanned since the
    rolled-back version was made, so that they get back the verdicts the earlier model gave."""
    from mailsec.rescan import rescan  # rescan imports the pipeline, which imports this module

    repo = ModelRepo(services.engine)
    made = next(
        (v.created_us for v in repo.versions(account_id) if v.state == ACTIVE),
        None,
    )
    rolled_back, active = repo.rollback(account_id)
    changes: list[tuple[str, str, str]] = []
    if rescan_since and made is not None:
        with services.engine.connect() as conn:
            pks = [
                int(pk)
                for pk in conn.execute(
                    select(messages.c.pk)
                    .where(messages.c.account_id == account_id, messages.c.scanned_us >= made)
                    .order_by(messages.c.pk)
                ).scalars()
            ]
        summary = rescan(services, account_id, pks)
        changes = [(c.id, c.old, c.new) for c in summary.changed]
    return Rollback(rolled_back, active, changes)


__all__ = ["account_model", "learn_label", "rollback", "status"]
