"""Protocol 2 of the knowledge base: bf16 only where the hardware has it, early stopping that
waits for a minimum number of epochs, the final whole-dev scoring with its standard error, the
protocol field in exported rows, and `kb status`."""

from __future__ import annotations

import json

import pytest

from recommender.errors import ConfigError
from recommender.training import precision as precision_mod
from recommender.types import Budget


@pytest.fixture(scope="module")
def sst2_tiny():
    from recommender.tasks import load_task

    return load_task("glue_sst2").subsample(64, 96, seed=0)


@pytest.mark.parametrize(("native", "requested", "expected"), [
    (True, "auto", "bf16"), (False, "auto", "fp32"), (True, "fp32", "fp32"), (False, "fp32", "fp32"),
    (True, "bf16", "bf16"),
])
def test_bf16_is_chosen_only_where_the_cpu_has_it(monkeypatch, native, requested, expected) -> None:
    monkeypatch.setattr(precision_mod, "cpu_supports_bf16", lambda: native)
    assert precision_mod.resolve_precision(requested, "cpu") == expected


def test_explicit_bf16_on_a_cpu_without_it_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setattr(precision_mod, "cpu_supports_bf16", lambda: False)
    with pytest.raises(ConfigError, match="no native bf16"):
        precision_mod.resolve_precision("bf16", "cpu")
    with pytest.raises(ConfigError, match="expected one of auto, fp32, bf16"):
        precision_mod.resolve_precision("fp8", "cpu")


def test_cpu_flag_detection_reads_proc_cpuinfo() -> None:
    from pathlib import Path

    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    expected = any(f in text.split() for f in ("avx512_bf16", "amx_bf16"))
    assert precision_mod.cpu_supports_bf16() == expected


@pytest.mark.parametrize("native", [True, False])
def test_the_run_records_the_precision_it_trained_and_served_in(monkeypatch, sst2_tiny, native) -> None:
    from recommender.training import LatencyConfig, train

    monkeypatch.setattr(precision_mod, "cpu_supports_bf16", lambda: native)
    result = train(sst2_tiny, "lora", budget=Budget(max_steps=2),
                   latency=LatencyConfig(batch_sizes=(1,), max_seconds=0.2, base_model=False))
    assert result.status == "complete", result.error
    assert result.precision == ("bf16" if native else "fp32")
    assert result.latency[0].precision == result.precision


def test_early_stopping_waits_for_the_minimum_epochs(sst2_tiny) -> None:
    from recommender.training import LatencyConfig, train

    # a learning rate of ~0 never improves: patience alone would stop after 3 evaluations
    budget = Budget(max_epochs=10, min_epochs=3, patience=2, evals_per_epoch=2)
    result = train(sst2_tiny, "head_only", params={"learning_rate": 1e-12}, budget=budget,
                   latency=LatencyConfig(enabled=False))
    assert result.stop_reason == "early_stopping"
    assert result.curve[-1].epoch >= 3.0 and result.epochs < 10
    assert len(result.curve) >= 6  # two evaluations an epoch for three epochs


def test_improvements_below_min_delta_do_not_reset_patience() -> None:
    budget = Budget(max_epochs=10, patience=2, min_delta=0.005)
    assert budget.stop_reason(elapsed=0, step=5, total_steps=100, evals_since_best=2, best=0.5,
                              epoch=1.0) == "early_stopping"
    assert Budget(max_epochs=10, patience=2, min_epochs=2).stop_reason(
        elapsed=0, step=5, total_steps=100, evals_since_best=5, best=0.5, epoch=1.0) is None
    with pytest.raises(ConfigError, match="min_epochs"):
        Budget(max_epochs=2, min_epochs=3)
    with pytest.raises(ConfigError, match="flat_min_epochs"):
        Budget(max_epochs=2, flat_min_epochs=3)
    with pytest.raises(ConfigError, match="finite"):
        Budget(max_seconds=float("inf"))


def test_the_best_checkpoint_is_scored_on_the_whole_dev_set_with_a_standard_error(sst2_tiny) -> None:
    from recommender.training import LatencyConfig, train
    from recommender.training.config import EvalConfig

    result = train(sst2_tiny, "head_only", budget=Budget(max_epochs=2, evals_per_epoch=2),
                   latency=LatencyConfig(enabled=False), evaluation=EvalConfig(monitor_size=32))
    assert result.monitor_n == 32 and result.n_dev == 96
    assert all(p.flops and p.flops > 0 for p in result.curve)
    assert [p.flops for p in result.curve] == sorted(p.flops for p in result.curve)
    # accuracy on 96 examples moves in steps of 1/96; on the 32-example monitor in steps of 1/32
    assert round(result.best_metric * 96, 6) == round(result.best_metric * 96)
    assert 0.0 < result.metric_se < 0.2
    dev_labels = list(sst2_tiny.dev["label"])
    train_labels = list(sst2_tiny.train["label"])
    majority = max(set(train_labels), key=train_labels.count)
    assert result.baseline_metric == pytest.approx(dev_labels.count(majority) / len(dev_labels))


def test_sweep_rows_carry_protocol_2_and_kb_status_counts_them(tmp_path, capsys) -> None:
    from recommender.cli import main
    from recommender.knowledge_base import export_knowledge_base, load_knowledge_base
    from recommender.sweep import SweepConfig, run_sweep

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    config = SweepConfig(tasks=("glue_sst2",), sizes=(40,), methods=("head_only",), lr_multipliers=(10.0,),
                         max_dev=48, monitor_size=24, max_epochs=1.0, trial_time_budget=120)
    assert run_sweep(config, url) == 2
    assert run_sweep(config, url) == 0  # resumable: nothing left to run
    out = tmp_path / "kb.jsonl"
    export_knowledge_base(url, out, merge_existing=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["protocol"] for r in rows} == {2}
    assert sorted(r["config_key"] for r in rows) == ["head_only#0", "head_only#lr10"]
    assert all(r["result"]["baseline_metric"] is not None for r in rows)
    # each row says which stopping floors it ran under (max_epochs 1: a quarter and a half of it)
    assert all(r["result"]["extra"]["stopping"] == {"min_epochs": 0.25, "flat_min_epochs": 0.5} for r in rows)
    lrs = sorted(r["result"]["params"]["learning_rate"] for r in rows)
    assert lrs[1] == pytest.approx(10 * lrs[0])
    assert {r.protocol for r in load_knowledge_base(out)} == {2}
    assert main(["kb", "status", "--file", str(out)]) == 0
    table = capsys.readouterr().out
    assert "glue_sst2" in table and " 40 " in table and "2 runs" in table
    assert "sets with no run above the constant predictor: " in table


def test_protocol1_rows_get_the_constant_predictors_score_recomputed_exactly() -> None:
    from recommender.baselines import backfill_baselines
    from recommender.knowledge_base import load_knowledge_base
    from recommender.tasks import load_task

    rows = load_knowledge_base()
    rows = [r for r in rows if r.protocol == 1 and r.task in ("glue_sst2", "glue_stsb") and r.size == 500][:2]
    if not rows:  # the shipped file holds protocol-2 rows only once the old ones moved out
        from recommender.paths import knowledge_base_dir

        rows = [r for r in load_knowledge_base(knowledge_base_dir() / "runs_protocol1.jsonl")
                if r.task in ("glue_sst2", "glue_stsb") and r.size == 500][:2]
    assert rows
    cleared = [r.__class__(**{**r.__dict__, "result": r.result.__class__.from_dict(
        {**r.result.to_dict(), "baseline_metric": None, "baseline_metrics": {}})}) for r in rows]
    filled = backfill_baselines(cleared)
    for row in filled:
        task = load_task(row.task).subsample(row.size, row.metafeatures.n_dev, seed=0)
        if task.task_type == "regression":
            assert row.result.baseline_metric == 0.0  # a constant has no correlation
        else:
            train, dev = list(task.train["label"]), list(task.dev["label"])
            majority = max(set(train), key=train.count)
            assert row.result.baseline_metric == pytest.approx(dev.count(majority) / len(dev))
        assert row.result.baseline.startswith(("always predicting", "answering", "predicting"))


def test_a_sweep_method_list_spans_task_types_and_shipped_rows_are_never_rerun() -> None:
    from recommender.knowledge_base import default_path, load_knowledge_base
    from recommender.sweep import SweepConfig, _already_in_knowledge_base, plan

    order = plan(SweepConfig(tasks=("glue_sst2", "wikiann_de"), sizes=(500,), methods=("multitask_ft", "lora")))
    assert (500, "glue_sst2", "multitask_ft", 0) in order and (500, "wikiann_de", "lora", 0) in order
    assert (500, "wikiann_de", "multitask_ft", 0) not in order  # NER: multi-task does not apply
    with pytest.raises(ConfigError, match="multitask_ft"):
        plan(SweepConfig(tasks=("wikiann_de",), methods=("multitask_ft",)))
    # every shipped protocol-2 run counts as done, whatever the machine's load when it ran
    shipped = [r for r in load_knowledge_base(default_path()) if r.protocol == 2]
    assert _already_in_knowledge_base(default_path()) == {(r.study, r.config_key) for r in shipped}


def test_a_run_still_at_its_first_score_is_not_stopped_before_the_flat_minimum(sst2_tiny) -> None:
    """Slow starters sit at the constant predictor for epochs before they rise (the issue's CoLA
    LoRA: 7 epochs): until an evaluation beats the first by ``min_delta``, early stopping waits
    for ``flat_min_epochs``; once it has, the usual ``min_epochs``."""
    from recommender.training import LatencyConfig, train

    budget = Budget(max_epochs=10, min_epochs=1, flat_min_epochs=4, patience=2, min_delta=0.005)
    flat = dict(elapsed=0, step=5, total_steps=100, evals_since_best=3, best=0.5, epoch=2.0)
    assert budget.stop_reason(**flat, risen=False) is None
    assert budget.stop_reason(**flat, risen=True) == "early_stopping"
    assert budget.stop_reason(**{**flat, "epoch": 4.0}, risen=False) == "early_stopping"
    # a learning rate of ~0 never rises above its first score: it trains to the flat minimum
    result = train(sst2_tiny, "head_only", params={"learning_rate": 1e-12},
                   budget=Budget(max_epochs=10, min_epochs=1, flat_min_epochs=3, patience=2, evals_per_epoch=2,
                                 min_delta=0.005),
                   latency=LatencyConfig(enabled=False))
    assert result.stop_reason == "early_stopping"
    assert 3.0 <= result.curve[-1].epoch < 4.0
