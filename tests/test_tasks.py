"""Task loading: every bundled task, and user files in every supported format."""

from __future__ import annotations

import json
import math

import pytest

from recommender.metafeatures import detect_language
from recommender.paths import tasks_dir
from recommender.tasks import bundled_spec, bundled_task_names, load_task, task_from_rows
from recommender.types import TASK_TYPES

BUNDLED = bundled_task_names()


def _declared(name: str) -> dict:
    """The task's spec exactly as written in data/tasks/<name>/task.json."""
    return json.loads((tasks_dir() / name / "task.json").read_text(encoding="utf-8"))


# --- bundled tasks -------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_task_loads_with_documented_counts_and_valid_labels(name: str) -> None:
    declared = _declared(name)
    task = load_task(name)

    assert task.name == name
    assert task.task_type == declared["task_type"]
    assert len(task.train) == declared["n_train"]
    assert len(task.dev) == declared["n_dev"]
    assert (task.spec.n_train, task.spec.n_dev) == (declared["n_train"], declared["n_dev"])

    if task.task_type == "classification":
        assert task.label_names == declared["label_names"]
        for split in (task.train, task.dev):
            labels = list(split["label"])
            assert all(isinstance(y, int) and 0 <= y < task.num_labels for y in labels)
        assert len(set(task.train["label"])) >= 2
    elif task.task_type == "token_classification":
        assert task.num_labels >= 2
        for split in (task.train, task.dev):
            for tokens, tags in zip(split["tokens"], split["tags"], strict=True):
                assert len(tokens) == len(tags) > 0
                assert all(0 <= t < task.num_labels for t in tags)
    elif task.task_type == "regression":
        assert task.num_labels == 1
        for split in (task.train, task.dev):
            assert all(isinstance(y, float) and math.isfinite(y) for y in split["label"])
        assert len(set(task.train["label"])) > 2
    else:  # extractive_qa: every gold answer is the span of the context it points at
        for split in (task.train, task.dev):
            for row in split:
                answers = row["answers"]
                assert answers["text"]
                for text, start in zip(answers["text"], answers["answer_start"], strict=True):
                    assert row["context"][start:start + len(text)] == text


def test_bundled_tasks_cover_every_task_type_and_at_least_16_tasks() -> None:
    assert len(BUNDLED) >= 16
    assert {bundled_spec(n)[0].task_type for n in BUNDLED} == set(TASK_TYPES)


def test_bundled_tasks_span_at_least_five_languages() -> None:
    languages = set()
    for name in BUNDLED:
        spec = bundled_spec(name)[0]
        languages |= {spec.language, spec.eval_language}
    languages.discard("und")
    assert len(languages) >= 5, languages


def test_cross_lingual_task_trains_in_one_language_and_evaluates_in_another() -> None:
    cross = [n for n in BUNDLED if bundled_spec(n)[0].cross_lingual]
    assert cross, "no cross-lingual bundled task"
    task = load_task(cross[0]).subsample(300, 300, seed=0)
    assert task.spec.language != task.spec.eval_language
    assert detect_language(task.texts("train")) == task.spec.language
    assert detect_language(task.texts("dev")) == task.spec.eval_language


# --- user files ----------------------------------------------------------------------------
REVIEWS = [(f"review number {i} was {'great' if i % 3 else 'awful'}", 5 if i % 3 else 1) for i in range(30)]


def _all_rows(task) -> list[dict]:
    return list(task.train) + list(task.dev)


def test_csv_with_unusual_column_names_loads_with_explicit_columns(tmp_task_files) -> None:
    path = tmp_task_files.delimited("reviews.csv", ["id", "Review Body", "stars"],
                                    [(i, t, s) for i, (t, s) in enumerate(REVIEWS)])
    task = load_task(path, text_col="Review Body", label_col="stars")
    assert task.task_type == "classification"
    assert task.label_names == ["1", "5"]
    assert len(task.train) + len(task.dev) == 30
    by_text = {r["text"]: task.label_names[r["label"]] for r in _all_rows(task)}
    assert by_text == {t: str(s) for t, s in REVIEWS}


def test_tsv_with_unusual_column_names_loads_with_explicit_columns(tmp_task_files) -> None:
    path = tmp_task_files.delimited("reviews.tsv", ["Review Body", "stars"], REVIEWS, delimiter="\t")
    task = load_task(path, text_col="Review Body", label_col="stars")
    assert task.label_names == ["1", "5"]
    assert {r["text"] for r in _all_rows(task)} == {t for t, _ in REVIEWS}


def test_jsonl_with_unusual_column_names_loads_with_explicit_columns(tmp_task_files) -> None:
    path = tmp_task_files.jsonl("reviews.jsonl", [{"Review Body": t, "stars": s} for t, s in REVIEWS])
    task = load_task(path, text_col="Review Body", label_col="stars")
    assert task.task_type == "classification"
    assert task.label_names == ["1", "5"]
    by_text = {r["text"]: task.label_names[r["label"]] for r in _all_rows(task)}
    assert by_text == {t: str(s) for t, s in REVIEWS}


def test_standard_pair_columns_are_inferred(tmp_task_files) -> None:
    rows = [(f"premise {i}", f"hypothesis {i}", "entailment" if i % 2 else "contradiction")
            for i in range(20)]
    path = tmp_task_files.delimited("nli.csv", ["sentence1", "sentence2", "label"], rows)
    task = load_task(path)
    assert (task.spec.text_col, task.spec.text_pair_col, task.spec.label_col) == \
        ("sentence1", "sentence2", "label")
    assert task.spec.is_pair
    assert task.task_type == "classification"
    assert set(task.train.column_names) == {"text", "text_pair", "label"}
    for r in _all_rows(task):
        i = int(r["text"].split()[1])
        assert r["text_pair"] == f"hypothesis {i}"


def test_single_file_split_is_seeded_stratified_and_reproducible(tmp_task_files) -> None:
    rows = [(f"positive text {i}", "pos") for i in range(30)] + \
           [(f"negative text {i}", "neg") for i in range(20)]
    path = tmp_task_files.delimited("one.csv", ["text", "label"], rows)

    first, second = load_task(path), load_task(path)
    other_seed = load_task(path, seed=99)

    # stratified: 20% of each class goes to dev
    dev_labels = [first.label_names[y] for y in first.dev["label"]]
    assert sorted(dev_labels) == ["neg"] * 4 + ["pos"] * 6
    assert len(first.train) == 40
    # a partition of the file
    assert set(first.train["text"]) | set(first.dev["text"]) == {t for t, _ in rows}
    assert not set(first.train["text"]) & set(first.dev["text"])
    # the same seed gives the same split; another seed another one
    assert list(first.dev["text"]) == list(second.dev["text"])
    assert first.fingerprint == second.fingerprint
    assert set(other_seed.dev["text"]) != set(first.dev["text"])
    assert any("split" in note for note in first.notes)


def test_folder_with_train_and_dev_csv_uses_both_files(tmp_task_files) -> None:
    train = [(f"train text {i}", "a" if i % 2 else "b") for i in range(12)]
    dev = [(f"dev text {i}", "b" if i % 2 else "a") for i in range(5)]
    tmp_task_files.delimited("data/train.csv", ["text", "label"], train)
    tmp_task_files.delimited("data/dev.csv", ["text", "label"], dev)
    task = load_task(tmp_task_files.root / "data")
    assert list(task.train["text"]) == [t for t, _ in train]
    assert list(task.dev["text"]) == [t for t, _ in dev]
    assert [task.label_names[y] for y in task.dev["label"]] == [y for _, y in dev]
    assert task.spec.dev_file.endswith("dev.csv")
    assert not any("split" in note for note in task.notes)


def test_glue_style_tsv_with_unbalanced_quotes_keeps_one_row_per_line(tmp_task_files) -> None:
    lines = [
        "index\tsentence1\tsentence2\tlabel",
        '0\tHe said "hello and left.\tA man spoke.\tentailment',
        "1\tThe 12\" record sold well.\tA record sold.\tnot_entailment",
        '2\t"Quoted start without end\tNo quote here.\tentailment',
        "3\tA plain sentence.\tAnother plain one.\tnot_entailment",
        '4\tShe wrote "yes" twice.\tShe wrote.\tentailment',
        "5\tLast line.\tThe end.\tnot_entailment",
    ]
    path = tmp_task_files.text("rte.tsv", "\n".join(lines) + "\n")
    task = load_task(path)
    rows = _all_rows(task)
    assert len(rows) == 6  # no line swallowed by an open quote
    texts = {r["text"] for r in rows}
    assert 'He said "hello and left.' in texts
    assert 'The 12" record sold well.' in texts
    assert '"Quoted start without end' in texts
    pairs = {r["text"]: r["text_pair"] for r in rows}
    assert pairs['"Quoted start without end'] == "No quote here."
    assert task.spec.is_pair


def test_tsv_with_standard_quoting_is_unquoted(tmp_task_files) -> None:
    rows = [('He said "hi" there', "a"), ("plain", "b"), ("more", "a"), ("x", "b"), ("other", "a")]
    path = tmp_task_files.delimited("quoted.tsv", ["text", "label"], rows, delimiter="\t")
    assert '"He said ""hi"" there"' in path.read_text(encoding="utf-8")  # how csv/pandas write it
    assert 'He said "hi" there' in {r["text"] for r in _all_rows(load_task(path))}


def test_float_labels_are_detected_as_regression(tmp_task_files) -> None:
    rows = [(f"pair text {i}", f"{(i % 7) * 0.75:.2f}") for i in range(25)]
    path = tmp_task_files.delimited("sts.csv", ["text", "score"], rows)
    task = load_task(path)
    assert task.task_type == "regression"
    assert task.spec.metric == "pearson"
    assert task.label_names is None
    expected = {t: float(s) for t, s in rows}
    assert {r["text"]: r["label"] for r in _all_rows(task)} == expected


def test_integer_star_labels_stay_classification(tmp_task_files) -> None:
    rows = [{"text": f"text {i}", "label": i % 5 + 1} for i in range(40)]
    task = load_task(tmp_task_files.jsonl("stars.jsonl", rows))
    assert task.task_type == "classification"
    assert task.label_names == ["1", "2", "3", "4", "5"]


CONLL = """-DOCSTART- -X- -X- O

John NNP B-NP B-PER
Smith NNP I-NP I-PER
lives VBZ B-VP O
in IN B-PP O
Paris NNP B-NP B-LOC
. . O O

Mary NNP B-NP B-PER
Jones NNP I-NP I-PER
visited VBD B-VP O
Berlin NNP B-NP B-LOC

"""


def test_conll_token_per_line_file_is_token_classification(tmp_task_files) -> None:
    path = tmp_task_files.text("ner.conll", CONLL * 5)
    task = load_task(path)
    assert task.task_type == "token_classification"
    assert task.spec.metric == "f1"
    assert task.label_names == ["B-LOC", "B-PER", "I-PER", "O"]
    assert len(task.train) + len(task.dev) == 10  # sentences, -DOCSTART- dropped
    rows = _all_rows(task)
    first = next(r for r in rows if r["tokens"][0] == "John")
    assert first["tokens"] == ["John", "Smith", "lives", "in", "Paris", "."]
    assert [task.label_names[t] for t in first["tags"]] == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]


def test_conll_txt_file_is_recognised_by_content(tmp_task_files) -> None:
    path = tmp_task_files.text("ner.txt", CONLL * 5)
    assert load_task(path).task_type == "token_classification"


def _squad(n: int) -> dict:
    paragraphs = []
    for i in range(n):
        context = f"Item {i} was built in {1900 + i} by the Acme company in Springfield."
        year = str(1900 + i)
        paragraphs.append({"context": context, "qas": [{
            "id": f"q{i}", "question": f"When was item {i} built?",
            "answers": [{"text": year, "answer_start": context.index(year)},
                        {"text": f"in {year}", "answer_start": context.index(f"in {year}")}],
        }]})
    return {"version": "1.1", "data": [{"title": "Things", "paragraphs": paragraphs}]}


def test_squad_format_json_is_extractive_qa(tmp_task_files) -> None:
    path = tmp_task_files.json("qa.json", _squad(10))
    task = load_task(path)
    assert task.task_type == "extractive_qa"
    assert task.spec.metric == "f1"
    assert len(task.train) == 8 and len(task.dev) == 2
    rows = _all_rows(task)
    assert {r["id"] for r in rows} == {f"q{i}" for i in range(10)}
    for r in rows:
        assert r["question"].startswith("When was item")
        assert len(r["answers"]["text"]) == 2
        for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"], strict=True):
            assert r["context"][start:start + len(text)] == text


def test_task_from_rows_builds_a_task_from_memory() -> None:
    train = [{"comment": f"good {i}", "sentiment": "pos"} for i in range(4)] + \
            [{"comment": f"bad {i}", "sentiment": "neg"} for i in range(4)]
    dev = [{"comment": "good x", "sentiment": "pos"}, {"comment": "bad x", "sentiment": "neg"}]
    task = task_from_rows(train, dev, name="upload")
    assert task.name == "upload"
    assert (task.spec.text_col, task.spec.label_col) == ("comment", "sentiment")
    assert task.label_names == ["neg", "pos"]
    assert len(task.train) == 8 and len(task.dev) == 2
    assert [task.label_names[y] for y in task.dev["label"]] == ["pos", "neg"]

    split = task_from_rows(train * 3, name="upload")  # no dev rows: split off train
    assert len(split.train) + len(split.dev) == 24 and len(split.dev) > 0


@pytest.mark.parametrize("name", ["glue_stsb", "wnut17", "squad", "glue_mrpc"])
def test_a_task_is_identified_without_building_its_datasets(name: str) -> None:
    """The fingerprint (which finds cached meta-features) is the same read from the rows as from
    the built ``datasets.Dataset``: a warm recommendation never builds (or imports) it."""
    fresh = load_task(name)
    from_rows = fresh.fingerprint
    assert all(isinstance(split, list) for split in fresh._splits.values())  # nothing built for it
    built = load_task(name)
    assert len(built.train) == built.spec.n_train and len(built.dev) == built.spec.n_dev  # builds both
    assert built.fingerprint == from_rows
    column = "label" if built.task_type in ("classification", "regression") else built.dev.column_names[0]
    assert fresh.column("dev", column) == built.column("dev", column) == list(built.dev[column])
    assert fresh.column("dev", "no such column") is None and built.column("dev", "no such column") is None


def test_a_user_file_is_identified_the_same_from_rows_and_datasets(tmp_task_files) -> None:
    # integer and decimal scores in one column: the rows must still hash as Arrow's floats do
    rows = [(f"sentence {i}", str(i % 5) if i % 2 else f"{i % 5}.5") for i in range(30)]
    path = tmp_task_files.delimited("scores.csv", ["sentence", "score"], rows)
    fresh, built = load_task(path, label_col="score"), load_task(path, label_col="score")
    assert fresh.task_type == "regression"
    _ = built.train, built.dev
    assert fresh.fingerprint == built.fingerprint
