"""The product's one path, read top to bottom. Each stage is one function whose input and output
are named types; the command line and the app call these functions, so both behave the same.

::

    TaskRef --open_task--> Task --profile--> MetaFeatures
        --recommend--> Recommendation --plan_search (+ the budgets)--> SearchConfig
        --search / start_search--> SearchResult / SearchStatus  (runs land in the run store)
        --learn--> Predictor (the meta-model, refitted on the knowledge base + the store's runs)
        --export_trial / export_recommendation--> a bundle folder (Path)

Heavy libraries (torch, transformers, Optuna, scikit-learn) load inside the stages that need
them, so importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from recommender.metamodel.predictor import Predictor
    from recommender.search.background import SearchStatus
    from recommender.search.config import SearchConfig, TaskRef
    from recommender.search.summary import SearchResult
    from recommender.tasks.task import Task
    from recommender.types import Candidate, MetaFeatures, Recommendation, UserBudgets

Progress = Callable[[str], None]
TrialProgress = Callable[[dict[str, Any]], None]  # one call per finished trial


def task_ref(source: str, *, max_train: int | None = None, max_dev: int | None = None,
             **columns: str) -> TaskRef:
    """How any process rebuilds a task: a bundled name or a file/folder, optional caps and
    column names (``text_col``, ``label_col``, ...)."""
    from recommender.search.config import TaskRef

    return TaskRef(source, overrides=dict(columns), max_train=max_train, max_dev=max_dev)


def open_task(ref: TaskRef | str) -> Task:
    """Stage 1: the task's normalized train and dev splits (a hostile file is one clear error)."""
    return cast("Task", (task_ref(ref) if isinstance(ref, str) else ref).load())


def profile(task: Task) -> MetaFeatures:
    """Stage 2: the task's meta-features (cached by the data's fingerprint)."""
    from recommender.metamodel.recommend import cached_metafeatures

    return cached_metafeatures(task)


def recommend(task: Task, budgets: UserBudgets, *, storage: str | None = None, top: int = 5,
              metafeatures: MetaFeatures | None = None, predictor: Predictor | None = None,
              explain: bool = True) -> Recommendation:
    """Stage 3: methods and hyperparameters ranked by the quality predicted within the budgets,
    with intervals, the constant predictor's score and the budget that binds. ``predictor``:
    an already fitted meta-model (else :func:`learn` from ``storage``)."""
    from recommender.metamodel.recommend import recommend as rank

    return rank(task, budgets, top=top, model=predictor or learn(storage),
                metafeatures=metafeatures or profile(task), explain=explain)


def plan_search(budgets: UserBudgets, recommendation: Recommendation | None = None, *, n_methods: int = 4,
                **search: Any) -> SearchConfig:
    """Stage 3 -> 4: the search that verifies a recommendation within the user's budgets (each
    trial trains for at most ``budgets.time_budget_s``): the recommendation's first
    ``n_methods`` distinct methods unless ``methods`` is given, its top configurations tried
    first; ``search`` sets the rest of the :class:`SearchConfig` (``time_budget`` for the whole
    search, ``n_trials``, ``objective``, ...)."""
    from recommender.search.config import SearchConfig

    if recommendation is not None:
        ranked = tuple(dict.fromkeys(c.method for c in recommendation.candidates))
        search.setdefault("methods", ranked[:n_methods] or None)
        search.setdefault("warm_start", True)
    return SearchConfig.from_budgets(budgets, **search)



def search(ref: TaskRef, config: SearchConfig, *, storage: str | None, study: str, strategy: str = "optuna",
           progress: TrialProgress | None = None) -> SearchResult:
    """Stage 4 in this process: create or resume ``study`` and search within ``config``'s
    budgets; every trial is recorded in the run store. ``strategy``: ``"optuna"`` (sampler and
    pruner; the meta-model's top configurations first when ``config.warm_start``) or
    ``"race"`` (the meta-model's top pick first, then the rest of its portfolio raced by
    successive halving in the time it left, the survivor trained to the end)."""
    from recommender.search.config import check_strategy

    check_strategy(strategy, config)
    if strategy == "race":
        from recommender.search.race import run_race

        return run_race(ref, storage, study, config, progress=progress)
    from recommender.search.study import run_search

    return run_search(ref, storage, study, config, progress=progress)


def start_search(ref: TaskRef, config: SearchConfig, *, storage: str | None, study: str,
                 strategy: str = "optuna") -> SearchStatus:
    """Stage 4 in the background: the same search (:func:`search`) in its own process (it
    outlives the caller); watch it with :func:`search_status`."""
    from recommender.search.background import start_search_process

    start_search_process(ref, storage, study, config, strategy)
    return search_status(study, with_result=False)


def search_status(study: str, *, with_result: bool = True) -> SearchStatus:
    """A background search's state, its trials so far and (``with_result``) the best ones."""
    from recommender.search.background import search_status as status

    return status(study, with_result=with_result)


def learn(storage: str | None = None) -> Predictor:
    """Stage 5: the meta-model fitted on the shipped knowledge base plus the store's own runs
    (once there are enough of them), from the signed cache when nothing changed."""
    from recommender.metamodel.predictor import load_predictor

    return load_predictor(storage)


def export_trial(storage: str | None, study: str, out: str | Path, *, trial: int | str = "best",
                 fmt: str = "json", with_weights: bool = False, merged: bool = False, force: bool = False,
                 progress: Progress | None = None) -> Path:
    """Stage 6: a measured trial as a reproducible bundle folder (configuration, constant
    ``train.py``, README; optionally retrained weights and a merged model)."""
    from recommender.export import export_trial as write

    return write(storage, study, trial, out=out, fmt=fmt, with_weights=with_weights, merged=merged,
                 force=force, progress=progress)


def export_recommendation(candidate: Candidate | dict[str, Any], ref: TaskRef | dict[str, Any] | str,
                          metafeatures: MetaFeatures | dict[str, Any], out: str | Path, *,
                          fmt: str = "json", force: bool = False) -> Path:
    """Stage 6 before any trial: a recommended configuration (or its dict) as a bundle with its
    predictions."""
    from recommender.export import export_recommendation as write

    return write(candidate, ref, metafeatures, out, fmt=fmt, force=force)
