"""Meta-features on small hand-made files, checked against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recommender.metafeatures import METAFEATURES_VERSION, compute_metafeatures
from recommender.tasks import load_task, task_from_rows

EN_TRAIN = [
    ("The cat sat on the mat.", "a"),
    ("It was a sunny day in the park.", "a"),
    ("I like reading books in the evening.", "a"),
    ("The train to the city was late again.", "a"),
    ("She plays the piano with her friends.", "b"),
    ("We cooked dinner and watched a film.", "b"),
    ("The river is long and very wide.", "c"),
    ("He bought a new bicycle for the trip.", "c"),
]
EN_DEV = [("The dog is asleep.", "a"), ("They went home early.", "b"), ("A quiet morning.", "c")]


def _expected_lengths(tokenizer, texts, pairs=None) -> list[int]:
    encoded = tokenizer(texts, pairs) if pairs is not None else tokenizer(texts)
    return [len(ids) for ids in encoded["input_ids"]]


@pytest.fixture
def english_task(tmp_task_files):
    tmp_task_files.delimited("en/train.csv", ["text", "label"], EN_TRAIN)
    tmp_task_files.delimited("en/dev.csv", ["text", "label"], EN_DEV)
    return load_task(tmp_task_files.root / "en")


def test_counts_labels_and_balance_match_hand_computed_values(english_task) -> None:
    mf = compute_metafeatures(english_task)
    assert mf.version == METAFEATURES_VERSION
    assert mf.task_type == "classification"
    assert (mf.n_train, mf.n_dev, mf.n_labels) == (8, 3, 3)
    # p = (4/8, 2/8, 2/8): H = 0.5 ln 2 + 2 * 0.25 ln 4 = 1.5 ln 2, normalised by ln 3
    assert mf.label_entropy == pytest.approx(1.5 * math.log(2) / math.log(3), abs=1e-6)
    assert mf.imbalance_ratio == 2.0  # 4 "a" / 2 "b"
    assert mf.is_pair is False
    assert (mf.language, mf.eval_language, mf.cross_lingual) == ("en", "en", False)
    assert mf.model_name == "all-MiniLM-L6-v2"
    assert mf.model_params > 1_000_000


def test_plain_english_has_no_unknown_pieces(english_task) -> None:
    assert compute_metafeatures(english_task).unk_rate == 0.0


def test_token_statistics_match_the_bundled_tokenizer(english_task, bundled_tokenizer) -> None:
    mf = compute_metafeatures(english_task)
    texts = [t for t, _ in EN_TRAIN]
    lengths = _expected_lengths(bundled_tokenizer, texts)
    assert mf.tokens_mean == pytest.approx(float(np.mean(lengths)))
    assert mf.tokens_p95 == pytest.approx(float(np.percentile(lengths, 95)))
    pieces = sum(len(bundled_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    words = sum(len(t.split()) for t in texts)
    assert mf.fertility == pytest.approx(pieces / words)


def test_unknown_pieces_are_counted(bundled_tokenizer) -> None:
    train = [{"text": f"word{i} \U0001F600 \U0001F680", "label": "x" if i % 2 else "y"} for i in range(6)]
    task = task_from_rows(train, [{"text": "\U0001F600", "label": "x"}], language="en")
    ids = [i for r in train for i in bundled_tokenizer(r["text"], add_special_tokens=False)["input_ids"]]
    expected = sum(i == bundled_tokenizer.unk_token_id for i in ids) / len(ids)
    assert expected > 0
    assert compute_metafeatures(task).unk_rate == pytest.approx(expected)


def test_sentence_pairs_are_measured_as_pairs(tmp_task_files, bundled_tokenizer) -> None:
    train = [(f"A man is playing instrument number {i}.", f"Someone plays music {i}.",
              "yes" if i % 2 else "no") for i in range(6)]
    dev = [("A woman sings.", "Someone sings.", "yes"), ("A dog runs.", "A cat sleeps.", "no")]
    tmp_task_files.delimited("p/train.csv", ["sentence1", "sentence2", "label"], train)
    tmp_task_files.delimited("p/dev.csv", ["sentence1", "sentence2", "label"], dev)
    mf = compute_metafeatures(load_task(tmp_task_files.root / "p"))
    assert mf.is_pair is True
    assert (mf.n_labels, mf.label_entropy, mf.imbalance_ratio) == (2, 1.0, 1.0)
    lengths = _expected_lengths(bundled_tokenizer, [a for a, _, _ in train], [b for _, b, _ in train])
    assert mf.tokens_mean == pytest.approx(float(np.mean(lengths)))
    assert mf.tokens_p95 == pytest.approx(float(np.percentile(lengths, 95)))


def test_regression_has_one_label_and_no_entropy() -> None:
    train = [{"text": f"sentence {i}", "score": i / 4} for i in range(10)]
    task = task_from_rows(train, [{"text": "x", "score": 0.3}], language="en")
    mf = compute_metafeatures(task)
    assert mf.task_type == "regression"
    assert (mf.n_train, mf.n_dev, mf.n_labels, mf.label_entropy, mf.imbalance_ratio) == (10, 1, 1, 0.0, 1.0)
    assert mf.is_pair is False


def test_token_classification_counts_tags() -> None:
    train = [{"tokens": ["John", "lives", "here"], "tags": ["B-PER", "O", "O"]},
             {"tokens": ["Mary", "Smith"], "tags": ["B-PER", "I-PER"]}]
    dev = [{"tokens": ["Bob"], "tags": ["B-PER"]}]
    mf = compute_metafeatures(task_from_rows(train, dev, language="en"))
    assert mf.task_type == "token_classification"
    assert (mf.n_train, mf.n_dev, mf.n_labels) == (2, 1, 3)
    # tag counts B-PER 2, O 2, I-PER 1 -> p = (.4, .4, .2)
    entropy = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2)) / math.log(3)
    assert mf.label_entropy == pytest.approx(entropy, abs=1e-6)
    assert mf.imbalance_ratio == 2.0


LANGUAGE_SAMPLES = {
    "en": ["The food was good and the service was friendly.", "It is not what I wanted for the price.",
           "The room was clean and the bed was comfortable.", "I waited an hour for the taxi to arrive."],
    "de": ["Das Essen war gut und der Service ist freundlich.", "Ich bin mit dem Zimmer nicht zufrieden.",
           "Die Lage ist super und das Personal ist nett.", "Der Kaffee war kalt und die Musik zu laut."],
    "zh": ["这家酒店的服务非常好，房间也很干净。", "我们等了一个小时，菜还没有上来。",
           "价格便宜，交通方便，下次还会再来。", "早餐种类太少了，味道也一般。"],
    "ja": ["このホテルはとても綺麗で、スタッフも親切でした。", "料理が美味しくて、また来たいと思います。",
           "部屋が狭くて、少し残念でした。", "駅から近いので、とても便利です。"],
    "ko": ["이 호텔은 정말 깨끗하고 직원들이 친절했어요.", "음식이 너무 맛있어서 다시 오고 싶어요.",
           "방이 좁고 조금 시끄러웠습니다.", "역에서 가까워서 아주 편리합니다."],
}


@pytest.mark.parametrize("language", sorted(LANGUAGE_SAMPLES))
def test_language_is_detected_from_the_file(tmp_task_files, language: str) -> None:
    texts = LANGUAGE_SAMPLES[language]
    rows = [(t, "pos" if i % 2 else "neg") for i, t in enumerate(texts)]
    tmp_task_files.delimited(f"{language}/train.csv", ["text", "label"], rows + rows[::-1])
    tmp_task_files.delimited(f"{language}/dev.csv", ["text", "label"], rows)
    task = load_task(tmp_task_files.root / language)
    assert task.spec.language == "und"  # nothing declared: detection decides
    mf = compute_metafeatures(task)
    assert (mf.language, mf.eval_language, mf.cross_lingual) == (language, language, False)


def test_declared_language_wins_over_detection(tmp_task_files) -> None:
    tmp_task_files.delimited("d/train.csv", ["text", "label"], [(t, "a" if i % 2 else "b")
                                                               for i, t in enumerate(LANGUAGE_SAMPLES["en"])])
    tmp_task_files.delimited("d/dev.csv", ["text", "label"], [("x", "a")])
    mf = compute_metafeatures(load_task(tmp_task_files.root / "d", language="fr"))
    assert mf.language == "fr"


def test_fingerprint_is_stable_and_changes_with_the_data(tmp_task_files) -> None:
    rows = [(f"sentence {i}", "a" if i % 2 else "b") for i in range(20)]
    same_a = tmp_task_files.delimited("x/data.csv", ["text", "label"], rows)
    same_b = tmp_task_files.delimited("y/data.csv", ["text", "label"], rows)
    changed_text = tmp_task_files.delimited("z/data.csv", ["text", "label"],
                                            [("Sentence 0", "b")] + rows[1:])
    changed_label = tmp_task_files.delimited("w/data.csv", ["text", "label"],
                                             [("sentence 0", "a")] + rows[1:])
    fp = compute_metafeatures(load_task(same_a)).fingerprint
    assert len(fp) == 16
    assert compute_metafeatures(load_task(same_a)).fingerprint == fp
    assert compute_metafeatures(load_task(same_b)).fingerprint == fp
    assert load_task(changed_text).fingerprint != fp
    assert load_task(changed_label).fingerprint != fp


def test_metafeatures_of_a_10k_row_file_are_complete(tmp_task_files, english_task) -> None:
    # the < 5 s speed target is measured in benchmarks/metafeatures.py, not asserted here
    compute_metafeatures(english_task)  # load the tokenizer and count parameters once
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india"]
    rows = [(" ".join(words[(i + k) % len(words)] for k in range(5 + i % 30)) + f" item {i}",
             f"class{i % 4}") for i in range(10_000)]
    task = load_task(tmp_task_files.delimited("big.csv", ["text", "label"], rows))
    mf = compute_metafeatures(task)
    assert mf.n_train + mf.n_dev == 10_000 and mf.n_labels == 4
    assert mf.label_entropy == pytest.approx(1.0)
    assert mf.tokens_p95 > mf.tokens_mean > 5


@pytest.mark.parametrize("name", ["glue_mrpc", "glue_stsb", "wnut17", "squad"])
def test_metafeatures_read_the_rows_without_building_datasets(name: str) -> None:
    """A cold recommendation computes meta-features from the rows as read (no ``datasets``
    import, a second of the answer); they equal those read from the built Datasets, pairs,
    tags and QA included."""
    fresh = load_task(name)
    computed = compute_metafeatures(fresh)
    assert all(isinstance(split, list) for split in fresh._splits.values())  # nothing built
    built = load_task(name)
    _ = built.train, built.dev
    assert compute_metafeatures(built) == computed
    assert built.texts("train") == fresh.texts("train") and built.texts("dev") == fresh.texts("dev")
    assert (fresh.n_rows("train"), fresh.n_rows("dev")) == (built.n_rows("train"), built.n_rows("dev"))
