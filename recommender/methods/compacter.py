"""Compacter: bottleneck adapters with parameterized hypercomplex (Kronecker) layers (Mahabadi et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.config_utils import check_range
from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import MethodConfig, register_method


@dataclass(frozen=True)
class CompacterMethodConfig(MethodConfig):
    phm_dim: int = field(default=4, metadata={"help": "number of Kronecker summands (n)"})
    reduction_factor: float = field(default=32.0, metadata={"help": "hidden size / bottleneck size"})

    def __post_init__(self) -> None:
        check_range("CompacterMethodConfig", "phm_dim", self.phm_dim, 2, 32)
        check_range("CompacterMethodConfig", "reduction_factor", self.reduction_factor, 1, 384)


@register_method
class Compacter(AdapterMethod):
    name = "compacter"
    config_class = CompacterMethodConfig
    description = "Bottleneck adapters built from shared Kronecker products: very few parameters."
    default_learning_rate = 1e-3

    def build_adapter_config(self) -> Any:
        from adapters import CompacterConfig

        return CompacterConfig(phm_dim=self.config.phm_dim,
                               reduction_factor=self.config.reduction_factor)
