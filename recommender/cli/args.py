"""The parser and the argument types and groups every command shares.

Errors are one ``error:`` line; numbers are checked (finite, positive, integral) where argparse
reads them, so no command starts work on a value it cannot use.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

TASK_HELP = "a bundled task name (see `recommender tasks`) or a CSV/TSV/JSONL file or folder"


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``error:`` line (and exit status 2)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")


def _number(text: str, kind: type, what: str) -> Any:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r} (not a finite number)")
    if kind is int:
        if not value.is_integer():
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return int(value)
    return value


def finite_float(text: str) -> float:
    """A float that is neither NaN nor infinite."""
    return float(_number(text, float, "a finite number"))


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return float(value)


def positive_int(text: str) -> int:
    """An integer >= 1 (``2.0`` is read as 2)."""
    value = _number(text, int, "an integer >= 1")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(value)


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _number(text, int, "an integer >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(value)


def parse_duration(text: str) -> float:
    """``90`` / ``90s`` / ``3m`` / ``1.5h`` -> seconds (finite and positive)."""
    text = str(text).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 90, 90s, 3m, 1h)") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"duration must be a finite number of seconds, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"duration must be positive, got {text!r}")
    return value


TASK_TYPES = ["classification", "regression", "extractive_qa", "token_classification"]


def add_task_args(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The task and how to read a user file: the same flags for every command that loads a task
    (``required=False``: the task may come from elsewhere, e.g. a job file)."""
    p.add_argument("task", nargs=None if required else "?", help=TASK_HELP)
    p.add_argument("--text-col", help="text column of a user file")
    p.add_argument("--text-pair-col", help="second text column (sentence pairs)")
    p.add_argument("--label-col", help="label column of a user file")
    p.add_argument("--task-type", choices=TASK_TYPES)
    p.add_argument("--language", help="ISO 639-1 code of the texts (detected when omitted)")
    p.add_argument("--metric", help="primary metric (default: the task's own, or chosen from the labels); "
                   "e.g. accuracy, macro_f1, mcc, f1, average_precision, roc_auc, pearson")
    p.add_argument("--model", help="local Hugging Face model folder (default: bundled all-MiniLM-L6-v2)")


def load_task(args: argparse.Namespace) -> Any:
    """The task named by :func:`add_task_args`' flags."""
    from recommender.tasks import load_task as load

    return load(args.task, text_col=args.text_col, text_pair_col=args.text_pair_col,
                label_col=args.label_col, task_type=args.task_type, language=args.language,
                metric=args.metric)


def add_subset_args(p: argparse.ArgumentParser) -> None:
    """How much of the data to use."""
    p.add_argument("--max-train", type=positive_int, help="use at most this many training examples")
    p.add_argument("--max-dev", type=positive_int, help="use at most this many dev examples")


def add_device_args(p: argparse.ArgumentParser) -> None:
    """Where and in which precision to train, and the seed."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="auto: bf16 autocast where the hardware runs it natively, else fp32")
    p.add_argument("--seed", type=non_negative_int, default=0)
