"""Two sequential bottleneck adapters per layer, after attention and feed-forward (Houlsby)."""

from __future__ import annotations

from typing import Any

from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import register_method
from recommender.methods.seq_bn import BottleneckConfig


@register_method
class DoubleSeqBn(AdapterMethod):
    no_peft_reason = ('PEFT has no bottleneck (Houlsby/Pfeiffer) adapters; load the artifact with the `adapters` library')
    name = "double_seq_bn"
    config_class = BottleneckConfig
    description = "Bottleneck adapters after attention and after feed-forward (Houlsby)."
    default_learning_rate = 5e-4

    def build_adapter_config(self) -> Any:
        from adapters import DoubleSeqBnConfig

        return DoubleSeqBnConfig(reduction_factor=self.config.reduction_factor,
                                 non_linearity=self.config.non_linearity)
