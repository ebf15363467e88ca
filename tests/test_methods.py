"""Every registered tuning method: registry contract, honest parameter counts, merging, and
training on a tiny random BERT and on the real bundled model."""

from __future__ import annotations

import shutil

import pytest

from recommender.errors import ConfigError, UnknownNameError, UnsupportedTaskError
from recommender.methods import get_method_class, make_method, method_names
from recommender.methods.base import count_parameters
from recommender.types import Budget

# Trainable parameters (head excluded) of each method on all-MiniLM-L6-v2, as measured
# independently with adapters 1.3.0 (../shared/ENVIRONMENT.md).
EXPECTED_PARAMS = {
    "seq_bn": 113_040, "double_seq_bn": 226_080, "par_bn": 888_192, "lora": 73_728, "ia3": 13_824,
    "compacter": 14_320, "prompt_tuning": 3_840, "full_ft": 22_713_216, "head_only": 0,
    "tapt_ft": 22_713_216, "multitask_ft": 22_713_216,
}
EXPECTED_BEFORE_EJECT = {"prefix_tuning": 2_572_544, "unipelt": 2_760_872, "unipelt_prompt": 2_764_712}
EXPECTED_AFTER_EJECT = {"prefix_tuning": 138_240}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 2-layer BERT with the bundled tokenizer, saved as a local model."""
    from transformers import BertConfig, BertModel

    from recommender.models import bundled_model_path

    path = tmp_path_factory.mktemp("tiny-bert")
    config = BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256, max_position_embeddings=512,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # no dropout noise
    BertModel(config).save_pretrained(path)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        source = bundled_model_path() / name
        if source.exists():
            shutil.copy(source, path / name)
    return path


@pytest.fixture(scope="module")
def sst2_tiny():
    from recommender.tasks import load_task

    return load_task("glue_sst2").subsample(64, 32, seed=0)


def test_registry_names_are_unique_lowercase_and_cover_the_issue():
    names = method_names()
    required = {"full_ft", "multitask_ft", "tapt_ft", "seq_bn", "double_seq_bn", "par_bn", "lora", "ia3",
                "prefix_tuning", "prompt_tuning", "compacter", "unipelt", "unipelt_prompt", "head_only"}
    assert required <= set(names)
    assert all(n == n.lower() for n in names)


def test_unknown_method_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        get_method_class("lorra")
    assert "lora" in str(info.value) and "valid" in str(info.value)


def test_out_of_range_value_names_field_value_and_range():
    with pytest.raises(ConfigError) as info:
        make_method("lora", r=0)
    message = str(info.value)
    assert "r=0" in message and "allowed" in message


def test_unknown_hyperparameter_lists_valid_ones(sst2_tiny):
    from recommender.training import split_params

    with pytest.raises(UnknownNameError) as info:
        split_params("lora", {"rank": 4})
    assert "learning_rate" in str(info.value) and "alpha" in str(info.value)


def test_multitask_refuses_token_classification():
    with pytest.raises(UnsupportedTaskError) as info:
        make_method("multitask_ft").check_task("token_classification")
    assert "classification" in str(info.value)


@pytest.mark.parametrize("name", sorted(set(EXPECTED_PARAMS) | set(EXPECTED_BEFORE_EJECT)))
def test_trainable_parameter_counts_match_adapters_on_the_bundled_model(name):
    from recommender.models import bundled_model_path, load_model

    model = load_model(bundled_model_path(), "classification", 2)
    method = make_method(name)
    method.apply(model)
    counts = count_parameters(model)
    if name in EXPECTED_BEFORE_EJECT:
        assert counts["trainable"] == EXPECTED_BEFORE_EJECT[name]
        method.finalize(model)
        counts = count_parameters(model)
        if name in EXPECTED_AFTER_EJECT:
            assert counts["trainable"] == EXPECTED_AFTER_EJECT[name]
        assert counts["trainable"] < EXPECTED_BEFORE_EJECT[name]
    else:
        assert counts["trainable"] == EXPECTED_PARAMS[name]
    assert counts["head"] == 384 * 2 + 2  # a single linear head, trainable in every method


@pytest.mark.parametrize("name", method_names())
def test_every_method_trains_and_lowers_the_loss_on_a_tiny_bert(name, tiny_model_dir, sst2_tiny):
    from recommender.training import LatencyConfig, train

    lr = {"full_ft": 1e-3, "tapt_ft": 1e-3, "multitask_ft": 1e-3}.get(name, 1e-2)
    params = {"learning_rate": lr, "batch_size": 16, "warmup_ratio": 0.0}
    if name == "multitask_ft":
        params["co_task_max_examples"] = 32
        params["co_task_max_dev"] = 16
    if name == "tapt_ft":
        params["tapt_steps"] = 2
    # one fixed batch of 16 examples: every method can fit it, so the loss must fall
    result = train(sst2_tiny.subsample(16, 16, seed=1), name, params=params, model=tiny_model_dir,
                   budget=Budget(max_steps=30, max_epochs=30, eval_every_steps=10, patience=None),
                   latency=LatencyConfig(batch_sizes=(1,), max_seconds=0.2, base_model=False))
    assert result.status == "complete", result.error
    losses = [p.train_loss for p in result.curve]
    assert len(losses) == 3
    assert losses[-1] < losses[0], losses
    assert result.best_metric is not None and 0.0 <= result.best_metric <= 1.0
    assert result.latency and result.latency[0].p50_ms > 0
    assert result.artifact_bytes and result.artifact_bytes > 0


@pytest.mark.parametrize("name", method_names())
def test_every_method_runs_on_the_real_pretrained_model(name, sst2_tiny):
    from recommender.training import LatencyConfig, train

    params = {"tapt_steps": 2} if name == "tapt_ft" else {}
    if name == "multitask_ft":
        params = {"co_task_max_examples": 32, "co_task_max_dev": 16}
    result = train(sst2_tiny, name, params=params, budget=Budget(max_steps=3, eval_every_steps=3),
                   latency=LatencyConfig(batch_sizes=(1,), max_seconds=0.2, base_model=False))
    assert result.status == "complete", result.error
    assert result.best_metric is not None
    assert result.total_params > 22_000_000
    if name == "multitask_ft":
        assert any(k.endswith("/accuracy") for k in result.best_metrics)  # the co-task's metric
    if name == "tapt_ft":
        assert result.extra["tapt_steps"] == 2


@pytest.mark.parametrize("task_name", ["glue_stsb", "wnut17", "squad"])
@pytest.mark.parametrize("name", ["lora", "prompt_tuning", "unipelt_prompt", "prefix_tuning"])
def test_methods_handle_regression_ner_and_qa_on_the_real_model(task_name, name):
    from recommender.tasks import load_task
    from recommender.training import LatencyConfig, train

    task = load_task(task_name).subsample(24, 12, seed=0)
    result = train(task, name, budget=Budget(max_steps=2, eval_every_steps=2),
                   latency=LatencyConfig(enabled=False))
    assert result.status == "complete", result.error
    assert result.best_metric is not None


def test_lora_and_ia3_merge_exactly_and_others_are_reported_unmergeable(sst2_tiny):
    from recommender.report import result_row
    from recommender.training import LatencyConfig, train

    latency = LatencyConfig(batch_sizes=(1,), max_seconds=0.2, base_model=False)
    for name in ("lora", "ia3"):
        # a high learning rate moves the adapter weights well away from their identity init
        result = train(sst2_tiny, name, params={"learning_rate": 5e-2}, budget=Budget(max_steps=4),
                       latency=latency)
        assert result.mergeable is True, (name, result.merge_max_abs_diff, result.extra)
        assert result.merge_max_abs_diff < 1e-4
        assert {x.merged for x in result.latency} == {True, False}
    for name in ("seq_bn", "prefix_tuning", "unipelt", "full_ft"):
        result = train(sst2_tiny, name, budget=Budget(max_steps=2), latency=latency)
        # full fine-tuning has no adapter: "nothing to merge" (None), not "unmergeable"
        assert result.mergeable is (None if name == "full_ft" else False)
        assert not any(x.merged for x in result.latency)
        assert result_row(result)["merged"] is result.mergeable


def test_multitask_model_is_extended_with_a_new_task_and_reports_retained_scores(tmp_path):
    from recommender.tasks import bundled_spec, load_task
    from recommender.training import LatencyConfig, train

    first = load_task("glue_sst2").subsample(64, 32, seed=0)
    shared = {"co_task_max_examples": 64, "co_task_max_dev": 10_000, "learning_rate": 1e-4}
    original = train(first, "multitask_ft", params={"co_tasks": ["tweeteval_emotion"], **shared},
                     budget=Budget(max_steps=8, eval_every_steps=8), latency=LatencyConfig(enabled=False),
                     save_dir=tmp_path)
    assert original.status == "complete", original.error
    assert "tweeteval_emotion/accuracy" in original.best_metrics  # one metric per task
    new = load_task("financial_phrasebank").subsample(64, 32, seed=0)
    extended = train(new, "multitask_ft", params={
        "co_tasks": ["tweeteval_emotion"], "init_from": str(tmp_path / "artifact"), "replay_fraction": 0.05,
        **shared}, budget=Budget(max_steps=4, eval_every_steps=4), latency=LatencyConfig(enabled=False))
    assert extended.status == "complete", extended.error
    retained = extended.extra["retained"]["tweeteval_emotion"]
    metric = bundled_spec("tweeteval_emotion")[0].metric  # the task's official metric (macro-F1)
    assert retained["before"] == original.best_metrics[f"tweeteval_emotion/{metric}"]
    assert retained["after"] == extended.best_metrics[f"tweeteval_emotion/{metric}"]
    assert retained["retained"] == pytest.approx(retained["after"] / retained["before"])


def test_full_fine_tuning_can_freeze_the_embedding_table(tiny_model_dir, sst2_tiny):
    from recommender.errors import ConfigError
    from recommender.training import LatencyConfig, train

    def run(**extra):
        return train(sst2_tiny.subsample(16, 16, seed=1), "full_ft", model=tiny_model_dir,
                     params={"learning_rate": 1e-3, "batch_size": 16, "warmup_ratio": 0.0, **extra},
                     budget=Budget(max_steps=20, max_epochs=20, eval_every_steps=10, patience=None),
                     latency=LatencyConfig(batch_sizes=(1,), max_seconds=0.1, base_model=False))

    whole, frozen = run(), run(freeze_embeddings=True)
    vocab, hidden = 30522, 128  # the tiny BERT's token-embedding table
    assert whole.trainable_params - frozen.trainable_params == vocab * hidden
    losses = [p.train_loss for p in frozen.curve]
    assert frozen.status == "complete" and losses[-1] < losses[0]  # the rest still learns
    with pytest.raises(ConfigError, match="freeze_embeddings"):
        run(freeze_embeddings="maybe")
