"""Task metrics: one function per task type, each returning a dict with the primary metric.

Extractive QA uses the official SQuAD v1.1 definitions (exact match and token F1, max over the
gold answers); NER uses seqeval's entity-level F1 (IOB2).
"""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence

import numpy as np


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, y_pred)),
    }


def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    t = np.asarray(y_true, dtype=float)
    p = np.asarray(y_pred, dtype=float)
    if len(t) < 2 or np.std(p) == 0 or np.std(t) == 0:
        # A constant prediction has no correlation; 0 is the honest score, not NaN.
        pearson = spearman = 0.0
    else:
        pearson = float(pearsonr(t, p)[0])
        spearman = float(spearmanr(t, p)[0])
    return {"pearson": pearson, "spearman": spearman, "mse": float(np.mean((t - p) ** 2))}


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
