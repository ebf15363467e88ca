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


class _Clock:
    """A fake ``time`` for the race: trials "train" by advancing it."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now


@pytest.mark.parametrize(("top_pick_s", "raced"), [
    (400.0, [["lora", "seq_bn", "head_only"], ["seq_bn", "lora"], ["lora"]]),  # all three raced, halved twice
    (940.0, [["lora", "seq_bn"], ["seq_bn"]]),  # 58 s left: three would get < 14 s each, two fit
    (990.0, []),  # 8 s left: nothing is raced
])
def test_race_trains_the_top_pick_alone_then_halves_the_rest_in_the_time_it_left(tmp_path, monkeypatch,
                                                                                top_pick_s, raced):
    """``run_race``'s order without training: the top pick alone in rung 0 with the whole budget,
    then the challengers by successive halving (best first by each rung's own metrics) in what
    it left, as many as get at least the shortest useful trial each; never past the budget."""
    import optuna

    from recommender.search import race
    from recommender.search.objective import END_MARGIN_S

    clock = _Clock()
    monkeypatch.setattr(race, "time", clock)
    methods = ("full_ft", "lora", "seq_bn", "head_only")
    portfolio = [race.RaceEntry({"method": m}, top_pick=m == "full_ft") for m in methods]
    monkeypatch.setattr(race, "race_portfolio", lambda *args, **kwargs: portfolio)
    metric = {(1, "lora"): 0.6, (1, "seq_bn"): 0.8, (1, "head_only"): 0.5, (2, "lora"): 0.85, (2, "seq_bn"): 0.82}
    rungs: list[tuple[int, list[str], float, int]] = []

    def rung(self, number, entries, each, keep):
        names = [e.params["method"] for e in entries]
        rungs.append((number, names, each, keep))
        clock.now += top_pick_s if number == 0 else each * len(entries)
        for entry, name in zip(entries, names, strict=True):
            value = metric.get((number, name), 0.7)
            self.study.add_trial(optuna.trial.create_trial(
                params={"method": name}, distributions={"method": optuna.distributions.CategoricalDistribution(methods)},
                value=value, user_attrs={race.RUNG_ATTR: number, race.TOP_PICK_ATTR: entry.top_pick, "metric": value}))
        return clock.now < self.deadline - END_MARGIN_S

    monkeypatch.setattr(race._RungRunner, "rung", rung)
    budget = 1000.0
    start = clock.now
    config = SearchConfig(methods=methods, time_budget=budget, isolation="none")
    race.run_race(TINY, f"sqlite:///{tmp_path / 'race.db'}", "race", config,
                  plan=RacePlan(portfolio=4, eta=2, final_fraction=0.5))

    assert rungs[0][:2] == (0, ["full_ft"]) and rungs[0][2] == pytest.approx(budget - END_MARGIN_S)
    assert [names for _, names, _, _ in rungs[1:]] == raced
    assert [number for number, *_ in rungs] == list(range(len(raced) + 1))
    if raced:
        left = budget - top_pick_s - END_MARGIN_S
        assert all(each >= 14.0 for _, _, each, _ in rungs[1:])  # startup + half a minimum trial + margins
        assert [keep for *_, keep in rungs[1:]] == [max(1, -(-len(n) // 2)) for n in raced[:-1]] + [0]
        assert rungs[-1][2] >= 0.5 * left - 1e-6  # the survivor gets the final fraction, and what is left
    assert clock.now - start <= budget - END_MARGIN_S + 1e-6
