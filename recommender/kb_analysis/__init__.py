"""Analyses of the protocol-2 knowledge base: tuned defaults from the learning-rate sweep
(:mod:`.lr_grid`), the seed papers' comparison against full fine-tuning (:mod:`.relative`),
and their markdown tables and plot (:mod:`.render`). ``recommender kb defaults`` and
``recommender kb report`` print them; the library never imports the CLI.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recommender.knowledge_base import KnowledgeBaseRow

#: the protocol these analyses read (runs to convergence, scored beside the constant predictor)
PROTOCOL = 2


def gather_rows(storages: Sequence[str] = (), files: Sequence[Path] = ()) -> list[KnowledgeBaseRow]:
    """Rows of every storage and file given (default: the shipped knowledge base), one per run
    id (a later source replaces an earlier one). Storages must already exist."""
    from recommender.errors import DataError, DataFileNotFoundError
    from recommender.knowledge_base import load_knowledge_base, rows_from_storage
    from recommender.store import require_storage

    for f in files:
        if not Path(f).exists():
            raise DataFileNotFoundError(f"knowledge base not found: {f}")
        if not Path(f).is_file():  # a FIFO or a device would block or never end
            raise DataError(f"knowledge base {f} is not a regular file")
    for url in storages:
        require_storage(url)  # an analysis never creates a store
    by_id: dict[str, KnowledgeBaseRow] = {}
    sources: list[list[KnowledgeBaseRow]] = [load_knowledge_base(Path(f)) for f in files]
    sources += [rows_from_storage(url) for url in storages]
    if not storages and not files:
        sources.append(load_knowledge_base())
    for rows in sources:
        for row in rows:
            by_id[row.run_id] = row
    return list(by_id.values())


def task_label(row: KnowledgeBaseRow) -> str:
    """The unit analyses aggregate over: a task at one training-set size."""
    return f"{row.task} n={row.size}"
