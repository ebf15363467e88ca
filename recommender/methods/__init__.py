"""Tuning methods: one module per method, found through the registry."""

from recommender.methods.base import (
    REFERENCE_METHOD,
    MethodConfig,
    TuningMethod,
    get_method_class,
    make_method,
    method_names,
    register_method,
)

#: the second seed paper's method (arXiv 2405.05493), which reports compare with full fine-tuning
UNIPELT_PROMPT = "unipelt_prompt"

__all__ = ["REFERENCE_METHOD", "UNIPELT_PROMPT", "MethodConfig", "TuningMethod", "get_method_class", "make_method", "method_names",
           "register_method"]
