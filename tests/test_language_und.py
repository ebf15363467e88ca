"""An undetermined language (`und`) never makes a task cross-lingual."""

from __future__ import annotations

from recommender.metafeatures import compute_metafeatures, detect_language
from recommender.tasks.task import task_from_rows

ENGLISH = "the film was good and the actors were fine in it, it is a film that is worth the time"


def test_short_dev_texts_detected_as_und_do_not_make_a_task_cross_lingual():
    train = [{"text": f"{ENGLISH} {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    dev = [{"text": f"{i} {i + 1}", "label": "pos" if i % 2 else "neg"} for i in range(6)]  # no letters
    task = task_from_rows(train, dev, name="short_dev")
    assert detect_language(task.texts("train")) == "en" and detect_language(task.texts("dev")) == "und"
    features = compute_metafeatures(task)
    assert features.language == "en" and features.eval_language == "en"
    assert features.cross_lingual is False


def test_und_training_language_is_not_cross_lingual_either():
    train = [{"text": f"zzz qqq {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    dev = [{"text": f"{ENGLISH} {i}", "label": "pos" if i % 2 else "neg"} for i in range(6)]
    features = compute_metafeatures(task_from_rows(train, dev, name="und_train"))
    assert features.language == "und" and features.cross_lingual is False


def test_a_real_language_pair_stays_cross_lingual():
    train = [{"text": f"{ENGLISH} {i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    german = "der film ist nicht gut und die schauspieler sind mit ihm zu langsam"
    dev = [{"text": f"{german} {i}", "label": "pos" if i % 2 else "neg"} for i in range(6)]
    features = compute_metafeatures(task_from_rows(train, dev, name="en_de"))
    assert (features.language, features.eval_language, features.cross_lingual) == ("en", "de", True)
