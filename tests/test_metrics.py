"""Task metrics agree with the reference implementations and the official SQuAD definitions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from seqeval.metrics import f1_score as seqeval_f1
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from recommender.tasks.metrics import (
    classification_metrics,
    ner_metrics,
    normalize_answer,
    qa_metrics,
    regression_metrics,
)

Y_TRUE = [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
Y_PRED = [0, 0, 1, 1, 1, 2, 2, 2, 0, 2]


def test_classification_metrics_equal_scikit_learn() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(accuracy_score(Y_TRUE, Y_PRED))
    assert m["macro_f1"] == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    assert m["mcc"] == pytest.approx(matthews_corrcoef(Y_TRUE, Y_PRED))


def test_classification_metrics_by_hand() -> None:
    m = classification_metrics(Y_TRUE, Y_PRED)
    assert m["accuracy"] == pytest.approx(0.7)
    # per class F1: 0 -> P 2/3 R 2/3; 1 -> P 2/3 R 2/3; 2 -> P 3/4 R 3/4
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)
    perfect = classification_metrics([0, 1, 1, 0], [0, 1, 1, 0])
    # two classes: also the positive class's F1; micro-F1 without a negative class = accuracy
    assert perfect == {"accuracy": 1.0, "macro_f1": 1.0, "micro_f1": 1.0, "mcc": 1.0, "f1": 1.0}
    inverted = classification_metrics([0, 1, 1, 0], [1, 0, 0, 1])
    assert inverted["accuracy"] == 0.0 and inverted["mcc"] == pytest.approx(-1.0)


def test_regression_metrics_equal_scipy() -> None:
    rng = np.random.default_rng(0)
    truth = rng.uniform(0, 5, size=40)
    pred = truth + rng.normal(0, 1, size=40)
    m = regression_metrics(truth.tolist(), pred.tolist())
    assert m["pearson"] == pytest.approx(pearsonr(truth, pred)[0])
    assert m["spearman"] == pytest.approx(spearmanr(truth, pred)[0])
    assert m["mse"] == pytest.approx(float(np.mean((truth - pred) ** 2)))


def test_regression_spearman_is_rank_based() -> None:
    truth = [1.0, 2.0, 3.0, 4.0, 5.0]
    pred = [1.0, 4.0, 9.0, 16.0, 100.0]  # monotone, not linear
    m = regression_metrics(truth, pred)
    assert m["spearman"] == pytest.approx(1.0)
    assert m["pearson"] < 0.95


def test_constant_regression_prediction_scores_zero_not_nan() -> None:
    m = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert (m["pearson"], m["spearman"]) == (0.0, 0.0)


def test_squad_normalisation_drops_case_punctuation_and_articles() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("theatre") == "theatre"  # 'the' only as a whole word


def test_squad_exact_match_and_f1_follow_the_official_definition() -> None:
    predictions = ["the Eiffel Tower.", "in 1889", "Paris France", "Berlin"]
    golds = [
        ["Eiffel Tower"],             # EM 1 after normalisation, F1 1
        ["1889", "in the year 1889"],  # EM 0; F1 0.8 (see below)
        ["Paris"],                    # EM 0; F1 P 1/2 R 1 -> 2/3
        ["Rome"],                     # EM 0; F1 0
    ]
    # 2nd: vs "1889": pred tokens [in, 1889], common 1 -> P 1/2 R 1 -> 2/3
    #      vs "in the year 1889" -> [in, year, 1889]: common 2 -> P 1 R 2/3 -> 0.8; max = 0.8
    m = qa_metrics(predictions, golds)
    assert m["exact_match"] == pytest.approx(1 / 4)
    assert m["f1"] == pytest.approx((1 + 0.8 + 2 / 3 + 0) / 4)


def test_squad_takes_the_best_gold_answer() -> None:
    m = qa_metrics(["a red car"], [["blue car", "Red car!"]])
    assert m == {"exact_match": 1.0, "f1": 1.0}
    assert qa_metrics([], []) == {"exact_match": 0.0, "f1": 0.0}


def test_ner_f1_equals_seqeval() -> None:
    y_true = [["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-ORG", "I-ORG", "O", "B-PER"]]
    y_pred = [["B-PER", "I-PER", "O", "B-ORG", "O"], ["B-ORG", "O", "O", "B-PER"]]
    m = ner_metrics(y_true, y_pred)
    assert m["f1"] == pytest.approx(seqeval_f1(y_true, y_pred))
    # entities: true {PER, LOC, ORG(0-1), PER}; pred {PER, ORG(3), ORG(0), PER} -> 2 correct of 4 / 4
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["token_accuracy"] == pytest.approx(7 / 9)


def test_the_constant_classifiers_score_by_hand_equals_the_scorers_on_every_bundled_task() -> None:
    """What `recommend` shows as the constant predictor's score (no scikit-learn on a warm answer)
    is what every run records for it, on every bundled classification task and metric."""
    from recommender.baselines import constant_baseline
    from recommender.metamodel.recommend import _baseline
    from recommender.tasks import bundled_spec, bundled_task_names, load_task
    from recommender.types import MetaFeatures

    mf = MetaFeatures(version=1, fingerprint="f", task_type="classification", n_train=1, n_dev=1, n_labels=2,
                      label_entropy=1.0, imbalance_ratio=1.0, is_pair=False, language="en", eval_language="en",
                      cross_lingual=False, tokens_mean=10.0, tokens_p95=20.0, unk_rate=0.0, fertility=1.0,
                      model_params=1)

    checked = 0
    for name in bundled_task_names():
        if bundled_spec(name)[0].task_type != "classification":
            continue
        task = load_task(name)
        measured, _ = constant_baseline(task)
        for metric, value in measured.items():
            if metric in ("average_precision", "roc_auc"):  # need scores, not a constant class
                continue
            assert _baseline(task, mf, metric) == pytest.approx(value, abs=1e-9), (name, metric)
            checked += 1
    assert checked >= 100


def test_the_constant_classifiers_score_follows_each_metrics_definition() -> None:
    from recommender.training.scoring import ConstantPredictor, ScoringSpec

    dev = [0, 0, 0, 1, 2]  # always predicting class 0: precision 3/5, recall 1 for it

    def score(name: str, majority: int, n_labels: int, positive: int = 1, negative: int | None = None) -> float:
        spec = ScoringSpec("classification", name, n_labels, positive=positive, negative=negative)
        constant = ConstantPredictor.fit(spec, [majority])  # one training label: it is the majority
        value = constant.metric(dev, name)
        assert value == pytest.approx(constant.score(dev).metrics()[name])  # the scorer's own number
        return value

    assert score("accuracy", 0, 3) == pytest.approx(0.6)
    assert score("macro_f1", 0, 3) == pytest.approx(0.75 / 3)
    assert score("micro_f1", 0, 3) == pytest.approx(0.6)
    assert score("micro_f1", 0, 3, negative=0) == 0.0  # only the left-out class
    assert score("micro_f1", 1, 3, negative=0) == pytest.approx(2 * 1 / (5 + 2))
    assert score("mcc", 0, 3) == 0.0
    dev = [0, 0, 0, 1, 1]  # two classes for the one-class F1
    assert score("f1", 0, 2, positive=0) == pytest.approx(0.75)
    assert score("f1", 0, 2, positive=1) == 0.0
