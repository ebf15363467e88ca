"""A training-ready task: a spec plus normalized train/dev ``datasets.Dataset`` objects.

Inside a :class:`Task` every split has the same normalized columns, whatever the source file
called them:

- classification / regression: ``text``, optional ``text_pair``, ``label`` (class id or float)
- extractive QA: ``id``, ``question``, ``context``, ``answers`` (``text`` / ``answer_start``)
- token classification: ``tokens``, ``tags`` (tag ids)
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.errors import DataError, DataFileNotFoundError, unknown_name
from recommender.tasks.bundled import bundled_spec, bundled_task_names, is_bundled
from recommender.tasks.reader import DEFAULT_MAX_FILE_BYTES, SUFFIXES, read_rows
from recommender.types import TaskSpec

if TYPE_CHECKING:
    import datasets

TEXT_CANDIDATES = ("text", "sentence", "sentence1", "question1", "premise", "review", "content",
                   "document", "tweet", "comment", "body", "input", "question")
PAIR_CANDIDATES = ("text_pair", "sentence2", "question2", "hypothesis", "text_b", "text2")
LABEL_CANDIDATES = ("label", "labels", "class", "target", "score", "y", "category", "sentiment",
                    "gold_label", "tags", "ner_tags")
DEV_STEMS = ("dev", "validation", "valid", "val", "eval")


@dataclass
class Task:
    """A task with normalized splits. Build one with :func:`load_task`."""

    spec: TaskSpec
    train: datasets.Dataset
    dev: datasets.Dataset
    label_names: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task_type(self) -> str:
        return self.spec.task_type

    @property
    def num_labels(self) -> int:
        if self.task_type == "regression":
            return 1
        if self.task_type == "extractive_qa":
            return 2
        assert self.label_names is not None
        return len(self.label_names)

    def subsample(self, n_train: int | None = None, n_dev: int | None = None, seed: int = 0) -> Task:
        """A seeded random subset of each split (``None`` keeps a split whole)."""
        def take(ds: datasets.Dataset, n: int | None) -> datasets.Dataset:
            if n is None or n >= len(ds):
                return ds
            idx = sorted(random.Random(seed).sample(range(len(ds)), n))
            return ds.select(idx)

        spec = replace(self.spec)
        train, dev = take(self.train, n_train), take(self.dev, n_dev)
        spec.n_train, spec.n_dev = len(train), len(dev)
        return Task(spec, train, dev, self.label_names, list(self.notes))

    def texts(self, split: str = "train") -> list[str]:
        """Plain texts of a split (pairs joined by a space): for TAPT and meta-features."""
        ds = self.train if split == "train" else self.dev
        if self.task_type == "token_classification":
            return [" ".join(tokens) for tokens in list(ds["tokens"])]
        if self.task_type == "extractive_qa":
            return [q + " " + c for q, c in zip(list(ds["question"]), list(ds["context"]), strict=True)]
        if "text_pair" in ds.column_names:
            return [a + " " + b for a, b in zip(list(ds["text"]), list(ds["text_pair"]), strict=True)]
        return list(ds["text"])

    @cached_property
    def fingerprint(self) -> str:
        """Stable hash of the normalized data: the same data gives the same fingerprint."""
        digest = hashlib.sha256()
        for split in (self.train, self.dev):
            for row in split:
                digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode())
                digest.update(b"\n")
            digest.update(b"\x00")
        return digest.hexdigest()[:16]


def load_task(
    name_or_path: str | Path,
    *,
    text_col: str | None = None,
    text_pair_col: str | None = None,
    label_col: str | None = None,
    task_type: str | None = None,
    metric: str | None = None,
    language: str | None = None,
    name: str | None = None,
    dev_fraction: float = 0.2,
    seed: int = 13,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Task:
    """Load a bundled task by name, or a user's file / folder.

    A folder holds ``train.*`` and optionally ``dev.*`` (or ``validation.*``); a single file is
    split into train/dev with a fixed seed (stratified by label for classification). Columns are
    inferred unless given; every problem raises a :class:`~recommender.errors.RecommenderError`
    that says what to fix.

    >>> task = load_task("glue_rte")                                  # doctest: +SKIP
    >>> task = load_task("reviews.csv", text_col="body", label_col="stars")  # doctest: +SKIP
    """
    text = str(name_or_path)
    if isinstance(name_or_path, str) and is_bundled(text):
        spec, folder = bundled_spec(text)
        train_rows = read_rows(folder / spec.train_file, max_file_bytes)
        dev_rows = read_rows(folder / spec.dev_file, max_file_bytes) if spec.dev_file else None
        return _build(spec, train_rows, dev_rows)
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if not any(sep in text for sep in ("/", "\\", ".")):
            raise unknown_name("task", text, bundled_task_names())
        raise DataFileNotFoundError(
            f"no bundled task or file named {text!r}; give a bundled task name "
            "(see `recommender tasks`) or a path to a CSV/TSV/JSONL file or folder"
        )
    train_path, dev_path = _find_split_files(path)
    train_rows = read_rows(train_path, max_file_bytes)
    dev_rows = read_rows(dev_path, max_file_bytes) if dev_path else None
    spec = infer_spec(
        train_rows, name=name or path.stem, train_file=str(train_path),
        dev_file=str(dev_path) if dev_path else None, text_col=text_col,
        text_pair_col=text_pair_col, label_col=label_col, task_type=task_type, metric=metric,
        language=language, dev_fraction=dev_fraction, seed=seed,
    )
    return _build(spec, train_rows, dev_rows)


def task_from_rows(
    train_rows: list[dict[str, Any]],
    dev_rows: list[dict[str, Any]] | None = None,
    *,
    name: str = "uploaded",
    **overrides: Any,
) -> Task:
    """Build a task from rows already in memory (e.g. an upload parsed by the app)."""
    spec = infer_spec(train_rows, name=name, train_file="<memory>",
                      dev_file="<memory>" if dev_rows else None, **overrides)
    return _build(spec, train_rows, dev_rows)


def _find_split_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_file():
        return path, None
    files = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in SUFFIXES]
    train = [p for p in files if p.stem.lower().startswith("train")]
    dev = [p for p in files if p.stem.lower().split("_")[0].split("-")[0] in DEV_STEMS]
    if not train:
        raise DataFileNotFoundError(
            f"{path} has no train.* file; name the training file train.csv/.tsv/.jsonl "
            "(and optionally dev.*), or pass the file itself"
        )
    return train[0], dev[0] if dev else None


def _pick(columns: list[str], given: str | None, candidates: tuple[str, ...], what: str,
          required: bool = True) -> str | None:
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
            tag_col = _pick(columns, label_col, LABEL_CANDIDATES, "label")
            if isinstance(rows[0].get(tag_col or ""), list):
                task_type = "token_classification"
    if task_type == "extractive_qa":
        text_col, text_pair_col, label_col = "question", "context", "answers"
        for col in (text_col, text_pair_col, label_col):
            _pick(columns, col, (), "QA")
    elif task_type == "token_classification":
        text_col = _pick(columns, text_col, ("tokens", "words"), "text")
        label_col = _pick(columns, label_col, ("tags", "ner_tags", "labels", "label"), "label")
    else:
        label_col = _pick(columns, label_col, LABEL_CANDIDATES, "label")
        if text_col is not None:
            _pick(columns, text_col, (), "text")  # an unknown name lists every column
        text_col = _pick([c for c in columns if c != label_col], text_col, TEXT_CANDIDATES, "text")
        if text_col is None or label_col is None:  # pragma: no cover - _pick raises first
            raise DataError("no text or label column")
        if text_pair_col is None:
            rest = [c for c in columns if c not in (label_col, text_col)]
            text_pair_col = _pick(rest, None, PAIR_CANDIDATES, "text pair", required=False)
        else:
            _pick(columns, text_pair_col, (), "text pair")
        if task_type is None:
            task_type = "regression" if _looks_like_regression([r.get(label_col) for r in rows]) \
                else "classification"
    default_metric = {"classification": "accuracy", "regression": "pearson"}.get(task_type, "f1")
    return TaskSpec(
        name=name, task_type=task_type, metric=metric or default_metric, train_file=train_file,
        dev_file=dev_file, text_col=text_col or "text", text_pair_col=text_pair_col,
        label_col=label_col or "label", language=language or "und", dev_fraction=dev_fraction,
        split_seed=seed, source="user file",
    )


def _looks_like_regression(values: list[Any]) -> bool:
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


def _normalize(rows: list[dict[str, Any]], spec: TaskSpec, split: str) -> tuple[list[dict[str, Any]], int]:
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
        text = "" if row[spec.text_col] is None else str(row[spec.text_col]).strip()
        if not text:
            dropped += 1
            continue
        item: dict[str, Any] = {"text": text}
        if spec.text_pair_col is not None:
            item["text_pair"] = "" if row[spec.text_pair_col] is None else str(row[spec.text_pair_col]).strip()
        if label is None or (isinstance(label, str) and not label.strip()):
            raise fail(i, f"label column {spec.label_col!r} is empty; fill it or drop the row")
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


def _split(rows: list[dict[str, Any]], spec: TaskSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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
    if not dev_idx or len(dev_idx) == len(rows):
        raise DataError(f"{spec.name}: {len(rows)} rows are too few to split into train and dev")
    train = [r for i, r in enumerate(rows) if i not in dev_idx]
    dev = [r for i, r in enumerate(rows) if i in dev_idx]
    return train, dev


def _build(spec: TaskSpec, train_rows: list[dict[str, Any]], dev_rows: list[dict[str, Any]] | None) -> Task:
    import datasets

    train, dropped = _normalize(train_rows, spec, "train")
    notes = [f"dropped {dropped} train rows with empty text"] if dropped else []
    if dev_rows is None:
        train, dev = _split(train, spec)
        notes.append(f"no dev file: split {len(dev)} rows off train (seed {spec.split_seed})")
    else:
        dev, dropped = _normalize(dev_rows, spec, "dev")
        if dropped:
            notes.append(f"dropped {dropped} dev rows with empty text")
    if not train or not dev:
        raise DataError(f"{spec.name}: no usable rows in {'train' if not train else 'dev'}")
    label_names = _encode_labels(spec, train, dev)
    spec = replace(spec, label_names=label_names, n_train=len(train), n_dev=len(dev))
    return Task(spec, datasets.Dataset.from_list(train), datasets.Dataset.from_list(dev),
                label_names, notes)


def _encode_labels(spec: TaskSpec, train: list[dict[str, Any]], dev: list[dict[str, Any]]) -> list[str] | None:
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
