"""Prefix tuning: trainable key/value prefixes in every attention layer (Li & Liang, 2021).

The reparametrisation MLP is training-only: :meth:`finalize` ejects it, so parameter counts,
artifacts and latency describe the deployable prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_range
from recommender.methods._adapters import ADAPTER_NAME, AdapterMethod
from recommender.methods.base import MethodConfig, register_method

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class PrefixMethodConfig(MethodConfig):
    prefix_length: int = field(default=30, metadata={"help": "virtual key/value positions per layer"})
    bottleneck_size: int = field(default=512, metadata={"help": "hidden size of the reparametrisation MLP"})

    def __post_init__(self) -> None:
        check_range("PrefixMethodConfig", "prefix_length", self.prefix_length, 1, 512)
        check_range("PrefixMethodConfig", "bottleneck_size", self.bottleneck_size, 1, 4096)


@register_method
class PrefixTuning(AdapterMethod):
    name = "prefix_tuning"
    config_class = PrefixMethodConfig
    description = "Trainable key/value prefixes in every attention layer."
    default_learning_rate = 5e-4
    peft_equivalent = True
    not_mergeable_reason = "prefixes extend attention with extra positions; nothing folds into weights"

    def build_adapter_config(self) -> Any:
        from adapters import PrefixTuningConfig

        return PrefixTuningConfig(prefix_length=self.config.prefix_length,
                                  bottleneck_size=self.config.bottleneck_size)

    def finalize(self, model: Any) -> None:
        model.eject_prefix_tuning(ADAPTER_NAME)

    def peft_config(self, model_type: str = "bert") -> dict[str, Any]:
        return {"peft_type": "PREFIX_TUNING", "num_virtual_tokens": self.config.prefix_length,
                "prefix_projection": True, "encoder_hidden_size": self.config.bottleneck_size}
