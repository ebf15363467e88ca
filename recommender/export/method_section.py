"""What a bundle says about its method: the configs, the PEFT equivalent, and merging.

Everything here is asked of the method (``peft_equivalent``, ``no_peft_reason``,
``not_mergeable_reason``, ``uses_adapters``, ...): no method is named.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recommender.errors import NotMergeableError, RecommenderError
from recommender.export.sections import MergeInfo, MethodSection

PEFT_TASK_TYPES = {"classification": "SEQ_CLS", "regression": "SEQ_CLS",
                   "token_classification": "TOKEN_CLS", "extractive_qa": "QUESTION_ANS"}
#: PEFT types whose config also needs the model's sizes
PROMPT_PEFT_TYPES = ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING")
BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_method(name: str, params: dict[str, Any]) -> Any:
    """The tuning method ``name`` configured by ``params`` (every hyperparameter validated)."""
    from recommender.training import split_params

    _, method = split_params(name, params)
    return method


def check_mergeable(method: Any, result: Any = None) -> None:
    """Refuse a merged export unless the method's merge is implemented and verified exact."""
    reason = getattr(method, "not_mergeable_reason", None)
    if not method.uses_adapters:
        raise NotMergeableError(
            f"cannot export a merged model for {method.name}: it trains the model's own weights, so there is "
            "no adapter to merge; --with-weights already gives a plain transformers model (weights/artifact)")
    if reason is not None:
        raise NotMergeableError(f"cannot export a merged model for {method.name}: {reason}")
    if result is not None and result.mergeable is False:
        drift = "" if result.merge_max_abs_diff is None else f" (max |logit difference| {result.merge_max_abs_diff:.2e})"
        raise NotMergeableError(f"cannot export a merged model for trial of {method.name}: merging it did not "
                                f"reproduce the unmerged outputs when measured{drift}")


def method_section(method: Any, params: dict[str, Any], searched: dict[str, Any], model: str,
                   task_type: str | None, merge_result: Any) -> MethodSection:
    """The bundle's method section; ``merge_result`` is the trial's result (None: predicted)."""
    peft = peft_config(method, model, task_type) if method.peft_equivalent else None
    reason = getattr(method, "not_mergeable_reason", None)
    if not method.uses_adapters:
        reason = "no adapter to merge: the artifact already is a plain transformers model"
    merge = MergeInfo(implemented=method.merge_supported and reason is None, reason=reason)
    if merge_result is not None:
        merge = MergeInfo(merge.implemented, reason, measured=True, verified=merge_result.mergeable,
                          max_abs_diff=merge_result.merge_max_abs_diff)
    no_peft = None if peft is not None else (method.no_peft_reason or (
        f"Hugging Face PEFT has no equivalent of {method.name}; load the artifact with this package"))
    return MethodSection(name=method.name, description=method.description, uses_adapters=method.uses_adapters,
                         adapters_config=method.adapter_config_dict(), method_params=method.config.to_dict(),
                         hyperparameters=dict(params), searched_hyperparameters=dict(searched), merge=merge,
                         peft_config=peft, peft_reason=no_peft)


def peft_config(method: Any, model: str, task_type: str | None) -> dict[str, Any] | None:
    """The method's PEFT config in PEFT's ``adapter_config.json`` schema."""
    config = model_config(model)
    peft = method.peft_config(config.get("model_type", "bert"))
    if peft is None:
        return None
    from recommender.models import BUNDLED_ALIASES

    bundled = model is None or str(model).lower() in BUNDLED_ALIASES
    base = BUNDLED_HUB_ID if bundled else str(Path(model).expanduser().resolve())
    out = {"base_model_name_or_path": base, "task_type": PEFT_TASK_TYPES.get(task_type or "", "SEQ_CLS"),
           "inference_mode": True, "revision": None, **peft}
    if out["peft_type"] in PROMPT_PEFT_TYPES and config:
        out.setdefault("token_dim", config.get("hidden_size"))
        out.setdefault("num_layers", config.get("num_hidden_layers"))
        out.setdefault("num_attention_heads", config.get("num_attention_heads"))
        out.setdefault("num_transformer_submodules", 1)
    return out


def model_config(model: str) -> dict[str, Any]:
    """The base model's transformers ``config.json`` ({} when it cannot be read)."""
    from recommender.models import resolve_model_path

    try:
        return json.loads((resolve_model_path(None if model == "bundled" else model) / "config.json").read_text())
    except (RecommenderError, OSError, ValueError):
        return {}
