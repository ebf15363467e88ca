"""Cheap fingerprints of what a fitted model or a cached view was computed from.

A cache keyed by :func:`storage_fingerprint` is reused while a run store gains no finished
trial: a running search that only writes heartbeats and intermediate values does not change it.
"""

from __future__ import annotations

import time

#: a database server has no file to stat: its fingerprint is recomputed at most this often
SERVER_TTL_S = 10.0
_by_stamp: dict[tuple[str, float], tuple[int, int]] = {}


def _finished_trials(url: str) -> tuple[int, int]:
    import optuna

    from recommender.store import open_storage

    store = open_storage(url, heartbeat=False)
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    studies = store.get_all_studies()
    return len(studies), sum(store.get_n_trials(store.get_study_id_from_name(s.study_name), state=finished)
                             for s in studies)


def storage_fingerprint(url: str | None) -> tuple[int, int]:
    """``(studies, finished trials)`` of a run store; ``(0, 0)`` when its file does not exist yet.

    A local store is read again only when its file changed; a database server at most every
    :data:`SERVER_TTL_S` seconds.
    """
    from recommender.store import storage_file

    if not url:
        return 0, 0
    path = storage_file(url)
    if path is None:
        stamp = float(int(time.time() / SERVER_TTL_S))
    elif not path.exists():
        return 0, 0
    else:
        stamp = path.stat().st_mtime
    key = (url, stamp)
    if key not in _by_stamp:
        if len(_by_stamp) > 64:
            _by_stamp.clear()
        _by_stamp[key] = _finished_trials(url)
    return _by_stamp[key]

