"""Exporting a configuration as a reproducible bundle, on real components: a tiny real search on
SQLite, the bundle's own train.py run as a subprocess, PEFT loading the config, and the merged
model loaded with plain transformers."""

from __future__ import annotations

import json
import math
import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.errors import (
    ConfigError,
    NotMergeableError,
    RecommenderError,
    StorageError,
    UnknownNameError,
)
from recommender.export import BundleSpec, ExportError, check_mergeable, export_recommendation, export_trial
from recommender.export.spec import jsonable
from recommender.search.config import SearchConfig, TaskRef

STUDY = "s"
REF = TaskRef("glue_sst2", max_train=32, max_dev=16)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
CLI = "import sys; from recommender.cli import main; sys.exit(main())"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=ENV, cwd=cwd,
                          timeout=600)


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> dict:
    """One real LoRA trial (≈30-70 s on a loaded 2-core CPU); its time limit is loose so it ends by epochs."""
    from recommender.search.study import run_search

    root = tmp_path_factory.mktemp("export_search")
    url = f"sqlite:///{root / 'r.db'}"
    result = run_search(REF, url, STUDY, SearchConfig(
        methods=("lora",), n_trials=1, warm_start=True, trial_time_budget=150, max_epochs=1, isolation="none"))
    assert result.best, result.counts
    return {"root": root, "url": url, "db": root / "r.db", "best": result.best[0]}


@pytest.fixture(scope="module")
def retrained(searched, tmp_path_factory) -> dict:
    """Everything that retrains, side by side to save time: the exported bundle's own train.py and
    a `recommender export --format yaml` run as subprocesses, while this process exports with
    --with-weights --merged (which retrains for the weights)."""
    root = tmp_path_factory.mktemp("export_retrain")
    bundle = export_trial(searched["url"], STUDY, "best", root / "bundle")
    commands = {
        "train_py": [sys.executable, str(bundle / "train.py"), "--out", str(root / "retrained")],
        "cli": [sys.executable, "-c", CLI, "export", "--storage", searched["url"], "--study", STUDY,
                "--trial", str(searched["best"].number), "--out", "cli_bundle", "--format", "yaml"],
    }
    procs = {}
    for name, command in commands.items():
        with open(root / f"{name}.out", "w") as out, open(root / f"{name}.err", "w") as err:
            procs[name] = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=ENV, cwd=root)
    try:
        weighted = export_trial(searched["url"], STUDY, "best", root / "weighted", with_weights=True, merged=True)
    finally:
        codes = {name: proc.wait(timeout=600) for name, proc in procs.items()}
    return {"root": root, "bundle": bundle, "weighted": weighted, "codes": codes,
            **{f"{n}_{s}": (root / f"{n}.{s}").read_text() for n in commands for s in ("out", "err")}}


def _copy_db(searched: dict, tmp_path: Path) -> tuple[str, object]:
    import optuna

    from recommender.store import open_storage

    db = tmp_path / "copy.db"
    shutil.copy(searched["db"], db)
    url = f"sqlite:///{db}"
    return url, optuna.load_study(study_name=STUDY, storage=open_storage(url, heartbeat=False))


def _assert_nothing_written(parent: Path, out: Path) -> None:
    assert not out.exists()
    leftovers = [p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


# --- the round trip ------------------------------------------------------------------------
def test_bundle_records_everything_and_train_py_reproduces_the_trial(searched, retrained):
    best = searched["best"]
    bundle = retrained["bundle"]
    assert sorted(p.name for p in bundle.iterdir()) == ["README.md", "config.json", "peft", "peft_config.json",
                                                       "train.py"]
    config = json.loads((bundle / "config.json").read_text())
    assert config["schema_version"] == 1 and config["kind"] == "measured" and "predicted" not in config
    assert config["method"] == "lora" and config["source"]["trial"] == best.number
    assert config["adapters_config"]["architecture"] == "lora" and config["adapters_config"]["r"] == best.params.get("r", 8)  # the trial's (warm-started) rank
    assert config["hyperparameters"]["learning_rate"] == best.params["learning_rate"]
    assert config["model"] == "bundled" and config["seed"] == 0
    assert config["task"]["ref"]["source"] == "glue_sst2" and config["task"]["metafeatures"]["n_train"] == 32
    assert config["search"]["trial_time_budget"] == 150 and config["budget"]["retrain"]["max_epochs"] == 1
    measured = config["measured"]
    assert measured["metric"] == pytest.approx(best.metric) and measured["metric_name"] == "accuracy"
    assert measured["time_to_best_s"] > 0 and measured["trainable_params"] == best.trainable_params
    assert measured["latency"]["b1_ms"]["unmerged"] > 0 and measured["latency"]["b1_ms"]["merged"] > 0
    assert measured["peak_memory_mb"] > 0 and measured["artifact_bytes"] > 0
    assert config["environment"]["trial"]["packages"]["adapters"]
    spec = BundleSpec.from_dict(config)  # the typed record reads back key for key
    assert spec.is_measured and spec.source.trial == best.number and jsonable(spec.to_dict()) == config
    readme = (bundle / "README.md").read_text()
    assert f"{best.metric:.4f}" in readme and "lora" in readme

    out = retrained["root"] / "retrained"
    assert retrained["codes"]["train_py"] == 0, retrained["train_py_err"][-2000:]
    assert "dev accuracy:" in retrained["train_py_out"]
    result = json.loads((out / "result.json").read_text())
    assert math.isclose(result["best_metric"], best.metric, abs_tol=1e-6)
    assert result["params"] == config["hyperparameters"] and result["steps"] == measured["steps"]
    assert (out / "artifact" / "head.safetensors").is_file()


def test_cli_export_writes_a_yaml_bundle_whose_peft_config_loads_with_peft(retrained):
    import yaml
    from peft import LoraConfig, PeftConfig

    assert retrained["codes"]["cli"] == 0, retrained["cli_err"][-2000:]
    bundle = retrained["root"] / "cli_bundle"
    assert f"wrote bundle {bundle}" in retrained["cli_out"]
    assert not (bundle / "config.json").exists()

    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert json.loads((bundle / "peft_config.json").read_text()) == \
        json.loads((bundle / "peft" / "adapter_config.json").read_text())
    peft = PeftConfig.from_pretrained(str(bundle / "peft"))
    assert isinstance(peft, LoraConfig)
    adapters_config = config["adapters_config"]
    assert peft.r == adapters_config["r"] and peft.lora_alpha == adapters_config["alpha"]
    # the layers PEFT adapts (its own matching) are the ones adapters did, not the attention output
    assert _layers_peft_adapts(peft) == _layers_adapters_adapts(
        adapters_config["attn_matrices"], adapters_config.get("intermediate_lora"), adapters_config.get("output_lora"))
    assert peft.task_type == "SEQ_CLS" and peft.inference_mode is True
    assert config["peft_equivalent"] is True


def test_with_weights_merged_gives_a_plain_model_equal_to_the_adapter_model(searched, retrained):
    import adapters
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from recommender.models import bundled_model_path, load_model

    bundle = retrained["weighted"]
    config = json.loads((bundle / "config.json").read_text())
    assert config["weights"]["reproduced"] is True
    assert math.isclose(config["weights"]["retrained_metric"], searched["best"].metric, abs_tol=1e-6)
    artifact, merged = bundle / "weights" / "artifact", bundle / "weights" / "merged"

    plain = AutoModelForSequenceClassification.from_pretrained(str(merged)).eval()
    assert not hasattr(plain, "adapters_config")  # nothing of the adapters library
    model = load_model(bundled_model_path(), "classification", 2)
    adapters.init(model)
    model.load_adapter(str(artifact), load_as="task", set_active=True, with_head=False)
    model.load_state_dict(load_file(str(artifact / "head.safetensors")), strict=False)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(artifact))
    texts = ["a gripping , funny and moving film", "dull , lifeless and far too long", "it 's fine",
             "the best thing i have seen all year", "an utter waste of time"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected, got = model(**batch).logits, plain(**batch).logits
    assert torch.allclose(expected, got, atol=1e-5)
    assert torch.equal(expected.argmax(-1), got.argmax(-1))


# --- refusals: each with its reason, none leaving anything behind -------------------------------
def test_bad_input_is_refused_with_a_reason_and_nothing_written(searched, tmp_path):
    import optuna

    url, study = _copy_db(searched, tmp_path)
    failed = study.ask()
    failed.set_user_attr("error", "trial process exited with code 1")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    pruned = study.ask()
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    parent = tmp_path / "out"
    parent.mkdir()
    out = parent / "bundle"
    best = f"#{searched['best'].number} lora"

    with pytest.raises(StorageError, match="existing studies: s"):
        export_trial(url, "nope", "best", out)
    with pytest.raises(StorageError, match="no such database"):
        export_trial(f"sqlite:///{tmp_path / 'missing.db'}", STUDY, "best", out)
    assert not (tmp_path / "missing.db").exists()
    with pytest.raises(ExportError, match=r"no trial #99.*" + best):
        export_trial(url, STUDY, 99, out)
    with pytest.raises(ExportError, match=r"is FAIL: trial process exited.*" + best):
        export_trial(url, STUDY, failed.number, out)
    with pytest.raises(ExportError, match=r"is PRUNED.*" + best):
        export_trial(url, STUDY, str(pruned.number), out)
    with pytest.raises(ConfigError, match="expected 'best' or a trial number"):
        export_trial(url, STUDY, "latest", out)
    with pytest.raises(ConfigError, match="format 'toml'"):
        export_trial(url, STUDY, "best", out, fmt="toml")
    _assert_nothing_written(parent, out)


def _add_trial(study, method: str, params: dict) -> int:
    """A complete trial of another method, recorded the way the search records one."""
    import optuna

    source = study.trials[0]
    result = dict(source.user_attrs["result"], method=method, params=params)
    trial = optuna.trial.create_trial(value=source.value, user_attrs={**source.user_attrs, "result": result})
    study.add_trial(trial)
    return study.trials[-1].number


def test_merged_is_refused_for_methods_that_cannot_merge_and_peft_absence_is_stated(searched, tmp_path):
    from recommender.methods import make_method

    url, study = _copy_db(searched, tmp_path)
    number = _add_trial(study, "seq_bn", {"reduction_factor": 16.0, "non_linearity": "relu", "learning_rate": 1e-3})
    out = tmp_path / "bundle"
    with pytest.raises(NotMergeableError, match="seq_bn: .*cannot be folded into the base weights"):
        export_trial(url, STUDY, number, out, merged=True)
    _assert_nothing_written(tmp_path, out)
    for name, reason in (("prefix_tuning", "extra positions"), ("full_ft", "no adapter to merge")):
        with pytest.raises(NotMergeableError, match=reason):
            check_mergeable(make_method(name))

    bundle = export_trial(url, STUDY, number, out)
    config = json.loads((bundle / "config.json").read_text())
    assert config["peft_equivalent"] is False and "bottleneck" in config["peft_reason"]
    assert not (bundle / "peft_config.json").exists()
    assert config["adapters_config"]["reduction_factor"] == 16.0
    assert "no Hugging Face PEFT equivalent" in (bundle / "README.md").read_text()


def test_existing_output_is_refused_unless_forced(searched, tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="already exists.*--force"):
        export_trial(searched["url"], STUDY, "best", out)
    with pytest.raises(ExportError, match="not an earlier bundle"):  # --force replaces only a bundle
        export_trial(searched["url"], STUDY, "best", out, force=True)
    assert (out / "mine.txt").read_text() == "keep me"
    (out / "mine.txt").unlink()
    out.rmdir()
    export_trial(searched["url"], STUDY, "best", out)
    (out / "stale.txt").write_text("from an older export")
    export_trial(searched["url"], STUDY, "best", out, force=True)
    assert (out / "config.json").is_file() and not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_failure_mid_way_leaves_no_half_bundle(searched, tmp_path):
    from recommender.store import STUDY_ATTR

    url, study = _copy_db(searched, tmp_path)
    info = dict(study.user_attrs[STUDY_ATTR])
    info["task_ref"] = {**info["task_ref"], "source": str(tmp_path / "moved_away.csv")}
    study.set_user_attr(STUDY_ATTR, info)
    parent = tmp_path / "new" / "deeper"
    out = parent / "bundle"
    # config, peft and train.py are written before the retrain for the weights finds the data gone
    with pytest.raises(RecommenderError, match="moved_away.csv"):
        export_trial(url, STUDY, "best", out, with_weights=True)
    assert not (tmp_path / "new").exists()


def test_cli_bad_study_exits_nonzero_with_one_error_line(searched, tmp_path):
    proc = run_cli("export", "--storage", searched["url"], "--study", "nope", "--out", str(tmp_path / "b"))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "existing studies: s" in lines[0]
    assert not (tmp_path / "b").exists()


# --- a recommendation, before any trial ----------------------------------------------------
def test_recommendation_bundle_labels_every_number_as_predicted(searched, tmp_path):
    import optuna

    from recommender.store import STUDY_ATTR, open_storage

    info = optuna.load_study(study_name=STUDY, storage=open_storage(searched["url"], heartbeat=False)) \
        .user_attrs[STUDY_ATTR]
    candidate = {"method": "lora", "params": {"r": 16, "alpha": 32.0, "learning_rate": 1e-3},
                 "predicted": {"metric": [0.78, 0.84, 0.88], "time_to_best_s": 95.0},
                 "latency_b1_ms": 6.5, "trainable_params": 147456, "rationale": "small data; LoRA merges for free"}
    bundle = export_recommendation(candidate, REF.to_dict(), info["metafeatures"], tmp_path / "rec")
    config = json.loads((bundle / "config.json").read_text())
    assert config["kind"] == "predicted" and "measured" not in _keys(config)
    assert config["predicted"] == {"metric": [0.78, 0.84, 0.88], "time_to_best_s": 95.0, "latency_b1_ms": 6.5,
                                   "trainable_params": 147456}
    assert config["hyperparameters"]["r"] == 16 and config["adapters_config"]["r"] == 16
    assert json.loads((bundle / "peft_config.json").read_text())["r"] == 16
    readme = (bundle / "README.md").read_text()
    assert "PREDICTED, NOT MEASURED" in readme and "predicted dev metric 0.8400" in readme
    assert "small data" in readme
    py_compile.compile(str(bundle / "train.py"), doraise=True)
    assert "'r': 16" not in (bundle / "train.py").read_text()  # read from config.json at run time

    out = tmp_path / "rec2"
    with pytest.raises(UnknownNameError, match="unknown method 'lorra'"):
        export_recommendation({**candidate, "method": "lorra"}, REF.to_dict(), info["metafeatures"], out)
    with pytest.raises(UnknownNameError, match="hyperparameter for lora 'rank'"):
        export_recommendation({**candidate, "params": {"rank": 4}}, REF.to_dict(), info["metafeatures"], out)
    with pytest.raises(ExportError, match="already exists"):
        export_recommendation(candidate, REF.to_dict(), info["metafeatures"], bundle)
    assert not out.exists()


def test_a_meta_model_candidate_exports_as_it_is(searched, tmp_path):
    import optuna

    from recommender.store import STUDY_ATTR, open_storage
    from recommender.types import Candidate, MetaFeatures

    info = optuna.load_study(study_name=STUDY, storage=open_storage(searched["url"], heartbeat=False)) \
        .user_attrs[STUDY_ATTR]
    candidate = Candidate(
        rank=1, method="seq_bn", params={"reduction_factor": 32.0, "learning_rate": 1e-3}, predicted_metric=0.81,
        metric_interval=[0.74, 0.86], predicted_gap=-0.02, predicted_time_s=140.0, time_interval=[90.0, 220.0],
        predicted_latency_ms=7.5, latency_interval=[6.0, 9.0], predicted_memory_mb=950.0, trainable_params=25000,
        storage_mb=0.1, add_task_cost="one adapter", p_meets={"latency": 0.93}, feasible=True,
        why="fast to converge on small data")
    bundle = export_recommendation(candidate, TaskRef.from_dict(info["task_ref"]),
                                   MetaFeatures.from_dict(info["metafeatures"]), tmp_path / "rec", fmt="yaml")
    import yaml

    config = yaml.safe_load((bundle / "config.yaml").read_text())
    assert config["kind"] == "predicted" and config["source"]["rank"] == 1
    assert config["predicted"]["predicted_metric"] == 0.81 and config["predicted"]["p_meets"] == {"latency": 0.93}
    assert "why" not in config["predicted"] and config["source"]["rationale"] == "fast to converge on small data"
    assert config["peft_equivalent"] is False and not (bundle / "peft_config.json").exists()
    readme = (bundle / "README.md").read_text()
    assert "predicted dev metric 0.8100; predicted dev metric interval 0.7400 to 0.8600" in readme
    assert "no Hugging Face PEFT equivalent" in readme and "PREDICTED, NOT MEASURED" in readme


@pytest.mark.parametrize("targets", ["qv", "qkv", "qkv_ffn"])
def test_the_peft_config_of_lora_adapts_the_layers_adapters_does(targets: str) -> None:
    """PEFT matches a list entry by suffix, so "output.dense" would also adapt the attention
    output, which adapters' ``output_lora`` leaves alone; PEFT's own matching must select the
    same layers as the adapters config."""
    import dataclasses

    from peft import LoraConfig

    from recommender.methods.base import get_method_class

    cls = get_method_class("lora")
    method = cls(dataclasses.replace(cls.config_class(), targets=targets))
    spec = method.peft_config()
    peft = LoraConfig(r=spec["r"], lora_alpha=spec["lora_alpha"], target_modules=spec["target_modules"])
    adapters_config = method.build_adapter_config()
    assert _layers_peft_adapts(peft) == _layers_adapters_adapts(
        adapters_config.attn_matrices, adapters_config.intermediate_lora, adapters_config.output_lora)


#: where each layer a LoRA can adapt sits in a BERT encoder layer
BERT_LAYER_PATHS = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
                    "attention_output": "attention.output.dense", "intermediate": "intermediate.dense",
                    "output": "output.dense"}


def _layers_peft_adapts(peft) -> set[str]:
    """The layers of :data:`BERT_LAYER_PATHS` that PEFT's own matching selects."""
    from peft.tuners.tuners_utils import check_target_module_exists

    return {name for name, path in BERT_LAYER_PATHS.items()
            if check_target_module_exists(peft, f"bert.encoder.layer.3.{path}")}


def _layers_adapters_adapts(attn_matrices, intermediate_lora, output_lora) -> set[str]:
    """The layers of :data:`BERT_LAYER_PATHS` an adapters LoRA config adapts."""
    return set(attn_matrices) | ({"intermediate"} if intermediate_lora else set()) | (
        {"output"} if output_lora else set())
