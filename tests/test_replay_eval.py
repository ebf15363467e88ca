"""The replay evaluation on a small synthetic knowledge base whose answer is known by hand.

Five tasks (one group each), three methods with the same curves on every task: full_ft slow but
best at convergence (0.90), lora fast with a lower plateau (0.80), head_only poor (0.55). Cost =
train seconds x 10 GFLOP/s; full_ft converges at 80 s, so the time budgets are 200, 400 and 800.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recommender.knowledge_base import KnowledgeBaseRow
from recommender.types import Environment, EvalPoint, LatencyStats, MetaFeatures, RunResult

CURVES = {  # method: (seconds, metrics), trainable params, latency ratio at batch 1, artifact bytes
    "full_ft": ([10, 20, 40, 80], [0.55, 0.60, 0.80, 0.90], 22_713_216, 1.0, 90_000_000),
    "lora": ([5, 10, 20, 40], [0.70, 0.75, 0.78, 0.80], 73_728, 1.3, 300_000),
    "head_only": ([5, 10, 20, 40], [0.50, 0.52, 0.55, 0.55], 770, 1.0, 4_000),
}


def _row(task: str, n_train: int, method: str) -> KnowledgeBaseRow:
    seconds, metrics, trainable, ratio, artifact = CURVES[method]
    curve = [EvalPoint(step=i + 1, epoch=float(i + 1), train_seconds=float(s), wall_seconds=float(s),
                       examples=100 * (i + 1), tokens=4000 * (i + 1), metric=m)
             for i, (s, m) in enumerate(zip(seconds, metrics, strict=True))]
    env = Environment(device="cpu", cpu="x", gpu=None, threads=1, platform="p", python="3.11", packages={},
                      calibration={"matmul_gflops": 10.0})
    result = RunResult(task=task, method=method, params={"learning_rate": 1e-4}, status="complete",
                       metric_name="accuracy", best_metric=max(metrics), curve=curve, stop_reason="epochs",
                       time_to_best_s=float(seconds[-1]), train_seconds=float(seconds[-1]),
                       trainable_params=trainable, artifact_bytes=artifact, environment=env,
                       latency=[LatencyStats(batch_size=1, seq_len=64, p50_ms=10.0 * ratio, p95_ms=11.0 * ratio)],
                       base_latency=[LatencyStats(batch_size=1, seq_len=64, p50_ms=10.0, p95_ms=11.0)])
    mf = MetaFeatures(version=1, fingerprint=f"fp-{task}", task_type="classification", n_train=n_train, n_dev=100,
                      n_labels=2, label_entropy=1.0, imbalance_ratio=1.0, is_pair=False, language="en",
                      eval_language="en", cross_lingual=False, tokens_mean=40.0, tokens_p95=80.0, unk_rate=0.0,
                      fertility=1.3, model_params=22_713_216)
    return KnowledgeBaseRow(run_id=f"{task}#{method}", study=f"sweep:{task}", kind="sweep", task=task,
                            size=n_train, metafeatures=mf, result=result, config_key=f"{method}#0")


@pytest.fixture(scope="module")
def synthetic_kb():
    return [_row(f"synth_{i}", 300 + 100 * i, m) for i in range(5) for m in CURVES]


@pytest.fixture(scope="module")
def evaluation(synthetic_kb):
    from recommender.metamodel.replay_eval import RacePlan, evaluate_scenarios

    return evaluate_scenarios(synthetic_kb, plan=RacePlan(portfolio=2, eta=2, final_fraction=0.5), n_boot=200,
                              quality_kwargs={"max_iter": 30, "n_folds": 3}, latency=False)


def _scenario(evaluation, name):
    return next(s for s in evaluation["scenarios"] if s["name"] == name)


def test_replay_budgets_are_fractions_of_full_fine_tunings_time_to_convergence(synthetic_kb):
    from recommender.metamodel.replay_eval import task_sets

    sets = task_sets(synthetic_kb)
    assert len(sets) == 5 and {s.group for s in sets} == {f"synth_{i}" for i in range(5)}
    assert sets[0].budgets["time_25"] == pytest.approx(200) and sets[0].budgets["time_100"] == pytest.approx(800)
    assert sets[0].baseline == pytest.approx(0.5)  # a balanced binary task: the majority share
    out = dict(zip([r.result.method for r in sets[0].runs], sets[0].outcomes("time_25"), strict=True))
    assert out == pytest.approx({"full_ft": 0.60, "lora": 0.78, "head_only": 0.55})


def test_replay_evaluation_gives_the_known_regrets_per_scenario(evaluation):
    assert [s["name"] for s in evaluation["scenarios"]] == [
        "time_25", "time_50", "time_100", "latency_b1", "params_1m", "storage_20"]
    t25 = _scenario(evaluation, "time_25")
    assert t25["best_fixed_rule_method"] == "lora"
    pol = t25["policies"]
    assert pol["oracle"]["regret"] == 0 and pol["best_fixed_rule"]["regret"] == pytest.approx(0)
    assert pol["always_full_ft"]["regret"] == pytest.approx(18.0)  # 0.78 - 0.60
    assert pol["random"]["regret"] == pytest.approx((18 + 0 + 23) / 3, abs=1e-3)
    # the race: lora (the top pick) trains first and is still improving at the budget (20 s,
    # 0.78): no time is left to race the other
    assert pol["race"]["regret"] == pytest.approx(0.0)
    # its ceiling: the best of that portfolio trained alone with the whole budget (lora, 0.78)
    assert pol["race_ceiling"]["regret"] == pytest.approx(0.0)
    t100 = _scenario(evaluation, "time_100")
    assert t100["best_fixed_rule_method"] == "full_ft" and t100["policies"]["always_full_ft"]["regret"] == 0
    lat = _scenario(evaluation, "latency_b1")  # lora is 1.3x the base latency: the baseline when picked
    assert lat["policies"]["always_full_ft"]["regret"] == 0
    assert lat["policies"]["random"]["regret"] == pytest.approx((0 + 35) / 2)  # among the feasible two
    params = _scenario(evaluation, "params_1m")
    assert params["policies"]["always_full_ft"] is None  # never feasible: no such policy
    assert params["best_fixed_rule_method"] == "lora" and params["policies"]["best_fixed_rule"]["regret"] == 0
    assert _scenario(evaluation, "storage_20")["best_fixed_rule_method"] == "lora"


def test_replay_evaluation_reports_intervals_gap_closed_and_coverage(evaluation):
    for s in evaluation["scenarios"]:
        for name, p in s["policies"].items():
            if p is not None:
                assert p["ci90"][0] <= p["regret"] + 1e-9 <= p["ci90"][1] + 2e-9, (s["name"], name)
        assert 0.0 <= s["coverage80"] <= 1.0
        assert set(s["gap_closed"]) == {"metamodel", "race", "race_ceiling"}
        # no race over a portfolio beats that portfolio's best member trained with the whole budget
        assert s["policies"]["race_ceiling"]["regret"] <= s["policies"]["race"]["regret"] + 1e-9
    # identical tasks: every bootstrap resample has the same mean, the interval is a point
    t25 = _scenario(evaluation, "time_25")["policies"]["always_full_ft"]
    assert t25["ci90"] == pytest.approx([18.0, 18.0])


def test_interval_hits_counts_outcomes_inside_their_interval():
    from recommender.metamodel.replay_eval import interval_hits

    q = np.array([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [0.0, 0.1, 0.2], [0.4, 0.4, 0.4]])
    hits = interval_hits(np.array([0.3, 0.45, 0.25, 0.4]), q)
    assert hits.tolist() == [True, False, False, True]  # inclusive ends


def test_race_plan_splits_the_budget_by_rung():
    from recommender.metamodel.replay_eval import RacePlan

    rungs = RacePlan(portfolio=4, eta=2, final_fraction=0.5).rungs(800)
    assert [n for n, _ in rungs] == [4, 2, 1]
    assert sum(n * each for n, each in rungs) == pytest.approx(800)
    assert rungs[-1][1] == pytest.approx(400)
    assert RacePlan(portfolio=1).rungs(100) == [(1, 100)]


def test_a_rung_passes_on_the_best_measured_and_breaks_ties_by_priority():
    from recommender.metamodel.replay_eval import rung_order

    items = ["first", "second", "third"]
    assert rung_order(items, [0.60, 0.70, 0.65], [3.0, 2.0, 1.0]) == ["second", "third", "first"]
    assert rung_order(items, [float("-inf"), 0.5, 0.5], [3.0, 2.0, 1.0]) == ["second", "third", "first"]
    assert rung_order(items, [0.5, 0.5, 0.5], [1.0, 3.0, 2.0]) == ["second", "third", "first"]


def test_the_race_trains_the_top_pick_first_and_races_the_rest_in_the_time_it_leaves(synthetic_kb):
    from recommender.metamodel.replay_eval import RacePlan, race_outcome, task_sets

    s = task_sets(synthetic_kb)[0]
    index = {r.result.method: i for i, r in enumerate(s.runs)}
    priority = np.zeros(len(s.runs))
    plan = RacePlan(portfolio=3, eta=2, final_fraction=0.5)
    assert plan.challenger_rungs(400, 2) == [(2, 100), (1, 200)]
    assert plan.challenger_rungs(0, 2) == [] and RacePlan(portfolio=1).challenger_rungs(400, 2) == []
    # head_only stops at 40 s (cost 400, 0.55); in the 400 it leaves, full_ft (0.55 at 10 s) and
    # lora (0.75 at 10 s) race for 100 each; lora goes on for 200 (20 s): 0.78
    order = [index["head_only"], index["full_ft"], index["lora"]]
    assert race_outcome(s, "time_100", order, plan, 800.0, priority) == pytest.approx(0.78)
    # a top pick still learning at the budget keeps all of it: nothing else is trained
    order = [index["full_ft"], index["lora"], index["head_only"]]
    assert race_outcome(s, "time_25", order, plan, 200.0, priority) == pytest.approx(0.60)
    # the race never does worse than its top pick alone with the whole budget
    for first in index.values():
        rest = [i for i in index.values() if i != first]
        for budget in (100.0, 200.0, 400.0, 800.0):
            alone = race_outcome(s, "time_100", [first], RacePlan(portfolio=1), budget, priority)
            assert race_outcome(s, "time_100", [first, *rest], plan, budget, priority) >= alone


def test_a_deployment_running_the_base_models_computation_has_latency_ratio_one():
    from recommender.metamodel.replay_eval import feasible_run
    from recommender.report import latency_ratio

    full = _row("synth_0", 300, "full_ft").result
    full.latency = [LatencyStats(batch_size=1, seq_len=64, p50_ms=15.0, p95_ms=16.0)]  # measured 1.5x: noise
    assert latency_ratio(full, 1) == 1.0 and feasible_run(full, "latency_b1")
    lora = _row("synth_0", 300, "lora").result  # adapters left unmerged: the measured 1.3x counts
    assert latency_ratio(lora, 1) == pytest.approx(1.3) and not feasible_run(lora, "latency_b1")
    lora.latency = [*lora.latency, LatencyStats(batch_size=1, seq_len=64, p50_ms=12.0, p95_ms=13.0, merged=True)]
    assert latency_ratio(lora, 1) == 1.0  # merged exactly: the base model's computation
    assert latency_ratio(lora, 32) is None  # nothing measured at that batch


def test_the_fixed_rule_plays_its_methods_tuned_defaults_and_falls_back_where_it_cannot_run():
    from recommender.metamodel.replay_eval import _method_run, rule_for, task_sets
    from recommender.search.spaces import get_space

    tuned = get_space("lora").defaults()["learning_rate"]
    rows = [_row("synth_0", 300, m) for m in CURVES]
    grid = _row("synth_0", 300, "lora")
    # a grid point equal to the tuned default up to rounding (3 x 5e-4 = 0.0015000000000000002)
    grid.result = dataclasses.replace(grid.result, params={"learning_rate": tuned * (1 + 1e-15)})
    grid.run_id, grid.config_key = "synth_0#lora#lr3", "lora#lr3"
    s = task_sets([*rows, grid])[0]
    assert s.runs[_method_run(s, "lora")].config_key == "lora#lr3"  # not the "#0" run before tuning
    assert s.runs[_method_run(s, "full_ft")].config_key == "full_ft#0"  # no tuned run: the sweep's first
    assert rule_for(s, ["multitask_ft", "lora", "full_ft"]) == "lora"  # multi-task FT not measured here
    assert rule_for(s, ["prefix_tuning"]) is None


def test_the_top_pick_leaves_the_rules_configuration_only_for_a_clear_predicted_gain():
    from recommender.metamodel.replay_eval import choose

    predicted = np.array([0.80, 0.83, 0.90])
    allowed = np.array([True, True, False])
    assert choose(predicted, allowed, default=0, margin=0.05) == 0  # +3 points: kept
    assert choose(predicted, allowed, default=0, margin=0.02) == 1
    assert choose(predicted, allowed, default=2, margin=0.05) == 1  # the default is not allowed
    assert choose(predicted, np.zeros(3, dtype=bool), default=None) == 2  # nothing allowed: plain argmax


def test_the_rule_gap_model_learns_each_configurations_difference_to_the_rule(synthetic_kb):
    from recommender.metamodel.evaluate import prediction_rows
    from recommender.metamodel.replay_eval import method_ranking, rule_run, task_sets
    from recommender.metamodel.rule_gap import RuleGapModel

    sets = task_sets(synthetic_kb)
    rankings = {sc: method_ranking(sets, sc) for sc in ("time_25", "time_100")}
    assert rankings["time_25"][0] == "lora" and rankings["time_100"][0] == "full_ft"
    model = RuleGapModel(min_samples_leaf=1).fit(sets, rankings).compact()
    rows = prediction_rows(sets[0].runs)
    at_100 = dict(zip([r["method"] for r in rows], model.predict("time_100", rows)[:, 1], strict=True))
    # identical curves on every task: full_ft 0.90, lora 0.80, head_only 0.55 at convergence
    assert at_100 == pytest.approx({"full_ft": 0.0, "lora": -0.10, "head_only": -0.35}, abs=0.01)
    at_25 = model.predict("time_25", rows)[:, 1]  # within 200: full_ft 0.60, lora 0.78 (the rule)
    assert at_25 == pytest.approx([-0.18, 0.0, -0.23], abs=0.01)
    assert model.predict("latency_b1", rows) is None  # not fitted: the rule stands
    assert rule_run(sets[0], rankings["time_25"]) == 1


def test_the_rule_gap_models_nearest_groups_feature_leaves_out_the_sets_own_group(synthetic_kb):
    from recommender.metamodel.evaluate import prediction_rows
    from recommender.metamodel.replay_eval import (
        evaluate_scenarios,
        method_ranking,
        refit_gaps,
        replay_predictions,
        task_sets,
    )
    from recommender.metamodel.rule_gap import RuleGapModel

    sets = task_sets(synthetic_kb)
    rankings = {sc: method_ranking(sets, sc) for sc in ("time_25", "time_100")}
    model = RuleGapModel(min_samples_leaf=1, neighbours=2).fit(sets, rankings)
    mf = sets[0].runs[0].metafeatures  # synth_0, 300 examples: the nearest groups are synth_0, _1, _2 in turn
    # identical curves on every task: the neighbours' differences are the known ones
    assert model._neighbour_differences("time_100", mf, None) == pytest.approx(
        {"full_ft": 0.0, "lora": -0.10, "head_only": -0.35})
    model.differences_["time_100"][model.set_groups_.index("synth_1")] += 1.0  # a marker on synth_1
    assert model._neighbour_differences("time_100", mf, None)["lora"] == pytest.approx((-0.10 + 0.90) / 2)
    assert model._neighbour_differences("time_100", mf, "synth_1")["lora"] == pytest.approx(-0.10)
    assert model.predict("time_25", prediction_rows(sets[0].runs)).shape == (3, 3)
    # the benchmark's comparison: the same predictions with the option refitted per held-out group
    preds = replay_predictions(synthetic_kb, quality_kwargs={"max_iter": 30, "n_folds": 3}, latency=False)
    refitted = refit_gaps(preds, synthetic_kb, neighbours=2, min_samples_leaf=1)
    assert [(p.set.key, p.scenario) for p in refitted] == [(p.set.key, p.scenario) for p in preds]
    assert all(p.lead is None or p.lead.shape == (len(p.set.runs),) for p in refitted)
    assert evaluate_scenarios(synthetic_kb, predictions=refitted, n_boot=10)["n_groups"] == 5


def test_the_pairwise_model_learns_which_configuration_beats_which(synthetic_kb):
    """Identical curves on every task: at convergence full_ft > lora > head_only, within 25 % of
    full_ft's time lora > full_ft > head_only; the pick leaves the rule only for a configuration
    predicted to beat it with the model's confidence."""
    from recommender.metamodel.evaluate import prediction_rows
    from recommender.metamodel.pairwise import PairwiseRuleModel
    from recommender.metamodel.replay_eval import (
        evaluate_scenarios,
        method_ranking,
        refit_gaps,
        replay_predictions,
        rule_run,
        task_sets,
    )
    from recommender.metamodel.rule_gap import pick

    sets = task_sets(synthetic_kb)
    rankings = {sc: method_ranking(sets, sc) for sc in ("time_25", "time_100")}
    model = PairwiseRuleModel(min_samples_leaf=1, max_iter=30).fit(sets, rankings).compact()
    rows = prediction_rows(sets[0].runs)  # full_ft, lora, head_only
    at_100 = model.beats("time_100", rows, reference=0)  # against full_ft, the rule at convergence
    assert at_100[0] == 0.5 and at_100[1] < 0.1 and at_100[2] < 0.1
    at_25 = model.beats("time_25", rows, reference=0)  # against full_ft at 25 %: lora wins
    assert at_25[1] > 0.9 and at_25[2] < 0.1
    rule = rule_run(sets[0], rankings["time_25"])
    assert rule == 1 and pick(model.lead("time_25", rows, rule), np.ones(3, dtype=bool), rule) == 1
    # a rule that loses surely is left for the configuration that beats it
    assert pick(model.lead("time_25", rows, 0), np.ones(3, dtype=bool), 0) == 1
    assert model.beats("latency_b1", rows, 0) is None and model.lead("time_25", rows, None) is None
    with pytest.raises(ValueError, match="confidence"):
        PairwiseRuleModel(confidence=1.0)
    # the benchmark's comparison: the difference model's lead replaced by the pairwise model's
    preds = replay_predictions(synthetic_kb, quality_kwargs={"max_iter": 30, "n_folds": 3}, latency=False)
    refitted = refit_gaps(preds, synthetic_kb, model=PairwiseRuleModel(min_samples_leaf=1, max_iter=30))
    assert all(p.lead is None or p.lead.shape == (len(p.set.runs),) for p in refitted)
    result = evaluate_scenarios(synthetic_kb, predictions=refitted, n_boot=10)
    at_25 = next(s for s in result["scenarios"] if s["name"] == "time_25")
    assert at_25["policies"]["metamodel"]["regret"] == pytest.approx(0.0)
    # it kept the rule (lora, the best at 25 %) on all five sets: no departure to report
    assert at_25["departures"] == {"sets": 0, "better": 0, "worse": 0, "mean_gain": None}
    # a lead that always prefers head_only leaves the rule on every set, and loses 23 points each time
    forced = [dataclasses.replace(p, lead=np.array([-1.0, -1.0, 1.0])) for p in refitted]
    at_25 = next(s for s in evaluate_scenarios(synthetic_kb, predictions=forced, n_boot=10)["scenarios"]
                 if s["name"] == "time_25")
    assert at_25["departures"] == {"sets": 5, "better": 0, "worse": 5, "mean_gain": pytest.approx(-23.0)}
    assert at_25["policies"]["metamodel"]["regret"] == pytest.approx(23.0)


def test_the_pick_leaves_the_rule_only_for_a_gain_predicted_with_confidence():
    from recommender.metamodel.rule_gap import pick

    allowed = np.array([True, True, True, False])
    assert pick(np.array([0.0, -0.01, -0.2, 0.5]), allowed, default=0) == 0  # the lower ends: no sure gain
    assert pick(np.array([0.0, 0.01, 0.03, 0.5]), allowed, default=0) == 2  # the surest gain, if allowed
    assert pick(np.array([0.0, 0.01, 0.03, 0.5]), allowed, default=3) == 2  # the rule itself not allowed
    assert pick(None, allowed, default=1) == 1  # no model: the rule


def test_conformal_widths_follow_the_training_cost():
    """Errors that grow with the training cost: each third of the costs gets the 80 % quantile of
    its own held-out errors, and predict applies each width where it belongs."""
    from recommender.metamodel.quality import QualityModel

    class Zero:  # the quantile model predicts nothing: the errors are |y|, known by hand
        def fit(self, X, y):
            return self

        def predict_quantiles(self, X):
            return np.zeros((len(X), 3))

    model = QualityModel(n_folds=3)
    model._estimator = lambda n_columns: Zero()
    rng = np.random.default_rng(0)
    cost = np.repeat([1.0, 2.0, 3.0], 300)
    y = rng.uniform(-1, 1, size=900) * cost / 10  # |error| up to 0.1, 0.2, 0.3
    groups = np.array([f"g{i % 9}" for i in range(900)])
    edges, widths = model._conformal_widths(np.c_[np.zeros(900), cost], y, groups)
    assert len(edges) == 2 and widths == pytest.approx([0.08, 0.16, 0.24], abs=0.015)
    model.width_edges_, model.widths_ = edges, widths
    assert model.width_at([0.5, 2.0, 9.0]).tolist() == widths.tolist()


def test_a_curve_is_replayed_on_the_scale_of_its_final_score():
    """The curve is measured on a monitor subset, the best checkpoint on the whole dev set: a
    budget that reaches the best checkpoint scores the final metric, with or without a time budget."""
    from recommender.metamodel.quality import running_curve, score_at
    from recommender.metamodel.replay_eval import TaskSet

    row = _row("synth_0", 300, "lora")  # curve 0.70 .. 0.80 at 50 .. 400 GFLOP-equivalents
    result = dataclasses.replace(row.result, best_metric=0.77)  # the whole dev set: 3 points lower
    assert running_curve(result)[1] == pytest.approx([0.67, 0.72, 0.75, 0.77])
    assert score_at(result, 10.0, 0.5) == 0.5  # before the first evaluation: the baseline
    assert score_at(result, 100.0, 0.5) == pytest.approx(0.75 - 0.03)
    assert score_at(result, 1e9, 0.5) == pytest.approx(0.77)
    shifted = dataclasses.replace(row, result=result)
    s = TaskSet("synth_0", ("fp", 300), [shifted], 0.5, {"time_100": 1e9, "params_1m": None})
    assert s.outcomes("time_100")[0] == pytest.approx(0.77)
    assert s.outcomes("params_1m")[0] == pytest.approx(0.77)


def test_a_probing_race_continues_the_best_probe_and_loses_the_probes_time(synthetic_kb):
    from recommender.metamodel.replay_eval import RacePlan, evaluate_scenarios, probe_race_outcome, task_sets

    s = task_sets(synthetic_kb)[0]
    index = {r.result.method: i for i, r in enumerate(s.runs)}
    plan, priority = RacePlan(portfolio=2), np.zeros(len(s.runs))
    # 10 % probes of 800 (8 s each): full_ft 0.54 (on its way from the baseline, 0.5, to 0.55 at
    # 10 s), lora 0.73 (between 0.70 at 5 s and 0.75 at 10 s); lora goes on for 80 + 800 - 160 =
    # 720 (its plateau, 0.80), although full_ft alone would have reached 0.90
    order = [index["full_ft"], index["lora"]]
    assert probe_race_outcome(s, "time_100", order, plan, 800.0, priority, probe=0.1) == pytest.approx(0.80)
    # a switching margin keeps the top pick unless beaten by more: full_ft goes on for 720 (72 s,
    # 0.88 between 0.80 at 40 s and 0.90 at 80 s: it is short of the probes' 8 s)
    assert probe_race_outcome(s, "time_100", order, plan, 800.0, priority, probe=0.1, switch=0.25) == \
        pytest.approx(0.88)
    # alone it has the whole budget
    assert probe_race_outcome(s, "time_100", order[:1], plan, 800.0, priority) == pytest.approx(0.90)
    # evaluate_scenarios replays whichever race it is given
    worst = evaluate_scenarios(synthetic_kb, n_boot=20, quality_kwargs={"max_iter": 30, "n_folds": 3},
                               latency=False, race=lambda s, *args: s.baseline)
    # (a race ending at the constant predictor: 0.78 - 0.5 behind lora at 25 %, the rule's 0)
    assert _scenario(worst, "time_25")["policies"]["race"]["regret"] == pytest.approx(28.0)
    assert _scenario(worst, "time_25")["policies"]["best_fixed_rule"]["regret"] == pytest.approx(0.0)


def test_a_run_is_scored_between_its_evaluations_as_the_trainer_evaluates_when_the_budget_ends(synthetic_kb):
    from recommender.metamodel.replay_eval import task_sets

    between = task_sets(synthetic_kb)[0]
    at_last = task_sets(synthetic_kb, interpolate=False)[0]
    full = next(i for i, r in enumerate(between.runs) if r.result.method == "full_ft")
    # 30 s: halfway from 0.60 (20 s) to 0.80 (40 s); the last evaluation before it said 0.60
    assert between.score(full, 300) == pytest.approx(0.70) and at_last.score(full, 300) == pytest.approx(0.60)
    # before the first evaluation: on the way from the baseline (0.5) to 0.55 at 10 s, not the baseline
    assert between.score(full, 50) == pytest.approx(0.525) and at_last.score(full, 50) == pytest.approx(0.5)
    # at an evaluation and past the last one both agree
    for cost in (200, 800, 5000):
        assert between.score(full, cost) == pytest.approx(at_last.score(full, cost))
    assert list(between.outcomes("time_25")) == pytest.approx(list(at_last.outcomes("time_25")))  # 20 s: evaluated


def test_the_fixed_rule_weighs_each_task_group_once_whatever_its_number_of_sets():
    from recommender.metamodel.replay_eval import method_ranking, task_sets

    def run(task, size, method, metric):
        row = _row(task, size, method)
        row.result.best_metric = metric
        return row

    # group "big": three sizes, lora 0.8 and head_only 0.6 (head_only 0.2 behind); group "small":
    # one, head_only 0.8 and lora 0.5 (lora 0.3 behind). Per set lora would lead (0.075 against
    # 0.15); per group head_only does (0.1 against 0.15)
    rows = [run("big", n, m, v) for n in (300, 400, 500) for m, v in (("lora", 0.8), ("head_only", 0.6))]
    rows += [run("small", 300, "lora", 0.5), run("small", 300, "head_only", 0.8)]
    rows += [_row(t, n, "full_ft") for t, n in (("big", 300), ("big", 400), ("big", 500), ("small", 300))]
    sets = task_sets(rows)
    assert len(sets) == 4 and {s.group for s in sets} == {"big", "small"}
    assert method_ranking(sets, "params_1m")[:2] == ["head_only", "lora"]


def test_the_benchmarks_no_kb_files_flag_keeps_the_shipped_evaluation_files(monkeypatch):
    """``benchmarks/metamodel.py --no-kb-files`` (e.g. on a throwaway knowledge base) must not
    overwrite ``data/knowledge_base/evaluation.{json,png}``: the scenarios section writes them too."""
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("bench_metamodel", bench / "metamodel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    default = module.build_params(module.parse_args([]))
    assert default["scenarios"]["write_kb_files"] is True  # the shipped evaluation is written by default
    params = module.build_params(module.parse_args(["--no-kb-files"]))
    assert params["scenarios"]["write_kb_files"] is False and params["evaluation"]["write_kb_files"] is False


def test_the_pairwise_diagnostics_score_held_out_pairs(synthetic_kb):
    """Identical curves on every task: the model fitted without a task orders its pairs perfectly;
    at 25 % of the time the rule (lora) is the best run of every set, so nothing beats it."""
    from recommender.metamodel.pairwise import PairwiseRuleModel
    from recommender.metamodel.replay_eval import pairwise_diagnostics

    out = pairwise_diagnostics(synthetic_kb, PairwiseRuleModel(min_samples_leaf=1, max_iter=30))
    assert out["confidence"] == 0.9
    t25 = out["scenarios"]["time_25"]
    assert t25["pairs"] == 5 * 6 and t25["auc"] == 1.0  # 3 configurations: 6 ordered pairs per set
    assert t25["vs_rule"]["pairs"] == 5 * 2 and t25["vs_rule"]["won"] == 0.0
    assert t25["vs_rule"]["auc"] is None and t25["vs_rule"]["confident"] == 0
    assert t25["vs_rule"]["max_probability"] < 0.1
    # under 1 M trainable parameters only lora and head_only are feasible: one pair each way per set
    assert out["scenarios"]["params_1m"]["pairs"] == 5 * 2
