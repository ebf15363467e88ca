"""UniPELT: gated LoRA + prefix tuning + bottleneck adapter in one model (Mao et al., 2022)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_range
from recommender.methods._adapters import ADAPTER_NAME, AdapterMethod
from recommender.methods.base import MethodConfig, register_method

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class UniPELTMethodConfig(MethodConfig):
    lora_r: int = field(default=8, metadata={"help": "rank of the gated LoRA"})
    lora_alpha: float = field(default=2.0, metadata={"help": "scaling numerator of the gated LoRA"})
    prefix_length: int = field(default=10, metadata={"help": "prefix positions of the gated prefix"})
    reduction_factor: float = field(default=16.0, metadata={"help": "bottleneck reduction"})

    def __post_init__(self) -> None:
        check_range(type(self).__name__, "lora_r", self.lora_r, 1, 256)
        check_range(type(self).__name__, "lora_alpha", self.lora_alpha, 0, 1024, low_open=True)
        check_range(type(self).__name__, "prefix_length", self.prefix_length, 1, 512)
        check_range(type(self).__name__, "reduction_factor", self.reduction_factor, 1, 384)


def unipelt_parts(config: UniPELTMethodConfig) -> list[Any]:
    """UniPELT's three gated modules, as in ``adapters.UniPELTConfig`` but with our settings."""
    from adapters import LoRAConfig, PrefixTuningConfig, SeqBnConfig

    return [
        PrefixTuningConfig(prefix_length=config.prefix_length, use_gating=True),
        SeqBnConfig(reduction_factor=config.reduction_factor, use_gating=True),
        LoRAConfig(r=config.lora_r, alpha=config.lora_alpha, use_gating=True),
    ]


@register_method
class UniPELT(AdapterMethod):
    no_peft_reason = ('PEFT has no gated UniPELT combination; load the artifact with the `adapters` library')
    name = "unipelt"
    config_class = UniPELTMethodConfig
    description = "Gated combination of LoRA, prefix tuning and a bottleneck adapter."
    default_learning_rate = 5e-4
    not_mergeable_reason = "its gated LoRA and bottleneck adapter cannot be folded into weights"

    def build_adapter_config(self) -> Any:
        from adapters import ConfigUnion

        return ConfigUnion(*unipelt_parts(self.config))

    def finalize(self, model: Any) -> None:
        model.eject_prefix_tuning(ADAPTER_NAME)
