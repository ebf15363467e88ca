"""Linear probe: the encoder is frozen, only the task head is trained (a baseline)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.methods.base import TuningMethod, head_module_names, register_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_method
class HeadOnly(TuningMethod):
    name = "head_only"
    description = "Linear probe: frozen encoder, only the task head is trained."
    default_learning_rate = 3e-3
    uses_adapters = False

    def apply(self, model: PreTrainedModel) -> None:
        for p in model.parameters():
            p.requires_grad = False
        for name in head_module_names(model):
            for p in getattr(model, name).parameters():
                p.requires_grad = True
