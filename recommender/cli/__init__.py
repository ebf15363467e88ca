"""Command line: parse, call the library, print. The top of the import graph: nothing in the
library imports it. Heavy imports (torch, transformers, optuna, ...) happen inside each command,
so ``recommender --help`` answers at once.

Each module below holds one group of commands and a ``register(subparsers)``; the parser is the
explicit list :data:`COMMAND_GROUPS`, so adding a command group is one module and one entry here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recommender.cli import app, export, kb, meta, search, tasks, train
from recommender.cli.args import Parser
from recommender.errors import RecommenderError

#: the command groups, in the order ``recommender --help`` lists them
COMMAND_GROUPS = (tasks, train, kb, search, export, meta, app)


def build_parser() -> argparse.ArgumentParser:
    """The ``recommender`` parser with every command group's subcommands."""
    parser = Parser(
        prog="recommender",
        description="Measure, learn and recommend how to fine-tune a language model for a task.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a :class:`RecommenderError` is one ``error:`` line and exit status 2."""
    from recommender.logging_setup import quiet_library_warnings

    quiet_library_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_common_args(args)
        return int(args.func(args) or 0)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def check_common_args(args: argparse.Namespace) -> None:
    """Checks shared by every command that takes these options, before any work."""
    from recommender.config_utils import check_storage_url
    from recommender.errors import ConfigError

    if getattr(args, "storage", None) is not None:
        check_storage_url(args.storage)
    study = getattr(args, "study", None)
    if study is not None and (not study.strip() or not study.isprintable()):
        raise ConfigError(f"--study {study!r}: give a non-empty study name without control characters")
