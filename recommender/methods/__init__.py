"""Tuning methods: one module per method, found through the registry."""

from recommender.methods.base import (
    MethodConfig,
    TuningMethod,
    get_method_class,
    make_method,
    method_names,
    register_method,
)

__all__ = ["MethodConfig", "TuningMethod", "get_method_class", "make_method", "method_names",
           "register_method"]
