"""Task metrics: which metrics a task type offers, how the default is chosen, the scores of a
constant predictor (the baseline every result is shown beside), and bootstrap standard errors.

Extractive QA uses the official SQuAD v1.1 definitions (exact match and token F1, max over the
gold answers); NER uses seqeval's entity-level F1 (IOB2). Every metric here is higher-is-better.
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Callable, Sequence

import numpy as np

from recommender.errors import ConfigError

#: metrics per task type; the first is the default where no rule picks another
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1", "micro_f1", "mcc", "f1", "average_precision", "roc_auc"),
    "regression": ("pearson", "spearman"),
    "extractive_qa": ("f1", "exact_match"),
    "token_classification": ("f1",),
}
#: classification metrics defined for two classes only (positive-class F1 and score-based ones)
BINARY_ONLY = ("f1", "average_precision", "roc_auc")
ALL_METRICS = tuple(dict.fromkeys(m for ms in TASK_METRICS.values() for m in ms))
#: metrics that range over [-1, 1] (correlations); every other one ranges over [0, 1]
SIGNED_METRICS = ("mcc", "pearson", "spearman")
#: "imbalanced" for the default choice: the majority class above this share, or ...
MAJORITY_SHARE_LIMIT = 0.60
#: ... any class below this share
MINORITY_SHARE_LIMIT = 0.10


def metric_range(metric: str | None) -> tuple[float, float]:
    """The values ``metric`` can take: predictions and their intervals are clipped to it."""
    return (-1.0, 1.0) if metric in SIGNED_METRICS else (0.0, 1.0)


def available_metrics(task_type: str, n_labels: int | None = None) -> tuple[str, ...]:
    """The metrics a task of this type (and number of classes) can be scored with."""
    metrics = TASK_METRICS.get(task_type, ())
    if task_type == "classification" and n_labels is not None and n_labels != 2:
        metrics = tuple(m for m in metrics if m not in BINARY_ONLY)
    return metrics


def check_metric(task_type: str, metric: str, n_labels: int | None = None) -> None:
    """Raise :class:`ConfigError` naming the valid choices if ``metric`` does not fit the task."""
    choices = available_metrics(task_type, n_labels)
    if metric not in choices:
        what = task_type.replace("_", " ")
        if task_type == "classification" and metric in BINARY_ONLY and n_labels:
            what = f"classification with {n_labels} classes (it needs 2)"
        raise ConfigError(f"metric {metric!r} is not available for {what}; choose one of "
                          f"{', '.join(choices)}")


def choose_metric(task_type: str, label_counts: Sequence[int] | None = None) -> tuple[str, str]:
    """The default metric for user data and why, chosen from the training labels.

    Balanced classes are scored by accuracy. Imbalanced ones (majority above 60 % or a class
    under 10 %) by macro-F1 when there are several classes, and by MCC when there are two: MCC
    scores every constant prediction 0 whichever class is rare, where accuracy rewards always
    predicting the majority and minority-class F1 rewards always predicting the minority.
    """
    if task_type == "regression":
        return "pearson", "regression: Pearson correlation with the gold scores"
    if task_type == "extractive_qa":
        return "f1", "extractive QA: token F1 of the answer span (SQuAD)"
    if task_type == "token_classification":
        return "f1", "token classification: entity-level F1 (seqeval)"
    counts = np.asarray([c for c in (label_counts or []) if c > 0], dtype=float)
    if counts.size < 2:
        return "accuracy", "a single class seen"
    shares = np.sort(counts / counts.sum())[::-1]
    shown = " / ".join(f"{100 * s:.0f} %" for s in shares[:5]) + (" / ..." if shares.size > 5 else "")
    if shares[0] <= MAJORITY_SHARE_LIMIT and shares[-1] >= MINORITY_SHARE_LIMIT:
        return "accuracy", f"classes are balanced: {shown}"
    if shares.size == 2:
        return "mcc", f"classes are imbalanced: {shown}; MCC scores any constant prediction 0"
    return "macro_f1", f"classes are imbalanced: {shown}"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise class probabilities from logits (numerically stable)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], *, scores: np.ndarray | None = None,
    n_labels: int | None = None, positive: int = 1, negative: int | None = None,
) -> dict[str, float]:
    """Accuracy, macro-/micro-F1 and MCC; for two classes also the positive class's F1 and,
    given ``scores`` (probability of ``positive``), average precision and ROC AUC.

    ``micro_f1`` leaves out the ``negative`` class (e.g. ChemProt's "no relation"); without
    one it equals accuracy for single-label data.
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        f1_score,
        matthews_corrcoef,
        roc_auc_score,
    )

    t = np.asarray(y_true, dtype=int)
    p = np.asarray(y_pred, dtype=int)
    n_labels = n_labels or int(max(t.max(initial=0), p.max(initial=0)) + 1)
    labels = list(range(n_labels))
    micro_labels = [c for c in labels if c != negative]
    out = {
        "accuracy": float(accuracy_score(t, p)),
        "macro_f1": float(f1_score(t, p, labels=labels, average="macro", zero_division=0)),
        "micro_f1": float(f1_score(t, p, labels=micro_labels, average="micro", zero_division=0)),
        "mcc": float(matthews_corrcoef(t, p)) if len(t) else 0.0,
    }
    if n_labels == 2:
        out["f1"] = float(f1_score(t, p, pos_label=positive, average="binary", zero_division=0))
        if scores is not None:
            truth = (t == positive).astype(int)
            s = np.asarray(scores, dtype=float)
            out["average_precision"] = float(average_precision_score(truth, s)) if truth.any() else 0.0
            out["roc_auc"] = float(roc_auc_score(truth, s)) if 0 < truth.sum() < len(truth) else 0.5
    return out


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    # np.std of a constant float array can be ~1e-16 rather than 0: compare with the scale
    if len(t) < 2 or np.ptp(p) <= 1e-12 * (1 + np.abs(p).max()) or np.ptp(t) == 0:
        # A constant prediction has no correlation; 0 is the honest score, not NaN.
        pearson = spearman = 0.0
    else:
        pearson = float(pearsonr(t, p)[0])
        spearman = float(spearmanr(t, p)[0])
    return {"pearson": pearson, "spearman": spearman,
            "mse": float(np.mean((t - p) ** 2)) if len(t) else 0.0}


# --- SQuAD v1.1 official evaluation (evaluate-v1.1.py), reproduced because hub metric scripts
# cannot be loaded offline.
def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _squad_f1(prediction: str, ground_truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def qa_metrics(predictions: Sequence[str], gold_answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """``exact_match`` and ``f1`` in [0, 1] (the official script reports them x100)."""
    if not predictions:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for pred, golds in zip(predictions, gold_answers, strict=True):
        em += max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds)
        f1 += max(_squad_f1(pred, g) for g in golds)
    return {"exact_match": em / len(predictions), "f1": f1 / len(predictions)}


def ner_metrics(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Entity-level precision / recall / F1 (seqeval, IOB2) and token accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    true, pred = [list(x) for x in y_true], [list(x) for x in y_pred]
    return {
        "f1": float(f1_score(true, pred, zero_division=0)),
        "precision": float(precision_score(true, pred, zero_division=0)),
        "recall": float(recall_score(true, pred, zero_division=0)),
        "token_accuracy": float(accuracy_score(true, pred)),
    }


def bootstrap_se(score: Callable[[np.ndarray], float], n: int, *, n_boot: int = 200,
                 seed: int = 0) -> float | None:
    """Standard error of ``score`` over ``n`` items by the bootstrap (resampling items with
    replacement); ``score`` takes an index array. None for fewer than two items."""
    if n < 2 or n_boot < 2:
        return None
    rng = np.random.default_rng(seed)
    values = [score(rng.integers(0, n, size=n)) for _ in range(n_boot)]
    return float(np.std(values, ddof=1))
