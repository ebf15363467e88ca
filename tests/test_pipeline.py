"""The product's path through ``recommender.pipeline``, stage by stage, on a tiny real task:
task -> meta-features -> recommendation -> search plan -> search -> meta-model -> bundle."""

from __future__ import annotations

import json

import pytest

from recommender import pipeline
from recommender.types import UserBudgets


def test_the_pipeline_takes_a_task_to_a_bundle(tmp_path):
    ref = pipeline.task_ref("glue_rte", max_train=32, max_dev=16)
    task = pipeline.open_task(ref)
    assert (len(task.train), len(task.dev)) == (32, 16)

    features = pipeline.profile(task)
    assert features.task_type == "classification" and features.n_train == 32

    budgets = UserBudgets(time_budget_s=20)
    rec = pipeline.recommend(task, budgets, top=3, metafeatures=features, explain=False)
    assert rec.candidates and rec.candidates[0].rank == 1

    config = pipeline.plan_search(budgets, rec, n_methods=2, n_trials=2, max_epochs=1.0, isolation="none")
    ranked = list(dict.fromkeys(c.method for c in rec.candidates))
    assert list(config.methods or ()) == ranked[:2] and config.warm_start
    assert config.trial_time_budget == 20 and config.sampler == "tpe"  # one trial trains for the time budget

    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    result = pipeline.search(ref, config, storage=storage, study="rte")
    assert result.best and result.best[0].method in ranked[:2]

    assert pipeline.learn(storage).n_runs > 0  # the meta-model reads the knowledge base (and the store)

    bundle = pipeline.export_trial(storage, "rte", tmp_path / "bundle")
    written = json.loads((bundle / "config.json").read_text())
    assert written["method"] == result.best[0].method and written["source"]["trial"] == result.best[0].number
    assert (bundle / "train.py").is_file()


def test_a_search_strategy_is_one_of_the_known_ones(tmp_path):
    from recommender.errors import ConfigError

    with pytest.raises(ConfigError, match="strategy"):
        pipeline.search(pipeline.task_ref("glue_rte"), pipeline.plan_search(UserBudgets(), n_trials=1),
                        storage=f"sqlite:///{tmp_path / 'x.db'}", study="x", strategy="grid")
    assert not (tmp_path / "x.db").exists()  # refused before anything was created
