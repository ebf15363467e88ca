"""Sequential bottleneck adapter after the feed-forward block (Pfeiffer et al., 2020)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.config_utils import check_choice, check_range
from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import MethodConfig, register_method

NON_LINEARITIES = ("relu", "gelu", "swish", "tanh")


@dataclass(frozen=True)
class BottleneckConfig(MethodConfig):
    reduction_factor: float = field(default=16.0, metadata={"help": "hidden size / bottleneck size"})
    non_linearity: str = field(default="relu", metadata={"help": "activation in the bottleneck"})

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_range(owner, "reduction_factor", self.reduction_factor, 1, 384)
        check_choice(owner, "non_linearity", self.non_linearity, NON_LINEARITIES)


@register_method
class SeqBn(AdapterMethod):
    no_peft_reason = ('PEFT has no bottleneck (Houlsby/Pfeiffer) adapters; load the artifact with the `adapters` library')
    name = "seq_bn"
    config_class = BottleneckConfig
    description = "Bottleneck adapter after each feed-forward block (Pfeiffer)."
    default_learning_rate = 5e-4

    def build_adapter_config(self) -> Any:
        from adapters import SeqBnConfig

        return SeqBnConfig(reduction_factor=self.config.reduction_factor,
                           non_linearity=self.config.non_linearity)
