"""Cross-lingual tasks evaluated in their English source's run instead of trained again."""

from __future__ import annotations

import json

import pytest

from recommender.errors import ConfigError
from recommender.tasks import load_task
from recommender.training import train, train_with_transfer
from recommender.training.config import EvalConfig
from recommender.training.transfer import check_target, transfer_targets
from recommender.types import Budget


def test_the_cross_lingual_tasks_are_found_by_their_training_file() -> None:
    assert transfer_targets("glue_sst2") == ["xling_sst2_en_pt"]
    assert transfer_targets("glue_stsb") == ["xling_stsb_en_pt"]
    assert transfer_targets("glue_sst2", ["glue_rte", "plue_sst2_pt"]) == []
    assert transfer_targets("plue_sst2_pt") == []  # the Portuguese task trains on its own data


def test_a_target_must_train_on_the_same_rows_with_the_same_labels() -> None:
    source = load_task("glue_sst2").subsample(40, 20, seed=0)
    check_target(source, load_task("xling_sst2_en_pt").subsample(40, 20, seed=0))
    with pytest.raises(ConfigError, match="does not train on the rows"):
        check_target(source, load_task("xling_sst2_en_pt").subsample(40, 20, seed=1))
    with pytest.raises(ConfigError, match="does not match"):
        check_target(source, load_task("glue_rte").subsample(40, 20, seed=0))
    with pytest.raises(ConfigError, match="is the task being trained"):
        check_target(source, source)


def test_one_run_scores_the_target_on_its_own_dev_set_with_its_own_best_checkpoint() -> None:
    source = load_task("glue_sst2").subsample(48, 40, seed=0)
    target = load_task("xling_sst2_en_pt").subsample(48, 40, seed=0)
    evaluation = EvalConfig(monitor_size=24)
    budget = Budget(max_epochs=2, evals_per_epoch=2)
    run = train_with_transfer(source, [target], "lora", budget=budget, evaluation=evaluation, seed=3)
    alone = train(source, "lora", budget=budget, evaluation=evaluation, seed=3)
    src, (tgt,) = run.source, run.targets
    assert src.status == tgt.status == "complete"
    # the source's record is what training alone gives (same seed, same stops)
    assert [p.metric for p in src.curve] == pytest.approx([p.metric for p in alone.curve])
    assert src.best_metric == pytest.approx(alone.best_metric)
    assert "transfer" not in src.extra
    # the target: its own task and metric, one curve point per source evaluation, scored on
    # its whole (Portuguese) dev set with a standard error, the same training cost and model
    assert tgt.task == "xling_sst2_en_pt" and tgt.extra["transfer"] == {"source": "glue_sst2",
                                                                       "stopped_by": "glue_sst2"}
    assert [(p.step, p.tokens) for p in tgt.curve] == [(p.step, p.tokens) for p in src.curve]
    assert tgt.monitor_n == 24 and tgt.n_dev == 40
    assert tgt.metric_se is not None and tgt.metric_se > 0
    assert tgt.baseline_metric is not None
    assert (tgt.train_flops, tgt.trainable_params, tgt.steps) == (src.train_flops, src.trainable_params, src.steps)
    assert tgt.latency == src.latency
    assert tgt.time_to_best_s == next(p.train_seconds for p in tgt.curve if p.metric == max(q.metric for q in tgt.curve))


def test_a_sweep_records_the_cross_lingual_rows_from_the_english_runs(tmp_path) -> None:
    from recommender.knowledge_base import export_knowledge_base
    from recommender.sweep import SweepConfig, run_sweep

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    config = SweepConfig(tasks=("glue_sst2", "xling_sst2_en_pt"), sizes=(40,), methods=("head_only",),
                         max_dev=32, monitor_size=16, max_epochs=1.0, trial_time_budget=120)
    seen: list[str] = []
    assert run_sweep(config, url, on_run=lambda i, n, label, r: seen.append(label)) == 2
    assert seen == ["glue_sst2 n=40 head_only#0", "xling_sst2_en_pt n=40 head_only#0"]  # one training run
    assert run_sweep(config, url) == 0
    out = tmp_path / "kb.jsonl"
    export_knowledge_base(url, out, merge_existing=False)
    rows = {r["study"]: r for r in map(json.loads, out.read_text().splitlines())}
    xling = rows["sweep-p2:xling_sst2_en_pt:n40"]
    assert xling["result"]["extra"]["transfer"]["source"] == "glue_sst2"
    assert xling["result"]["extra"]["stopping"] == {"min_epochs": 0.25, "flat_min_epochs": 0.5}
    assert xling["metafeatures"]["cross_lingual"] is True
    assert "transfer" not in rows["sweep-p2:glue_sst2:n40"]["result"]["extra"]


def test_a_run_that_fails_before_training_fails_its_targets_too(tmp_path) -> None:
    import shutil

    from recommender.models import resolve_model_path

    model = tmp_path / "model"
    shutil.copytree(resolve_model_path(None), model)
    (model / "model.safetensors").write_bytes(b"not a checkpoint")
    source = load_task("glue_sst2").subsample(16, 8, seed=0)
    target = load_task("xling_sst2_en_pt").subsample(16, 8, seed=0)
    run = train_with_transfer(source, [target], "lora", model=model)
    (tgt,) = run.targets
    assert run.source.status == tgt.status == "failed"
    assert tgt.task == "xling_sst2_en_pt" and tgt.best_metric is None and tgt.baseline_metric is None
    assert tgt.extra["transfer"]["source"] == "glue_sst2"
