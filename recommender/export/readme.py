"""The bundle's ``README.md``: the choice in one paragraph, with its numbers, and its files."""

from __future__ import annotations

from typing import Any

from recommender.export.sections import MeasuredNumbers, TrialSource
from recommender.export.spec import BundleSpec

#: README labels of predicted numbers (the meta-model's Candidate fields and short names)
PREDICTED_LABELS = {
    "metric": "dev metric", "predicted_metric": "dev metric", "metric_interval": "dev metric interval",
    "gap": "gap to the task's best method", "predicted_gap": "gap to the task's best method",
    "time_to_best_s": "time to convergence (s)", "predicted_time_s": "time to convergence (s)",
    "time_interval": "time to convergence interval (s)", "latency_b1_ms": "latency at batch 1 (ms)",
    "latency_bB_ms": "latency at the serving batch (ms)", "predicted_latency_ms": "latency (ms)",
    "latency_interval": "latency interval (ms)", "peak_memory_mb": "peak memory (MB)",
    "predicted_memory_mb": "peak memory (MB)", "trainable_params": "trainable parameters",
    "storage_mb": "storage (MB)", "add_task_cost": "cost of adding a task", "p_meets": "probability of meeting",
    "feasible": "meets every budget",
}
#: predicted numbers shown with four digits (the others with one)
PRECISE_PREDICTIONS = ("metric", "gap", "predicted_metric", "predicted_gap", "metric_interval", "p_meets")


def render_readme(spec: BundleSpec) -> str:
    """The README of a measured or a predicted bundle."""
    return _readme_measured(spec) if spec.is_measured else _readme_predicted(spec)


# --- numbers in words --------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e6 else f"{value:.3g}"
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value):
        return f"{_fmt(value[1], digits)} (range {_fmt(value[0], digits)} to {_fmt(value[2], digits)})"
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{_fmt(value[0], digits)} to {_fmt(value[1], digits)}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_fmt(v, digits)}" for k, v in value.items())
    return str(value)


def _ms(value: Any) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _bytes(value: Any) -> str:
    if value is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _params_text(spec: BundleSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in spec.method.shown_params.items())


def _task_name(spec: BundleSpec) -> str:
    return str((spec.task.spec or {}).get("name") or spec.task.ref.get("source"))


def _title_name(spec: BundleSpec) -> str:
    """The task's name in the title: up to its first " (" (the sizes follow there in the text)."""
    return _task_name(spec).split(" (")[0]


def _task_text(spec: BundleSpec) -> str:
    mf = spec.task.metafeatures or {}
    kind = mf.get("task_type") or (spec.task.spec or {}).get("task_type") or "?"
    sizes = f"{_fmt(mf.get('n_train'))} train / {_fmt(mf.get('n_dev'))} dev examples" if mf else "unknown size"
    return f"{_task_name(spec)} ({kind}, {sizes}, model {spec.model_name or spec.model})"


# --- sections ----------------------------------------------------------------------------------
def _files_section(spec: BundleSpec) -> list[str]:
    assert spec.files is not None, "the files are named before the README is written"
    method = spec.method
    lines = ["## Files", "",
             f"- `{spec.files.config}`: the full record (schema {spec.schema_version}, kind "
             f"`{spec.kind}`): method, its `adapters` config, every hyperparameter, model, task, "
             "meta-features, budgets, " + ("the measured numbers" if spec.is_measured
                                           else "the predicted numbers") + " and the environment.",
             "- `train.py`: retrains this configuration with the `recommender` package "
             "(`python train.py [--data PATH_OR_TASK] [--out DIR]`)."]
    if method.peft_config is not None:
        lines.append("- `peft_config.json` (also `peft/adapter_config.json`): the equivalent Hugging Face PEFT "
                     f"config (`{method.peft_config['peft_type']}`); "
                     "`peft.PeftConfig.from_pretrained(\"peft\")` loads it.")
    else:
        lines.append(f"- No PEFT config: **{method.name} has no Hugging Face PEFT equivalent** "
                     f"({method.peft_reason}).")
    weights = spec.weights
    if weights:
        lines.append(f"- `weights/artifact/`: {weights.artifact_kind}.")
        if weights.merged:
            lines.append("- `weights/merged/`: a plain transformers model with the adapter folded in (loads with "
                         "transformers' `AutoModelFor...from_pretrained`, no adapters code; merge verified to change logits "
                         f"by at most {weights.merge_max_abs_diff or 0:.1e}).")
    lines.append("")
    return lines


def _closing_sections(spec: BundleSpec) -> list[str]:
    """Merging, and why there is no PEFT config where there is none."""
    method = spec.method
    merge = ("Merging into the base weights is implemented and verified exact for this method."
             if method.merge.implemented else f"Merging is not available for {method.name}: {method.merge.reason}.")
    lines = ["## Merging", "", merge, ""]
    if not method.peft_equivalent:
        lines += ["## PEFT", "", f"{method.name} has no Hugging Face PEFT equivalent: {method.peft_reason}. "
                  "`config.json` says `\"peft_equivalent\": false`.", ""]
    return lines


def _why_chosen(src: TrialSource) -> str:
    runner = src.runner_up
    if src.chosen_as_best:
        why = f"It is the {src.selected_as} of {src.n_complete_trials} complete trial(s)"
        why += (f"; the runner-up, trial #{runner.trial} ({runner.method}), reached {_fmt(runner.metric)}"
                if runner else "")
    else:
        why = (f"It was chosen by number; it ranks {src.rank_by_metric} of {src.n_complete_trials} "
               "complete trial(s) by metric")
    if src.constraint_violations:
        why += f" and misses the search's constraints ({_fmt(src.constraint_violations, 1)})"
    return why


def _latency_text(m: MeasuredNumbers) -> str:
    lat = m.latency
    b = lat["serving_batch"]

    def latency(key: str, batch: int) -> str:
        row = lat[key]
        parts = []
        if row.get("merged") is not None:
            parts.append(f"{_ms(row['merged'])} merged")
        parts.append(f"{_ms(row['unmerged'])} unmerged")
        base = f", base model {_ms(row['base'])}" if row.get("base") is not None else ""
        return f"{' / '.join(parts)} at batch {batch}{base}"

    return latency("b1_ms", 1) + ("" if b == 1 else "; " + latency("bB_ms", b))


def _readme_measured(spec: BundleSpec) -> str:
    m, src = spec.measured, spec.source
    assert isinstance(m, MeasuredNumbers) and isinstance(src, TrialSource), "a measured bundle"
    para = (
        f"This bundle records **{spec.method.name}** ({_params_text(spec)}) for {_task_text(spec)}, "
        f"exported from trial #{src.trial} of study `{src.study}` ({src.objective} objective). "
        f"{_why_chosen(src)}. Measured: dev {m.metric_name} **{_fmt(m.metric)}**; time to convergence "
        f"{_fmt(m.time_to_best_s, 1)} s of training ({_fmt(m.steps_to_best)} steps; within 1 % of the best "
        f"after {_fmt(m.time_to_within_1pct_s, 1)} s; stopped by {m.stop_reason}); latency (p50, "
        f"sequence length {m.latency['seq_len']}) {_latency_text(m)}; {_fmt(m.trainable_params)} trainable "
        f"parameters (+{_fmt(m.head_params)} in the head) of {_fmt(m.total_params)}; peak memory "
        f"{_fmt(m.peak_memory_mb, 0)} MB; artifact {_bytes(m.artifact_bytes)}."
    )
    lines = [f"# {spec.method.name} for {_title_name(spec)}: measured configuration", "", para, ""]
    lines += _files_section(spec)
    lines += ["## Reproduce", "",
              f"`python train.py` retrains with seed {spec.seed} on `{spec.task.source}` "
              f"with the same subsample, on device `{spec.device}`: {spec.budget.note}.", ""]
    weights = spec.weights
    if weights:
        state = ("reproduced the trial's metric exactly" if weights.reproduced
                 else f"**differs** from the trial's metric by {_fmt(weights.abs_diff, 6)}")
        lines += [f"The exported weights come from such a retrain: dev {m.metric_name} "
                  f"{_fmt(weights.retrained_metric, 6)}, which {state}.", ""]
    return "\n".join(lines + _closing_sections(spec))


def _readme_predicted(spec: BundleSpec) -> str:
    predicted = spec.predicted or {}
    numbers = "; ".join(f"predicted {PREDICTED_LABELS.get(k, k)} {_fmt(v, 4 if k in PRECISE_PREDICTIONS else 1)}"
                        for k, v in predicted.items() if v is not None) or "no numbers"
    rationale = str(getattr(spec.source, "rationale", None) or "").strip()
    if rationale and not rationale.endswith((".", "!", "?")):
        rationale += "."
    assert spec.files is not None, "the files are named before the README is written"
    para = (
        f"**PREDICTED, NOT MEASURED.** This bundle records the meta-model's recommendation of "
        f"**{spec.method.name}** ({_params_text(spec)}) for {_task_text(spec)}, made before any training "
        f"run on this task. {numbers}. Every number here is a prediction from past runs on other tasks "
        f"(in `{spec.files.config}` under `predicted`); none was measured on this task. "
        + (f"Why: {rationale} " if rationale else "")
        + "Run `python train.py` to measure it."
    )
    lines = [f"# {spec.method.name} for {_title_name(spec)}: PREDICTED configuration", "", para, ""]
    lines += _files_section(spec)
    return "\n".join(lines + _closing_sections(spec))
