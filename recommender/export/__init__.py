"""Export a chosen configuration as a reproducible bundle.

A bundle is a folder that says what was chosen, why, and how to get it again::

    config.json        schema-versioned record (a :class:`BundleSpec`): method, its full
                       ``adapters`` config, every hyperparameter, model, task, meta-features,
                       budgets, search config, the measured (or predicted) numbers and the
                       environment  (config.yaml with fmt="yaml")
    peft_config.json   the equivalent Hugging Face PEFT config, where one exists (and the same file
                       as peft/adapter_config.json, the name ``PeftConfig.from_pretrained`` reads)
    train.py           retrains exactly this configuration with this package
    README.md          the choice in one paragraph, with its numbers
    weights/           with ``with_weights``: artifact/ (adapter + head, or the whole model) and,
                       with ``merged``, merged/ (a plain transformers model)

:func:`export_trial` exports a measured trial from the run store; :func:`export_recommendation`
exports a meta-model recommendation (every number under ``"predicted"``). Nothing is written
unless the whole bundle is: files go to a temporary folder next to the target, renamed into
place at the end.

Modules, one job each: ``spec`` (the record), ``source`` (reading the chosen trial),
``build`` and ``method_section`` (filling in the record), ``write`` (the files), ``retrain``
(the weights, and the arguments train.py uses), ``template`` (train.py), ``readme``
(README.md), ``safety`` (where a bundle may go, what ``force`` may replace), ``api``.
"""

from __future__ import annotations

from recommender.export.api import export_recommendation, export_trial
from recommender.export.errors import ExportError, Progress
from recommender.export.method_section import check_mergeable
from recommender.export.readme import render_readme
from recommender.export.retrain import REPRODUCE_TOLERANCE, load_bundle_task, retrain_kwargs
from recommender.export.safety import is_bundle
from recommender.export.spec import FORMATS, SCHEMA_VERSION, BundleSpec, check_format
from recommender.export.template import TRAIN_SCRIPT, render_train_script

__all__ = ["FORMATS", "REPRODUCE_TOLERANCE", "SCHEMA_VERSION", "TRAIN_SCRIPT", "BundleSpec", "ExportError",
           "Progress", "check_format", "check_mergeable", "export_recommendation", "export_trial", "is_bundle",
           "load_bundle_task", "render_readme", "render_train_script", "retrain_kwargs"]
