"""Reading the chosen trial of a search study from the run store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recommender.config_utils import redact_url
from recommender.errors import ConfigError, StorageError
from recommender.export.errors import ExportError
from recommender.study_record import StudyRecord, read_record


@dataclass(frozen=True)
class ChosenTrial:
    """One complete trial of a search study, how it was chosen, and what the study recorded."""

    url: str
    study: Any  # optuna.Study
    frozen: Any  # optuna.trial.FrozenTrial
    selected_as: str
    record: StudyRecord  # what the search stored: task, configuration, model, meta-features
    result: Any  # RunResult


def read_trial(storage: str | None, study: str, trial: int | str) -> ChosenTrial:
    """The trial ``trial`` (``"best"`` or a number) of search study ``study``, with its result."""
    from recommender.store import trial_result

    url, st, record = open_study(storage, study)
    frozen, how = select_trial(st, trial)
    result = trial_result(frozen)
    if result is None:
        raise ExportError(f"trial #{frozen.number} of study {study!r} is COMPLETE but holds no recorded result; "
                          f"pick another: {best_list(st)}")
    return ChosenTrial(url, st, frozen, how, record, result)


def open_study(storage: str | None, study: str) -> tuple[str, Any, StudyRecord]:
    """The storage URL, the search study and its record (a sweep's or a foreign study is an error)."""
    import optuna

    from recommender.paths import default_storage_url
    from recommender.store import open_existing_storage

    url = storage or default_storage_url()
    check_storage_exists(url)
    store = open_existing_storage(url, heartbeat=False)
    try:
        st = optuna.load_study(study_name=study, storage=store)
    except KeyError:
        names = sorted(s.study_name for s in optuna.study.get_all_study_summaries(store, include_best_trial=False))
        raise StorageError(f"no study {study!r} in {redact_url(url)}; existing studies: "
                           f"{', '.join(names) or 'none'}") from None
    record = read_record(st)
    if record is None or not record.is_search or record.config is None or record.task_ref is None:
        raise StorageError(f"study {study!r} was not created by `recommender search`: it has no task or config "
                           "to export")
    return url, st, record


def check_storage_exists(url: str) -> None:
    """Exporting reads: do not let a mistyped SQLite path create an empty database."""
    from recommender.store import storage_file

    path = storage_file(url)
    if path is not None and not path.is_file():
        raise StorageError(f"storage {url!r}: no such database file {path}")


def complete_trials(st: Any) -> list[Any]:
    """The study's complete trials with a metric, best first."""
    import optuna

    trials = st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return sorted((t for t in trials if t.user_attrs.get("metric") is not None),
                  key=lambda t: -float(t.user_attrs["metric"]))


def best_list(st: Any, n: int = 3) -> str:
    """The best complete trials in a few words, for error messages."""
    record = read_record(st)
    metric = record.metric_label if record else "metric"
    rows = [f"#{t.number} {t.params.get('method', '?')} {metric}={float(t.user_attrs['metric']):.4f}"
            for t in complete_trials(st)[:n]]
    return "best complete trials: " + ", ".join(rows) if rows else "the study has no complete trial yet"


def select_trial(st: Any, trial: int | str) -> tuple[Any, str]:
    """The frozen trial asked for and how it was chosen; only a complete trial is returned."""
    if isinstance(trial, str) and trial.strip().lower() == "best":
        number, how = _best_number(st)
    else:
        try:
            number = int(trial)
        except (TypeError, ValueError):
            raise ConfigError(f"trial {trial!r}; expected 'best' or a trial number") from None
        how = "chosen by number"
    trials = {t.number: t for t in st.get_trials(deepcopy=False)}
    if number not in trials:
        span = f"#0..#{max(trials)}" if trials else "none"
        raise ExportError(f"study {st.study_name!r} has no trial #{number} (trials: {span}); {best_list(st)}")
    frozen = trials[number]
    if frozen.state.name != "COMPLETE":
        why = frozen.user_attrs.get("error") or ""
        why = f": {str(why).splitlines()[0][:200]}" if why else ""
        raise ExportError(f"trial #{number} of study {st.study_name!r} is {frozen.state.name}{why}; only complete "
                          f"trials can be exported; {best_list(st)}")
    return frozen, how


def _best_number(st: Any) -> tuple[int, str]:
    from recommender.search.study import summarize

    record = read_record(st)
    if record is None or record.config is None:
        raise ExportError(f"study {st.study_name!r} holds no search configuration")
    config = record.config
    summary = summarize(st, config)
    if not summary.best:
        if complete_trials(st):
            raise ExportError(f"no complete trial of study {st.study_name!r} meets every constraint, so there "
                              f"is no best one; pass a trial number to export one anyway ({best_list(st)})")
        raise ExportError(f"study {st.study_name!r} has no complete trial to export "
                          f"({summary.counts or 'no trials'})")
    how = "best feasible trial" if config.objective == "quality" else \
        f"best metric on the Pareto front ({len(summary.best)} trials)"
    return summary.best[0].number, how


def runner_up(complete: list[Any], number: int) -> dict[str, Any] | None:
    """The best complete trial other than ``number``, as the bundle records it."""
    for t in complete:
        if t.number != number:
            return {"trial": t.number, "method": t.params.get("method"), "metric": float(t.user_attrs["metric"])}
    return None
