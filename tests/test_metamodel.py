"""The meta-model on the shipped knowledge base: estimator contract, fitting, evaluation,
recommendations that respond to budgets, and bad knowledge-base files."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from recommender.errors import ConfigError, DataError
from recommender.knowledge_base import default_path, load_knowledge_base
from recommender.metamodel.estimators import MetaModel, QuantileGradientBoosting
from recommender.tasks.metrics import metric_range
from recommender.types import UserBudgets


@parametrize_with_checks([QuantileGradientBoosting(max_iter=15)])
def test_quantile_regressor_passes_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_max_samples_caps_the_rows_each_quantile_sees():
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    y = X[:, 0] * 2 + rng.normal(scale=0.1, size=400)
    capped = QuantileGradientBoosting(max_iter=20, max_samples=100).fit(X, y)
    full = QuantileGradientBoosting(max_iter=20, max_samples=None).fit(X, y)
    assert all(e.n_features_in_ == 3 for e in capped.estimators_)  # fitted
    assert np.corrcoef(capped.predict(X), y)[0, 1] > 0.9  # a subset still learns the signal
    assert not np.allclose(capped.predict(X), full.predict(X))  # and it really is a subset
    again = QuantileGradientBoosting(max_iter=20, max_samples=100).fit(X, y)
    assert np.array_equal(again.predict(X), capped.predict(X))  # seeded
    with pytest.raises(ValueError, match="max_samples"):
        QuantileGradientBoosting(max_samples=0).fit(X, y)


def test_quantiles_fitted_on_threads_equal_the_sequential_fit():
    import numpy as np

    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = X[:, 0] - X[:, 1] + rng.normal(scale=0.2, size=300)
    one = QuantileGradientBoosting(max_iter=25, max_samples=200, n_jobs=1).fit(X, y)
    two = QuantileGradientBoosting(max_iter=25, max_samples=200, n_jobs=2).fit(X, y)
    assert one._workers(300, 3) == 1 and two._workers(300, 3) == 2
    assert np.array_equal(one.predict_quantiles(X), two.predict_quantiles(X))


@pytest.fixture(scope="module")
def kb_rows():
    return load_knowledge_base()


@pytest.fixture(scope="module")
def kb_sample(kb_rows):
    """Six tasks of four types: enough groups to hold one out, a fraction of the time (the
    evaluations over the whole knowledge base are `benchmarks/metamodel.py`'s)."""
    tasks = {"ag_news", "wnut17", "financial_phrasebank", "jglue_jsts", "scicite", "glue_mrpc"}
    return [r for r in kb_rows if r.task in tasks]


@pytest.fixture(scope="module")
def fitted(kb_rows):
    return MetaModel(max_iter=60).fit(kb_rows)


@pytest.fixture(scope="module")
def predictor(kb_rows):
    from recommender.metamodel.predictor import fit_predictor

    return fit_predictor(kb_rows)


@pytest.fixture(scope="module")
def rte():
    from recommender.tasks import load_task

    return load_task("glue_rte")


def test_shipped_knowledge_base_covers_tasks_methods_and_languages(kb_rows):
    from recommender.methods import method_names

    tasks = {r.task for r in kb_rows}
    methods = {r.result.method for r in kb_rows}
    languages = {r.metafeatures.language for r in kb_rows}
    # the floor: >= 300 runs with a metric on >= 20 tasks, non-English ones included,
    # at more than one training-set size (see data/knowledge_base/README.md)
    scored = [r for r in kb_rows if r.result.has_metric and r.result.status in ("complete", "budget_exhausted")]
    assert len(scored) >= 300 and len(tasks) >= 20 and len(languages - {"en"}) >= 3
    assert len({r.size for r in kb_rows}) >= 2
    assert methods == set(method_names()), "every registered method has measured runs"
    by_method = {m: {r.task for r in kb_rows if r.result.method == m} for m in methods}
    assert all(len(t) >= 20 for t in by_method.values()), "every method on >= 20 tasks"
    assert len({r.run_id for r in kb_rows}) == len(kb_rows)
    for row in kb_rows:
        assert row.result.environment is not None and row.result.environment.calibration["matmul_gflops"] > 0
        assert row.metafeatures.fingerprint


def test_meta_model_fits_and_predicts_intervals(fitted, kb_rows):
    assert set(fitted.models_) >= {"metric", "gap", "log_cost", "latency_ratio_b1"}
    rows = fitted.rows_[:4]
    preds = fitted.predict(rows)
    for name, q in preds.items():
        assert q.shape == (4, 3)
        assert (q[:, 0] <= q[:, 1]).all() and (q[:, 1] <= q[:, 2]).all(), name


def test_method_prior_is_each_methods_shrunk_mean_gap_and_is_added_back(fitted, kb_rows):
    import numpy as np

    gaps = fitted.targets_["gap"] + fitted._prior(fitted.rows_)  # the residuals plus the prior: raw gaps
    overall = gaps.mean()
    for method in ("full_ft", "lora"):
        mine = gaps[[r["method"] == method for r in fitted.rows_]]
        k = fitted.prior_strength
        assert fitted.gap_prior_[method] == pytest.approx((mine.sum() + k * overall) / (len(mine) + k))
    assert fitted.gap_prior_[""] == pytest.approx(overall)  # for a method the runs never saw
    rows = fitted.rows_[:6]
    residual = fitted.models_["gap"].predict_quantiles(fitted.matrix(rows))
    assert np.allclose(fitted.predict(rows)["gap"], residual + fitted._prior(rows)[:, None])
    plain = MetaModel(max_iter=60, method_prior=False).fit(kb_rows)
    assert plain.gap_prior_ == {} and np.allclose(plain.targets_["gap"], gaps)
    with pytest.raises(ConfigError, match="prior_strength"):
        MetaModel(prior_strength=-1).fit(kb_rows)


def test_time_to_convergence_is_learned_only_from_runs_that_learned(fitted, kb_rows):
    """A run stuck at its first evaluation's score (e.g. the majority class) never converged:
    its time to best is just when it was first evaluated, so it is no time target."""
    import dataclasses
    import math

    import numpy as np

    from recommender.metamodel.features import learned, run_targets

    flat = next(r.result for r in kb_rows if len(r.result.curve) >= 3 and not learned(r.result))
    rising = next(r.result for r in kb_rows if learned(r.result) and r.result.time_to_best_s)
    assert math.isnan(run_targets(flat)["log_cost"]) and math.isfinite(run_targets(rising)["log_cost"])
    assert math.isfinite(run_targets(flat)["latency_ratio_b1"])  # the other targets still count
    first = flat.curve[0]
    improved = dataclasses.replace(flat, curve=[first, dataclasses.replace(first, metric=first.metric + 0.05)])
    assert learned(improved)
    is_learned = np.array([learned(r["result"]) for r in fitted.rows_])
    assert np.isfinite(fitted.targets_["log_cost"]).sum() <= is_learned.sum() < len(is_learned)


def test_time_to_converge_scales_with_the_training_set_beyond_the_knowledge_base(fitted):
    """The cost is learned as log cost - b log n_train: ten times the data of any past run
    predicts 10**b times the time to converge (trees alone would predict the largest size measured)."""
    import dataclasses
    import math

    import numpy as np

    from recommender.metamodel.estimators import SIZE_SCALED_TARGETS, _log_n_train
    from recommender.metamodel.features import run_targets

    assert "log_cost" in SIZE_SCALED_TARGETS and 0.0 <= fitted.size_exponent_ <= 1.5
    b = fitted.size_exponent_
    idx = int(np.flatnonzero(np.isfinite(fitted.targets_["log_cost"]))[0])
    row = fitted.rows_[idx]
    scaled = run_targets(row["result"])["log_cost"] - b * math.log(row["metafeatures"].n_train)
    assert fitted.targets_["log_cost"][idx] == pytest.approx(scaled)
    largest = max(r["metafeatures"].n_train for r in fitted.rows_)
    rows = [{**row, "metafeatures": dataclasses.replace(row["metafeatures"], n_train=n)}
            for n in (largest * 10, largest * 100)]
    cost = fitted.predict(rows)["log_cost"]
    assert cost[1] - cost[0] == pytest.approx(np.full(3, b * math.log(10)))
    learned_part = fitted.models_["log_cost"].predict_quantiles(fitted.matrix(rows))
    assert np.allclose(cost - b * _log_n_train(rows)[:, None], learned_part)


def test_size_exponent_is_the_median_slope_over_configurations_measured_at_several_sizes():
    import math
    from types import SimpleNamespace

    import numpy as np

    from recommender.metamodel.estimators import DEFAULT_SIZE_EXPONENT, size_exponent

    def row(task, method, lr, n):
        return {"task": task, "method": method, "params": {"learning_rate": lr},
                "metafeatures": SimpleNamespace(n_train=n)}

    rows = [row("a", "lora", 1e-3, 500), row("a", "lora", 1e-3, 2000),  # slope 0.5
            row("b", "full_ft", 1e-4, 500), row("b", "full_ft", 1e-4, 2000),  # slope 1
            row("c", "ia3", 1e-2, 500), row("c", "ia3", 1e-2, 2000), row("c", "ia3", 1e-2, 8000),  # slope 0.25
            row("a", "lora", 3e-3, 500)]  # one size only: no slope
    cost = np.array([0.0, 0.5 * math.log(4), 1.0, 1.0 + math.log(4), 2.0, 2.0 + 0.25 * math.log(4),
                     2.0 + 0.25 * math.log(16), 5.0])
    assert size_exponent(rows, cost) == pytest.approx(0.5)
    cost[1] = np.nan  # a run that never learned has no cost: its configuration drops out
    assert size_exponent(rows, cost) == pytest.approx((1.0 + 0.25) / 2)
    assert size_exponent(rows[:2] + rows[-1:], np.array([1.0, 9.0, 2.0])) == pytest.approx(1.5)  # clipped
    assert size_exponent(rows[-1:], np.array([1.0])) == DEFAULT_SIZE_EXPONENT
    # a grid's 3 x 5e-5 (stored as 0.00015000000000000001) and the default 0.00015 are one configuration
    grid = [row("d", "full_ft", 3 * 5e-5, 500), row("d", "full_ft", 0.00015, 2000)]
    assert size_exponent(grid, np.array([0.0, 0.75 * math.log(4)])) == pytest.approx(0.75)


def test_a_configuration_is_one_candidate_however_its_floats_were_stored(fitted):
    """The learning-rate grid stored 3 x 5e-5 as 0.00015000000000000001, the tuned default is
    0.00015: one configuration, one candidate (its parameter counts and sizes pooled)."""
    from recommender.metamodel.features import params_key
    from recommender.metamodel.recommend import candidate_configs

    assert params_key({"learning_rate": 3 * 5e-5, "r": 8}) == params_key({"r": 8, "learning_rate": 0.00015})
    assert params_key({"learning_rate": 1.5e-4}) != params_key({"learning_rate": 1.6e-4})
    keys = [c["method"] + params_key(c["params"]) for c in candidate_configs(fitted, "classification")]
    assert keys and len(keys) == len(set(keys))


def test_meta_model_learns_from_the_users_storage_and_refits_when_it_grows(kb_rows, tmp_path,
                                                                           copy_runs_into_storage):
    from recommender.metamodel.recommend import load_metamodel

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    shipped = load_metamodel().n_runs_
    assert load_metamodel(url).n_runs_ == shipped and not (tmp_path / "runs.db").exists()  # skipped, not created
    usable = [r for r in kb_rows if r.result.has_metric and r.result.status in ("complete", "budget_exhausted")]
    copy_runs_into_storage(usable[:3], url, "search:mine")
    assert load_metamodel(url).n_runs_ == shipped + 3
    copy_runs_into_storage(usable[3:5], url, "search:mine")
    assert load_metamodel(url).n_runs_ == shipped + 5  # a grown storage is refitted, not served stale
    assert load_metamodel().n_runs_ == shipped  # and the knowledge base alone is unchanged


def test_leave_one_task_out_evaluation_runs(kb_sample):
    from recommender.metamodel.evaluate import evaluate

    summary = evaluate(kb_sample, max_iter=30)
    assert summary["n_runs"] == len(kb_sample)
    if summary["n_groups"] >= 3:  # holding one group out must leave two tasks to learn from
        assert "metamodel" in summary and summary["metamodel"]["top1_regret"] >= 0
        assert {"random", "always_full_ft"} & set(summary)


def test_trials_to_target_counts_the_enqueued_warm_start_first():
    from recommender.metamodel.replay import trials_to_target

    values = {f"m{i}": 0.5 + i / 100 for i in range(8)} | {"best": 0.9}
    assert trials_to_target(values, 0.89, enqueue=["best"]) == 1
    assert trials_to_target(values, 0.89, enqueue=["m1", "best"]) == 2
    cold = [trials_to_target(values, 0.89, seed=s) for s in range(5)]
    assert all(1 <= n <= 3 * len(values) + 1 for n in cold) and max(cold) > 1
    assert trials_to_target({"a": 0.1, "b": 0.2}, 0.5) == 7  # never reached: the cap + 1 (censored)


def test_warm_start_replay_runs_leave_one_task_out(kb_sample):
    from recommender.metamodel.replay import warm_start_replay

    summary = warm_start_replay(kb_sample, k=3, n_seeds=2, max_iter=30)
    assert summary["n_sets"] == len(summary["sets"])
    for s in summary["sets"]:
        assert s["n_configs"] >= 4 and s["cold_trials"] >= 1 and s["warm_trials"] >= 1
    if summary["n_sets"]:
        assert summary["ratio_of_means"] > 0
    with pytest.raises(ConfigError, match="k "):
        warm_start_replay(kb_sample, k=-1)


def test_recommendation_ranks_feasible_first_and_respects_a_tight_latency_budget(predictor, rte):
    from recommender.metamodel.recommend import recommend
    from recommender.types import MIN_P_MEETS

    loose = recommend(rte, UserBudgets(), model=predictor, top=20)
    # a budget is met with 90 % probability, about where the interval ends: most upper ends fit
    upper = sorted(c.latency_interval[1] for c in loose.candidates if c.latency_interval)
    budget = upper[3 * len(upper) // 4] * 1.1
    tight = recommend(rte, UserBudgets(latency_budget_ms=budget), model=predictor, top=20)
    feasible = [c for c in tight.candidates if c.feasible]
    assert feasible, "some candidate fits a median latency budget"
    first = tight.candidates[0]
    assert first.feasible and first.p_meets["latency"] >= MIN_P_MEETS
    assert all(c.missed_budgets() == {"latency": c.p_meets["latency"]} for c in tight.candidates if not c.feasible)
    ranks = [c.feasible for c in tight.candidates]
    assert ranks == sorted(ranks, reverse=True)  # every feasible candidate before any infeasible one


def test_many_tasks_with_little_storage_never_ranks_full_models_first(predictor, rte):
    from recommender.metamodel.recommend import recommend

    rec = recommend(rte, UserBudgets(n_tasks=20, storage_budget_mb=500), model=predictor, top=10)
    assert rec.candidates[0].method not in ("full_ft", "tapt_ft")
    full = [c for c in rec.candidates if c.method == "full_ft"]
    assert all(c.storage_mb > 500 and not c.feasible for c in full)


def test_impossible_budgets_get_an_answer_that_names_the_binding_budget(predictor, rte):
    from recommender.metamodel.recommend import recommend

    rec = recommend(rte, UserBudgets(max_trainable_params=1, latency_budget_ms=0.001), model=predictor)
    assert not rec.feasible_found and rec.candidates
    assert rec.binding_budget is not None and rec.relax_advice
    # no robust default meets them, so none was beaten: the predicted metric put rank 1 first
    assert not any(c.robust_default for c in rec.candidates)
    assert rec.candidates[0].ranked_by == f"predicted {rec.metric_name}"


def test_corrupt_empty_and_newer_knowledge_bases_are_reported(tmp_path):
    good = default_path().read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "runs.jsonl"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_knowledge_base(path)
    path.write_text(good + "\n{not json\n")
    with pytest.raises(DataError, match="line 2"):
        load_knowledge_base(path)
    newer = json.loads(good)
    newer["schema_version"] = 99
    path.write_text(json.dumps(newer) + "\n")
    with pytest.raises(DataError, match="schema_version 99"):
        load_knowledge_base(path)
    path.write_text(json.dumps({"schema_version": 1, "run_id": "x"}) + "\n")
    with pytest.raises(DataError, match="line 1 is not a valid run record"):
        load_knowledge_base(path)


def test_recommend_then_export_bundle_then_train_py_round_trip(predictor, tmp_path):
    import subprocess
    import sys

    from recommender.export import export_recommendation
    from recommender.metamodel.recommend import recommend
    from recommender.tasks import load_task

    task = load_task("glue_sst2")
    rec = recommend(task, UserBudgets(max_trainable_params=200_000), model=predictor)
    top = rec.candidates[0]
    assert top.trainable_params <= 200_000
    bundle = export_recommendation(top, "glue_sst2", rec.metafeatures, tmp_path / "bundle")
    config = json.loads((bundle / "config.json").read_text())
    assert config["kind"] == "predicted" and config["method"] == top.method
    out = subprocess.run([sys.executable, str(bundle / "train.py"), "--max-train", "32", "--max-dev", "16",
                          "--out", str(tmp_path / "weights")], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "weights").exists()


def test_recommend_cli_prints_a_ranked_table_and_json():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "recommender.cli", "recommend", "glue_rte", "--json",
                          "--latency-budget-ms", "200"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["candidates"] and data["candidates"][0]["rank"] == 1
    assert "latency" in data["candidates"][0]["p_meets"]


def test_the_printed_table_names_its_columns_in_words_and_says_which_budgets_are_met(predictor, rte):
    from recommender.cli.meta import format_recommendation
    from recommender.metamodel.recommend import recommend
    from recommender.types import UserBudgets

    rec = recommend(rte, UserBudgets(latency_budget_ms=1e-3, n_tasks=3), model=predictor, top=3, explain=False)
    header = next(line for line in format_recommendation(rec).splitlines() if line.startswith("rank"))
    for column in (rec.metric_name, "to converge (s)", "latency b1 (ms)", "storage, 3 tasks (MB)", "meets budgets",
                   "ranked by"):
        assert column in header
    assert "p_meets" not in header and "time_s" not in header
    # a microsecond of latency is out of reach: every row says so, with the probability
    assert all(c.budget_verdict().startswith("no: latency (P ") for c in rec.candidates)
    free = recommend(rte, UserBudgets(), model=predictor, top=1, explain=False).candidates[0]
    assert free.budget_verdict() == "no budget set"
    # a time budget alone is always met (training stops there), not "no budget set"
    assert free.budget_verdict(time_budget_s=600.0) == "yes: stops at the time budget"
    timed = recommend(rte, UserBudgets(time_budget_s=600.0), model=predictor, top=1, explain=False)
    printed = format_recommendation(timed)  # what the CLI prints
    assert "yes: stops at the time budget" in printed
    # hyperparameters read as 3 significant digits (e.g. 'learning_rate': 0.000423), not 17
    lr = timed.candidates[0].params["learning_rate"]
    assert f"'learning_rate': {float(f'{lr:.3g}')}" in printed
    assert float(f"{lr:.3g}") == lr or f"'learning_rate': {lr}," not in printed
    met = dataclasses.replace(free, p_meets={"latency": 0.93, "params": 1.0})
    assert met.budget_verdict() == "yes (P 0.93)"


# --- quality at a budget, rank = shown metric, intervals, cache (issue 13) -----------------------
def test_nearest_tasks_say_what_won_at_the_users_share_of_full_ft_time(predictor, kb_rows, rte):
    from recommender.metamodel.quality import select_protocol
    from recommender.metamodel.recommend import cached_metafeatures, nearest_tasks, scenario_winner
    from recommender.metamodel.replay_eval import task_sets

    # the winner under a time scenario is the replay evaluation's best outcome on that set
    sets = task_sets(select_protocol(kb_rows, 2)[0])
    assert sets
    for s in sets:
        results = [r.result for r in s.runs]
        for scenario in ("time_25", "time_50"):
            won = scenario_winner(results, scenario)
            assert won["best_metric"] == pytest.approx(float(s.outcomes(scenario).max()), abs=1e-9)
            assert won["when"].startswith(f"at {scenario[5:]} % of full FT's time")
        at_end = scenario_winner(results, None)
        assert at_end["best_metric"] == max(r.best_metric for r in results) and at_end["when"] == "at convergence"
    # a set where runs learned names its winner; the same runs kept at the constant predictor do not
    learned = next(s for s in sets if max(r.result.best_metric - r.result.baseline_metric for r in s.runs) > 0.1)
    results = [r.result for r in learned.runs]
    top = max(results, key=lambda r: r.best_metric)
    assert scenario_winner(results, None)["summary"] == f"{top.method} won at convergence"
    flat = [dataclasses.replace(r, best_metric=r.baseline_metric) for r in results]
    assert scenario_winner(flat, None)["summary"] == "nothing beat the constant predictor at convergence"
    mf = cached_metafeatures(rte)
    short, free = nearest_tasks(predictor.meta, mf, scenario="time_25"), nearest_tasks(predictor.meta, mf)
    assert [n["task"] for n in short] == [n["task"] for n in free] and len(free) == 3
    assert {n["when"] for n in free} == {"at convergence"}
    assert any(n["when"] == "at 25 % of full FT's time to converge" for n in short)  # those with a full FT run


def test_quality_at_budget_is_monotone_in_the_training_budget(predictor):
    import numpy as np

    rows = predictor.meta.rows_[::25]
    grid = np.linspace(*predictor.quality.log_cost_range_, 25)
    q = predictor.quality.predict(rows, grid)
    assert q.shape == (len(rows), 25, 3)
    assert (np.diff(q, axis=1) >= -1e-12).all()  # more budget never predicts less, interval ends included
    assert (q[..., 0] <= q[..., 1]).all() and (q[..., 1] <= q[..., 2]).all()
    assert (q[:, -1, 1] > q[:, 0, 1]).any()  # and the budget matters


def test_rank_follows_the_shown_metric_and_the_budget_changes_it(predictor, rte):
    from recommender.metamodel.recommend import recommend

    # every candidate (top=500): the robust default may be another configuration of the top
    # pick's method, listed after the best configuration of each method
    long = recommend(rte, UserBudgets(time_budget_s=3600), model=predictor, top=500, explain=False)
    assert long.hardware["device"] in ("cpu", "cuda") and long.hardware["requested"] == "auto"  # what was calibrated
    # a short budget inside the knowledge base's cost range on *this* machine (a fixed 60 s is
    # past convergence for every method on a fast CI machine, and would change nothing)
    low, high = predictor.quality.log_cost_range_
    seconds = math.exp(low + 0.3 * (high - low)) / long.hardware["train_gflops"]
    short = recommend(rte, UserBudgets(time_budget_s=seconds), model=predictor, top=500, explain=False)
    for rec in (short, long):
        feasible = [c for c in rec.candidates if c.feasible]
        top = rec.candidates[0]
        # rank 1: the robust default (one configuration) unless another is predicted to beat it
        # with 90 % probability, and the explanation says which
        assert top is feasible[0] and sum(c.robust_default for c in rec.candidates) == 1
        if top.robust_default:
            assert "nothing else is predicted to beat it with 90 % probability" in top.why
            assert top.ranked_by == "robust default"
        else:
            assert "predicted to beat the robust default" in top.why
            assert top.ranked_by == "predicted to beat the robust default"
        # the table says what put each row at its rank: rank 1 the pick above, the rest the metric
        assert {c.ranked_by for c in rec.candidates[1:]} == {f"predicted {rec.metric_name}"}
        # below it the number shown is the number ranked
        shown = [c.predicted_metric for c in feasible[1: len({c.method for c in rec.candidates})]]
        assert shown == sorted(shown, reverse=True)
        assert top.predicted_gap == 0 and all(c.metric_interval[0] <= c.predicted_metric <= c.metric_interval[1]
                                              for c in rec.candidates)
        low_end, high_end = metric_range(rec.metric_name)  # an accuracy interval never passes 1
        assert all(low_end <= c.metric_interval[0] and c.metric_interval[1] <= high_end for c in rec.candidates)
        assert rec.baseline_metric is not None
        assert all(abs(c.predicted_metric - c.predicted_gain - rec.baseline_metric) < 1e-9 for c in rec.candidates)
    by_key = {(c.method, json.dumps(c.params, sort_keys=True, default=str)): c.predicted_metric for c in short.candidates}
    later = [(by_key[k], c.predicted_metric) for c in long.candidates
             if (k := (c.method, json.dumps(c.params, sort_keys=True, default=str))) in by_key]
    assert all(b >= a - 1e-9 for a, b in later) and any(b > a + 1e-3 for a, b in later)


def test_predicted_quality_curves_meet_the_candidates_number_at_the_budget(predictor, rte):
    import numpy as np

    from recommender.metamodel.plots import predicted_quality_curves, quality_figure
    from recommender.metamodel.recommend import recommend

    rec = recommend(rte, UserBudgets(time_budget_s=300), model=predictor, top=5, explain=False)
    curves = predicted_quality_curves(rec, [30.0, 300.0, 3000.0], predictor=predictor)
    assert set(curves) == {c.method for c in rec.candidates}
    first = rec.candidates[0]
    arr = curves[first.method]
    assert arr.shape == (3, 4) and arr[1, 1] == pytest.approx(first.predicted_metric)
    # monotone in the budget (to rounding: a flat stretch may differ in the last bit)
    assert (np.diff(arr[:, 1]) >= -1e-12).all() and (arr[:, 2] <= arr[:, 1]).all() and (arr[:, 1] <= arr[:, 3]).all()
    fig = quality_figure(curves, time_budget_s=300, metric_name=rec.metric_name, baseline=rec.baseline_metric)
    assert len(fig.data) == 2 * len(curves)
    with pytest.raises(ValueError, match="positive"):
        predicted_quality_curves(rec, [0.0, float("nan")], predictor=predictor)


def test_an_unlike_task_widens_the_intervals_and_says_why(predictor, rte):
    import dataclasses

    from recommender.metamodel.recommend import recommend

    mf = recommend(rte, model=predictor, explain=False).metafeatures
    # RTE at the 500 examples the knowledge base measured it at (the whole task has 2,490,
    # beyond the protocol-2 runs' 300-500 once they cover enough tasks to stand alone)
    inside = dataclasses.replace(mf, n_train=500, fingerprint="inside")
    big = dataclasses.replace(mf, n_train=120_000, fingerprint="other")
    near = recommend(None, model=predictor, metafeatures=inside, explain=False, top=3)
    far = recommend(None, model=predictor, metafeatures=big, explain=False, top=3)
    assert not near.extrapolation and far.extrapolation
    assert "120,000 training examples, the knowledge base has" in far.extrapolation[0]
    assert any(w.startswith("extrapolating: 120,000 training examples") for w in far.warnings)
    width = {c.method: c.metric_interval[1] - c.metric_interval[0] for c in near.candidates}
    low_end, high_end = metric_range(far.metric_name)
    # wider, unless the interval already spans to the metric's ends (where it is clipped)
    assert all(c.metric_interval[1] - c.metric_interval[0] > width[c.method]
               or (c.metric_interval[0] == low_end or c.metric_interval[1] == high_end)
               for c in far.candidates if c.method in width)


def test_protocol_filter_falls_back_to_older_runs_and_says_so(kb_rows):
    from recommender.metamodel.quality import select_protocol

    old = [r for r in kb_rows if r.protocol == 1]
    rows, note = select_protocol(old, 2)
    assert len(rows) == len(old) and "protocol-2 runs cover 0 task(s)" in note

    def marked(row):  # the same run, as if recorded under protocol 2
        return type("Row", (), {"protocol": 2, "result": row.result, "task": row.task, "size": row.size})()

    first = old[0]
    newer = [marked(first)]
    rows, note = select_protocol(old + newer, 2)
    # protocol 2 replaces protocol 1 on its (task, size) set; other sets keep their older runs
    assert newer[0] in rows and not any(r.task == first.task and r.size == first.size and r.protocol == 1
                                        for r in rows if r is not newer[0])
    assert len(rows) == 1 + sum(1 for r in old if (r.task, r.size) != (first.task, first.size))
    assert "cover 1 task(s)" in note
    rows, note = select_protocol(old + newer, 2, min_tasks=1)  # enough coverage: protocol 2 only
    assert rows == newer and note is None


def test_signed_model_cache_refuses_a_tampered_file_and_refits(tmp_path):
    import os
    import stat

    from recommender.metamodel.cache import KEEP, KEY_FILE, cache_path, cached, load_signed

    builds = []

    def build():
        builds.append(1)
        return {"fitted": len(builds)}

    assert cached("abc123", build, tmp_path) == {"fitted": 1}
    assert stat.S_IMODE(os.stat(tmp_path / KEY_FILE).st_mode) == 0o600
    assert cached("abc123", build, tmp_path) == {"fitted": 1} and len(builds) == 1  # served from disk
    path = cache_path("abc123", tmp_path)
    blob = bytearray(path.read_bytes())
    blob[-1] ^= 0xFF  # someone edits the payload
    path.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="signature does not match"):
        assert cached("abc123", build, tmp_path) == {"fitted": 2}  # refused, refitted
    assert len(builds) == 2 and load_signed("abc123", tmp_path) == {"fitted": 2}
    os.chmod(tmp_path / KEY_FILE, 0o644)  # a key others can read signs nothing
    with pytest.warns(UserWarning, match="not a private"):
        assert load_signed("abc123", tmp_path) is None
    with pytest.raises(ValueError, match="alphanumeric"):
        cache_path("../evil", tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o600)
    for i in range(6):  # old fits do not pile up
        cached(f"k{i}", build, tmp_path)
    assert len(list(path.parent.glob("*.bin"))) == KEEP


def test_a_budget_too_short_to_beat_the_constant_predictor_is_said_plainly(predictor, rte):
    import math

    from recommender.metamodel.recommend import MIN_USEFUL_GAIN, recommend

    roomy = recommend(rte, UserBudgets(time_budget_s=3600), model=predictor, top=3, explain=False)
    # half the cheapest training any knowledge-base run had done before its first evaluation, here
    seconds = 0.5 * math.exp(predictor.quality.log_cost_range_[0]) / roomy.hardware["train_gflops"]
    rec = recommend(rte, UserBudgets(time_budget_s=seconds), model=predictor, top=3, explain=False)
    assert all((c.predicted_gain or 0) < MIN_USEFUL_GAIN for c in rec.candidates)
    warning = next(w for w in rec.warnings if w.startswith("nothing is predicted to beat a constant predictor"))
    assert "allow about" in warning
    roomy = recommend(rte, UserBudgets(time_budget_s=3600), model=predictor, top=3, explain=False)
    assert not any(w.startswith("nothing is predicted") for w in roomy.warnings)


def test_the_shipped_predictor_is_used_only_for_its_own_files_and_never_runs_code(tmp_path, monkeypatch):
    import gzip
    import pickle

    import numpy as np

    from recommender.knowledge_base import KB_FILE
    from recommender.metamodel import predictor as predictor_module
    from recommender.metamodel.shipped import PREDICTOR_FILE, load_shipped_predictor, write_shipped_predictor

    shipped = load_knowledge_base()
    kb = tmp_path / "data" / "knowledge_base"
    kb.mkdir(parents=True)
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECOMMENDER_HOME", str(tmp_path / "home"))
    with pytest.raises(DataError, match="knowledge base not found"):
        write_shipped_predictor()  # nothing to fit: said, nothing written
    assert not (kb / PREDICTOR_FILE).exists()
    tasks = sorted({r.task for r in shipped})[:4]
    (kb / KB_FILE).write_text("".join(json.dumps(r.to_dict()) + "\n" for r in shipped if r.task in tasks))
    path, fitted = write_shipped_predictor()
    assert path == kb / PREDICTOR_FILE and (fitted.quality.widths_ > 0).all()
    key = predictor_module.predictor_key([str(kb / KB_FILE)])
    assert load_shipped_predictor("another-knowledge-base") is None  # stale or foreign: fitted instead

    def no_fit(*args, **kwargs):
        raise AssertionError("fitted although the shipped predictor matches")

    monkeypatch.setattr(predictor_module, "fit_predictor", no_fit)
    predictor_module._load.cache_clear()
    loaded = predictor_module.load_predictor()
    assert (loaded.quality.widths_ == fitted.quality.widths_).all() and loaded.n_runs == fitted.n_runs
    rows = [{"metafeatures": r.metafeatures, "method": r.result.method, "params": r.result.params,
             "trainable_params": r.result.trainable_params} for r in shipped if r.task in tasks][:20]
    assert np.array_equal(loaded.quality.predict(rows, [8.0, 12.0]), fitted.quality.predict(rows, [8.0, 12.0]))
    predictor_module._load.cache_clear()

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    hostile = [pickle.dumps({"key": key, "version": predictor_module.PREDICTOR_VERSION, "predictor": Exploit()}),
               pickle.dumps({"key": key, "predictor": "not a predictor"}), b"not a pickle"]
    for payload in hostile:
        (kb / PREDICTOR_FILE).write_bytes(gzip.compress(payload))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert load_shipped_predictor(key) is None
    (kb / PREDICTOR_FILE).write_bytes(b"\x1f\x8b truncated")
    with pytest.warns(UserWarning, match="not a usable shipped predictor"):
        assert load_shipped_predictor(key) is None
    (kb / PREDICTOR_FILE).unlink()
    os.mkfifo(kb / PREDICTOR_FILE)  # a special file is not read (it would block)
    assert load_shipped_predictor(key) is None
    assert not marker.exists()


def test_compact_trees_predict_exactly_as_scikit_learn():
    """The predictor's trees as NumPy arrays give scikit-learn's predictions bit for bit."""
    import numpy as np

    from recommender.metamodel.estimators import QuantileGradientBoosting
    from recommender.metamodel.trees import CompactQuantiles

    rng = np.random.default_rng(0)
    X = rng.random((400, 6))
    X[::5, 1] = np.nan  # missing values go down their learned side
    X[:, 4] = np.nan  # a feature never observed
    y = 3 * X[:, 0] + X[:, 5] + rng.normal(0, 0.1, 400)
    model = QuantileGradientBoosting(max_iter=60, monotonic_cst=[0, 0, 0, 0, 0, 1]).fit(X, y)
    compact = CompactQuantiles.from_fitted(model)
    X_new = rng.random((250, 6))
    X_new[::3, 1] = np.nan
    X_new[::7, 5] = np.nan
    assert np.array_equal(compact.predict_quantiles(X_new), model.predict_quantiles(X_new))
    assert np.array_equal(compact.predict(X_new), model.predict(X_new))
    with pytest.raises(ValueError, match="expected"):
        compact.predict_quantiles(X_new[:, :3])


def test_compact_binary_classifier_predicts_as_scikit_learn():
    """The pairwise model's classifier as NumPy arrays: scikit-learn's probabilities (the same
    trees; the logistic function to rounding)."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier

    from recommender.metamodel.trees import CompactBinaryClassifier, compact

    rng = np.random.default_rng(1)
    X = rng.random((500, 5))
    X[::4, 2] = np.nan
    y = (X[:, 0] + 0.5 * X[:, 3] + rng.normal(0, 0.2, 500) > 0.8).astype(int)
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, y, sample_weight=rng.random(500))
    small = compact(model)
    assert isinstance(small, CompactBinaryClassifier)
    X_new = rng.random((200, 5))
    X_new[::3, 2] = np.nan
    np.testing.assert_allclose(small.predict_proba(X_new), model.predict_proba(X_new), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="expected"):
        small.predict_proba(X_new[:, :2])
    three = HistGradientBoostingClassifier(max_iter=5).fit(X, rng.integers(0, 3, 500))
    assert compact(three) is three  # not a binary classifier: kept as it is


def test_the_shipped_predictor_is_current():
    """``recommender kb calibrate`` was run after the knowledge base last changed."""
    from recommender.knowledge_base import default_path, protocol1_path
    from recommender.metamodel.predictor import predictor_key
    from recommender.metamodel.shipped import load_shipped_predictor

    paths = [str(p) for p in (default_path(), protocol1_path()) if p.exists()]
    assert load_shipped_predictor(predictor_key(paths)) is not None, "run `recommender kb calibrate` and commit it"


def test_a_warm_recommendation_imports_no_heavy_library(tmp_path):
    """On a warm cache `recommend` predicts with NumPy alone: no scikit-learn, SciPy, datasets
    or torch (each takes a second or more to import). A cold one needs torch, transformers and
    datasets (timing the base model, the task's meta-features) but not scikit-learn, which
    transformers' generation module would import for nothing."""
    env = {**os.environ, "RECOMMENDER_HOME": str(tmp_path / "home")}
    argv = ["recommender", "recommend", "glue_rte", "--time-budget", "600"]
    probe = ("import runpy, sys\nsys.argv = ARGV\ntry:\n    runpy.run_module('recommender.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\nprint(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'sklearn', 'scipy', 'datasets', 'torch', 'transformers'}), file=sys.stderr)").replace("ARGV", repr(argv))

    def answer() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=600,
                              check=False)
        assert done.returncode == 0, done.stderr
        return done

    cold, warm = answer(), answer()
    cold_imports = cold.stderr.strip().splitlines()[-1]
    assert "'torch'" in cold_imports and "'sklearn'" not in cold_imports, cold.stderr
    assert warm.stdout == cold.stdout  # the same answer
    assert warm.stderr.strip().splitlines()[-1] == "[]", warm.stderr


def test_the_machine_calibration_times_each_batch_once_and_caches_it(tmp_path, monkeypatch):
    """The base model's latency at each batch size (the smallest warmed up, the larger ones
    timed on the warm model), cached in the user folder: a second call measures nothing."""
    from recommender.metamodel import calibration
    from recommender.training import latency

    monkeypatch.setenv("RECOMMENDER_HOME", str(tmp_path))
    calls: list[tuple[int, int]] = []
    measure = latency.measure_latency

    def counted(model, **kwargs):
        calls.append((kwargs["batch_size"], kwargs["warmup"]))
        return measure(model, **kwargs)

    monkeypatch.setattr(latency, "measure_latency", counted)
    first = calibration.hardware_profile("cpu", 16, (4, 1))
    assert calls == [(1, 1), (4, 0)]
    assert set(first["base_latency_ms"]) == {"1", "4"} and all(v > 0 for v in first["base_latency_ms"].values())
    assert first["device"] == "cpu" and first["train_gflops"] > 0
    assert calibration.hardware_profile("cpu", 16, (1, 4)) == first and len(calls) == 2


def test_a_training_second_is_worth_the_matmul_speed_of_the_precision_it_ran_in():
    """Costs are seconds x the run machine's matmul GFLOP/s *in the run's precision*: a bf16 run
    on a CPU where bf16 is 2x faster is not 2x cheaper work, and this machine's seconds come from
    the precision it would train in."""
    import dataclasses
    import math

    from recommender.metamodel.calibration import BF16_MATMUL_SPEEDUP, peak_gflops
    from recommender.metamodel.features import run_gflops, run_targets
    from recommender.metamodel.quality import point_cost
    from recommender.training.environment import calibrate
    from recommender.training.precision import resolve_precision
    from recommender.types import Environment, EvalPoint, RunResult

    assert peak_gflops({"matmul_gflops": 10.0, "matmul_gflops_bf16": 25.0}, "fp32") == 10.0
    assert peak_gflops({"matmul_gflops": 10.0, "matmul_gflops_bf16": 25.0}, "bf16") == 25.0
    assert peak_gflops({"matmul_gflops": 10.0}, "bf16") == pytest.approx(10.0 * BF16_MATMUL_SPEEDUP)  # older rows
    for junk in ({}, None, {"matmul_gflops": float("nan")}, {"matmul_gflops": -1}, {"matmul_gflops": "fast"}):
        assert peak_gflops(junk, "fp32") is None

    env = Environment(device="cpu", cpu="x", gpu=None, threads=1, platform="p", python="3.11", packages={},
                      calibration={"matmul_gflops": 10.0, "matmul_gflops_bf16": 25.0})
    point = EvalPoint(step=10, epoch=1.0, train_seconds=4.0, wall_seconds=5.0, examples=160, tokens=6400,
                      metric=0.8)
    fp32 = RunResult(task="t", method="lora", params={}, status="complete", metric_name="accuracy",
                     best_metric=0.8, curve=[point, dataclasses.replace(point, step=20, train_seconds=8.0, metric=0.9)],
                     time_to_best_s=8.0, environment=env)
    bf16 = dataclasses.replace(fp32, precision="bf16")
    assert run_gflops(fp32) == 10.0 and run_gflops(bf16) == 25.0
    assert point_cost(fp32, point) == pytest.approx(40.0) and point_cost(bf16, point) == pytest.approx(100.0)
    assert run_targets(bf16)["log_cost"] == pytest.approx(math.log(8.0 * 25.0))

    reading = calibrate("cpu")  # this machine: fp32, and its training precision where that is lower
    low = resolve_precision("auto", "cpu")
    assert reading["matmul_gflops"] > 0
    assert (f"matmul_gflops_{low}" in reading) == (low != "fp32")
    assert peak_gflops(reading, low) > 0
