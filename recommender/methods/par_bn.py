"""Parallel bottleneck adapter beside the feed-forward block (He et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.config_utils import check_range
from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import MethodConfig, register_method


@dataclass(frozen=True)
class ParBnMethodConfig(MethodConfig):
    reduction_factor: float = field(default=2.0, metadata={"help": "hidden size / bottleneck size"})
    scaling: float = field(default=4.0, metadata={"help": "scale of the adapter's output"})

    def __post_init__(self) -> None:
        check_range("ParBnMethodConfig", "reduction_factor", self.reduction_factor, 1, 384)
        check_range("ParBnMethodConfig", "scaling", self.scaling, 0, 100, low_open=True)


@register_method
class ParBn(AdapterMethod):
    no_peft_reason = ('PEFT has no parallel bottleneck adapters; load the artifact with the `adapters` library')
    name = "par_bn"
    config_class = ParBnMethodConfig
    description = "Parallel bottleneck adapter beside each feed-forward block."
    default_learning_rate = 5e-4

    def build_adapter_config(self) -> Any:
        from adapters import ParBnConfig

        return ParBnConfig(reduction_factor=self.config.reduction_factor, scaling=self.config.scaling)
