"""The records a search hands to other processes, and the one way each budget is built."""

from __future__ import annotations

import json

import pytest

from recommender.errors import ConfigError, StorageError
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.job import KILL_GRACE_S, SearchJob, TrialJob
from recommender.types import Budget, UserBudgets


def _job(**config) -> TrialJob:
    config = SearchConfig(n_trials=1, max_epochs=2.0, patience=4, evals_per_epoch=3.0, latency_batch=8,
                          seed=5, precision="fp32", **config)
    return TrialJob.for_trial(TaskRef("glue_rte", max_train=64), config, "lora", {"r": 8}, 40.0)


def test_a_trial_job_carries_one_budget_built_from_the_search_config_and_round_trips():
    job = _job()
    assert job.budget == Budget(max_seconds=40.0, max_epochs=2.0, patience=4, evals_per_epoch=3.0)
    assert (job.seed, job.precision, job.latency["batch_sizes"]) == (5, "fp32", [1, 8])
    assert TrialJob.from_json(job.to_json()) == job
    assert job.kill_after_s == 40.0 * 2 + KILL_GRACE_S


def test_a_trial_job_that_does_not_fit_is_one_config_error_naming_the_field():
    data = _job().to_dict()
    with pytest.raises(ConfigError, match="unknown fields \\['deadline'\\]"):
        TrialJob.from_dict({**data, "deadline": 1.0})
    with pytest.raises(ConfigError, match="missing fields \\['budget'\\]"):
        TrialJob.from_dict({k: v for k, v in data.items() if k != "budget"})
    with pytest.raises(ConfigError, match="max_seconds"):
        TrialJob.from_dict({**data, "budget": {"max_seconds": -1}})
    with pytest.raises(ConfigError, match="not JSON"):
        TrialJob.from_json("{")


def test_the_trial_process_start_up_comes_out_of_the_budget_granted_once():
    job = _job()
    assert job.budget_left(now=job.issued_at + 6.0).max_seconds == pytest.approx(34.0)
    assert job.budget_left(now=job.issued_at + 100.0).max_seconds == 1.0  # always a moment to start
    assert job.budget_left(now=job.issued_at + 6.0).patience == job.budget.patience
    untimed = TrialJob(TaskRef("glue_rte"), "lora", {}, Budget(max_steps=2))
    assert untimed.budget_left() == untimed.budget and untimed.kill_after_s > KILL_GRACE_S


def test_the_sampler_policy_is_one_rule_for_the_cli_and_the_app():
    assert SearchConfig(n_trials=1).sampler == "tpe"
    assert SearchConfig(n_trials=1, objective="pareto").sampler == "nsga2"
    assert SearchConfig(n_trials=1, objective="pareto", sampler="random").sampler == "random"
    from recommender.cli import build_parser

    args = build_parser().parse_args(["search", "glue_rte", "--study", "s", "--objective", "pareto"])
    assert args.sampler == "auto"


def test_a_search_config_from_user_budgets_maps_each_budget_once():
    budgets = UserBudgets(time_budget_s=300, latency_budget_ms=20.0, latency_batch=8, max_trainable_params=10_000,
                          hardware="cpu")
    config = SearchConfig.from_budgets(budgets, time_budget=3600.0, objective="pareto")
    assert (config.trial_time_budget, config.latency_budget_ms, config.latency_batch, config.max_trainable_params,
            config.device, config.time_budget, config.sampler) == (300, 20.0, 8, 10_000, "cpu", 3600.0, "nsga2")
    assert SearchConfig.from_budgets(UserBudgets(), n_trials=2).trial_time_budget == 180.0
    with pytest.raises(ConfigError, match="latency_batch"):
        SearchConfig.from_budgets(budgets, n_trials=1, latency_batch=4)


def test_the_sweep_builds_its_run_budget_with_the_same_helper():
    from recommender.sweep import SweepConfig

    sweep = SweepConfig(tasks=("glue_sst2",), trial_time_budget=600.0, patience=4, min_delta=0.005)
    assert sweep.budget(500) == Budget(max_seconds=600.0, max_epochs=20.0, min_epochs=5.0, flat_min_epochs=10.0,
                                       patience=4, min_delta=0.005, evals_per_epoch=2.0)
    assert sweep.budget(2000).flat_min_epochs == 4.0
    assert SweepConfig(tasks=("glue_sst2",), max_epochs=2.0, min_epochs=9.0).budget(500).min_epochs == 2.0


def test_a_search_job_round_trips_through_its_file_and_refuses_what_does_not_fit(tmp_path):
    job = SearchJob(TaskRef("glue_rte", {"max_length": 64}, max_train=32, seed=2),
                    SearchConfig(methods=("lora",), time_budget=120.0, objective="pareto"))
    path = job.write(tmp_path / "s.job")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert SearchJob.read(path) == job
    path.write_text(json.dumps({"task": job.task.to_dict()}))
    with pytest.raises(ConfigError, match="'task', 'config'"):
        SearchJob.read(path)
    path.write_text(json.dumps({**job.to_dict(), "config": {**job.config.to_dict(), "sampler": "anneal"}}))
    with pytest.raises(StorageError, match="sampler"):
        SearchJob.read(path)
    race = SearchJob(job.task, SearchConfig(methods=("lora",), time_budget=120.0), "race")
    assert SearchJob.read(race.write(tmp_path / "r.job")) == race
    with pytest.raises(ConfigError, match="quality objective"):  # a race ranks by the dev metric
        SearchJob(job.task, job.config, "race")
    path.write_text(json.dumps({"task": job.task.to_dict(), "config": job.config.to_dict()}))
    assert SearchJob.read(path).strategy == "optuna"  # a job written before strategies were recorded
    path.write_text(json.dumps({**job.to_dict(), "strategy": "grid; rm -rf ~"}))
    with pytest.raises(ConfigError, match="strategy"):
        SearchJob.read(path)


def test_a_config_stored_by_the_previous_version_keeps_its_sampler():
    # the previous CLI stored sampler "tpe" for a Pareto search; "auto" must not re-resolve it
    stored = {**SearchConfig(n_trials=1, objective="pareto").to_dict(), "sampler": "tpe"}
    assert SearchConfig.from_dict(stored).sampler == "tpe"
    schema_1 = {k: v for k, v in stored.items()
                if k not in ("schema", "heartbeat_interval", "grace_period", "max_consecutive_failures")}
    assert SearchConfig.from_dict(schema_1).sampler == "tpe"
