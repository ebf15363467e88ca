"""LoRA: low-rank updates of the attention (and optionally feed-forward) weights (Hu et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.config_utils import check_choice, check_range
from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import MethodConfig, register_method

#: which weights get a low-rank update: adapters' attn_matrices + feed-forward flags
TARGETS = {
    "qv": (("q", "v"), False),
    "qkv": (("q", "k", "v"), False),
    "qkv_ffn": (("q", "k", "v"), True),
}
PEFT_MODULES = {"q": "query", "k": "key", "v": "value"}


@dataclass(frozen=True)
class LoRAMethodConfig(MethodConfig):
    r: int = field(default=8, metadata={"help": "rank of the update"})
    alpha: float = field(default=8.0, metadata={"help": "scaling numerator (update x alpha / r)"})
    dropout: float = field(default=0.0, metadata={"help": "dropout on the LoRA input"})
    targets: str = field(default="qv", metadata={"help": f"weights updated: {list(TARGETS)}"})

    def __post_init__(self) -> None:
        check_range("LoRAMethodConfig", "r", self.r, 1, 256)
        check_range("LoRAMethodConfig", "alpha", self.alpha, 0, 1024, low_open=True)
        check_range("LoRAMethodConfig", "dropout", self.dropout, 0, 0.9)
        check_choice("LoRAMethodConfig", "targets", self.targets, tuple(TARGETS))


@register_method
class LoRA(AdapterMethod):
    name = "lora"
    config_class = LoRAMethodConfig
    description = "Low-rank updates of attention weights; merges exactly into the base weights."
    default_learning_rate = 5e-4
    not_mergeable_reason = None
    peft_equivalent = True

    def build_adapter_config(self) -> Any:
        from adapters import LoRAConfig

        matrices, ffn = TARGETS[self.config.targets]
        return LoRAConfig(r=self.config.r, alpha=self.config.alpha, dropout=self.config.dropout,
                          attn_matrices=list(matrices), intermediate_lora=ffn, output_lora=ffn)

    def peft_config(self, model_type: str = "bert") -> dict[str, Any]:
        matrices, ffn = TARGETS[self.config.targets]
        modules: list[str] | str = [PEFT_MODULES[m] for m in matrices]
        if ffn:
            # a list entry matches by suffix, and "output.dense" would also take the attention
            # output (attention.output.dense), which adapters' output_lora leaves alone: a regex
            # PEFT full-matches names the feed-forward output (layer.N.output.dense) alone
            modules = (r".*\.(" + "|".join(modules) + r")|.*\.intermediate\.dense"
                       r"|.*\.layer\.\d+\.output\.dense")
        return {"peft_type": "LORA", "r": self.config.r, "lora_alpha": self.config.alpha,
                "lora_dropout": self.config.dropout, "target_modules": modules, "bias": "none"}
