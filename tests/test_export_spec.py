"""The bundle's record is a typed, validated BundleSpec: its config file reads back to the same
record, the retrain arguments come from it, and a damaged file names what is wrong."""

from __future__ import annotations

import dataclasses
import json

import pytest

from recommender.errors import ConfigError
from recommender.export import BundleSpec, export_recommendation, retrain_kwargs
from recommender.export.spec import jsonable

CANDIDATE = {"method": "head_only", "params": {"learning_rate": 1e-3}, "predicted": {"metric": [0.6, 0.7, 0.8]},
             "rationale": "small data", "seed": 3}


@pytest.fixture(scope="module")
def record(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("spec") / "bundle"
    export_recommendation(CANDIDATE, "glue_sst2", {"task_type": "classification"}, out)
    return json.loads((out / "config.json").read_text(encoding="utf-8"))


def test_config_file_reads_back_to_the_same_record_key_for_key(record):
    spec = BundleSpec.from_dict(record)
    assert spec.kind == "predicted" and not spec.is_measured and spec.seed == 3
    assert spec.method.peft_equivalent is False and spec.method.peft_reason
    again = jsonable(spec.to_dict())
    assert again == record and list(again) == list(record)


def test_retrain_arguments_are_the_same_from_the_record_or_its_file(record):
    spec = BundleSpec.from_dict(record)
    from_file, from_spec = retrain_kwargs(record), retrain_kwargs(spec)
    assert from_file == from_spec
    assert from_file["method"] == spec.method.name and from_file["seed"] == 3
    assert from_file["latency"].batch_sizes == tuple(record["budget"]["latency"]["batch_sizes"])
    assert from_spec["budget"] is not spec.budget.retrain  # training gets its own copy


@pytest.mark.parametrize(("damage", "message"), [
    (lambda r: r.pop("seed"), "lacks seed"),
    (lambda r: r["budget"].pop("retrain"), "budget lacks retrain"),
    (lambda r: r.update(kind="guessed"), "kind='guessed'"),
    (lambda r: r.update(seed="0"), "seed='0'"),
    (lambda r: r.update(schema_version=99), "schema_version=99"),
    (lambda r: r.pop("hyperparameters"), "lacks hyperparameters"),
    (lambda r: r["task"].pop("ref"), "task lacks ref"),
    (lambda r: r.update(task=[]), "task: expected a mapping"),
    (lambda r: r.update(measured={}), "measured lacks status"),
])
def test_a_damaged_record_names_what_is_wrong(record, damage, message):
    broken = json.loads(json.dumps(record))
    damage(broken)
    with pytest.raises(ConfigError, match=message):
        BundleSpec.from_dict(broken)


def test_a_predicted_record_cannot_carry_measured_numbers_or_lack_predictions(record):
    spec = BundleSpec.from_dict(record)
    with pytest.raises(ConfigError, match="search: not allowed in a predicted bundle"):
        dataclasses.replace(spec, search={})
    with pytest.raises(ConfigError, match="predicted: required in a predicted bundle"):
        dataclasses.replace(spec, predicted=None)
    with pytest.raises(ConfigError, match="source must be a TrialSource"):
        dataclasses.replace(spec, kind="measured")
