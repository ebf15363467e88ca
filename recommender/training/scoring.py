"""Scoring one evaluation: the task's metrics, the same metrics for a constant predictor (the
baseline a result must beat), and a bootstrap standard error of the primary metric.

:class:`Scored` keeps per-example outputs, so any metric can be recomputed on a resample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.tasks import metrics as task_metrics


@dataclass(frozen=True)
class ScoringSpec:
    """How a task is scored: its type, primary metric and the classes that metrics single out."""

    task_type: str
    metric: str
    n_labels: int
    label_names: list[str] | None = None
    positive: int = 1  # binary: the class F1 / AP / ROC AUC are about
    negative: int | None = None  # micro-F1 leaves this class out (e.g. "no relation")

    @classmethod
    def from_task(cls, task: Any) -> ScoringSpec:
        spec, names = task.spec, task.label_names
        index = {n: i for i, n in enumerate(names or [])}
        return cls(task.task_type, spec.metric, task.num_labels, names,
                   positive=index.get(spec.positive_label, 1) if spec.positive_label else 1,
                   negative=index.get(spec.negative_label) if spec.negative_label else None)


class Scored:
    """Per-example outputs of one evaluation pass, scorable on any subset of examples."""

    def __init__(self, spec: ScoringSpec, truth: Sequence[Any], predicted: Sequence[Any],
                 scores: np.ndarray | None = None) -> None:
        self.spec, self.truth, self.predicted, self.scores = spec, list(truth), list(predicted), scores

    def __len__(self) -> int:
        return len(self.truth)

    def metrics(self, idx: np.ndarray | None = None) -> dict[str, float]:
        s = self.spec
        truth, pred = self.truth, self.predicted
        scores = self.scores
        if idx is not None:
            truth, pred = [truth[i] for i in idx], [pred[i] for i in idx]
            scores = None if scores is None else scores[idx]
        if s.task_type == "classification":
            positive_scores = None if scores is None or s.n_labels != 2 else scores[:, s.positive]
            return task_metrics.classification_metrics(truth, pred, scores=positive_scores,
                                                       n_labels=s.n_labels, positive=s.positive,
                                                       negative=s.negative)
        if s.task_type == "regression":
            return task_metrics.regression_metrics(truth, pred)
        if s.task_type == "token_classification":
            return task_metrics.ner_metrics(truth, pred)
        return task_metrics.qa_metrics(pred, truth)

    def primary(self, idx: np.ndarray | None = None) -> float:
        value = self.metrics(idx).get(self.spec.metric, 0.0)
        return float(value) if np.isfinite(value) else 0.0

    def standard_error(self, n_boot: int = 200, seed: int = 0) -> float | None:
        """Bootstrap standard error of the primary metric (examples resampled).

        Each resample is scored from per-example statistics computed once (a confusion matrix,
        per-sentence entity counts, per-question F1), not by re-running the metric functions:
        a few milliseconds in all instead of seconds."""
        return task_metrics.bootstrap_se(self._resample_scorer(), len(self), n_boot=n_boot, seed=seed)

    def _resample_scorer(self) -> Callable[[np.ndarray], float]:
        s = self.spec
        if s.task_type == "classification":
            truth, pred = np.asarray(self.truth, dtype=int), np.asarray(self.predicted, dtype=int)
            scores = None if self.scores is None or s.n_labels != 2 else self.scores[:, s.positive]
            return lambda idx: _classification_primary(s, truth[idx], pred[idx],
                                                       None if scores is None else scores[idx])
        if s.task_type == "regression":
            t, p = np.asarray(self.truth, dtype=float), np.asarray(self.predicted, dtype=float)
            return lambda idx: task_metrics.regression_metrics(t[idx], p[idx]).get(s.metric, 0.0)
        if s.task_type == "token_classification":
            counts = np.asarray([_entity_counts(g, p) for g, p in zip(self.truth, self.predicted, strict=True)],
                                dtype=float).reshape(-1, 3)
            return lambda idx: _f1_from_counts(counts[idx].sum(axis=0))
        per_item = np.asarray([task_metrics.qa_metrics([p], [g])[s.metric]
                               for p, g in zip(self.predicted, self.truth, strict=True)], dtype=float)
        return lambda idx: float(per_item[idx].mean())


@dataclass(frozen=True)
class ConstantPredictor:
    """The do-nothing model: the majority training class, the training mean, no entities, or
    an empty answer."""

    spec: ScoringSpec
    value: Any = None  # class id or mean
    class_shares: tuple[float, ...] = ()

    @classmethod
    def fit(cls, spec: ScoringSpec, train_labels: Sequence[Any]) -> ConstantPredictor:
        if spec.task_type == "classification":
            counts = np.bincount(np.asarray(train_labels, dtype=int), minlength=spec.n_labels)
            shares = counts / max(1, counts.sum())
            return cls(spec, int(np.argmax(counts)), tuple(float(x) for x in shares))
        if spec.task_type == "regression":
            return cls(spec, float(np.mean(np.asarray(train_labels, dtype=float))) if len(train_labels) else 0.0)
        return cls(spec)

    def score(self, truth: Sequence[Any]) -> Scored:
        """Its predictions for dev examples with gold ``truth``, ready to be scored."""
        n = len(truth)
        kind = self.spec.task_type
        if kind == "classification":
            scores = np.tile(np.asarray(self.class_shares, dtype=float), (n, 1))
            return Scored(self.spec, truth, [self.value] * n, scores)
        if kind == "regression":
            return Scored(self.spec, truth, [self.value] * n)
        if kind == "token_classification":
            return Scored(self.spec, truth, [["O"] * len(t) for t in truth])
        return Scored(self.spec, truth, [""] * n)

    def metric(self, truth: Sequence[Any], name: str) -> float:
        """Its score ``name`` on a classification dev split with gold class ids ``truth``, in
        closed form (no scikit-learn: a warm recommendation needs it), equal to
        ``self.score(truth).metrics()[name]``: F1 of the predicted class is 2k / (k + n) (k of
        the n examples are that class), every other class's is 0; macro-F1 averages over all
        classes, micro-F1 leaves the spec's ``negative`` class out; MCC and the rest are 0."""
        s = self.spec
        n = len(truth)
        k = sum(1 for label in truth if label == self.value)
        if s.task_type != "classification" or not n:
            return 0.0
        if name == "accuracy":
            return k / n
        if name == "macro_f1":
            return 2 * k / (k + n) / max(s.n_labels, 1)
        if name == "micro_f1":
            kept = sum(1 for label in truth if label != s.negative)
            return 0.0 if self.value == s.negative else 2 * k / (n + kept)
        if name == "f1":
            return 2 * k / (k + n) if self.value == s.positive else 0.0
        return 0.0

    def describe(self) -> str:
        """The constant predictor in words a user understands."""
        kind = self.spec.task_type
        if kind == "classification":
            names = self.spec.label_names or []
            name = names[self.value] if self.value is not None and self.value < len(names) else self.value
            return f"always predicting {name!r}"
        if kind == "regression":
            return f"always predicting the training mean {self.value:.3g}"
        if kind == "token_classification":
            return "predicting no entities"
        return "answering nothing"


def _classification_primary(spec: ScoringSpec, t: np.ndarray, p: np.ndarray, scores: np.ndarray | None) -> float:
    """The primary classification metric from a confusion matrix (numpy only: fast enough to
    run for every bootstrap resample)."""
    k = spec.n_labels
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(float)
    n = cm.sum()
    tp = np.diag(cm)
    if spec.metric == "accuracy":
        return float(tp.sum() / n) if n else 0.0
    if spec.metric in ("macro_f1", "micro_f1", "f1"):
        pred_counts, gold_counts = cm.sum(axis=0), cm.sum(axis=1)
        if spec.metric == "micro_f1":
            keep = [c for c in range(k) if c != spec.negative]
            denom = pred_counts[keep].sum() + gold_counts[keep].sum()
            return float(2 * tp[keep].sum() / denom) if denom else 0.0
        denom = pred_counts + gold_counts
        f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
        return float(f1[spec.positive] if spec.metric == "f1" else f1.mean())
    if spec.metric == "mcc":
        pred_counts, gold_counts = cm.sum(axis=0), cm.sum(axis=1)
        cov_xy = tp.sum() * n - gold_counts @ pred_counts
        cov_xx = n * n - pred_counts @ pred_counts
        cov_yy = n * n - gold_counts @ gold_counts
        return float(cov_xy / np.sqrt(cov_xx * cov_yy)) if cov_xx * cov_yy > 0 else 0.0
    truth = (t == spec.positive).astype(int)
    if scores is None or not 0 < truth.sum() < len(truth):
        return 0.5 if spec.metric == "roc_auc" else float(truth.mean())
    if spec.metric == "roc_auc":  # Mann-Whitney U with mid-ranks for ties
        from scipy.stats import rankdata

        ranks = rankdata(scores)
        n_pos = truth.sum()
        return float((ranks[truth == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(truth) - n_pos)))
    order = np.argsort(-scores, kind="mergesort")  # average precision, as scikit-learn computes it
    hits = truth[order]
    distinct = np.r_[np.nonzero(np.diff(scores[order]))[0], len(hits) - 1]
    tps = np.cumsum(hits)[distinct]
    precision = tps / (distinct + 1)
    recall_steps = np.diff(np.r_[0, tps]) / truth.sum()
    return float((precision * recall_steps).sum())


def _entity_counts(gold: Sequence[str], pred: Sequence[str]) -> tuple[int, int, int]:
    """(correct, predicted, gold) entities of one sentence, as seqeval counts them."""
    from seqeval.metrics.sequence_labeling import get_entities

    g, p = set(get_entities(list(gold))), set(get_entities(list(pred)))
    return len(g & p), len(p), len(g)


def _f1_from_counts(counts: np.ndarray) -> float:
    correct, predicted, gold = counts
    return float(2 * correct / (predicted + gold)) if predicted + gold else 0.0
