"""Quiet the libraries' warnings and logs in every process that trains or searches."""

from __future__ import annotations


def quiet_library_warnings() -> None:
    """Silence FutureWarnings, Optuna's experimental notes and ``adapters``' info logs.

    Called by the CLI and by each trial process; a library import does not change global
    warning filters by itself.
    """
    import logging
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
    warnings.filterwarnings("ignore", message=".*experimental.*")
    logging.getLogger("adapters").setLevel(logging.ERROR)
