"""The Streamlit app, page by page, through ``streamlit.testing.v1.AppTest`` (no browser)."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from recommender.errors import ConfigError, DataError
from recommender.paths import REPO_ROOT

if str(REPO_ROOT) not in sys.path:  # `app` is a folder beside the package, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

MAIN = REPO_ROOT / "app" / "streamlit_app.py"
PAGES = sorted(p.name for p in (REPO_ROOT / "app" / "app_pages").glob("*.py") if p.name != "__init__.py")
FIRST_RUN_S = 240  # the first run imports scikit-learn, fits the meta-model and may calibrate this machine


def kb_runs() -> int:
    from recommender.knowledge_base import default_path

    path = default_path()
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip()) if path.exists() else 0


def app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(MAIN), default_timeout=FIRST_RUN_S)
    if page is not None:
        at.switch_page(f"app_pages/{page}")
    return at.run()


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def assert_clean(at: AppTest) -> None:
    assert not at.exception, texts(at.exception)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Iterator[Path]:
    """An empty user folder: its own run store and search records. Searches left running stop."""
    from recommender.search.background import list_searches, stop_search

    path = tmp_path / "home"
    monkeypatch.setenv("RECOMMENDER_HOME", str(path))
    yield path
    for record in list_searches():
        if record["alive"]:
            stop_search(record["study"])


# --- every page --------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(page, home):
    at = app(page)
    assert_clean(at)
    assert at.title, f"{page} shows no title"


def test_pages_are_wired_by_st_navigation_and_there_is_no_pages_folder():
    source = MAIN.read_text(encoding="utf-8")
    assert "st.navigation" in source
    for page in PAGES:
        assert f"app_pages/{page}" in source
    assert not (REPO_ROOT / "app" / "pages").exists()


# --- Recommend -----------------------------------------------------------------------------------
def test_recommendation_for_a_bundled_task_appears_and_reacts_to_budgets(home):
    at = app("recommend.py")
    assert_clean(at)
    if kb_runs() < 5:  # the library refuses to fit on too few runs and the page says so
        assert any("at least 5" in e for e in texts(at.error)), texts(at.error)
        pytest.skip("the knowledge base has fewer than 5 runs; the page shows the library's error")
    assert not at.error, texts(at.error)
    table = at.dataframe[0].value
    assert {"rank", "method", "feasible", "P(meets)", "time to converge (s)", "latency (ms)"} <= set(table.columns)
    assert len(table) >= 3 and table["rank"].tolist() == list(range(1, len(table) + 1))
    assert at.get("plotly_chart"), "no chart"
    at.button(key="export_top").click().run(timeout=FIRST_RUN_S)  # the first export imports torch
    assert_clean(at)
    assert any(b.label == "Download the bundle (.zip)" for b in at.get("download_button"))
    assert at.session_state["top_pick_zip"][2][:2] == b"PK"
    recommendation = at.session_state["recommendation"]
    assert recommendation["task"] == "glue_sst2" and recommendation["candidates"]

    start = time.perf_counter()
    at.number_input(key="budget_latency").set_value(0.5).run()  # no method serves in half a millisecond
    elapsed = time.perf_counter() - start
    assert_clean(at)
    assert not at.dataframe[0].value["feasible"].any()
    assert any("No candidate meets every budget" in w for w in texts(at.warning))
    assert elapsed < 10, f"a budget change took {elapsed:.1f}s (the meta-model should be cached)"


def test_recommendations_also_learn_from_the_searches_in_the_apps_run_store(home, copy_runs_into_storage):
    from recommender.knowledge_base import load_knowledge_base
    from recommender.metamodel.recommend import load_metamodel
    from recommender.paths import default_storage_url

    if kb_runs() < 5:
        pytest.skip("the knowledge base has fewer than 5 runs")
    shipped = load_metamodel().n_runs_
    usable = [r for r in load_knowledge_base() if r.result.has_metric and r.result.status == "complete"]
    copy_runs_into_storage(usable[:3], default_storage_url(), "search:from-the-app")
    at = app("recommend.py")
    assert_clean(at)
    assert any(f"Learned from {shipped + 3} past runs" in c for c in texts(at.caption)), texts(at.caption)


def test_verify_with_a_search_starts_a_background_search_on_the_top_methods(home):
    from recommender.search.background import search_status, stop_search

    if kb_runs() < 5:
        pytest.skip("needs a knowledge base of at least 5 runs")
    at = app("recommend.py")
    at.number_input(key="verify_max_train").set_value(64)
    at.button(key="verify").click().run(timeout=60)
    assert_clean(at)
    assert not at.error, texts(at.error)
    assert any("started in the background" in s for s in texts(at.success))
    study = at.session_state["search_study"]
    assert study.startswith("verify-glue_sst2-")
    status = search_status(study, with_result=False)
    methods = list(dict.fromkeys(c["method"] for c in at.session_state["recommendation"]["candidates"]))
    assert status.alive and list(status.config.methods) == methods and status.config.warm_start
    assert status.extra["task_ref"]["max_train"] == 64
    assert stop_search(study).state == "stopped"


def test_recommendation_can_be_exported_from_the_export_page(home):
    if kb_runs() < 5:
        pytest.skip("needs a knowledge base of at least 5 runs")
    at = app("recommend.py")
    at.switch_page("app_pages/export.py").run()
    assert_clean(at)
    assert at.radio(key="export_source").value == "The current recommendation"
    at.button(key="export_build_rec").click().run()
    assert_clean(at)
    assert not at.error, texts(at.error)
    assert any(b.label == "Download the bundle" for b in at.get("download_button"))
    data, name, _ = at.session_state["export_zip"]
    assert name.endswith(".zip") and data[:2] == b"PK"


def test_bad_upload_shows_an_error_not_a_traceback(home):
    at = app("recommend.py")
    at.radio(key="rec_source").set_value("Upload a file").run()
    assert_clean(at)
    at.file_uploader(key="rec_upload").set_value(("reviews.csv", b"just one column\nhello\n", "text/csv")).run()
    assert_clean(at)
    assert any("header has one column" in e for e in texts(at.error)), texts(at.error)
    ragged = b'text,label\n"fine",1\n"broken, quote,0\n'
    at.file_uploader(key="rec_upload").set_value(("ragged.csv", ragged, "text/csv")).run()
    assert_clean(at)
    assert at.error, "a broken file must be reported"
    single_class = "".join(f"example {i},pos\n" for i in range(20)).encode()
    at.file_uploader(key="rec_upload").set_value(("one.csv", b"text,label\n" + single_class, "text/csv")).run()
    assert_clean(at)
    assert any("single class" in e for e in texts(at.error)), texts(at.error)


def test_good_upload_is_parsed_in_memory_with_column_mapping(home):
    rows = "".join(f"{'great' if i % 2 else 'awful'} movie number {i},{'pos' if i % 2 else 'neg'},x{i}\n"
                   for i in range(60))
    at = app("recommend.py")
    at.radio(key="rec_source").set_value("Upload a file").run()
    at.file_uploader(key="rec_upload").set_value(("my reviews.csv", ("body,stars,id\n" + rows).encode(),
                                                  "text/csv")).run()
    assert_clean(at)
    # neither "body" nor "stars" is a usual column name: the library asks which is which
    assert any("cannot tell which column is the" in e for e in texts(at.error)), texts(at.error)
    at.selectbox(key="map_text").set_value("body").run()
    at.selectbox(key="map_label").set_value("stars").run()
    assert_clean(at)
    assert any("classification" in s and "'body'" in s for s in texts(at.success)), texts(at.success)
    upload = at.session_state["upload"]
    assert upload["path"] is None, "nothing is written to disk before an export or a search"
    assert not (home / "uploads").exists() or not any((home / "uploads").iterdir())


def test_upload_helper_refuses_oversized_unknown_and_non_utf8_files():
    from app.ui import parse_upload

    with pytest.raises(DataError, match="upload limit"):
        parse_upload("big.csv", b"text,label\n" + b"x,1\n" * 300_000, max_mb=1)
    with pytest.raises(DataError, match="unsupported file type"):
        parse_upload("model.pkl", b"\x80\x04K\x01.")
    with pytest.raises(DataError, match="not valid UTF-8"):
        parse_upload("latin.csv", b"text,label\ncaf\xe9,1\n")
    rows = parse_upload("../../etc/passwd.jsonl", b'{"text": "a", "label": 1}\n')
    assert rows == [{"text": "a", "label": 1}]


def test_uploaded_rows_for_a_search_go_to_a_private_file_named_safely(home):
    from recommender.search.background import write_task_rows

    path = write_task_rows([{"text": "a", "label": "x"}], "../../evil name;rm -rf.csv")
    assert path.resolve().is_relative_to((home / "uploads").resolve())
    assert path.name == "evil_name_rm_-rf.jsonl"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"text": "a", "label": "x"}


# --- Search --------------------------------------------------------------------------------------
def _launch(at: AppTest, *, time_budget: int, max_train: int = 64, study: str | None = None,
            model: str | None = None) -> AppTest:
    at.selectbox(key="search_task").set_value("glue_sst2").run()
    at.multiselect(key="search_methods").set_value(["head_only"]).run()
    if study is not None:
        at.text_input[0].set_value(study)
    if model is not None:
        at.text_input(key="form_model").set_value(model)
    at.number_input(key="form_time").set_value(time_budget)
    at.number_input(key="form_trial_time").set_value(30)
    at.number_input(key="form_max_train").set_value(max_train)
    at.number_input(key="form_max_dev").set_value(64)
    at.checkbox(key="form_warm").uncheck()
    at.button[0].click()  # the form's submit button
    return at.run()


def _state(at: AppTest) -> str:
    return next(m.value for m in at.metric if m.label == "State")


def test_search_with_a_tiny_budget_shows_progress_then_a_finished_result(home):
    at = app("search.py")
    assert_clean(at)
    at = _launch(at, time_budget=40)
    assert_clean(at)
    assert not at.error, texts(at.error)
    assert any("started" in s for s in texts(at.success))
    study = at.session_state["search_study"]
    assert (home / "searches" / f"{study}.json").is_file() and (home / "searches" / f"{study}.log").is_file()
    states = []
    deadline = time.time() + 180
    while time.time() < deadline:
        at.run(timeout=60)
        assert_clean(at)
        states.append(_state(at))
        if states[-1] in ("finished", "failed", "stopped"):
            break
        time.sleep(3)
    assert {"starting", "running"} & set(states[:-1]), states
    assert states[-1] == "finished", (states, texts(at.error), at.session_state)
    trials = at.dataframe[-1].value
    assert "head_only" in trials["method"].tolist() and "COMPLETE" in trials["state"].tolist()
    assert any("Best feasible so far" in m.value for m in at.markdown)

    # a new session (a page reload) finds the search again, and can export its best trial
    again = app("search.py")
    assert _state(again) == "finished"
    again.switch_page("app_pages/export.py").run()
    again.radio(key="export_source").set_value("A trial of a search").run()
    assert again.selectbox(key="export_study").value == study
    again.button(key="export_build_trial").click().run(timeout=60)
    assert_clean(again)
    assert not again.error, texts(again.error)
    assert any(b.label == "Download the bundle" for b in again.get("download_button"))


def test_stop_button_ends_a_running_search(home):
    import psutil

    at = _launch(app("search.py"), time_budget=600)
    assert_clean(at)
    study = at.session_state["search_study"]
    pid = json.loads((home / "searches" / f"{study}.json").read_text())["pid"]
    at.button(key=f"stop-{study}").click().run(timeout=60)
    assert_clean(at)
    assert _state(at) == "stopped"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_search_form_errors_are_shown_inline(home, tmp_path):
    at = _launch(app("search.py"), time_budget=600, study="../escape")
    assert_clean(at)
    assert any("study name" in e for e in texts(at.error)), texts(at.error)
    at = _launch(app("search.py"), time_budget=600, model=str(tmp_path / "no-such-model"))
    assert_clean(at)
    assert any("model folder not found" in e for e in texts(at.error)), texts(at.error)
    assert not (home / "searches").exists() or not list((home / "searches").glob("*.log"))


def _recorded_pareto_search(home: Path) -> str:
    """A finished Pareto search as the storage and the search record hold it (no training)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from recommender.search.config import SearchConfig
    from recommender.types import LatencyStats, RunResult

    home.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{home / 'runs.db'}"
    config = SearchConfig(methods=("lora", "ia3"), n_trials=4, objective="pareto")
    study = optuna.create_study(study_name="pareto-recorded", storage=storage,
                                directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("recommender", {"schema": 1, "kind": "search", "task_name": "glue_sst2",
                                        "metric_name": "accuracy", "config": config.to_dict(),
                                        "methods": ["lora", "ia3"]})
    distributions = {"method": CategoricalDistribution(["lora", "ia3"]),
                     "lora.learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}
    for i, (metric, seconds, latency) in enumerate([(0.8, 30, 40), (0.7, 10, 35), (0.75, 20, 50), (0.6, 40, 60)]):
        result = RunResult(task="glue_sst2", method="lora", params={}, status="complete", metric_name="accuracy",
                           best_metric=metric, time_to_best_s=seconds, trainable_params=73_728,
                           latency=[LatencyStats(batch_size=1, seq_len=64, p50_ms=latency, p95_ms=latency)])
        study.add_trial(optuna.trial.create_trial(
            params={"method": "lora", "lora.learning_rate": 10 ** -(3 + 0.3 * i)}, distributions=distributions,
            values=[metric, seconds, latency], user_attrs={"metric": metric, "result": result.to_dict()}))
    searches = home / "searches"
    searches.mkdir(parents=True, exist_ok=True)
    log = searches / "pareto-recorded.log"
    log.write_text('--- start\n{"study_name": "pareto-recorded"}\n', encoding="utf-8")
    (searches / "pareto-recorded.json").write_text(json.dumps({
        "pid": 2 ** 22 + 7, "study": "pareto-recorded",  # above the largest Linux pid: not alive
        "storage": storage, "started_at": time.time() - 60,
        "time_budget": None, "task": "glue_sst2", "log": str(log), "stopped": False, "ended_at": None}))
    return "pareto-recorded"


def test_pareto_search_shows_its_front_and_importances(home):
    study = _recorded_pareto_search(home)
    at = app("search.py")
    assert_clean(at)
    assert _state(at) == "finished"
    assert any("Pareto front (feasible)" in m.value for m in at.markdown)
    front = at.dataframe[0].value
    assert sorted(front["accuracy"].tolist()) == [0.7, 0.75, 0.8]  # (0.6, 40 s, 60 ms) is dominated
    assert len(at.get("plotly_chart")) >= 1
    importances = [c.value for c in at.caption if "importances" in c.value]
    assert len(at.get("plotly_chart")) == 2, importances  # the trials and the parameter importances
    assert at.session_state["search_study"] == study


# --- library side ------------------------------------------------------------------------------
def test_background_search_command_maps_the_config_and_refuses_what_it_cannot_pass():
    from recommender.cli import _load_extra_commands, build_parser
    from recommender.search.background import search_command
    from recommender.search.config import SearchConfig, TaskRef

    cmd = search_command(TaskRef("glue_rte", {"label_col": "y", "language": "de"}, max_train=64), "sqlite:///x.db",
                         "s", SearchConfig(methods=("lora", "ia3"), time_budget=90, latency_budget_ms=40.0,
                                           objective="pareto", warm_start=True, patience=5, evals_per_epoch=4.0))
    assert cmd[1:5] == ["-m", "recommender.cli", "search", "glue_rte"]
    joined = " ".join(cmd)
    for part in ("--methods lora,ia3", "--time-budget 90", "--latency-budget-ms 40.0", "--objective pareto",
                 "--warm-start", "--max-train 64", "--label-col y", "--language de", "--patience 5",
                 "--evals-per-epoch 4.0", "--json"):
        assert part in joined
    _load_extra_commands()  # the real parser reads every flag back
    args = build_parser().parse_args(cmd[3:])
    assert (args.patience, args.evals_per_epoch, args.language, args.label_col) == (5, 4.0, "de", "y")
    with pytest.raises(ConfigError, match="overrides"):
        search_command(TaskRef("glue_rte", {"max_length": 64}), "sqlite:///x.db", "s", SearchConfig(n_trials=1))


def test_app_command_binds_localhost_and_finds_the_app():
    from recommender.app_cli import app_command
    from recommender.cli import _load_extra_commands, build_parser

    cmd = app_command()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert Path(cmd[cmd.index("run") + 1]) == MAIN
    _load_extra_commands()
    args = build_parser().parse_args(["app", "--port", "8765"])
    assert args.port == 8765 and args.address == "127.0.0.1"
    with pytest.raises(ConfigError):
        app_command(port=0)


def test_app_sources_do_not_unpickle_execute_or_trust_remote_code():
    sources = [p.read_text(encoding="utf-8") for p in (REPO_ROOT / "app").rglob("*.py")]
    sources.append((REPO_ROOT / "recommender" / "search" / "background.py").read_text(encoding="utf-8"))
    for text in sources:
        for forbidden in ("pickle", "eval(", "exec(", "trust_remote_code=True", "shell=True"):
            assert forbidden not in text, forbidden
    assert os.environ.get("RECOMMENDER_HOME")  # the tests never touch the user's own folder
