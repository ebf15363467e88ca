"""(IA)^3: learned vectors that rescale keys, values and feed-forward activations (Liu et al., 2022).

``adapters`` 1.3.0 merges IA3 by scaling the weight only, which drifts because the layer's
bias is not scaled; :meth:`IA3.merge` scales the bias too, so merged outputs equal unmerged ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recommender.config_utils import check_choice
from recommender.methods._adapters import ADAPTER_NAME, AdapterMethod
from recommender.methods.base import MethodConfig, register_method

if TYPE_CHECKING:
    pass

TARGETS = {"kv_ffn": (("k", "v"), True), "kv": (("k", "v"), False), "qkv_ffn": (("q", "k", "v"), True)}


@dataclass(frozen=True)
class IA3MethodConfig(MethodConfig):
    targets: str = field(default="kv_ffn", metadata={"help": f"rescaled activations: {list(TARGETS)}"})

    def __post_init__(self) -> None:
        check_choice("IA3MethodConfig", "targets", self.targets, tuple(TARGETS))


@register_method
class IA3(AdapterMethod):
    name = "ia3"
    config_class = IA3MethodConfig
    description = "Learned rescaling vectors on keys, values and feed-forward; mergeable."
    default_learning_rate = 3e-3
    not_mergeable_reason = None
    peft_equivalent = True

    def build_adapter_config(self) -> Any:
        from adapters import IA3Config

        matrices, ffn = TARGETS[self.config.targets]
        return IA3Config(attn_matrices=list(matrices), intermediate_lora=ffn)

    def merge(self, model: Any) -> None:
        import torch
        from adapters.methods.lora import LoRALayer

        model.merge_adapter(ADAPTER_NAME)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, LoRALayer) and module.merged == ADAPTER_NAME:
                    ia3 = module.loras[ADAPTER_NAME]
                    bias = getattr(module, "bias", None)
                    if bias is not None:
                        bias.mul_((ia3.lora_B * ia3.scaling).view(-1))

    def peft_config(self, model_type: str = "bert") -> dict[str, Any]:
        matrices, ffn = TARGETS[self.config.targets]
        modules = [{"q": "query", "k": "key", "v": "value"}[m] for m in matrices]
        if ffn:
            modules.append("intermediate.dense")
        # adapters scales the *outputs* of every target, so no module is a PEFT
        # "feedforward" module (those scale inputs).
        return {"peft_type": "IA3", "target_modules": modules, "feedforward_modules": []}
