"""Shared fixtures: small task files written to a temporary folder, the bundled tokenizer, knowledge-base
rows copied into a storage, the live trial processes under a process, and Ctrl-C as from a terminal."""

from __future__ import annotations

import csv
import json
import os
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True, scope="session")
def isolated_user_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Keep the tests' run store and calibration cache out of the user's own folder."""
    path = tmp_path_factory.mktemp("recommender-home")
    os.environ["RECOMMENDER_HOME"] = str(path)
    return path


class TaskFiles:
    """Writes hand-made task files under one temporary folder and returns their paths."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def text(self, name: str, content: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        return path

    def raw(self, name: str, content: bytes) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return path

    def delimited(self, name: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
                  delimiter: str = ",") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        return path

    def jsonl(self, name: str, rows: Sequence[dict[str, Any]]) -> Path:
        return self.text(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def json(self, name: str, data: Any) -> Path:
        return self.text(name, json.dumps(data, ensure_ascii=False))


@pytest.fixture
def tmp_task_files(tmp_path: Path) -> TaskFiles:
    return TaskFiles(tmp_path)


@pytest.fixture(scope="session")
def bundled_tokenizer() -> Any:
    """The full transformers tokenizer of the bundled model: the reference for token counts."""
    from transformers import AutoTokenizer

    from recommender.models import bundled_model_path

    return AutoTokenizer.from_pretrained(str(bundled_model_path()), local_files_only=True)


def _copy_runs_into_storage(rows: Sequence[Any], url: str, study_name: str) -> None:
    """Write knowledge-base rows as the finished trials of a search study, as a user's search would."""
    import optuna

    from recommender.store import SCHEMA_VERSION, STUDY_ATTR, open_storage, result_attrs

    study = optuna.create_study(study_name=study_name, storage=open_storage(url, heartbeat=False),
                                direction="maximize", load_if_exists=True)
    study.set_user_attr(STUDY_ATTR, {"schema": SCHEMA_VERSION, "kind": "search", "task_name": rows[0].task,
                                     "metafeatures": rows[0].metafeatures.to_dict()})
    for row in rows:
        study.add_trial(optuna.trial.create_trial(value=row.result.best_metric, params={}, distributions={},
                                                  user_attrs=result_attrs(row.result)))


@pytest.fixture
def copy_runs_into_storage() -> Any:
    """``copy(rows, storage_url, study_name)``: knowledge-base rows become a search's trials."""
    return _copy_runs_into_storage


def _live_trial_processes(pid: int | None = None) -> list[Any]:
    """The live trial processes under ``pid`` (this test's process by default). One killed and
    not yet reaped (a zombie), or one that exits while listed, is not live: reading its command
    line would raise. A parent that is gone has none."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for proc in children:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE and "recommender.search.trial_runner" in " ".join(proc.cmdline()):
                alive.append(proc)
        except psutil.NoSuchProcess:  # ZombieProcess included
            continue
    return alive


@pytest.fixture
def trial_processes() -> Any:
    """``trial_processes(pid=None)``: the live trial processes under ``pid`` (default: this test)."""
    return _live_trial_processes


@pytest.fixture
def ctrl_c_as_from_a_terminal() -> Any:
    """SIGINT with Python's default handler for the test and the processes it starts, whatever
    pytest was started with: a shell starts a background or ``nohup`` job with SIGINT ignored,
    children inherit that, and Python then never raises KeyboardInterrupt (caught handlers
    become the default at exec; ignored ones stay ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
