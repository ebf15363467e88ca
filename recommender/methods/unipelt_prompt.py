"""UniPELT plus a prompt-tuning layer (arXiv 2405.05493), via ``adapters.ConfigUnion``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recommender.config_utils import check_range
from recommender.methods.base import register_method
from recommender.methods.prompt_tuning import prompt_config
from recommender.methods.unipelt import UniPELT, UniPELTMethodConfig, unipelt_parts


@dataclass(frozen=True)
class UniPELTPromptMethodConfig(UniPELTMethodConfig):
    prompt_length: int = field(default=10, metadata={"help": "soft-prompt tokens"})

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(type(self).__name__, "prompt_length", self.prompt_length, 1, 256)


@register_method
class UniPELTPrompt(UniPELT):
    name = "unipelt_prompt"
    config_class = UniPELTPromptMethodConfig
    description = "UniPELT with an added soft prompt (matches full fine-tuning in 2405.05493)."

    @property
    def inserted_tokens(self) -> int:
        return int(self.config.prompt_length)

    def build_adapter_config(self) -> Any:
        from adapters import ConfigUnion

        return ConfigUnion(*unipelt_parts(self.config), prompt_config(self.config.prompt_length))
