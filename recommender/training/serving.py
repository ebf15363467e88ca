"""After training: the merge check, the plain merged model, and inference latency (the
trained model, merged where exact, and the untouched base model), in the serving precision.

``adapters`` 1.3.0 merges some methods silently wrongly, so a method counts as merged only if
the merged model's logits match the unmerged ones to ``MERGE_TOLERANCE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.errors import NotMergeableError
from recommender.models import load_model
from recommender.training.latency import measure_latency, measure_latency_paired, synthetic_batch
from recommender.types import SERVING_BATCH

if TYPE_CHECKING:
    from recommender.methods.base import TuningMethod

MERGE_TOLERANCE = 1e-4
#: the untouched base model last loaded for latency, by (model, device:precision, task type, labels):
#: kept between runs of a process (one model at a time), so each run times it beside its own model
_BASE_MODEL_CACHE: dict[tuple[str, str, str, int], Any] = {}


@dataclass(frozen=True)
class LatencyConfig:
    """What inference latency to measure after training."""

    enabled: bool = True
    batch_sizes: tuple[int, ...] = (1, SERVING_BATCH)
    seq_len: int | None = None  # None: the task's p95 token length
    max_seconds: float = 1.5  # per measurement, after warm-up
    base_model: bool = True  # also the untouched base model, for relative latency


@dataclass
class Serving:
    """How the trained model is measured: where it runs, in which precision, on what inputs."""

    model_path: Path
    device: str
    precision: str
    task_type: str
    num_labels: int
    latency: LatencyConfig
    seq_len: int  # latency inputs
    probe_seq_len: int  # merge-check inputs
    deadline: float | None = None  # time.perf_counter() value the measurements must end by
    tokenizer: Any = None
    save_dir: Path | None = None

    def base_model_loaded(self) -> bool:
        return self._base_key in _BASE_MODEL_CACHE

    @property
    def _base_key(self) -> tuple[str, str, str, int]:
        return (str(self.model_path), self._device_key, self.task_type, self.num_labels)

    @property
    def _device_key(self) -> str:
        return f"{self.device}:{self.precision}"

    def measure(self, model: Any, method: TuningMethod) -> dict[str, Any]:
        """Latency of ``model`` (and merged, where exact) and of the base model, the two timed
        in turn (:func:`~recommender.training.latency.measure_latency_paired`)."""
        kwargs = dict(seq_len=self.seq_len, vocab_size=model.config.vocab_size, device=self.device,
                      max_seconds=self.latency.max_seconds, deadline=self.deadline, precision=self.precision)
        # the base model is a reference, not the run's own measurement: not loaded once the
        # run's time is up (timed beside the model if it is still in memory from an earlier run)
        base = self._base_model() if self.latency.base_model and (
            self.base_model_loaded() or not self._past_deadline()) else None
        out: dict[str, Any] = {}
        if base is None:
            stats = [measure_latency(model, batch_size=b, **kwargs) for b in self.latency.batch_sizes]
        else:
            pairs = [measure_latency_paired(model, base, batch_size=b, **kwargs) for b in self.latency.batch_sizes]
            stats = [own for own, _ in pairs]
            out["base_latency"] = [reference for _, reference in pairs]
        # nothing to merge for a method without adapters: None (tables print "-")
        out.update({"latency": stats, "mergeable": False if method.uses_adapters else None})
        if method.merge_supported and self.merge_checked(model, method, out):
            stats += [measure_latency(model, batch_size=b, merged=True, **kwargs)
                      for b in self.latency.batch_sizes]
        return out

    def _past_deadline(self) -> bool:
        import time

        return self.deadline is not None and time.perf_counter() >= self.deadline

    def merge_checked(self, model: Any, method: TuningMethod, out: dict[str, Any]) -> bool:
        """Merge, and call it merged only if outputs stay equal (max |d logit| < 1e-4)."""
        import torch

        probe = synthetic_batch(4, self.probe_seq_len, model.config.vocab_size, self.device, seed=1)
        with torch.inference_mode():
            before = _logits(model, probe)
        try:
            method.merge(model)
        except (NotMergeableError, ValueError) as exc:
            out["merge_error"] = str(exc)
            return False
        with torch.inference_mode():
            diff = float((_logits(model, probe) - before).abs().max())
        out["merge_max_abs_diff"] = diff
        out["mergeable"] = diff < MERGE_TOLERANCE
        if out["mergeable"] and self.save_dir is not None:
            self._save_plain_merged(model, self.save_dir / "merged", probe, before)
        return bool(out["mergeable"])

    def _save_plain_merged(self, model: Any, path: Path, probe: dict[str, Any], expected: Any) -> None:
        """Copy the merged weights into a plain transformers model (no adapters code needed to
        load it) and check it still gives the same outputs before saving."""
        import torch

        plain = load_model(self.model_path, self.task_type, self.num_labels).to(self.device)
        merged_state = model.state_dict()
        plain_state = plain.state_dict()
        missing = [k for k in plain_state if k not in merged_state]
        if missing:
            raise RuntimeError(f"merged model lacks weights {missing[:3]}")
        plain.load_state_dict({k: merged_state[k] for k in plain_state})
        plain.eval()
        with torch.inference_mode():
            outputs = plain(**probe)
        got = outputs["logits" if "logits" in outputs else "start_logits"].float()
        diff = float((got - expected).abs().max())
        if diff >= MERGE_TOLERANCE:
            raise RuntimeError(f"plain merged model drifts by {diff:.2e}; not saved")
        plain.config.id2label = getattr(model.config, "id2label", plain.config.id2label)
        plain.save_pretrained(path)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(path)

    def _base_model(self) -> Any:
        if self._base_key not in _BASE_MODEL_CACHE:
            _BASE_MODEL_CACHE.clear()  # one base model in memory at a time
            _BASE_MODEL_CACHE[self._base_key] = load_model(self.model_path, self.task_type,
                                                           self.num_labels).to(self.device)
        return _BASE_MODEL_CACHE[self._base_key]


def _logits(model: Any, batch: dict[str, Any]) -> Any:
    outputs = model(**batch)
    key = "logits" if "logits" in outputs else "start_logits"
    return outputs[key].float()
