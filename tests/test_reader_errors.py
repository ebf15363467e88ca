"""Bad input raises the right RecommenderError subclass with a message that says what to fix."""

from __future__ import annotations

import pytest

from recommender.errors import DataError, DataFileNotFoundError, RecommenderError, UnknownNameError
from recommender.tasks import bundled_task_names, load_task

GOOD_ROWS = [(f"text number {i}", "a" if i % 2 else "b") for i in range(10)]


def test_missing_file_raises_file_not_found(tmp_task_files) -> None:
    missing = tmp_task_files.root / "nope.csv"
    with pytest.raises(DataFileNotFoundError) as info:
        load_task(missing)
    assert isinstance(info.value, RecommenderError) and isinstance(info.value, FileNotFoundError)
    assert "nope.csv" in str(info.value)


def test_folder_without_train_file_says_how_to_name_it(tmp_task_files) -> None:
    tmp_task_files.delimited("data/dev.csv", ["text", "label"], GOOD_ROWS)
    with pytest.raises(DataFileNotFoundError, match=r"no train\.\* file"):
        load_task(tmp_task_files.root / "data")


def test_empty_file_is_reported_as_empty(tmp_task_files) -> None:
    path = tmp_task_files.raw("empty.csv", b"")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        load_task(path)
    blank = tmp_task_files.raw("blank.jsonl", b"\n  \n")
    with pytest.raises(DataError, match="empty"):
        load_task(blank)


def test_header_only_csv_says_no_data_rows(tmp_task_files) -> None:
    path = tmp_task_files.text("head.csv", "text,label\n")
    with pytest.raises(DataError, match="no data rows"):
        load_task(path)


def test_unknown_label_column_lists_the_columns_present(tmp_task_files) -> None:
    path = tmp_task_files.delimited("r.csv", ["Review Body", "stars", "id"],
                                    [(t, y, i) for i, (t, y) in enumerate(GOOD_ROWS)])
    with pytest.raises(DataError) as info:
        load_task(path, text_col="Review Body", label_col="rating")
    message = str(info.value)
    assert "'rating'" in message and "not found" in message
    for column in ("Review Body", "stars", "id"):
        assert column in message


def test_unknown_text_column_names_it_and_lists_other_columns(tmp_task_files) -> None:
    path = tmp_task_files.delimited("r.csv", ["Review Body", "stars", "id"],
                                    [(t, y, i) for i, (t, y) in enumerate(GOOD_ROWS)])
    with pytest.raises(DataError) as info:
        load_task(path, text_col="body", label_col="stars")
    message = str(info.value)
    assert "'body'" in message and "not found" in message
    assert "Review Body" in message and "id" in message


def test_unknown_text_column_message_lists_every_column(tmp_task_files) -> None:
    path = tmp_task_files.delimited("r.csv", ["Review Body", "stars"], GOOD_ROWS)
    with pytest.raises(DataError) as info:
        load_task(path, text_col="body", label_col="stars")
    assert "stars" in str(info.value).split("columns present:")[1]


def test_uninferable_columns_ask_for_an_explicit_name(tmp_task_files) -> None:
    path = tmp_task_files.delimited("r.csv", ["Review Body", "stars"], GOOD_ROWS)
    with pytest.raises(DataError) as info:
        load_task(path)
    message = str(info.value)
    assert "label" in message and "Review Body" in message and "stars" in message
    assert "--label-col" in message


def test_single_class_label_column_is_rejected(tmp_task_files) -> None:
    path = tmp_task_files.delimited("one.csv", ["text", "label"], [(f"t {i}", "spam") for i in range(10)])
    with pytest.raises(DataError) as info:
        load_task(path)
    message = str(info.value)
    assert "single class" in message and "'spam'" in message and "at least two" in message


def test_non_utf8_bytes_name_the_line(tmp_task_files) -> None:
    path = tmp_task_files.raw("latin1.csv", "text,label\nhello,a\nworld,b\ncafé,a\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        load_task(path)
    message = str(info.value)
    assert "line 4" in message and "UTF-8" in message and "0xe9" in message


def test_utf8_bom_is_accepted(tmp_task_files) -> None:
    content = "text,label\n" + "".join(f"{t},{y}\n" for t, y in GOOD_ROWS)
    path = tmp_task_files.raw("bom.csv", b"\xef\xbb\xbf" + content.encode("utf-8"))
    task = load_task(path)
    assert task.spec.text_col == "text"  # the BOM is not glued to the first column name


def test_ragged_csv_row_names_the_line(tmp_task_files) -> None:
    path = tmp_task_files.text("ragged.csv", "text,label\nhello,a\nworld,b\nthree,fields,here\nok,a\n")
    with pytest.raises(DataError) as info:
        load_task(path)
    message = str(info.value)
    assert "line 4" in message and "3 fields" in message and "header has 2" in message


def test_ragged_tsv_row_names_the_line(tmp_task_files) -> None:
    path = tmp_task_files.text("ragged.tsv", "text\tlabel\nhello\ta\nshort\nworld\tb\n")
    with pytest.raises(DataError) as info:
        load_task(path)
    assert "line 3" in str(info.value) and "1 fields" in str(info.value)


def test_invalid_jsonl_line_is_named(tmp_task_files) -> None:
    path = tmp_task_files.text("bad.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        load_task(path)


def test_file_over_the_size_limit_is_rejected(tmp_task_files) -> None:
    rows = [(f"some reasonably long review text number {i} " * 3, "a" if i % 2 else "b") for i in range(12000)]
    path = tmp_task_files.delimited("big.csv", ["text", "label"], rows)
    size = path.stat().st_size
    assert size > 1_500_000
    with pytest.raises(DataError) as info:
        load_task(path, max_file_bytes=1_000_000)
    message = str(info.value)
    assert "big.csv" in message and "limit" in message and "max_file_bytes" in message
    assert f"{size / 1e6:.1f} MB" in message and "1.0 MB" in message
    # the same file is fine under the default limit
    assert len(load_task(path).train) > 0


def test_unknown_bundled_task_lists_valid_names() -> None:
    with pytest.raises(UnknownNameError) as info:
        load_task("nosuch_task")
    assert isinstance(info.value, RecommenderError)
    message = str(info.value)
    assert message.startswith("unknown task 'nosuch_task'")
    for name in bundled_task_names():
        assert name in message


def test_dev_label_never_seen_in_train_is_rejected(tmp_task_files) -> None:
    tmp_task_files.delimited("d/train.csv", ["text", "label"], GOOD_ROWS)
    tmp_task_files.delimited("d/dev.csv", ["text", "label"], [("x", "a"), ("y", "zebra")])
    with pytest.raises(DataError) as info:
        load_task(tmp_task_files.root / "d")
    message = str(info.value)
    assert "'zebra'" in message and "never seen in train" in message


def test_empty_label_cell_names_the_row(tmp_task_files) -> None:
    path = tmp_task_files.text("gap.csv", "text,label\nhello,a\nworld,\nagain,b\n")
    with pytest.raises(DataError) as info:
        load_task(path)
    message = str(info.value)
    assert "row 3" in message and "empty" in message


def test_non_numeric_label_in_regression_is_rejected(tmp_task_files) -> None:
    path = tmp_task_files.text("reg.csv", "text,score\na,0.5\nb,1.5\nc,high\nd,2.5\n")
    with pytest.raises(DataError) as info:
        load_task(path, task_type="regression")
    assert "'high'" in str(info.value) and "not a number" in str(info.value)


def test_unsupported_suffix_lists_supported_ones(tmp_task_files) -> None:
    path = tmp_task_files.text("data.xlsx", "whatever")
    with pytest.raises(DataError) as info:
        load_task(path)
    assert "'.xlsx'" in str(info.value) and ".csv" in str(info.value) and ".jsonl" in str(info.value)
