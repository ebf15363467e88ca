"""Where things live: the shipped data folder, the bundled model, the user's data folder."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shipped ``data/`` folder (override with ``RECOMMENDER_DATA_DIR``)."""
    return Path(os.environ.get("RECOMMENDER_DATA_DIR", REPO_ROOT / "data"))


def tasks_dir() -> Path:
    return data_dir() / "tasks"


def knowledge_base_dir() -> Path:
    return data_dir() / "knowledge_base"


def search_spaces_dir() -> Path:
    """The ``search_spaces/`` folder (override with ``RECOMMENDER_SEARCH_SPACES_DIR``)."""
    return Path(os.environ.get("RECOMMENDER_SEARCH_SPACES_DIR", REPO_ROOT / "search_spaces"))


def user_dir(create: bool = True) -> Path:
    """Per-user folder for the default SQLite run store and caches (``RECOMMENDER_HOME``)."""
    default = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "recommender"
    path = Path(os.environ.get("RECOMMENDER_HOME", default))
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def default_storage_url(create: bool = True) -> str:
    """SQLite file in the user folder: the embedded default run store."""
    return f"sqlite:///{user_dir(create) / 'runs.db'}"
