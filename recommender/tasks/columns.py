"""Spec inference: which columns of a user's file hold the text, the text pair and the label,
and what kind of task it is. Explicit arguments always win over guesses."""

from __future__ import annotations

from typing import Any

from recommender.errors import DataError
from recommender.types import TaskSpec

TEXT_CANDIDATES = ("text", "sentence", "sentence1", "question1", "premise", "review", "content",
                   "document", "tweet", "comment", "body", "input", "question")
PAIR_CANDIDATES = ("text_pair", "sentence2", "question2", "hypothesis", "text_b", "text2")
LABEL_CANDIDATES = ("label", "labels", "class", "target", "score", "y", "category", "sentiment",
                    "gold_label", "tags", "ner_tags")


def pick_column(columns: list[str], given: str | None, candidates: tuple[str, ...], what: str,
                required: bool = True) -> str | None:
    """The ``given`` column (checked), else the first of ``candidates`` present (any case)."""
    if given is not None:
        if given not in columns:
            raise DataError(f"{what} column {given!r} not found; columns present: {', '.join(columns)}")
        return given
    lowered = {c.lower(): c for c in columns}
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    if required:
        raise DataError(
            f"cannot tell which column is the {what}; columns present: {', '.join(columns)}. "
            f"Name it explicitly (--{what.replace(' ', '-')}-col)"
        )
    return None


def infer_spec(
    rows: list[dict[str, Any]],
    *,
    name: str,
    train_file: str,
    dev_file: str | None = None,
    text_col: str | None = None,
    text_pair_col: str | None = None,
    label_col: str | None = None,
    task_type: str | None = None,
    metric: str | None = None,
    language: str | None = None,
    dev_fraction: float = 0.2,
    seed: int = 13,
) -> TaskSpec:
    """Guess a spec from a file's columns and values; explicit arguments always win."""
    columns = list(rows[0].keys())
    lowered = {c.lower() for c in columns}
    if task_type is None:
        if {"question", "context", "answers"} <= lowered:
            task_type = "extractive_qa"
        elif "tokens" in lowered:
            # token-level labels are lists, one tag per token
            tag_col = pick_column(columns, label_col, LABEL_CANDIDATES, "label")
            if isinstance(rows[0].get(tag_col or ""), list):
                task_type = "token_classification"
    if task_type == "extractive_qa":
        text_col, text_pair_col, label_col = "question", "context", "answers"
        for col in (text_col, text_pair_col, label_col):
            pick_column(columns, col, (), "QA")
    elif task_type == "token_classification":
        text_col = pick_column(columns, text_col, ("tokens", "words"), "text")
        label_col = pick_column(columns, label_col, ("tags", "ner_tags", "labels", "label"), "label")
    else:
        given = {"text": text_col, "text pair": text_pair_col, "label": label_col}
        named = [(what, col) for what, col in given.items() if col is not None]
        for i, (what, col) in enumerate(named):
            for other, col2 in named[i + 1:]:
                if col == col2:
                    raise DataError(f"the {what} column and the {other} column are both {col!r}; they must "
                                    "differ (--text-col, --text-pair-col and --label-col name different columns)")
        label_col = pick_column(columns, label_col, LABEL_CANDIDATES, "label")
        if text_col is not None:
            pick_column(columns, text_col, (), "text")  # an unknown name lists every column
        text_col = pick_column([c for c in columns if c != label_col], text_col, TEXT_CANDIDATES, "text")
        if text_col is None or label_col is None:  # pragma: no cover - _pick raises first
            raise DataError("no text or label column")
        if text_pair_col is None:
            rest = [c for c in columns if c not in (label_col, text_col)]
            text_pair_col = pick_column(rest, None, PAIR_CANDIDATES, "text pair", required=False)
        else:
            pick_column(columns, text_pair_col, (), "text pair")
        if task_type is None:
            task_type = "regression" if looks_like_regression([r.get(label_col) for r in rows]) \
                else "classification"
    # without --metric, the task is built with one chosen from the labels (rows.with_default_metric)
    default_metric = {"classification": "accuracy", "regression": "pearson"}.get(task_type, "f1")
    return TaskSpec(
        name=name, task_type=task_type, metric=metric or default_metric,
        metric_reason="chosen with --metric" if metric else "", train_file=train_file,
        dev_file=dev_file, text_col=text_col or "text", text_pair_col=text_pair_col,
        label_col=label_col or "label", language=language or "und", dev_fraction=dev_fraction,
        split_seed=seed, source="user file",
    )


def looks_like_regression(values: list[Any]) -> bool:
    """Fractional numeric labels: a regression target."""
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            return False
    if not numbers:
        return False
    # Integer labels are class ids (even 77 of them); only fractional values mean regression.
    return any(not float(x).is_integer() for x in numbers)
