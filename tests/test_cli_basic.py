"""The command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.tasks import bundled_task_names


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "recommender.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_help_exits_zero_and_lists_commands() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("tasks", "describe", "train", "compare"):
        assert command in proc.stdout


def test_console_script_entry_point_runs() -> None:
    script = Path(sys.executable).parent / "recommender"
    if not script.exists():
        pytest.skip("the `recommender` console script is not installed next to this interpreter")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "usage: recommender" in proc.stdout


def test_tasks_lists_every_bundled_task() -> None:
    proc = run_cli("tasks")
    assert proc.returncode == 0, proc.stderr
    names = bundled_task_names()
    assert len(names) >= 16
    for name in names:
        assert name in proc.stdout
    assert f"{len(names)} tasks" in proc.stdout


def test_tasks_json_has_one_row_per_task() -> None:
    proc = run_cli("tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) >= 16
    assert sorted(r["name"] for r in rows) == bundled_task_names()
    assert any("->" in r["language"] for r in rows)  # the cross-lingual ones say so


def test_describe_bundled_task_json_prints_one_object_with_metafeatures() -> None:
    proc = run_cli("describe", "glue_rte", "--json")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1
    out = json.loads(proc.stdout)
    assert isinstance(out, dict)
    mf = out["metafeatures"]
    assert mf["n_train"] == 2490 and mf["n_dev"] == 277
    assert mf["n_labels"] == 2 and mf["is_pair"] is True and mf["language"] == "en"
    assert mf["tokens_mean"] > 0 and len(mf["fingerprint"]) == 16
    assert out["task"]["name"] == "glue_rte"


def test_describe_user_csv_with_explicit_columns(tmp_task_files) -> None:
    rows = [(f"The product number {i} was {'great' if i % 2 else 'bad'}.", 5 if i % 2 else 1)
            for i in range(20)]
    path = tmp_task_files.delimited("reviews.csv", ["Review Body", "stars"], rows)
    proc = run_cli("describe", str(path), "--text-col", "Review Body", "--label-col", "stars", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["task"]["text_col"] == "Review Body" and out["task"]["label_col"] == "stars"
    mf = out["metafeatures"]
    assert (mf["n_train"], mf["n_dev"], mf["n_labels"]) == (16, 4, 2)
    assert mf["language"] == "en" and mf["unk_rate"] == 0.0
    assert any("split" in note for note in out["notes"])


def test_describe_user_csv_plain_text_output(tmp_task_files) -> None:
    rows = [(f"The product number {i} was fine.", "a" if i % 2 else "b") for i in range(10)]
    path = tmp_task_files.delimited("r.csv", ["Review Body", "stars"], rows)
    proc = run_cli("describe", str(path), "--text-col", "Review Body", "--label-col", "stars")
    assert proc.returncode == 0, proc.stderr
    assert "classification" in proc.stdout and "label_entropy" in proc.stdout


@pytest.mark.parametrize("args, words", [
    (("describe", "nosuch_task"), ["unknown task 'nosuch_task'", "glue_rte"]),
    (("describe", "missing_file.csv"), ["missing_file.csv"]),
])
def test_describe_bad_task_prints_one_error_line_without_traceback(args, words, tmp_path) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    for word in words:
        assert word in lines[0]


def test_describe_unknown_column_is_a_clean_error(tmp_task_files) -> None:
    path = tmp_task_files.delimited("r.csv", ["Review Body", "stars"], [("a", 1), ("b", 2)] * 5)
    proc = run_cli("describe", str(path), "--text-col", "Review Body", "--label-col", "rating")
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error:") and "'rating'" in proc.stderr and "stars" in proc.stderr
