"""Exported bundles are safe: hostile names reach train.py only as data, and --force replaces only
an earlier bundle, never the current folder, a home folder or a folder holding the run store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.export import ExportError, export_recommendation, is_bundle

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": str(ROOT)}
CANDIDATE = {"method": "head_only", "params": {"learning_rate": 1e-3}, "predicted": {"metric": 0.7}}
#: what an attacker could put in a file or column name: quotes, triple quotes, newlines,
#: backslashes, format braces, unicode, and code that writes a PWNED file when evaluated
HOSTILE_FILE = "a\"\"\"+'''\\ {x} é\u202e.csv"
HOSTILE_TEXT = "X'''+str(__import__('os').system('touch PWNED'));T={#"
HOSTILE_LABEL = 'L"""\n__import__("os").system("touch PWNED")\n"""\\'


def _hostile_data(folder: Path) -> Path:
    import csv

    path = folder / HOSTILE_FILE
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([HOSTILE_TEXT, HOSTILE_LABEL])
        for i in range(40):
            good = i % 2 == 0
            writer.writerow([("a fine good film " if good else "a dull bad film ") + str(i), "pos" if good else "neg"])
    return path


def _run_help(bundle: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(bundle / "train.py"), "--help"], capture_output=True, text=True,
                          env=ENV, cwd=cwd, timeout=120)


def _assert_no_side_effect(*folders: Path) -> None:
    for folder in folders:
        assert not list(folder.rglob("PWNED")), f"hostile name was executed (PWNED in {folder})"


def test_hostile_names_in_a_recommendation_bundle_stay_data(tmp_path):
    data = _hostile_data(tmp_path)
    ref = {"source": str(data), "overrides": {"text_col": HOSTILE_TEXT, "label_col": HOSTILE_LABEL}}
    candidate = {**CANDIDATE, "rationale": HOSTILE_TEXT, "notes": HOSTILE_LABEL}
    bundle = export_recommendation(candidate, ref, {"task_type": "classification"}, tmp_path / "bundle")
    script = (bundle / "train.py").read_text()
    assert HOSTILE_TEXT not in script and "PWNED" not in script and HOSTILE_FILE not in script
    proc = _run_help(bundle, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "usage:" in proc.stdout
    _assert_no_side_effect(tmp_path, ROOT)
    config = json.loads((bundle / "config.json").read_text(encoding="utf-8"))
    assert config["task"]["ref"]["source"] == str(data)
    assert config["task"]["ref"]["overrides"] == {"text_col": HOSTILE_TEXT, "label_col": HOSTILE_LABEL}


def test_hostile_names_from_a_searched_store_stay_data_and_train_py_uses_them(tmp_path):
    """A real search on the hostile file, exported by the CLI; the bundle's train.py --help runs
    without side effects and a real retrain finds the hostile columns through config.json."""
    from recommender.search.config import SearchConfig, TaskRef
    from recommender.search.study import run_search

    data = _hostile_data(tmp_path)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ref = TaskRef(str(data), {"text_col": HOSTILE_TEXT, "label_col": HOSTILE_LABEL}, max_train=16, max_dev=8)
    result = run_search(ref, url, "s'''\"\"\"", SearchConfig(methods=("head_only",), n_trials=1, max_epochs=1,
                                                             trial_time_budget=60, isolation="none"))
    assert result.best, result.counts
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([sys.executable, "-m", "recommender.cli", "export", "--storage", url, "--study",
                           "s'''\"\"\"", "--out", "b"], capture_output=True, text=True, env=ENV, cwd=work,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    bundle = work / "b"
    assert _run_help(bundle, work).returncode == 0
    retrain = subprocess.run([sys.executable, str(bundle / "train.py"), "--out", str(work / "retrained")],
                             capture_output=True, text=True, env=ENV, cwd=work, timeout=300)
    assert retrain.returncode == 0, retrain.stderr[-2000:]
    assert "dev accuracy:" in retrain.stdout
    _assert_no_side_effect(tmp_path, ROOT)


# --- --force -------------------------------------------------------------------------------
def _bundle(out: Path, force: bool = False) -> Path:
    return export_recommendation(CANDIDATE, "glue_sst2", {"task_type": "classification"}, out, force=force)


def test_force_replaces_an_earlier_bundle(tmp_path):
    bundle = _bundle(tmp_path / "b")
    assert is_bundle(bundle)
    (bundle / "stale.txt").write_text("old")
    _bundle(bundle, force=True)
    assert (bundle / "config.json").is_file() and not (bundle / "stale.txt").exists()


def test_force_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    (out / "config.json").write_text('{"not": "a bundle"}')
    (out / "train.py").write_text("print('mine')")
    with pytest.raises(ExportError, match="not an earlier bundle"):
        _bundle(out, force=True)
    assert (out / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize("where", ["cwd", "cwd_parent", "home"])
def test_force_never_replaces_the_current_or_home_folder(tmp_path, monkeypatch, where):
    cwd = tmp_path / "project" / "here"
    cwd.mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RECOMMENDER_HOME", str(tmp_path / "rhome"))
    target = {"cwd": cwd, "cwd_parent": cwd.parent, "home": home}[where]
    # even a folder that looks like a bundle is refused there
    _bundle(tmp_path / "src")
    for name in ("config.json", "train.py"):
        (target / name).write_bytes((tmp_path / "src" / name).read_bytes())
    (target / "keep.txt").write_text("keep")
    with pytest.raises(ExportError, match="will not replace"):
        _bundle(Path("." if where == "cwd" else target), force=True)
    assert (target / "keep.txt").read_text() == "keep"


def test_force_never_replaces_a_folder_holding_the_run_store(tmp_path):
    """Through the CLI: the run store's folder (or a parent) is refused even if it looks like a bundle."""
    store = tmp_path / "runs" / "deep"
    store.mkdir(parents=True)
    (store / "r.db").write_bytes(b"")
    _bundle(tmp_path / "src")
    for target in (store, tmp_path / "runs"):
        for name in ("config.json", "train.py"):
            (target / name).write_bytes((tmp_path / "src" / name).read_bytes())
        proc = subprocess.run([sys.executable, "-m", "recommender.cli", "export", "--storage",
                               f"sqlite:///{store / 'r.db'}", "--study", "s", "--out", str(target), "--force"],
                              capture_output=True, text=True, env={**ENV, "RECOMMENDER_HOME": str(tmp_path / "rh")},
                              cwd=tmp_path, timeout=120)
        assert proc.returncode != 0
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "run store" in lines[0], proc.stderr
        assert (store / "r.db").exists()
