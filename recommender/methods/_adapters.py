"""Shared base for methods built on the AdapterHub ``adapters`` library."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from recommender.errors import NotMergeableError
from recommender.methods.base import TuningMethod, head_module_names

if TYPE_CHECKING:
    pass

ADAPTER_NAME = "task"


class AdapterMethod(TuningMethod):
    """A method defined by one ``adapters`` config added under the name ``"task"``.

    The task head (e.g. ``classifier``) stays trainable; everything else is frozen by
    ``train_adapter``.
    """

    #: the reason merging is refused (None: merging is implemented)
    not_mergeable_reason: ClassVar[str | None] = (
        "adapters' merge_adapter leaves this module in the forward pass; its output cannot be "
        "folded into the base weights"
    )

    @abstractmethod
    def build_adapter_config(self) -> Any:
        """The ``adapters`` config object for this method's settings."""

    def apply(self, model: Any) -> None:
        import adapters

        adapters.init(model)
        model.add_adapter(ADAPTER_NAME, config=self.build_adapter_config())
        model.train_adapter(ADAPTER_NAME)
        for name in head_module_names(model):
            for p in getattr(model, name).parameters():
                p.requires_grad = True

    @property
    def merge_supported(self) -> bool:
        return self.not_mergeable_reason is None

    def adapter_config_dict(self) -> dict[str, Any]:
        return dict(self.build_adapter_config().to_dict())

    def merge(self, model: Any) -> None:
        if self.not_mergeable_reason is not None:
            raise NotMergeableError(f"{self.name}: {self.not_mergeable_reason}")
        model.merge_adapter(ADAPTER_NAME)

    def save(self, model: Any, directory: Path) -> None:
        from safetensors.torch import save_file

        model.save_adapter(str(directory), ADAPTER_NAME)
        head = {
            f"{name}.{key}": value.detach().contiguous()
            for name in head_module_names(model)
            for key, value in getattr(model, name).state_dict().items()
        }
        save_file(head, str(Path(directory) / "head.safetensors"))
