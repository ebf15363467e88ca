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
import random
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.errors import ConfigError, DataError, DataFileNotFoundError, unknown_name
from recommender.tasks.bundled import bundled_spec, bundled_task_names, is_bundled
from recommender.tasks.columns import infer_spec
from recommender.tasks.reader import DEFAULT_MAX_FILE_BYTES, SUFFIXES, read_rows
from recommender.tasks.rows import encode_labels, normalize_rows, split_rows, with_default_metric
from recommender.types import TaskSpec

if TYPE_CHECKING:
    import datasets

DEV_STEMS = ("dev", "validation", "valid", "val", "eval")


class Task:
    """A task with normalized splits. Build one with :func:`load_task`.

    ``train`` and ``dev`` are ``datasets.Dataset`` objects, built from the normalized rows on
    first use: identifying a task (its :attr:`fingerprint`, e.g. to find its cached
    meta-features) and computing its meta-features (:meth:`column`, :meth:`n_rows`,
    :meth:`texts`) need neither ``datasets`` (a second to import) nor Arrow tables."""

    def __init__(self, spec: TaskSpec, train: datasets.Dataset | list[dict[str, Any]],
                 dev: datasets.Dataset | list[dict[str, Any]], label_names: list[str] | None = None,
                 notes: list[str] | None = None) -> None:
        self.spec = spec
        self._splits: dict[str, Any] = {"train": train, "dev": dev}
        self.label_names = label_names
        self.notes = list(notes or [])

    def __repr__(self) -> str:
        return (f"Task(name={self.name!r}, task_type={self.task_type!r}, n_train={self.spec.n_train}, "
                f"n_dev={self.spec.n_dev})")

    @property
    def train(self) -> datasets.Dataset:
        return self._dataset("train")

    @property
    def dev(self) -> datasets.Dataset:
        return self._dataset("dev")

    def column(self, split: str, name: str) -> list[Any] | None:
        """One column of ``split`` ("train" or "dev") as a list, None when there is no such
        column; reads the rows directly while the Dataset is not built yet."""
        data = self._splits[split]
        if isinstance(data, list):
            return [row[name] for row in data] if data and name in data[0] else None
        return list(data[name]) if name in data.column_names else None

    def n_rows(self, split: str) -> int:
        """Rows in ``split`` ("train" or "dev"), without building the Dataset."""
        return len(self._splits[split])

    def has_column(self, split: str, name: str) -> bool:
        """Whether ``split`` has column ``name``, without building the Dataset."""
        data = self._splits[split]
        return (bool(data) and name in data[0]) if isinstance(data, list) else name in data.column_names

    def _dataset(self, split: str) -> datasets.Dataset:
        data = self._splits[split]
        if isinstance(data, list):
            import datasets

            data = self._splits[split] = datasets.Dataset.from_list(data)
        return data

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
        for what, n in (("n_train", n_train), ("n_dev", n_dev)):
            if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
                raise ConfigError(f"subsample {what}={n!r}; expected an integer >= 1, or None for the whole split")

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
        def col(name: str) -> list[Any]:
            return self.column(split, name) or []

        if self.task_type == "token_classification":
            return [" ".join(tokens) for tokens in col("tokens")]
        if self.task_type == "extractive_qa":
            return [q + " " + c for q, c in zip(col("question"), col("context"), strict=True)]
        if self.has_column(split, "text_pair"):
            return [a + " " + b for a, b in zip(col("text"), col("text_pair"), strict=True)]
        return col("text")

    @cached_property
    def fingerprint(self) -> str:
        """Stable hash of the normalized data: the same data gives the same fingerprint."""
        digest = hashlib.sha256()
        for split in (self._splits["train"], self._splits["dev"]):
            for row in split:  # rows as built, or the Dataset's: the same JSON (tested)
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
        if metric is not None and metric != spec.metric:
            spec = replace(spec, metric=metric, metric_reason=f"chosen with --metric (the benchmark's own: "
                                                              f"{spec.metric})")
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
    return _build(spec, train_rows, dev_rows, choose_metric=metric is None)


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
    return _build(spec, train_rows, dev_rows, choose_metric=overrides.get("metric") is None)


def _find_split_files(path: Path) -> tuple[Path, Path | None]:
    if path.is_file():
        return path, None
    if not path.is_dir():
        raise DataError(f"{path} is neither a regular file nor a folder (a device, FIFO or socket?); give a "
                        "CSV/TSV/JSONL file or a folder holding train.*")
    files = [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in SUFFIXES]
    train = [p for p in files if p.stem.lower().startswith("train")]
    dev = [p for p in files if p.stem.lower().split("_")[0].split("-")[0] in DEV_STEMS]
    if not train:
        raise DataFileNotFoundError(
            f"{path} has no train.* file; name the training file train.csv/.tsv/.jsonl "
            "(and optionally dev.*), or pass the file itself"
        )
    return train[0], dev[0] if dev else None


def _build(spec: TaskSpec, train_rows: list[dict[str, Any]], dev_rows: list[dict[str, Any]] | None,
           choose_metric: bool = False) -> Task:
    """Normalize, split and encode; with ``choose_metric``, pick the metric from the labels."""
    train, dropped = normalize_rows(train_rows, spec, "train")
    if not train and dropped:
        raise DataError(f"{spec.name}: every text in column {spec.text_col!r} is empty ({dropped} train rows); "
                        "check the file or name the text column (--text-col)")
    notes = [f"dropped {dropped} train rows with empty text"] if dropped else []
    if dev_rows is None:
        train, dev = split_rows(train, spec)
        notes.append(f"no dev file: split {len(dev)} rows off train (seed {spec.split_seed})")
    else:
        dev, dropped = normalize_rows(dev_rows, spec, "dev")
        if dropped:
            notes.append(f"dropped {dropped} dev rows with empty text")
    if not train or not dev:
        raise DataError(f"{spec.name}: no usable rows in {'train' if not train else 'dev'}")
    label_names = encode_labels(spec, train, dev)
    spec = replace(spec, label_names=label_names, n_train=len(train), n_dev=len(dev))
    if choose_metric:
        spec = with_default_metric(spec, train)
    return Task(spec, train, dev, label_names, notes)
