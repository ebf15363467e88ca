"""Prompt tuning: trainable soft-prompt embeddings inserted after [CLS] (Lester et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.config_utils import check_range
from recommender.methods._adapters import AdapterMethod
from recommender.methods.base import MethodConfig, register_method


@dataclass(frozen=True)
class PromptMethodConfig(MethodConfig):
    prompt_length: int = field(default=10, metadata={"help": "soft-prompt tokens"})

    def __post_init__(self) -> None:
        check_range("PromptMethodConfig", "prompt_length", self.prompt_length, 1, 256)


def prompt_config(prompt_length: int) -> Any:
    """Soft prompt placed after the first token, so BERT's [CLS] stays at position 0."""
    from adapters import PromptTuningConfig

    return PromptTuningConfig(prompt_length=prompt_length, combine="prefix_after_bos")


@register_method
class PromptTuning(AdapterMethod):
    name = "prompt_tuning"
    config_class = PromptMethodConfig
    description = "Trainable soft-prompt embeddings; the fewest trainable parameters."
    default_learning_rate = 3e-2
    peft_equivalent = True
    not_mergeable_reason = "soft prompts lengthen the input; nothing folds into weights"

    @property
    def inserted_tokens(self) -> int:
        return int(self.config.prompt_length)

    def build_adapter_config(self) -> Any:
        return prompt_config(self.config.prompt_length)

    def peft_config(self, model_type: str = "bert") -> dict[str, Any]:
        return {"peft_type": "PROMPT_TUNING", "num_virtual_tokens": self.config.prompt_length,
                "prompt_tuning_init": "RANDOM"}
