"""Knowledge-base analyses: tuned defaults as data (one source for the trainer and the search
spaces), `kb defaults` (learning-rate sweep evidence and --apply) and `kb report` (each method
against full fine-tuning, coverage, tuned defaults), on small synthetic knowledge bases."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.errors import ConfigError
from recommender.kb_analysis.lr_grid import apply_defaults, grid_multiplier, lr_evidence
from recommender.kb_analysis.relative import seed_paper_summary, selected_runs
from recommender.knowledge_base import KnowledgeBaseRow, write_rows
from recommender.paths import REPO_ROOT
from recommender.types import Budget, EvalPoint, LatencyStats, MetaFeatures, RunResult

DEFAULT_LR = {"full_ft": 5e-5, "lora": 5e-4, "unipelt_prompt": 5e-4, "ia3": 3e-3}


def _meta(size: int = 500) -> MetaFeatures:
    return MetaFeatures(version=1, fingerprint="f", task_type="classification", n_train=size, n_dev=200,
                        n_labels=2, label_entropy=1.0, imbalance_ratio=1.0, is_pair=False, language="en",
                        eval_language="en", cross_lingual=False, tokens_mean=10.0, tokens_p95=20.0,
                        unk_rate=0.0, fertility=1.2, model_params=22_713_216)


def _row(task: str, method: str, key: str, metric: float | None, *, baseline: float = 0.5, mult: float = 1.0,
         time_s: float = 10.0, flops: float = 1e12, lat: tuple[float, float] = (11.0, 110.0),
         merged: bool | None = None, status: str = "complete", protocol: int = 2) -> KnowledgeBaseRow:
    latency = [LatencyStats(batch_size=b, seq_len=64, p50_ms=ms, p95_ms=ms, merged=bool(merged))
               for b, ms in zip((1, 32), lat, strict=True)]
    base = [LatencyStats(batch_size=b, seq_len=64, p50_ms=ms, p95_ms=ms) for b, ms in ((1, 10.0), (32, 100.0))]
    result = RunResult(
        task=task, method=method, params={"learning_rate": DEFAULT_LR[method] * mult}, status=status,
        metric_name="accuracy", best_metric=metric, baseline_metric=baseline, time_to_best_s=time_s,
        flops_to_best=flops, latency=latency, base_latency=base, mergeable=merged,
        curve=[EvalPoint(step=1, epoch=0.5, train_seconds=1.0, wall_seconds=1.0, examples=16, tokens=160,
                         metric=baseline)])
    study = f"sweep-p2:{task}:n500"
    return KnowledgeBaseRow(run_id=f"{study}#{key}", study=study, kind="sweep", task=task, size=500,
                            metafeatures=_meta(), result=result, config_key=key, protocol=protocol)


def _grid_rows() -> list[KnowledgeBaseRow]:
    """Two tasks; lora is best at 3x its default, full_ft at its default; a flat third task."""
    rows = []
    for task, (lo, mid, hi) in {"a": (0.7, 0.8, 0.9), "b": (0.6, 0.7, 0.8)}.items():
        rows += [_row(task, "lora", "lora#lr0.3", lo, mult=0.3), _row(task, "lora", "lora#0", mid),
                 _row(task, "lora", "lora#lr3", hi, mult=3)]
        rows += [_row(task, "full_ft", "full_ft#lr0.3", mid - 0.1, mult=0.3),
                 _row(task, "full_ft", "full_ft#0", mid), _row(task, "full_ft", "full_ft#lr3", lo, mult=3)]
    rows += [_row("flat", m, f"{m}#0", 0.5) for m in ("lora", "full_ft")]
    rows.append(_row("flat", "lora", "lora#lr3", 0.5, mult=3))  # the grid ran there, nothing learned
    rows.append(_row("a", "lora", "lora#1", 0.95))  # a sampled configuration: normalizes, is no grid point
    rows.append(_row("a", "lora", "lora#lr3", 0.99, mult=3, protocol=1))  # another protocol: ignored
    return rows


@pytest.mark.parametrize(("key", "method", "expected"), [
    ("lora#0", "lora", 1.0), ("lora#lr3", "lora", 3.0), ("lora#lr0.3", "lora", 0.3), ("lora#lr1e-1", "lora", 0.1),
    ("lora#1", "lora", None), ("ia3#lr3", "lora", None), ("lora#lrnan", "lora", None), ("lora#lr0", "lora", None),
    ("lora#lr3;rm -rf", "lora", None), (None, "lora", None),
])
def test_grid_multiplier_reads_only_the_methods_grid_keys(key, method, expected) -> None:
    assert grid_multiplier(key, method) == expected


def test_lr_evidence_picks_the_known_winner_from_normalized_gains() -> None:
    evidence = lr_evidence(_grid_rows())
    assert evidence.tasks == ("a n=500", "b n=500") and evidence.flat_tasks == ("flat n=500",)
    by = {v.method: v for v in evidence.verdicts}
    assert by["lora"].status == "ok" and by["lora"].winner == 3.0
    assert by["lora"].learning_rate == pytest.approx(1.5e-3)
    assert by["full_ft"].winner == 1.0 and by["full_ft"].learning_rate == pytest.approx(5e-5)
    # task a: best 0.95 (the sampled config), baseline 0.5; task b: best 0.8
    lora_x1 = next(p for p in by["lora"].points if p.multiplier == 1.0)
    assert lora_x1.mean_gain == pytest.approx(((0.8 - 0.5) / 0.45 + (0.7 - 0.5) / 0.3) / 2)
    assert lora_x1.tasks == ("a n=500", "b n=500") and evidence.runs == 15


def test_runs_at_the_tuned_defaults_on_tasks_the_grid_skipped_are_no_grid_points() -> None:
    # a later coverage sweep: only "#0" runs (at the new default learning rate) on task "c"
    rows = _grid_rows() + [_row("c", m, f"{m}#0", 0.9, mult=3) for m in ("lora", "full_ft")]
    evidence = lr_evidence(rows)
    assert "c n=500" not in evidence.tasks and evidence.runs == 15
    by = {v.method: v for v in evidence.verdicts}
    assert by["lora"].status == "ok" and by["lora"].winner == 3.0


def test_a_grid_point_missing_a_task_makes_the_method_incomplete() -> None:
    rows = [r for r in _grid_rows() if not (r.task == "b" and r.config_key == "lora#lr3")]
    by = {v.method: v for v in lr_evidence(rows).verdicts}
    assert by["lora"].winner is None and by["lora"].status.startswith("incomplete")
    assert "x3 1/2" in by["lora"].status
    assert by["full_ft"].status == "ok"


def test_a_diverged_run_counts_as_the_constant_predictor() -> None:
    rows = _grid_rows() + [_row(t, "lora", "lora#lr10", None, mult=10, status="failed") for t in ("a", "b")]
    point = next(p for v in lr_evidence(rows).verdicts if v.method == "lora" for p in v.points if p.multiplier == 10)
    assert point.mean_gain == 0.0 and point.failed == 2


def test_runs_with_different_learning_rates_at_the_winner_are_not_applied(tmp_path) -> None:
    rows = _grid_rows()
    for r in rows:
        if r.task == "b" and r.config_key == "lora#lr3":
            r.result.params["learning_rate"] = 7e-3
    evidence = lr_evidence(rows)
    lora = next(v for v in evidence.verdicts if v.method == "lora")
    assert lora.status.startswith("inconsistent")
    folder = _spaces_copy(tmp_path)
    assert [a.method for a in apply_defaults(evidence, folder)] == ["full_ft"]


def _spaces_copy(tmp_path: Path) -> Path:
    """The shipped search spaces without their tuned defaults (each method on its class default)."""
    folder = tmp_path / "spaces"
    shutil.copytree(REPO_ROOT / "search_spaces", folder)
    for path in folder.glob("*.json"):
        data = json.loads(path.read_text())
        if data.pop("defaults", None) is not None:
            path.write_text(json.dumps(data, indent=4) + "\n")
    return folder


def test_apply_writes_the_winner_keeps_the_file_and_widens_the_range(tmp_path) -> None:
    folder = _spaces_copy(tmp_path)
    before = json.loads((folder / "lora.json").read_text())
    rows = [_row(t, "full_ft", k, m, mult=x) for t in ("a", "b")
            for k, m, x in (("full_ft#0", 0.7, 1), ("full_ft#lr10", 0.8, 10))]
    rows += [_row(t, "lora", k, m, mult=x) for t in ("a", "b")
             for k, m, x in (("lora#0", 0.7, 1), ("lora#lr3", 0.75, 3))]
    applied = {a.method: a for a in apply_defaults(lr_evidence(rows), folder)}
    assert applied["lora"].learning_rate == pytest.approx(1.5e-3) and applied["lora"].widened is None
    after = json.loads((folder / "lora.json").read_text())
    assert after == {**before, "defaults": {"learning_rate": 1.5e-3}}
    full = json.loads((folder / "full_ft.json").read_text())
    assert full["defaults"] == {"learning_rate": 5e-4}
    assert full["params"]["learning_rate"]["high"] == 5e-4 and applied["full_ft"].widened == (1e-5, 5e-4)
    from recommender.search.spaces import get_space

    assert get_space("full_ft", folder).defaults()["learning_rate"] == 5e-4


def _with_defaults(tmp_path: Path, method: str, defaults: object) -> Path:
    folder = _spaces_copy(tmp_path)
    path = folder / f"{method}.json"
    data = json.loads(path.read_text())
    data["defaults"] = defaults
    path.write_text(json.dumps(data, indent=4) + "\n")
    return folder


def test_a_json_default_changes_what_train_and_the_search_space_use(tmp_path, monkeypatch) -> None:
    from recommender.methods import get_method_class
    from recommender.search.spaces import get_space
    from recommender.tasks import load_task
    from recommender.training import LatencyConfig, train

    task = load_task("glue_sst2").subsample(32, 16, seed=0)
    from recommender.training.config import EvalConfig

    quick = {"budget": Budget(max_steps=1, eval_every_steps=1), "latency": LatencyConfig(enabled=False),
             "evaluation": EvalConfig(n_boot=0), "precision": "fp32"}
    monkeypatch.setenv("RECOMMENDER_SEARCH_SPACES_DIR", str(_spaces_copy(tmp_path / "plain")))
    assert train(task, "head_only", **quick).params["learning_rate"] == pytest.approx(3e-3)  # the class's
    folder = _with_defaults(tmp_path, "head_only", {"learning_rate": 0.0123, "batch_size": 8})
    monkeypatch.setenv("RECOMMENDER_SEARCH_SPACES_DIR", str(folder))
    assert get_method_class("head_only").default_lr() == pytest.approx(0.0123)
    result = train(task, "head_only", **quick)
    assert result.status == "complete", result.error
    assert result.params["learning_rate"] == pytest.approx(0.0123)
    assert train(task, "head_only", params={"learning_rate": 1e-3}, **quick).params["learning_rate"] == 1e-3
    defaults = get_space("head_only").defaults()
    assert defaults["learning_rate"] == pytest.approx(0.0123) and defaults["batch_size"] == 8
    assert get_space("lora").defaults()["learning_rate"] == get_method_class("lora").default_learning_rate


@pytest.mark.parametrize(("defaults", "message"), [
    ({"learning_rate": -1.0}, "out of range"), ({"learning_rate": "1e-3"}, "out of range"),
    ({"learning_rate": math.nan}, "out of range"), ({"learning_rate": True}, "out of range"),
    ({"momentum": 0.9}, "not supported"), ([], "must be an object"), ({"batch_size": 8.5}, "integer"),
    ({"batch_size": 12}, "not among the choices"), ({"learning_rate": 0.5}, "outside the searched range"),
])
def test_bad_defaults_are_clear_config_errors(tmp_path, defaults, message) -> None:
    from recommender.search.spaces import load_spaces

    folder = _with_defaults(tmp_path, "lora", defaults)
    with pytest.raises(ConfigError, match=message):
        load_spaces(folder)


def _seed_rows() -> list[KnowledgeBaseRow]:
    """Four tasks; lora is 1, 2, 3, 4 points under full_ft, twice as slow, +30 % latency at batch 1."""
    rows = []
    for i, task in enumerate("abcd"):
        rows.append(_row(task, "full_ft", "full_ft#0", 0.8, time_s=10.0, flops=1e12, lat=(10.0, 100.0)))
        rows.append(_row(task, "lora", "lora#0", 0.79 - 0.01 * i, time_s=20.0, flops=3e12, lat=(13.0, 110.0),
                         merged=False))
        rows.append(_row(task, "lora", "lora#lr3", 0.5, mult=3, time_s=1.0))  # worse: never selected as best
        rows.append(_row(task, "unipelt_prompt", "unipelt_prompt#0", 0.8 + 0.01 * i, time_s=5.0 * (i + 1),
                         lat=(15.0, 150.0), merged=False))
    rows.append(_row("e", "lora", "lora#0", 0.9))  # no full_ft on this task: not compared
    return rows


def test_seed_paper_summary_gives_medians_and_spread_against_full_ft() -> None:
    summaries, per_task = seed_paper_summary(_seed_rows(), "best")
    by = {s.method: s for s in summaries}
    assert summaries[0].method == "full_ft" and sorted(per_task) == ["a n=500", "b n=500", "c n=500", "d n=500"]
    lora = by["lora"]
    assert lora.tasks == 4 and lora.quality_points.median == pytest.approx(-2.5)
    assert (lora.quality_points.q25, lora.quality_points.q75) == pytest.approx((-3.25, -1.75))
    assert lora.time_ratio.median == pytest.approx(2.0) and lora.flops_ratio.median == pytest.approx(3.0)
    assert lora.latency_b1.median == pytest.approx(0.3) and lora.latency_bB.median == pytest.approx(0.1)
    assert lora.merged == "no" and by["full_ft"].merged == "-"
    up = by["unipelt_prompt"]
    assert up.quality_points.median == pytest.approx(1.5) and up.time_ratio.median == pytest.approx(1.25)


def test_best_selection_takes_the_best_grid_point_and_default_the_default() -> None:
    rows = _seed_rows() + [_row("a", "lora", "lora#lr0.3", 0.85, mult=0.3)]
    best = {r.method: r.best_metric for r in selected_runs(rows, "best")["a n=500"]}
    default = {r.method: r.best_metric for r in selected_runs(rows, "default")["a n=500"]}
    assert best["lora"] == 0.85 and default["lora"] == pytest.approx(0.79)
    with pytest.raises(ConfigError, match="expected one of best, default"):
        selected_runs(rows, "worst")


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recommender.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


def _sweep_storage(rows: list[KnowledgeBaseRow], url: str) -> None:
    """Rows as the finished trials of protocol-2 sweep studies, the way `recommender sweep` writes them."""
    import optuna

    from recommender.store import SCHEMA_VERSION, STUDY_ATTR, open_storage, result_attrs

    store = open_storage(url, heartbeat=False)
    for row in rows:
        study = optuna.create_study(study_name=row.study, storage=store, direction="maximize", load_if_exists=True)
        study.set_user_attr(STUDY_ATTR, {"schema": SCHEMA_VERSION, "kind": "sweep", "task_name": row.task,
                                         "size": row.size, "metafeatures": row.metafeatures.to_dict(),
                                         "protocol": row.protocol})
        study.add_trial(optuna.trial.create_trial(value=row.result.best_metric, params={}, distributions={},
                                                  user_attrs={**result_attrs(row.result), "config_key": row.config_key}))


def test_kb_defaults_reads_several_storages_and_applies_the_winner(tmp_path) -> None:
    rows = [r for r in _grid_rows() if r.protocol == 2]
    urls = [f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"]
    _sweep_storage([r for r in rows if r.task != "b"], urls[0])
    _sweep_storage([r for r in rows if r.task == "b"], urls[1])
    folder = _spaces_copy(tmp_path)
    env = {"RECOMMENDER_SEARCH_SPACES_DIR": str(folder)}
    dry = _cli("kb", "defaults", "--storage", urls[0], "--storage", urls[1], env=env)
    assert dry.returncode == 0, dry.stderr
    assert "| `lora` | 0.39 (2) | 0.67 (2) | 0.94* (2) | 0.0005 | 0.0015 | ok |" in dry.stdout
    assert "defaults" not in json.loads((folder / "lora.json").read_text())
    done = _cli("kb", "defaults", "--storage", urls[0], "--storage", urls[1], "--apply", env=env)
    assert done.returncode == 0, done.stderr
    assert "lora: default learning_rate 0.0015 (was the class default)" in done.stdout
    assert json.loads((folder / "lora.json").read_text())["defaults"] == {"learning_rate": 0.0015}


def test_kb_report_writes_markdown_and_the_plot(tmp_path) -> None:
    kb = tmp_path / "runs.jsonl"
    write_rows(_seed_rows(), kb)
    out = tmp_path / "report"
    proc = _cli("kb", "report", "--file", str(kb), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = (out / "report.md").read_text()
    assert text.strip() in proc.stdout
    assert "| **`unipelt_prompt`** | 4 | +1.5 [+0.8, +2." in text and "| 1.25x [0.88, 1.62] |" in text
    assert "| `lora` | 4 | -2.5 [-3.3, -1.8] | 2.00x [2.00, 2.00] | 3.00x [3.00, 3.00] | +30% [+30, +30] |" in text
    assert "| a n=500 | accuracy | +0.0 | 0.50 | 1.00 | +50 | +50 |" in text  # UniPELT + prompt, task a
    assert "### Coverage" in text and "| a | 500 | 2 |" in text
    assert "### Tuned defaults" in text and "| `lora` | 0.88* (4) | 0.00 (4) | 0.0005 | 0.0005 | ok |" in text
    assert "on 4 informative tasks: a n=500, b n=500, c n=500, d n=500." in text  # "e" had no grid
    assert (out / "methods_vs_full_ft.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--file", "/dev/null"], "is not a regular file"),
    (["--file", "missing.jsonl"], "knowledge base not found"),
    (["--storage", "sqlite:///nowhere/runs.db"], "no run store at"),
])
def test_kb_report_input_errors_are_one_line(tmp_path, args, message) -> None:
    proc = _cli("kb", "report", *args)
    assert proc.returncode == 2 and proc.stderr.startswith("error:") and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_kb_report_without_protocol_2_runs_says_so(tmp_path) -> None:
    kb = tmp_path / "old.jsonl"
    write_rows([_row("a", "lora", "lora#0", 0.8, protocol=1)], kb)
    proc = _cli("kb", "report", "--file", str(kb))
    assert proc.returncode == 2 and "no protocol-2 runs" in proc.stderr


def test_kb_report_readme_replaces_only_its_generated_section(tmp_path) -> None:
    from recommender.kb_analysis.document import BEGIN, END

    kb = tmp_path / "runs.jsonl"
    write_rows(_seed_rows(), kb)
    readme = tmp_path / "kb" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"# Title\n\nhand-written\n\n{BEGIN}\nold table\n{END}\n\n## After\n")
    for _ in range(2):  # a second run replaces the first one's block
        proc = _cli("kb", "report", "--file", str(kb), "--readme", str(readme))
        assert proc.returncode == 0, proc.stderr
    text = readme.read_text()
    assert text.startswith(f"# Title\n\nhand-written\n\n{BEGIN}\n_Generated ") and text.endswith(f"{END}\n\n## After\n")
    assert "old table" not in text and text.count("### Coverage") == 1
    assert "](methods_vs_full_ft.png)" in text and (readme.parent / "methods_vs_full_ft.png").is_file()


def test_kb_report_readme_without_markers_is_refused_before_any_work(tmp_path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    proc = _cli("kb", "report", "--file", str(tmp_path / "missing.jsonl"), "--readme", str(readme))
    assert proc.returncode == 2 and "needs the two marker lines" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert readme.read_text() == "# no markers\n"


def test_hostile_names_from_a_store_cannot_break_the_markdown() -> None:
    from recommender.kb_analysis.render import coverage_markdown, lr_evidence_markdown, text
    from recommender.knowledge_base import coverage

    assert text("a|b<script>`x`\x1b[31m\n") == "a\\|b&lt;script&gt;'x'?[31m?"
    rows = [_row(t, "lora", k, m, mult=x) for t in ("ok", "evil|<img src=x>\n")
            for k, m, x in (("lora#0", 0.7, 1), ("lora#lr3", 0.8, 3))]
    for table in (lr_evidence_markdown(lr_evidence(rows)), coverage_markdown(coverage(rows))):
        assert "<img" not in table and "\x1b" not in table
        assert all(line.count(" | ") == table.splitlines()[0].count(" | ")
                   for line in table.splitlines() if line.startswith("| "))
