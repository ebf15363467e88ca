"""Bad input, one table: every case exits non-zero with exactly one `error:` line, no traceback,
and writes nothing (run in an empty folder with the user folder and HOME pointed there too).

Every case must fail during validation, before any training, so the table stays fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOOD = "good.csv"
TRAIN = ["train", GOOD, "--method", "head_only"]

#: (id, argv, a fragment the error line must contain: the message has to say what is wrong)
CASES = [
    # 11: every float from a user is finite or rejected
    ("set-lr-nan", [*TRAIN, "--set", "learning_rate=nan"], "finite"),
    ("set-lr-inf", [*TRAIN, "--set", "learning_rate=inf"], "finite"),
    ("set-wd-neg-inf", [*TRAIN, "--set", "weight_decay=-inf"], "finite"),
    ("set-batch-nan", [*TRAIN, "--set", "batch_size=nan"], "batch_size"),
    ("train-time-budget-nan", [*TRAIN, "--time-budget", "nan"], "finite"),
    ("train-time-budget-inf", [*TRAIN, "--time-budget", "inf"], "finite"),
    ("train-time-budget-nan-m", [*TRAIN, "--time-budget", "nanm"], "finite"),
    ("train-max-epochs-nan", [*TRAIN, "--max-epochs", "nan"], "finite"),
    ("train-max-epochs-inf", [*TRAIN, "--max-epochs", "inf"], "finite"),
    ("train-target-nan", [*TRAIN, "--target", "nan"], "finite"),
    ("search-time-budget-nan", ["search", GOOD, "--study", "s", "--time-budget", "nan"], "finite"),
    ("search-latency-nan", ["search", GOOD, "--study", "s", "--n-trials", "1", "--latency-budget-ms", "nan"],
     "finite"),
    ("recommend-latency-nan", ["recommend", GOOD, "--latency-budget-ms", "nan"], "finite"),
    ("recommend-latency-inf", ["recommend", GOOD, "--latency-budget-ms", "inf"], "finite"),
    ("recommend-storage-mb-nan", ["recommend", GOOD, "--storage-budget-mb", "nan"], "finite"),
    ("sweep-max-epochs-nan", ["sweep", "--tasks", "glue_sst2", "--max-epochs", "nan"], "finite"),
    ("search-max-epochs-nan", ["search", GOOD, "--study", "s", "--n-trials", "1", "--max-epochs", "nan"], "finite"),
    ("search-heartbeat-0", ["search", GOOD, "--study", "s", "--n-trials", "1", "--heartbeat-interval", "0"],
     ">= 1"),
    ("search-metric-rmse", ["search", GOOD, "--study", "s", "--n-trials", "1", "--metric", "rmse"],
     "not available for classification"),
    ("train-precision-fp8", [*TRAIN, "--precision", "fp8"], "invalid choice"),
    ("sweep-lr-grid-nan", ["sweep", "--tasks", "glue_sst2", "--lr-grid", "nan"], "finite"),
    # 12: checked before any work
    ("train-max-dev-0", [*TRAIN, "--max-dev", "0"], ">= 1"),
    ("train-latency-batch-0", [*TRAIN, "--latency-batch", "0"], ">= 1"),
    ("compare-max-dev-0", ["compare", GOOD, "--out", "o", "--max-dev", "0"], ">= 1"),
    ("train-patience-0", [*TRAIN, "--patience", "0"], ">= 1"),
    # 13: no tracebacks
    ("train-max-train-neg", [*TRAIN, "--max-train", "-5"], ">= 1"),
    ("describe-dev-null", ["describe", "/dev/null"], "neither a regular file nor a folder"),
    ("describe-fifo", ["describe", "fifo.csv"], "neither a regular file nor a folder"),
    ("describe-folder-with-fifo", ["describe", "fifo_dir"], "no train"),
    # 14: wrongly accepted before
    ("search-empty-study", ["search", GOOD, "--study", "", "--n-trials", "1"], "study"),
    ("search-blank-study", ["search", GOOD, "--study", "  ", "--n-trials", "1"], "study"),
    ("export-empty-study", ["export", "--study", "", "--out", "b"], "study"),
    ("export-newline-study", ["export", "--study", "a\nb", "--out", "b"], "study"),
    ("recommend-top-0", ["recommend", GOOD, "--top", "0"], ">= 1"),
    ("recommend-n-tasks-0", ["recommend", GOOD, "--n-tasks", "0"], ">= 1"),
    ("label-list", ["describe", "list_labels.jsonl"], "is a JSON list"),
    ("label-dict", ["describe", "dict_labels.jsonl"], "is a JSON dict"),
    ("label-nan", ["describe", "nan_labels.jsonl"], "not a finite number"),
    ("text-dict", ["describe", "dict_text.jsonl"], "expected a string"),
    ("recommend-missing-storage", ["recommend", GOOD, "--storage", "sqlite:///nope.db"], "no run store at"),
    ("meta-fit-missing-storage", ["meta", "fit", "--storage", "sqlite:///nope.db"], "no run store at"),
    ("kb-export-missing-storage", ["kb", "export", "--storage", "sqlite:///nope.db"], "no run store at"),
    ("kb-export-missing-default", ["kb", "export"], "no run store at"),
    ("export-missing-storage", ["export", "--storage", "sqlite:///nope.db", "--study", "s", "--out", "b"],
     "no such"),
    # 15: messages that say what is wrong
    ("all-texts-empty", ["describe", "empty_texts.csv"], "every text in column 'text' is empty"),
    ("one-per-class", ["describe", "one_per_class.csv"], "no class has enough examples"),
    ("text-col-is-label-col", ["describe", GOOD, "--text-col", "label", "--label-col", "label"], "must differ"),
    ("ftp-storage-recommend", ["recommend", GOOD, "--storage", "ftp://host/db"], "sqlite, postgresql"),
    ("ftp-storage-search", ["search", GOOD, "--study", "s", "--n-trials", "1", "--storage", "ftp://h/db"],
     "sqlite, postgresql"),
    ("ftp-storage-worker", ["worker", "--storage", "ftp://h/db", "--study", "s"], "sqlite, postgresql"),
    ("mysql-storage-export", ["export", "--storage", "mysql://h/db", "--study", "s", "--out", "b"],
     "sqlite, postgresql"),
    ("storage-not-a-url", ["kb", "export", "--storage", "runs.db"], "not a URL"),
    ("storage-is-a-folder", ["recommend", GOOD, "--storage", "sqlite:///fifo_dir"], "not a regular file"),
    # argument errors stay one line too
    ("not-a-number", [*TRAIN, "--max-train", "ten"], "--max-train"),
    ("unknown-command", ["frobnicate"], "invalid choice"),
]


def _write_inputs(folder: Path) -> None:
    rows = [("a fine good film" if i % 2 else "a dull bad film", "pos" if i % 2 else "neg") for i in range(20)]
    (folder / GOOD).write_text("text,label\n" + "".join(f"{t},{lab}\n" for t, lab in rows))
    (folder / "empty_texts.csv").write_text("text,label\n" + '" ",pos\n' * 10 + '"",neg\n' * 10)
    (folder / "one_per_class.csv").write_text("text,label\n" + "".join(f"text {i},class{i}\n" for i in range(40)))
    for name, label in (("list", ["pos"]), ("dict", {"y": "pos"})):
        lines = [json.dumps({"text": f"t {i}", "label": "neg"}) for i in range(9)]
        lines.append(json.dumps({"text": "t", "label": label}))
        (folder / f"{name}_labels.jsonl").write_text("\n".join(lines) + "\n")
    lines = [json.dumps({"text": f"t {i}", "label": "neg"}) for i in range(9)] + ['{"text": "t", "label": NaN}']
    (folder / "nan_labels.jsonl").write_text("\n".join(lines) + "\n")
    lines = [json.dumps({"text": {"a": 1}, "label": "neg"})] * 3
    (folder / "dict_text.jsonl").write_text("\n".join(lines) + "\n")
    os.mkfifo(folder / "fifo.csv")
    (folder / "fifo_dir").mkdir()
    os.mkfifo(folder / "fifo_dir" / "train.csv")


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.lstat().st_mtime_ns for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad_input")
    work, home = root / "work", root / "home"
    work.mkdir()
    home.mkdir()
    _write_inputs(work)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home), "RECOMMENDER_HOME": str(home / "rec"),
           "XDG_DATA_HOME": str(home / "share"), "XDG_CACHE_HOME": str(home / "cache"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return {"root": root, "work": work, "env": env}


@pytest.mark.parametrize("argv,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_error_line_and_writes_nothing(sandbox, argv, fragment):
    root = sandbox["root"]
    before = _tree(root)
    proc = subprocess.run([sys.executable, "-m", "recommender.cli", *argv], capture_output=True, text=True,
                          env=sandbox["env"], cwd=sandbox["work"], timeout=120)
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and proc.stderr.startswith("error:"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert fragment in errors[0], errors[0]
    assert _tree(root) == before, "a failed command wrote files"


def test_library_rejects_the_same_inputs_without_blocking_on_a_fifo(tmp_path):
    """The checks live in the library too (the app and scripts do not go through argparse)."""
    from recommender.config_utils import check_range, check_storage_url
    from recommender.errors import ConfigError, DataError, StorageNotFoundError
    from recommender.store import require_storage
    from recommender.tasks import load_task

    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match="neither a regular file nor a folder"):
        load_task(tmp_path / "pipe.csv")  # would block forever if it were opened
    (tmp_path / GOOD).write_text("text,label\n" + "".join(f"t {i},{'ab'[i % 2]}\n" for i in range(20)))
    task = load_task(tmp_path / GOOD)
    for bad in (-5, 0, 2.5):
        with pytest.raises(ConfigError, match="expected an integer >= 1"):
            task.subsample(bad, None)
    for value in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ConfigError, match="not a finite number"):
            check_range("C", "x", value, 0, 1)
    with pytest.raises(ConfigError, match="supported schemes: sqlite, postgresql"):
        check_storage_url("ftp://host/db")
    assert check_storage_url("postgresql+psycopg2://u@127.0.0.1:5432/test") == \
        "postgresql+psycopg2://u@127.0.0.1:5432/test"
    with pytest.raises(StorageNotFoundError, match="no run store at"):
        require_storage(f"sqlite:///{tmp_path / 'nope.db'}")
    assert not (tmp_path / "nope.db").exists()
