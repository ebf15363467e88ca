"""`kb export` writes to the user's folder (or --out), never into the shipped knowledge base;
keeps file modes; and a storage that does not exist is an error that creates nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "knowledge_base" / "runs.jsonl"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def env(tmp_path) -> dict:
    """A private data folder (a copy of a few shipped rows) and user folder for the subprocess."""
    data = tmp_path / "data" / "knowledge_base"
    data.mkdir(parents=True)
    with open(SHIPPED, encoding="utf-8") as fh:
        rows = [next(fh) for _ in range(3)]
    (data / "runs.jsonl").write_text("".join(rows), encoding="utf-8")
    os.chmod(data / "runs.jsonl", 0o644)
    return {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "RECOMMENDER_DATA_DIR": str(tmp_path / "data"),
            "RECOMMENDER_HOME": str(tmp_path / "home")}


@pytest.fixture
def store(tmp_path) -> str:
    """A real SQLite run store holding one run of ours (a shipped run's record, no training)."""
    import optuna

    from recommender.store import STUDY_ATTR, open_storage, result_attrs
    from recommender.types import RunResult

    row = json.loads(SHIPPED.read_text(encoding="utf-8").splitlines()[0])
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    study = optuna.create_study(study_name="mine", storage=open_storage(url, heartbeat=False))
    study.set_user_attr(STUDY_ATTR, {"kind": "search", "task_name": "mine", "metafeatures": row["metafeatures"]})
    trial = study.ask()
    for key, value in result_attrs(RunResult.from_dict(row["result"])).items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.5)
    return url


def run(env: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recommender.cli", "kb", "export", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    return lines[0]


def test_default_output_is_the_user_folder_not_the_shipped_file(env, store, tmp_path):
    shipped = Path(env["RECOMMENDER_DATA_DIR"]) / "knowledge_base" / "runs.jsonl"
    before = _sha(shipped)
    proc = run(env, "--storage", store, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = Path(env["RECOMMENDER_HOME"]) / "knowledge_base" / "runs.jsonl"
    assert out.is_file() and str(out) in proc.stdout
    assert [json.loads(line)["run_id"] for line in out.read_text().splitlines()] == ["mine#0"]
    assert _sha(shipped) == before and stat.S_IMODE(shipped.stat().st_mode) == 0o644
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600


def test_explicit_out_keeps_its_mode_and_merges(env, store, tmp_path):
    out = tmp_path / "kb.jsonl"
    shutil.copy(Path(env["RECOMMENDER_DATA_DIR"]) / "knowledge_base" / "runs.jsonl", out)
    os.chmod(out, 0o640)
    proc = run(env, "--storage", store, "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(out.read_text().splitlines()) == 4
    assert stat.S_IMODE(out.stat().st_mode) == 0o640


@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/nope.db", "{tmp}/nope.log", None])
def test_missing_storage_is_an_error_that_creates_nothing(env, tmp_path, storage):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [] if storage is None else ["--storage", storage.format(tmp=tmp_path)]
    line = _one_error_line(run(env, *args, cwd=tmp_path))
    assert "no run store at" in line
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
