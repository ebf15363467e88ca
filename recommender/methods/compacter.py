"""Compacter: bottleneck adapters with parameterized hypercomplex (Kronecker) layers (Mahabadi et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_range
from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import MethodConfig, register_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class CompacterMethodConfig(MethodConfig):
    phm_dim: int = field(default=4, metadata={"help": "number of Kronecker summands (n)"})
    reduction_factor: float = field(default=32.0, metadata={"help": "hidden size / bottleneck size"})

    def __post_init__(self) -> None:
        check_range("CompacterMethodConfig", "phm_dim", self.phm_dim, 2, 32)
        check_range("CompacterMethodConfig", "reduction_factor", self.reduction_factor, 1, 384)


@register_method
class Compacter(AdapterMethod):
    no_peft_reason = ('PEFT has no Compacter (PHM) adapters; load the artifact with the `adapters` library')
    name = "compacter"
    config_class = CompacterMethodConfig
    description = "Bottleneck adapters built from shared Kronecker products: very few parameters."
    default_learning_rate = 1e-3

    def apply(self, model: PreTrainedModel) -> None:
        from recommender.errors import ConfigError

        bottleneck = model.config.hidden_size / self.config.reduction_factor
        if bottleneck != int(bottleneck) or int(bottleneck) % self.config.phm_dim:
            raise ConfigError(
                f"compacter: hidden size {model.config.hidden_size} / reduction_factor "
                f"{self.config.reduction_factor:g} = {bottleneck:g} must be a multiple of phm_dim={self.config.phm_dim}")
        super().apply(model)

    def build_adapter_config(self) -> Any:
        from adapters import CompacterConfig

        return CompacterConfig(phm_dim=self.config.phm_dim,
                               reduction_factor=self.config.reduction_factor)
