"""The portfolio race (``search --strategy race``): its pruner, and a race on a tiny real task."""

from __future__ import annotations

import time

import pytest

from recommender.metamodel.replay_eval import RacePlan
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.race import RUNG_ATTR, TOP_PICK_ATTR, RacePruner

TINY = TaskRef("glue_sst2", max_train=64, max_dev=32, seed=0)


def test_race_pruner_stops_a_trial_that_enough_of_its_rung_already_beat():
    import optuna

    study = optuna.create_study(direction="maximize")
    for value, rung in ((0.8, 0), (0.7, 0), (0.9, 1)):
        trial = study.ask()
        trial.set_user_attr(RUNG_ATTR, rung)
        trial.report(value, step=100)
        study.tell(trial, value)
    trial = study.ask()
    trial.set_user_attr(RUNG_ATTR, 0)
    trial.report(0.75, step=100)
    frozen = study.get_trials(deepcopy=False)[-1]
    assert not RacePruner(0, keep=2).prune(study, frozen)  # only one rival (0.8) of rung 0 is better
    assert RacePruner(0, keep=1).prune(study, frozen)
    trial.report(0.85, step=200)
    assert not RacePruner(0, keep=1).prune(study, study.get_trials(deepcopy=False)[-1])  # it caught up
    assert not RacePruner(0, keep=0).prune(study, frozen)  # the final rung never prunes


def test_race_needs_a_time_budget(tmp_path):
    from recommender.errors import ConfigError
    from recommender.search.race import run_race

    with pytest.raises(ConfigError, match="time budget"):
        run_race(TINY, f"sqlite:///{tmp_path / 'r.db'}", "r", SearchConfig(n_trials=3, isolation="none"))


@pytest.mark.slow
def test_race_on_a_tiny_real_task_stays_within_its_budget(tmp_path):
    import optuna

    from recommender.search.race import race_portfolio, run_race
    from recommender.search.study import load_search

    storage = f"sqlite:///{tmp_path / 'race.db'}"
    budget = 90.0  # the top pick stops after its one epoch; two ~20 s trials, then the survivor
    methods = ("head_only", "lora", "seq_bn", "full_ft")
    config = SearchConfig(methods=methods, time_budget=budget, trial_time_budget=60.0, max_epochs=1.0,
                          evals_per_epoch=2.0, isolation="none")
    # the meta-model fitted and this machine calibrated before the clock starts (both cached)
    portfolio = race_portfolio(TINY.load(), list(methods), config, 3)
    assert len(portfolio) == 3 and len({p.params["method"] for p in portfolio}) == 3
    assert [p.top_pick for p in portfolio] == [True, False, False]  # best predicted first, marked
    start = time.time()
    events = []
    plan = RacePlan(portfolio=3, eta=2, final_fraction=0.5)
    result = run_race(TINY, storage, "race", config, plan=plan, progress=events.append)
    elapsed = time.time() - start
    assert elapsed <= budget + 10, f"race took {elapsed:.0f}s for a {budget:.0f}s budget"
    study, _ = load_search(storage, "race")
    trials = study.get_trials(deepcopy=False)
    rungs = [t.user_attrs.get(RUNG_ATTR) for t in trials]
    # the top pick alone first, then the two others raced, then the survivor trained again
    assert rungs == [0, 1, 1, 2], rungs
    assert trials[0].user_attrs[TOP_PICK_ATTR] and trials[0].params["method"] == portfolio[0].params["method"]
    assert not any(t.user_attrs[TOP_PICK_ATTR] for t in trials[1:])
    raced = {t.params["method"] for t in trials[1:3]}
    assert raced == {p.params["method"] for p in portfolio[1:]} and trials[3].params["method"] in raced
    # the top pick had the whole budget; the challengers share what it left
    assert trials[0].user_attrs["trial_time_budget_s"] > trials[3].user_attrs["trial_time_budget_s"]
    assert trials[3].user_attrs["trial_time_budget_s"] > trials[1].user_attrs["trial_time_budget_s"]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    assert result.best and result.best[0].metric is not None  # the study reports as any search does
    assert len(events) == len(trials) and events[-1]["n_finished"] == len(trials)


def test_search_cli_strategy_race_without_a_time_budget_is_one_error_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "recommender.cli", "search", "glue_sst2", "--study", "r",
                          "--storage", f"sqlite:///{tmp_path / 'r.db'}", "--strategy", "race", "--n-trials", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("error:") and "time budget" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "r.db").exists()


@pytest.mark.slow
def test_a_top_pick_that_needs_the_whole_budget_leaves_nothing_to_race(tmp_path):
    from recommender.search.race import run_race
    from recommender.search.study import load_search

    storage = f"sqlite:///{tmp_path / 'tight.db'}"
    config = SearchConfig(methods=("head_only", "lora"), time_budget=40.0, trial_time_budget=40.0,
                          max_epochs=500.0, patience=1000, evals_per_epoch=2.0, isolation="none")
    run_race(TINY, storage, "tight", config, plan=RacePlan(portfolio=2, eta=2))
    study, _ = load_search(storage, "tight")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 1 and trials[0].user_attrs.get(TOP_PICK_ATTR) is True
