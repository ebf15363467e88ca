"""Metrics a do-nothing model cannot win: the default metric chosen from the labels, --metric
validation, score-based metrics, the constant-predictor baseline beside every run, and the
bundled tasks' official metrics."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from recommender.cli import main
from recommender.errors import ConfigError
from recommender.tasks.metrics import check_metric, choose_metric
from recommender.training.scoring import ConstantPredictor, Scored, ScoringSpec

WORDS = ["good", "bad", "fine", "poor", "great", "awful", "nice", "dull"]


def _imbalanced_rows(n: int = 300, positive_share: float = 0.07, seed: int = 0) -> list[list[str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "yes" if i < int(n * positive_share) else "no"
        rows.append([f"question {i} " + " ".join(rng.choices(WORDS, k=6)), label])
    rng.shuffle(rows)
    return rows


@pytest.mark.parametrize(("counts", "metric"), [
    ([93, 7], "mcc"), ([50, 50], "accuracy"), ([61, 39], "mcc"), ([34, 33, 33], "accuracy"),
    ([61, 27, 12], "macro_f1"), ([40, 35, 20, 5], "macro_f1"),
])
def test_default_metric_follows_the_label_balance(counts: list[int], metric: str) -> None:
    chosen, reason = choose_metric("classification", counts)
    assert chosen == metric
    assert ("imbalanced" in reason) == (metric != "accuracy")


def test_a_7_percent_positive_file_gets_mcc_with_the_reason_printed(tmp_task_files, capsys) -> None:
    path = tmp_task_files.delimited("answers.tsv", ["question", "is_answer"], _imbalanced_rows(),
                                    delimiter="\t")
    assert main(["describe", str(path), "--label-col", "is_answer"]) == 0
    out = capsys.readouterr().out
    assert "metric: mcc (classes are imbalanced: 93 % / 7 %" in out
    assert main(["describe", str(path), "--label-col", "is_answer", "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)["task"]
    assert spec["metric"] == "mcc" and spec["positive_label"] == "yes"  # the rare class


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "rmse"], "error: metric 'rmse' is not available for classification; choose one of accuracy"),
    (["--metric", "pearson"], "error: metric 'pearson' is not available for classification"),
])
def test_metric_override_is_validated_against_the_task_type(tmp_task_files, capsys, args, message) -> None:
    path = tmp_task_files.delimited("answers.csv", ["question", "is_answer"], _imbalanced_rows())
    assert main(["describe", str(path), "--label-col", "is_answer", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_binary_only_metrics_are_refused_for_three_classes(tmp_task_files, capsys) -> None:
    rows = [[f"text {i} " + WORDS[i % 8], ["a", "b", "c"][i % 3]] for i in range(90)]
    path = tmp_task_files.delimited("three.csv", ["text", "label"], rows)
    assert main(["describe", str(path), "--metric", "roc_auc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: metric 'roc_auc' is not available for classification with 3 classes")
    with pytest.raises(ConfigError):
        check_metric("regression", "accuracy")


def test_average_precision_and_roc_auc_come_from_scores_not_labels() -> None:
    spec = ScoringSpec("classification", "roc_auc", 2, ["no", "yes"], positive=1)
    truth = [0, 0, 0, 1, 1]
    # every predicted label is "no", but the scores rank the two positives highest
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.55, 0.45]])
    scored = Scored(spec, truth, [0] * 5, probs)
    metrics = scored.metrics()
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["roc_auc"] == pytest.approx(1.0)
    assert metrics["average_precision"] == pytest.approx(1.0)
    assert metrics["f1"] == 0.0 and metrics["mcc"] == 0.0


def test_the_constant_predictor_scores_what_a_do_nothing_model_scores() -> None:
    spec = ScoringSpec("classification", "accuracy", 2, ["no", "yes"])
    constant = ConstantPredictor.fit(spec, [0] * 93 + [1] * 7)
    baseline = constant.score([0] * 90 + [1] * 10).metrics()
    assert baseline["accuracy"] == pytest.approx(0.9)
    assert baseline["mcc"] == 0.0 and baseline["roc_auc"] == 0.5
    assert baseline["average_precision"] == pytest.approx(0.1)
    assert constant.describe() == "always predicting 'no'"
    regression = ConstantPredictor.fit(ScoringSpec("regression", "pearson", 1), [1.0, 2.0, 3.0])
    assert regression.score([1.0, 5.0]).primary() == 0.0
    assert "training mean 2" in regression.describe()


def test_a_constant_prediction_run_is_reported_with_its_baseline_and_not_learned(tmp_task_files) -> None:
    from recommender.tasks import load_task
    from recommender.training import LatencyConfig, train
    from recommender.types import Budget

    path = tmp_task_files.delimited("answers.csv", ["question", "is_answer"],
                                    _imbalanced_rows(200, positive_share=0.1))
    task = load_task(path, label_col="is_answer", metric="accuracy")
    # a learning rate of ~0 leaves the new head where it starts: no learning
    result = train(task, "head_only", params={"learning_rate": 1e-12}, budget=Budget(max_steps=2),
                   latency=LatencyConfig(enabled=False))
    assert result.baseline_metric is not None and result.best_metric is not None
    assert result.learned is False
    verdict = result.verdict()
    assert "did not learn" in verdict and "always predicting 'no'" in verdict
    assert result.metric_se is not None and result.metric_se > 0


def test_every_bundled_task_uses_the_metric_its_task_json_names() -> None:
    from recommender.paths import tasks_dir
    from recommender.tasks import bundled_spec, bundled_task_names

    names = bundled_task_names()
    assert len(names) >= 29
    for name in names:
        raw = json.loads((tasks_dir() / name / "task.json").read_text(encoding="utf-8"))
        spec, _ = bundled_spec(name)
        assert spec.metric == raw["metric"], name
        assert spec.metric_reason == raw["metric_reason"] and len(spec.metric_reason) > 20, name
        labels = len(spec.label_names) if spec.label_names else None
        check_metric(spec.task_type, spec.metric, labels if spec.task_type == "classification" else None)
    assert bundled_spec("glue_mrpc")[0].metric == "f1" and bundled_spec("glue_mrpc")[0].positive_label == "paraphrase"
    assert bundled_spec("germeval2018_offense")[0].metric == "macro_f1"
    assert bundled_spec("glue_sst2")[0].metric == "accuracy"


def test_compare_reports_each_method_against_full_fine_tuning() -> None:
    from recommender.report import relative_to_reference
    from recommender.types import LatencyStats, RunResult

    def run(method: str, metric: float, seconds: float, b1: float, merged: bool | None = None) -> RunResult:
        return RunResult(task="t", method=method, params={}, status="complete", metric_name="accuracy",
                         best_metric=metric, time_to_best_s=seconds, mergeable=merged,
                         latency=[LatencyStats(1, 64, b1, b1)], base_latency=[LatencyStats(1, 64, 40.0, 40.0)])

    rows = relative_to_reference([run("full_ft", 0.90, 100.0, 40.0), run("lora", 0.88, 60.0, 40.0, True),
                                  run("seq_bn", 0.91, 150.0, 50.0, False)])
    by = {r["method"]: r for r in rows}
    assert by["lora"]["quality_vs_full_ft"] == pytest.approx(-2.0)
    assert by["lora"]["time_vs_full_ft"] == pytest.approx(0.6)
    assert by["seq_bn"]["latency_b1_overhead"] == pytest.approx(0.25)
    assert by["full_ft"]["quality_vs_full_ft"] == 0.0
    assert relative_to_reference([run("lora", 0.8, 1.0, 1.0)]) == []  # no reference, no table


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "micro_f1", "mcc", "f1", "average_precision",
                                    "roc_auc"])
def test_the_fast_bootstrap_scorer_equals_scikit_learn_on_every_resample(metric: str) -> None:
    rng = np.random.default_rng(0)
    n = 120
    truth = rng.integers(0, 2, n)
    probs = np.clip(0.3 * truth + rng.random(n) * 0.7, 0, 1)
    probs[:10] = 0.5  # ties, as sklearn breaks them
    scores = np.stack([1 - probs, probs], axis=1)
    scored = Scored(ScoringSpec("classification", metric, 2, ["a", "b"]), truth.tolist(),
                    (probs > 0.5).astype(int).tolist(), scores)
    fast = scored._resample_scorer()
    for _ in range(5):
        idx = rng.integers(0, n, n)
        assert fast(idx) == pytest.approx(scored.primary(idx), abs=1e-9)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "micro_f1", "mcc"])
def test_the_fast_scorer_equals_scikit_learn_for_several_classes(metric: str) -> None:
    rng = np.random.default_rng(1)
    truth, pred = rng.integers(0, 4, 90), rng.integers(0, 4, 90)
    scored = Scored(ScoringSpec("classification", metric, 4, list("abcd"), negative=0), truth.tolist(),
                    pred.tolist(), None)
    idx = rng.integers(0, 90, 90)
    assert scored._resample_scorer()(idx) == pytest.approx(scored.primary(idx), abs=1e-9)


def test_the_fast_scorer_equals_seqeval_and_squad() -> None:
    gold = [["B-PER", "I-PER", "O"], ["O", "B-LOC"], ["B-ORG", "O", "B-PER"]]
    pred = [["B-PER", "I-PER", "O"], ["B-LOC", "O"], ["B-ORG", "O", "O"]]
    ner = Scored(ScoringSpec("token_classification", "f1", 7), gold, pred)
    idx = np.array([0, 1, 2, 2])
    assert ner._resample_scorer()(idx) == pytest.approx(ner.primary(idx))
    qa = Scored(ScoringSpec("extractive_qa", "f1", 2), [["the cat"], ["a dog", "dog"]], ["cat", "dogs"])
    assert qa._resample_scorer()(np.array([0, 1, 1])) == pytest.approx(qa.primary(np.array([0, 1, 1])))
