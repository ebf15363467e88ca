"""Full fine-tuning: every weight of the encoder and the head is trained (optionally all but the
token-embedding table, which holds about half of a small encoder's weights)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recommender.errors import ConfigError
from recommender.methods.base import MethodConfig, TuningMethod, register_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class FullFTConfig(MethodConfig):
    freeze_embeddings: bool = field(default=False, metadata={
        "help": "keep the token-embedding table fixed: no gradient and no optimizer state for it"})

    def __post_init__(self) -> None:
        if not isinstance(self.freeze_embeddings, bool):
            raise ConfigError(f"freeze_embeddings={self.freeze_embeddings!r}; expected true or false")


@register_method
class FullFineTuning(TuningMethod):
    no_peft_reason = ('full fine-tuning trains every weight: the artifact is a whole transformers model, not an adapter')
    artifact_kind = "full_model"
    name = "full_ft"
    config_class = FullFTConfig
    description = "Full fine-tuning: all encoder and head weights are trained."
    default_learning_rate = 5e-5
    uses_adapters = False

    def apply(self, model: PreTrainedModel) -> None:
        for p in model.parameters():
            p.requires_grad = True
        if self.config.freeze_embeddings:
            model.get_input_embeddings().weight.requires_grad = False
