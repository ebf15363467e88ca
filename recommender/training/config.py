"""Training hyperparameters shared by every method (method-specific ones live in its config)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recommender.config_utils import check_range


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation and batching settings of one run.

    ``learning_rate=None`` takes the method's default (adapters want larger rates than full
    fine-tuning).
    """

    learning_rate: float | None = field(default=None, metadata={"help": "AdamW peak learning rate"})
    batch_size: int = field(default=16, metadata={"help": "training batch size"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "linear warm-up share of steps"})
    max_seq_length: int = field(default=128, metadata={"help": "truncation length in tokens"})
    eval_batch_size: int = field(default=64, metadata={"help": "evaluation batch size"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    doc_stride: int = field(default=64, metadata={"help": "QA: overlap between context windows"})
    group_by_length: bool = field(default=True, metadata={"help": "batch examples of similar length"})
    dynamic_padding: bool = field(default=True, metadata={"help": "pad to the batch's longest, not max_seq_length"})

    def __post_init__(self) -> None:
        owner = "TrainingConfig"
        if self.learning_rate is not None:
            check_range(owner, "learning_rate", self.learning_rate, 0, 1.0, low_open=True)
        check_range(owner, "batch_size", self.batch_size, 1, 4096)
        check_range(owner, "weight_decay", self.weight_decay, 0, 1)
        check_range(owner, "warmup_ratio", self.warmup_ratio, 0, 0.5)
        check_range(owner, "max_seq_length", self.max_seq_length, 8, 4096)
        check_range(owner, "eval_batch_size", self.eval_batch_size, 1, 4096)
        check_range(owner, "max_grad_norm", self.max_grad_norm, 0, 1e6, low_open=True)
        check_range(owner, "doc_stride", self.doc_stride, 0, self.max_seq_length // 2)


@dataclass(frozen=True)
class EvalConfig:
    """How a run is scored.

    The learning curve (and early stopping) uses a fixed, seeded ``monitor_size`` subset of the
    dev set (None: all of it); at the end the best checkpoint is scored on the whole dev set,
    with a bootstrap standard error over ``n_boot`` resamples, beside the constant predictor.
    """

    monitor_size: int | None = field(default=None, metadata={"help": "dev examples for the curve"})
    n_boot: int = field(default=200, metadata={"help": "bootstrap resamples for the standard error"})
    seed: int = 0

    def __post_init__(self) -> None:
        if self.monitor_size is not None:
            check_range("EvalConfig", "monitor_size", self.monitor_size, 1, 10**7)
        check_range("EvalConfig", "n_boot", self.n_boot, 0, 100_000)
