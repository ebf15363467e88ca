"""After training: the best checkpoint restored and scored on the whole dev set, the artifact
saved and sized, the merge check and latency -- and, before training, the plan for them (how
they run and the time they need)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from recommender.methods.base import count_parameters
from recommender.training.config import EvalConfig
from recommender.training.data import Features
from recommender.training.reserve import Clock, TimeReserve
from recommender.training.scoring import ConstantPredictor, ScoringSpec
from recommender.training.serving import Serving
from recommender.training.setup import RunModel, RunSettings, Stream, token_length_p95


def plan_measurements(settings: RunSettings, run_model: RunModel, clock: Clock,
                      extra_monitor_tokens: int = 0) -> tuple[Serving, TimeReserve]:
    """How the model is measured after training, and the time that must be kept for it
    (``extra_monitor_tokens``: dev tokens evaluated beside the streams', e.g. transfer targets)."""
    s, latency, config = settings, settings.latency, settings.config
    streams = run_model.streams
    primary = streams[0]
    p95 = token_length_p95(primary.dev)
    seq_len = latency.seq_len or min(config.max_seq_length, p95)
    serving = Serving(s.model_path, s.device, s.precision, s.task.task_type, s.task.num_labels, latency,
                      seq_len, min(config.max_seq_length, p95), clock.deadline(), run_model.tokenizer,
                      s.save_dir)
    models = 1 + int(s.method.merge_supported) + int(latency.base_model)
    reserve = TimeReserve(
        budget_seconds=s.budget.max_seconds, monitor_tokens=sum(st.dev.n_tokens for st in streams) + extra_monitor_tokens,
        final_scale=max(1.0, run_model.full_dev.n_tokens / max(1, primary.dev.n_tokens)),
        latency_enabled=latency.enabled, latency_batches=tuple(latency.batch_sizes),
        latency_seq_len=seq_len, latency_max_seconds=latency.max_seconds, models_timed=models,
        trainable_params=sum(p.numel() for p in run_model.params),
        base_model_load=0.0 if not latency.base_model or serving.base_model_loaded() else 1.5)
    return serving, reserve


def restore_best(model: Any, best_state: dict[str, Any] | None) -> None:
    """Copy the best evaluation's trainable weights back into ``model``."""
    if best_state is None:
        return
    import torch

    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in best_state.items():
            params[name].copy_(value)


def score_final(settings: RunSettings, run_model: RunModel, best_metrics: dict[str, Any]) -> dict[str, Any]:
    """Score the best checkpoint on the whole dev set, with its bootstrap standard error,
    beside the constant predictor in the same metric."""
    stream = run_model.streams[0]
    final = score_checkpoint(run_model, stream, run_model.full_dev, run_model.scoring(stream), settings.evaluation)
    # co-task scores (multi-task training) stay those of the best evaluation
    final["metrics"].update({k: v for k, v in best_metrics.items() if "/" in k})
    return final


def score_checkpoint(run_model: RunModel, stream: Stream, dev: Features, spec: ScoringSpec,
                     evaluation: EvalConfig) -> dict[str, Any]:
    """The model as it is, scored on ``dev`` with a bootstrap standard error, beside the
    constant predictor fitted on ``stream``'s training labels."""
    predictions = run_model.predict(stream, dev)
    scored = predictions.scored(spec)
    constant = ConstantPredictor.fit(spec, stream.train.labels)
    baseline = constant.score(predictions.gold())
    return {"metric": scored.primary(), "metrics": scored.metrics(),
            "se": scored.standard_error(evaluation.n_boot, seed=evaluation.seed),
            "baseline_metric": baseline.primary(), "baseline_metrics": baseline.metrics(),
            "baseline": constant.describe(), "n": len(scored)}


def save_and_measure(settings: RunSettings, run_model: RunModel, serving: Serving,
                     best_metrics: dict[str, Any]) -> dict[str, Any]:
    """Parameter counts and artifact size (saved to ``save_dir`` when given, with the tokenizer
    and the run's metrics), then the merge check and latency where asked for."""
    s, model, method = settings, run_model.model, settings.method
    out: dict[str, Any] = count_parameters(model)
    with tempfile.TemporaryDirectory() as tmp:
        target = s.save_dir / "artifact" if s.save_dir is not None else Path(tmp)
        target.mkdir(parents=True, exist_ok=True)
        method.save(model, target)
        out["artifact_bytes"] = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
        if s.save_dir is not None:
            run_model.tokenizer.save_pretrained(target)
            metrics = {"task": s.task.name, "method": method.name, "best_metrics": best_metrics,
                       "tasks": [{"name": st.name, "head": st.head, "label_names": st.label_names,
                                  "task_type": st.task_type} for st in run_model.streams]}
            (target / "run_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    if s.save_dir is not None and not s.latency.enabled and method.merge_supported:
        serving.merge_checked(model, method, out)
    if s.latency.enabled:  # bounded by the deadline: at least one timed pass each
        out.update(serving.measure(model, method))
    return out
