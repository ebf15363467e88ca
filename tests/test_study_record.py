"""The study record: what search and sweep store about a study reads back exactly, a record that
does not fit is one error naming its field, and one function lists a store's studies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.errors import StorageError
from recommender.search.config import SearchConfig, TaskRef
from recommender.store import SCHEMA_VERSION, STUDY_ATTR
from recommender.study_record import StudyRecord

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "knowledge_base" / "runs.jsonl"
FEATURES = json.loads(SHIPPED.read_text(encoding="utf-8").splitlines()[0])["metafeatures"]
SPEC = {"name": "glue_sst2", "task_type": "classification", "metric": "accuracy", "train_file": "train.csv"}

# the records as `recommender search` and `recommender sweep` write them
SEARCH = {"schema": SCHEMA_VERSION, "kind": "search", "task_ref": TaskRef("glue_sst2", max_train=32).to_dict(),
          "task": SPEC, "task_name": "glue_sst2", "metafeatures": FEATURES,
          "config": SearchConfig(n_trials=2).to_dict(), "methods": ["lora", "head_only"],
          "metric_name": "accuracy", "model": "bundled", "environment": {"device": "cpu"}, "created_at": 1.5e9}
SWEEP = {"schema": SCHEMA_VERSION, "kind": "sweep", "task": SPEC, "task_name": "glue_sst2", "size": 500,
         "metafeatures": FEATURES, "sweep": {"tasks": ["glue_sst2"], "sizes": [500]}, "model": "bundled",
         "protocol": 2}


@pytest.mark.parametrize("stored", [SEARCH, SWEEP], ids=["search", "sweep"])
def test_a_record_as_written_reads_back_to_the_same_dict(stored):
    record = StudyRecord.from_dict(stored)
    assert record.to_dict() == stored
    assert record.metafeatures is not None and record.metafeatures.fingerprint == FEATURES["fingerprint"]


def test_the_search_record_types_its_configuration_and_task_reference():
    record = StudyRecord.from_dict(SEARCH)
    assert record.is_search and record.config == SearchConfig(n_trials=2)
    assert record.task_ref == TaskRef("glue_sst2", max_train=32) and record.methods == ("lora", "head_only")
    assert (record.metric_label, record.task_label, record.run_protocol) == ("accuracy", "glue_sst2", 0)


def test_a_minimal_record_without_schema_reads_with_defaults():
    record = StudyRecord.from_dict({"kind": "sweep", "task": SPEC, "metafeatures": FEATURES})
    assert (record.schema, record.task_label, record.metric_label, record.run_protocol) == (
        SCHEMA_VERSION, "glue_sst2", "metric", 1)


def test_a_schema_1_search_record_gets_the_defaults_its_configuration_lacked():
    config = {k: v for k, v in SEARCH["config"].items()
              if k not in ("schema", "heartbeat_interval", "grace_period", "max_consecutive_failures")}
    record = StudyRecord.from_dict({**SEARCH, "schema": 1, "config": config})
    assert record.config is not None and record.config.grace_period == 90


@pytest.mark.parametrize(("edit", "named"), [
    ({"colour": "red"}, "'colour'"),
    ({"size": "big"}, "size='big'"),
    ({"kind": "grid"}, "kind='grid'"),
    ({"methods": [1]}, "methods"),
    ({"config": {**SEARCH["config"], "future_knob": 1}}, "'future_knob'"),
    ({"metafeatures": {"n_train": 3}}, "metafeatures"),
])
def test_a_record_that_does_not_fit_is_one_storage_error_naming_the_field(edit, named):
    with pytest.raises(StorageError, match=named):
        StudyRecord.from_dict({**SEARCH, **edit})
    with pytest.raises(StorageError, match="lacks field 'kind'"):
        StudyRecord.from_dict({"task_name": "x"})


def test_study_summaries_lists_every_study_with_its_record(tmp_path):
    import optuna

    from recommender.store import open_storage
    from recommender.studies import iter_runs, study_names, study_summaries

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    store = open_storage(url, heartbeat=False)
    optuna.create_study(study_name="ours", storage=store).set_user_attr(STUDY_ATTR, SWEEP)
    optuna.create_study(study_name="theirs", storage=store)
    summaries = {s.name: s for s in study_summaries(url)}
    assert summaries["ours"].kind == "sweep" and summaries["ours"].record == StudyRecord.from_dict(SWEEP)
    assert summaries["theirs"].kind == "other" and summaries["theirs"].record is None
    assert list(iter_runs(url)) == [] and study_names(url) == ["ours", "theirs"]

    optuna.load_study(study_name="ours", storage=store).set_user_attr(STUDY_ATTR, {**SWEEP, "size": 0})
    with pytest.raises(StorageError, match="study 'ours'.*size"):
        study_summaries(url)


def test_a_search_writes_the_keys_it_always_wrote(tmp_path):
    from recommender.search.study import create_search_study

    config = SearchConfig(n_trials=1, methods=("head_only",), trial_time_budget=30.0, isolation="none")
    study = create_search_study(TaskRef("glue_sst2", max_train=32, max_dev=16), f"sqlite:///{tmp_path / 'r.db'}",
                                "s", config)
    stored = study.user_attrs[STUDY_ATTR]
    assert set(stored) == set(SEARCH)
    assert StudyRecord.from_dict(stored).to_dict() == stored
