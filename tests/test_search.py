"""The budgeted search on real components: the bundled model, SQLite and the PostgreSQL server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from recommender.errors import ConfigError, StorageError
from recommender.search.config import SearchConfig, TaskRef
from recommender.search.spaces import default_trial_params, get_space, load_spaces
from recommender.store import trial_result

POSTGRES_URL = os.environ.get("RECOMMENDER_TEST_POSTGRES", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TINY = TaskRef("glue_sst2", max_train=96, max_dev=48, seed=0)


def _fast(**kwargs):
    base = {"trial_time_budget": 20.0, "max_epochs": 1.0, "isolation": "none", "evals_per_epoch": 2.0}
    base.update(kwargs)
    return SearchConfig(**base)


def test_every_method_has_a_valid_space_and_every_space_a_method():
    from recommender.methods import method_names

    spaces = load_spaces()
    assert set(spaces) == set(method_names())
    for name, space in spaces.items():
        defaults = space.defaults()
        for key, dist in space.distributions.items():
            assert dist._contains(dist.to_internal_repr(defaults[key])), (name, key, defaults[key])


def test_invalid_search_space_file_names_file_parameter_and_reason(tmp_path):
    (tmp_path / "lora.json").write_text(json.dumps(
        {"method": "lora", "params": {"r": {"type": "int", "low": 8, "high": 2}}}))
    with pytest.raises(ConfigError) as info:
        load_spaces(tmp_path)
    assert "lora.json" in str(info.value) and "'r'" in str(info.value) and "below" in str(info.value)
    (tmp_path / "lora.json").write_text(json.dumps({"method": "lora", "params": {"rank": 4}}))
    with pytest.raises(ConfigError, match="not a hyperparameter"):
        load_spaces(tmp_path)


def test_conditional_space_samples_method_then_its_parameters():
    import optuna

    study = optuna.create_study()
    from recommender.search.spaces import suggest

    seen = set()
    for _ in range(6):
        trial = study.ask()
        method, params = suggest(trial, ["lora", "seq_bn"])
        seen.add(method)
        assert all(k.startswith((method + ".", "method")) for k in trial.params)
        assert set(params) >= set(get_space(method).distributions)
        study.tell(trial, 0.0)
    assert default_trial_params("lora")["lora.r"] == 8


def test_search_on_sqlite_respects_its_time_budget_and_records_every_trial(tmp_path, trial_processes):
    from recommender.metamodel.recommend import recommend
    from recommender.search.study import run_search

    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    budget = 75.0
    # the warm start's meta-model fitted and this machine calibrated once, as after a user's first
    # recommendation (both cached): in an empty user folder on a busy machine that alone took 50 s
    recommend(TINY.load())
    start = time.time()
    result = run_search(TINY, storage, "budgeted", SearchConfig(
        methods=("head_only", "lora"), time_budget=budget, trial_time_budget=25.0, max_epochs=2.0,
        warm_start=True, isolation="process"))
    elapsed = time.time() - start
    assert elapsed <= budget * 1.05, elapsed
    assert result.counts.get("COMPLETE", 0) >= 1 and result.best
    time.sleep(1)  # the trial process started ahead for a next trial ends with the search
    assert not trial_processes()
    import optuna

    study = optuna.load_study(study_name="budgeted", storage=storage)
    assert study.user_attrs["recommender"]["metafeatures"]["n_train"] == 96
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        run = trial_result(trial)
        assert run is not None and run.best_metric == trial.value
        assert run.latency and run.trainable_params is not None and run.curve


def test_constraints_exclude_infeasible_trials_from_the_best(tmp_path):
    from recommender.search.study import run_search

    result = run_search(TINY, f"sqlite:///{tmp_path / 'c.db'}", "constrained", _fast(
        methods=("lora", "head_only"), n_trials=2, warm_start=True, max_trainable_params=1000, pruner="none"))
    assert {t.method for t in result.trials} == {"lora", "head_only"}
    assert [t.method for t in result.best] == ["head_only"]
    lora = next(t for t in result.trials if t.method == "lora")
    # which LoRA configuration the warm start enqueues depends on the knowledge base; LoRA never fits
    # in 1,000 trainable parameters, and the violation is exactly what it exceeds the budget by
    assert lora.trainable_params > 1000
    assert not lora.feasible and lora.violations["trainable_params"] == lora.trainable_params - 1000


def test_nearest_feasible_trials_are_reported_when_nothing_fits(tmp_path):
    from recommender.search.study import run_search

    result = run_search(TINY, f"sqlite:///{tmp_path / 'n.db'}", "impossible", _fast(
        methods=("lora",), n_trials=1, warm_start=True, max_trainable_params=10, pruner="none"))
    assert not result.best and result.nearest
    nearest = result.nearest[0]
    assert nearest.trainable_params > 10 and nearest.violations == {"trainable_params": nearest.trainable_params - 10}


def test_pruner_prunes_a_trial_that_falls_behind(tmp_path):
    import optuna

    from recommender.search.study import create_search_study, run_worker

    storage = f"sqlite:///{tmp_path / 'p.db'}"
    config = _fast(methods=("head_only",), n_trials=3, pruner="successive_halving", evals_per_epoch=4.0,
                   max_epochs=2.0, trial_time_budget=90.0)
    study = create_search_study(TaskRef("glue_sst2", max_train=192, max_dev=96), storage, "prune", config)
    good = default_trial_params("head_only")
    bad = {**good, "head_only.learning_rate": 1e-9}  # out of range on purpose: it cannot learn
    study.enqueue_trial(good)
    study.enqueue_trial(good)
    study.enqueue_trial(bad)
    result = run_worker(storage, "prune", n_trials=3)
    states = [t.state for t in optuna.load_study(study_name="prune", storage=storage).get_trials()]
    assert "PRUNED" in [s.name for s in states], result.counts


def test_pareto_search_reports_a_feasible_front(tmp_path):
    from recommender.search.study import run_search

    result = run_search(TINY, f"sqlite:///{tmp_path / 'f.db'}", "front", _fast(
        methods=("head_only", "ia3"), n_trials=2, warm_start=True, objective="pareto"))
    assert result.best and all(t.feasible for t in result.best)
    assert {t.method for t in result.trials} == {"head_only", "ia3"}


def test_study_with_another_task_is_refused(tmp_path):
    from recommender.search.study import create_search_study

    storage = f"sqlite:///{tmp_path / 'x.db'}"
    create_search_study(TINY, storage, "one", _fast(n_trials=1))
    with pytest.raises(StorageError, match="one study holds one task"):
        create_search_study(TaskRef("glue_rte", max_train=50, max_dev=20), storage, "one", _fast(n_trials=1))


def test_impossible_latency_budget_is_refused_with_the_measured_base_latency(tmp_path):
    from recommender.errors import BudgetError
    from recommender.search.study import create_search_study

    with pytest.raises(BudgetError) as info:
        create_search_study(TINY, f"sqlite:///{tmp_path / 'l.db'}", "fast", _fast(n_trials=1, latency_budget_ms=0.01))
    assert "base model" in str(info.value) and "ms" in str(info.value)


def test_unreachable_storage_names_the_url():
    from recommender.store import open_storage

    with pytest.raises(StorageError, match="127.0.0.1:1"):
        open_storage("postgresql+psycopg2://nobody@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="127.0.0.1:1"):
        open_storage("postgresql://nobody@127.0.0.1:1/none")


def test_optuna_dashboard_reads_our_study(tmp_path):
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import optuna
    from optuna_dashboard import wsgi

    from recommender.search.study import run_search

    storage = f"sqlite:///{tmp_path / 'd.db'}"
    run_search(TINY, storage, "dash", _fast(methods=("head_only",), n_trials=1, warm_start=True))

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, wsgi(optuna.storages.RDBStorage(storage)), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        studies = json.loads(urllib.request.urlopen(f"{base}/api/studies", timeout=30).read())["study_summaries"]
        study_id = next(s["study_id"] for s in studies if s["study_name"] == "dash")
        detail = json.loads(urllib.request.urlopen(f"{base}/api/studies/{study_id}", timeout=30).read())
        attrs = {a["key"] for a in detail["trials"][0]["user_attrs"]}
        assert {"result", "metric", "latency_b1_ms"} <= attrs
    finally:
        server.shutdown()


# --- PostgreSQL: many workers ------------------------------------------------------------
def _worker(storage: str, study: str, n_trials: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recommender.cli", "worker", "--storage", storage,
                             "--study", study, "--n-trials", str(n_trials), "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.postgres
def test_three_postgres_workers_complete_one_study_without_lost_or_duplicated_trials():
    import optuna

    from recommender.search.study import create_search_study

    name = f"workers-{uuid.uuid4().hex[:8]}"
    # No pruner: this test is about trials lost or counted twice, and a pruned trial would make
    # the number of COMPLETE trials depend on which worker sampled what.
    config = SearchConfig(methods=("head_only", "ia3"), n_trials=4, trial_time_budget=20.0, max_epochs=1.0,
                          isolation="none", pruner="none")
    create_search_study(TaskRef("glue_sst2", max_train=64, max_dev=32), POSTGRES_URL, name, config)
    workers = [_worker(POSTGRES_URL, name, 4) for _ in range(3)]
    for w in workers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-2000:]
    trials = optuna.load_study(study_name=name, storage=POSTGRES_URL).get_trials()
    assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
    assert len({t.number for t in trials}) == len(trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 4
    assert all(trial_result(t) is not None for t in complete)


@pytest.mark.postgres
def test_a_killed_worker_trial_is_failed_and_retried_and_its_trial_process_dies_with_it(trial_processes):
    import optuna
    import psutil

    from recommender.search.study import create_search_study

    name = f"kill-{uuid.uuid4().hex[:8]}"
    # heartbeat settings live in the study: every worker judges staleness by the same rule
    config = SearchConfig(methods=("head_only",), n_trials=2, trial_time_budget=40.0, max_epochs=3.0,
                          isolation="process", heartbeat_interval=1, grace_period=4)
    create_search_study(TaskRef("glue_sst2", max_train=400, max_dev=64), POSTGRES_URL, name, config)
    victim = _worker(POSTGRES_URL, name, 2)
    study = optuna.load_study(study_name=name, storage=POSTGRES_URL)

    deadline = time.time() + 180
    while time.time() < deadline and not (any(t.state.name == "RUNNING" for t in study.get_trials())
                                          and trial_processes(victim.pid)):
        time.sleep(0.5)
    time.sleep(3)  # mid-trial
    running = [t.number for t in study.get_trials() if t.state.name == "RUNNING"]
    children = trial_processes(victim.pid)
    assert running and children, "the first worker never started a trial process"
    from recommender.search.study import load_search, summarize

    watched = summarize(*load_search(POSTGRES_URL, name))  # what a watcher sees mid-search
    assert watched.counts.get("RUNNING", 0) >= 1 and all(t.state != "RUNNING" for t in watched.trials)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"trial processes outlived their killed worker: {[p.pid for p in alive]}"
    time.sleep(5)  # let the heartbeat go stale
    survivor = _worker(POSTGRES_URL, name, 2)
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err[-2000:]
    trials = {t.number: t for t in optuna.load_study(study_name=name, storage=POSTGRES_URL).get_trials()}
    killed = trials[running[0]]
    assert killed.state == optuna.trial.TrialState.FAIL
    retried = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert retried and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials.values()) >= 2
