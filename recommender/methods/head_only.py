"""Linear probe: the encoder is frozen, only the task head is trained (a baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recommender.methods.base import TuningMethod, head_module_names, register_method

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@register_method
class HeadOnly(TuningMethod):
    no_peft_reason = ('only the task head is trained: the artifact is a whole transformers model, not an adapter')
    name = "head_only"
    description = "Linear probe: frozen encoder, only the task head is trained."
    default_learning_rate = 3e-3
    uses_adapters = False
    backpropagates_through_encoder = False

    def apply(self, model: PreTrainedModel) -> None:
        for p in model.parameters():
            p.requires_grad = False
        for name in head_module_names(model):
            for p in getattr(model, name).parameters():
                p.requires_grad = True

    def save(self, model: PreTrainedModel, directory: Path) -> None:
        """Only the head is new: ship it (and the config), not a copy of the encoder."""
        from safetensors.torch import save_file

        head = {f"{name}.{key}": value.detach().contiguous()
                for name in head_module_names(model) for key, value in getattr(model, name).state_dict().items()}
        save_file(head, str(Path(directory) / "head.safetensors"))
        model.config.save_pretrained(directory)
