"""Full fine-tuning: every weight of the encoder and the head is trained."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recommender.methods.base import TuningMethod, register_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_method
class FullFineTuning(TuningMethod):
    name = "full_ft"
    description = "Full fine-tuning: all encoder and head weights are trained."
    default_learning_rate = 5e-5
    uses_adapters = False

    def apply(self, model: PreTrainedModel) -> None:
        for p in model.parameters():
            p.requires_grad = True
