"""From raw rows to the normalized schema: one checked row per example (each problem names
its row), the seeded train/dev split, labels encoded as class ids, and -- without ``--metric``
-- the metric chosen from the training labels."""

from __future__ import annotations

import collections
import math
import random
from dataclasses import replace
from typing import Any

from recommender.errors import DataError
from recommender.tasks.metrics import choose_metric
from recommender.types import TaskSpec


def normalize_rows(rows: list[dict[str, Any]], spec: TaskSpec, split: str) -> tuple[list[dict[str, Any]], int]:
    """Rows in the normalized schema, and how many rows with empty text were dropped."""
    out: list[dict[str, Any]] = []
    dropped = 0
    first_line = 2 if spec.train_file.endswith((".csv", ".tsv")) else 1

    def fail(i: int, message: str) -> DataError:
        return DataError(f"{spec.name} {split} row {i + first_line}: {message}")

    for i, row in enumerate(rows):
        for col in (spec.text_col, spec.text_pair_col, spec.label_col):
            if col is not None and col not in row:
                raise DataError(
                    f"{spec.name} {split}: column {col!r} not found; columns present: "
                    f"{', '.join(row.keys())}"
                )
        label = row[spec.label_col]
        if spec.task_type == "extractive_qa":
            answers = label or {}
            if not answers.get("text") or len(answers["text"]) != len(answers.get("answer_start", [])):
                raise fail(i, "answers need matching non-empty 'text' and 'answer_start' lists")
            out.append({"id": str(row.get("id", f"{split}-{i}")), "question": str(row["question"]),
                        "context": str(row["context"]),
                        "answers": {"text": [str(t) for t in answers["text"]],
                                    "answer_start": [int(s) for s in answers["answer_start"]]}})
            continue
        if spec.task_type == "token_classification":
            tokens, tags = row[spec.text_col], label
            if not isinstance(tokens, list) or not isinstance(tags, list) or len(tokens) != len(tags):
                raise fail(i, "tokens and tags must be lists of equal length")
            if tokens:
                out.append({"tokens": [str(t) for t in tokens], "tags": [str(t) for t in tags]})
            else:
                dropped += 1
            continue
        for col in (spec.text_col, spec.text_pair_col):
            if col is not None and isinstance(row[col], (list, dict)):
                raise fail(i, f"text column {col!r} holds a JSON {type(row[col]).__name__}; expected a string")
        text = "" if row[spec.text_col] is None else str(row[spec.text_col]).strip()
        if not text:
            dropped += 1
            continue
        item: dict[str, Any] = {"text": text}
        if spec.text_pair_col is not None:
            item["text_pair"] = "" if row[spec.text_pair_col] is None else str(row[spec.text_pair_col]).strip()
        if label is None or (isinstance(label, str) and not label.strip()):
            raise fail(i, f"label column {spec.label_col!r} is empty; fill it or drop the row")
        if isinstance(label, (list, dict)):
            raise fail(i, f"label {label!r} is a JSON {type(label).__name__}; expected one string or number "
                          "per row")
        if isinstance(label, float) and not math.isfinite(label):
            raise fail(i, f"label {label!r} is not a finite number")
        if spec.task_type == "regression":
            try:
                value = float(label)
            except (TypeError, ValueError):
                raise fail(i, f"label {label!r} is not a number (task type is regression)") from None
            if not math.isfinite(value):
                raise fail(i, f"label {label!r} is not finite")
            item["label"] = value
        else:
            item["label"] = str(label).strip()
        out.append(item)
    return out, dropped


def split_rows(rows: list[dict[str, Any]], spec: TaskSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Seeded train/dev split, stratified by label for classification."""
    rng = random.Random(spec.split_seed)
    groups: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        key = row["label"] if spec.task_type == "classification" else 0
        groups.setdefault(key, []).append(i)
    dev_idx: set[int] = set()
    for key in sorted(groups, key=str):
        idx = groups[key]
        rng.shuffle(idx)
        dev_idx.update(idx[: int(round(len(idx) * spec.dev_fraction))])
    if not dev_idx and spec.task_type == "classification" and len(groups) > 1:
        need = next((n for n in range(1, 100_000) if round(n * spec.dev_fraction) >= 1), 100_000)
        small = sorted(groups, key=lambda k: (len(groups[k]), str(k)))
        names = ", ".join(f"{k!r} ({len(groups[k])})" for k in small[:5])
        raise DataError(
            f"{spec.name}: no class has enough examples for a dev split: a stratified {spec.dev_fraction:.0%} "
            f"dev split needs at least {need} examples of a class, and the smallest classes have fewer "
            f"({names}{', ...' if len(small) > 5 else ''}); add examples or give a dev file")
    if not dev_idx or len(dev_idx) == len(rows):
        raise DataError(f"{spec.name}: {len(rows)} rows are too few to split into train and dev")
    train = [r for i, r in enumerate(rows) if i not in dev_idx]
    dev = [r for i, r in enumerate(rows) if i in dev_idx]
    return train, dev


def encode_labels(spec: TaskSpec, train: list[dict[str, Any]], dev: list[dict[str, Any]]) -> list[str] | None:
    """Replace labels (or tags) by class ids in place; return the class names (None: no classes)."""
    if spec.task_type in ("regression", "extractive_qa"):
        return None
    key = "tags" if spec.task_type == "token_classification" else "label"

    def values(rows: list[dict[str, Any]]) -> set[str]:
        if key == "tags":
            return {t for r in rows for t in r["tags"]}
        return {r["label"] for r in rows}

    seen_train = values(train)
    names = list(spec.label_names) if spec.label_names else sorted(seen_train)
    if len(seen_train) < 2:
        raise DataError(
            f"{spec.name}: label column {spec.label_col!r} has a single class "
            f"{next(iter(seen_train))!r}; a classifier needs at least two"
        )
    unknown = (seen_train | values(dev)) - set(names)
    if unknown:
        raise DataError(
            f"{spec.name}: labels {sorted(unknown)[:10]} are not among the known classes {names[:20]}"
            " (a dev label never seen in train?)"
        )
    index = {n: i for i, n in enumerate(names)}
    for rows in (train, dev):
        for r in rows:
            if key == "tags":
                r["tags"] = [index[t] for t in r["tags"]]
            else:
                r["label"] = index[r["label"]]
    return names


def with_default_metric(spec: TaskSpec, train: list[dict[str, Any]]) -> TaskSpec:
    """The metric picked from the training labels (see :func:`choose_metric`); for an
    imbalanced binary task F1 / AP / ROC AUC are about the rarer class."""
    counts: list[int] = []
    if spec.task_type == "classification" and spec.label_names:
        counter = collections.Counter(r["label"] for r in train)
        counts = [counter.get(i, 0) for i in range(len(spec.label_names))]
    metric, reason = choose_metric(spec.task_type, counts)
    positive = spec.positive_label
    if len(counts) == 2 and spec.label_names and positive is None:
        minority = 0 if counts[0] < counts[1] else 1
        positive = spec.label_names[minority] if counts[0] != counts[1] else None
    return replace(spec, metric=metric, metric_reason=reason, positive_label=positive)
