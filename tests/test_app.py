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
    monkeypatch.setenv("RECOMMENDER_APP_WARMUP", "0")  # the pages compute on demand, in the test's thread
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
    assert {"Rank", "Method", "Meets budgets", "Time to converge (s)", "Trainable params"} <= set(table.columns)
    assert len(table.columns) <= 9 and not any("_" in c for c in table.columns), list(table.columns)
    assert len(table) >= 3 and table["Rank"].tolist() == list(range(1, len(table) + 1))
    assert table["Method"].is_unique, "one row per method"
    assert set(table["Meets budgets"]) == {"no budget set"}
    top_pick = next(m for m in at.metric if m.label == "Top pick")  # says what put it first
    ranked_by = at.session_state["recommendation"]["candidates"][0]["ranked_by"]
    assert ranked_by in ("robust default", "predicted to beat the robust default")
    assert top_pick.value == table["Method"][0] and f"Ranked by: {ranked_by}." in top_pick.help
    assert at.get("plotly_chart"), "no chart"
    at.button(key="export_top").click().run(timeout=FIRST_RUN_S)  # the first export imports torch
    assert_clean(at)
    assert any(b.label == "Download the bundle (.zip)" for b in at.get("download_button"))
    assert at.session_state["top_pick_zip"][2][:2] == b"PK"
    recommendation = at.session_state["recommendation"]
    assert recommendation["task"] == "glue_sst2" and recommendation["task_id"] == "bundled:glue_sst2"

    start = time.perf_counter()
    at.number_input(key="budget_latency").set_value(0.5).run()  # no method serves in half a millisecond
    elapsed = time.perf_counter() - start
    assert_clean(at)
    assert all(v.startswith("no: latency") for v in at.dataframe[0].value["Meets budgets"])
    assert any("No candidate meets every budget" in w for w in texts(at.warning))
    assert elapsed < 10, f"a budget change took {elapsed:.1f}s (the meta-model should be cached)"


def test_recommend_says_which_device_times_are_calibrated_on(home):
    if kb_runs() < 5:
        pytest.skip("needs a knowledge base of at least 5 runs")
    at = app("recommend.py")
    assert_clean(at)
    calibrated = next(c for c in texts(at.caption) if "calibrated on" in c)
    assert "calibrated on auto" not in calibrated
    assert "CPU" in calibrated or "cuda" in calibrated, calibrated
    assert "training in bf16" in calibrated or "training in fp32" in calibrated or "training in fp16" in calibrated


def test_state_survives_page_changes_and_search_arrives_filled_in(home):
    """Recommend -> Search -> Runs -> Export -> Recommend keeps the task and the budgets; "Verify with
    a search" opens Search with the task, the recommended methods and the budgets."""
    if kb_runs() < 5:
        pytest.skip("needs a knowledge base of at least 5 runs")
    at = app("recommend.py")
    at.selectbox(key="rec_task").set_value("glue_rte").run()
    at.number_input(key="budget_tasks").set_value(20).run()
    at.number_input(key="budget_latency").set_value(80.0).run()
    at.number_input(key="budget_params").set_value(200_000).run()
    at.number_input(key="budget_time").set_value(2.0).run()
    assert_clean(at)
    methods = list(dict.fromkeys(c["method"] for c in at.session_state["recommendation"]["candidates"]))
    for page in ("search.py", "runs.py", "export.py", "recommend.py"):
        at.switch_page(f"app_pages/{page}").run()
        assert_clean(at)
    assert at.selectbox(key="rec_task").value == "glue_rte"
    assert at.number_input(key="budget_tasks").value == 20
    assert at.number_input(key="budget_latency").value == 80.0
    assert any("Budgets: training ≤ 2 min; latency ≤ 80 ms" in c for c in texts(at.caption)), texts(at.caption)

    at.button(key="verify").click().run()
    assert_clean(at)
    assert at.title[0].value == "Budgeted search"
    assert at.selectbox(key="search_task").value == "bundled:glue_rte"
    assert at.multiselect(key="search_methods").value == [m for m in methods]
    assert at.number_input(key="form_latency").value == 80.0
    assert at.number_input(key="form_params").value == 200_000
    assert at.number_input(key="form_trial_time").value == 120
    assert at.radio(key="form_strategy").value == "race"  # verifying a recommendation races its portfolio
    assert any("From your recommendation" in i for i in texts(at.info))


def test_widget_values_dropped_by_an_interrupted_page_change_come_back(home):
    """A click on another page while a run is still drawing (e.g. a finished search redrawing its
    page) makes Streamlit drop the widget keys of the page being left; they come back."""
    at = app("recommend.py")
    at.selectbox(key="rec_task").set_value("glue_rte").run()
    at.number_input(key="budget_tasks").set_value(20).run()
    at.number_input(key="budget_latency").set_value(80.0).run()
    at.switch_page("app_pages/runs.py").run()
    for key in ("rec_task", "budget_tasks", "budget_latency"):  # what Streamlit's page-change cleanup does
        del at.session_state[key]
    at.switch_page("app_pages/recommend.py").run()
    assert_clean(at)
    assert at.selectbox(key="rec_task").value == "glue_rte"
    assert at.number_input(key="budget_tasks").value == 20
    assert at.number_input(key="budget_latency").value == 80.0


def test_choosing_a_task_on_search_makes_it_the_task_everywhere(home):
    at = app("search.py")
    at.selectbox(key="search_task").set_value("bundled:ag_news").run()
    assert_clean(at)
    at.switch_page("app_pages/recommend.py").run()
    assert_clean(at)
    assert at.selectbox(key="rec_task").value == "ag_news"
    assert at.session_state["task_id"] == "bundled:ag_news"


def test_recommendations_also_learn_from_the_searches_in_the_apps_run_store(home, copy_runs_into_storage):
    from recommender.knowledge_base import load_knowledge_base
    from recommender.metamodel.predictor import load_predictor
    from recommender.paths import default_storage_url

    if kb_runs() < 5:
        pytest.skip("the knowledge base has fewer than 5 runs")
    shipped = load_predictor().n_runs
    usable = [r for r in load_knowledge_base() if r.result.has_metric and r.result.status == "complete"]
    from recommender.metamodel.predictor import MIN_USER_RUNS  # fewer are not learned from yet

    copy_runs_into_storage(usable[:MIN_USER_RUNS], default_storage_url(), "search:from-the-app")
    at = app("recommend.py")
    assert_clean(at)
    assert any(f"Learned from {shipped + MIN_USER_RUNS} past runs" in c for c in texts(at.caption)), texts(at.caption)


def test_verify_with_a_search_starts_a_background_search_on_the_top_methods(home):
    from recommender.search.background import search_status, stop_search

    if kb_runs() < 5:
        pytest.skip("needs a knowledge base of at least 5 runs")
    at = app("recommend.py")
    at.button(key="verify").click().run(timeout=60)
    assert_clean(at)
    assert at.title[0].value == "Budgeted search"
    methods = list(dict.fromkeys(c["method"] for c in at.session_state["recommendation"]["candidates"]))
    at.switch_page("app_pages/search.py")  # AppTest would otherwise rerun the page it was pointed at first
    at.number_input(key="form_max_train").set_value(64)
    at.button[0].click().run(timeout=60)  # the form's "Start search"
    assert_clean(at)
    assert not at.error, texts(at.error)
    study = at.session_state["search_study"]
    assert study.startswith("glue_sst2-")
    status = search_status(study, with_result=False)
    assert status.alive and list(status.config.methods) == methods and status.config.warm_start
    assert status.extra["strategy"] == "race"  # the recommendation's portfolio, raced
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


REVIEWS = ("body,stars,id\n" + "".join(f"{'great' if i % 2 else 'awful'} movie number {i},{'pos' if i % 2 else 'neg'},x{i}\n"
                                      for i in range(60))).encode()


def _upload(at: AppTest, name: str = "my reviews.csv", raw: bytes = REVIEWS) -> AppTest:
    at.radio(key="rec_source").set_value("Upload a file").run()
    at.file_uploader(key="rec_upload").set_value((name, raw, "text/csv")).run()
    at.selectbox(key="map_text").set_value("body").run()
    return at.selectbox(key="map_label").set_value("stars").run()


def test_choosing_the_text_column_as_label_says_they_must_differ(home):
    at = _upload(app("recommend.py"))
    at.selectbox(key="map_label").set_value("body").run()
    assert_clean(at)
    assert any("must differ" in e and "'body'" in e for e in texts(at.error)), texts(at.error)
    assert not any("not found" in e for e in texts(at.error))
    assert at.session_state["upload"]["id"] is None  # nothing half-mapped reaches Search


def test_an_upload_survives_page_changes_and_is_the_search_task(home):
    at = _upload(app("recommend.py"))
    assert_clean(at)
    upload_id = at.session_state["upload"]["id"]
    assert upload_id.startswith("upload:") and at.session_state["task_id"] == upload_id
    at.switch_page("app_pages/search.py").run()
    assert_clean(at)
    assert at.selectbox(key="search_task").value == upload_id  # the same identifier on both pages
    at.switch_page("app_pages/recommend.py").run()
    assert_clean(at)
    assert at.radio(key="rec_source").value == "Upload a file"
    assert at.selectbox(key="map_text").value == "body" and at.selectbox(key="map_label").value == "stars"
    assert any("uploaded earlier in this session" in c for c in texts(at.caption)), texts(at.caption)
    assert any("classification" in s and "'body'" in s for s in texts(at.success)), texts(at.success)


def test_a_recommendation_bundle_for_an_upload_carries_the_data_with_relative_paths(home, tmp_path):
    import io
    import subprocess
    import zipfile

    if kb_runs() < 5:
        pytest.skip("needs a knowledge base of at least 5 runs")
    at = _upload(app("recommend.py"), name="../my reviews [final].csv")
    assert_clean(at)
    assert not at.error, texts(at.error)
    at.switch_page("app_pages/export.py").run()
    assert at.radio(key="export_source").value == "The current recommendation"
    at.button(key="export_build_rec").click().run(timeout=FIRST_RUN_S)
    assert_clean(at)
    assert not at.error, texts(at.error)
    data, name, _ = at.session_state["export_zip"]
    assert "my-reviews-final" in name
    zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path)
    bundle = next(p for p in tmp_path.iterdir() if p.is_dir())
    config = json.loads((bundle / "config.json").read_text())
    source = config["task"]["ref"]["source"]
    assert source == "my-reviews-final.csv" and (bundle / source).read_bytes() == REVIEWS  # a safe name
    assert config["task"]["ref"]["overrides"] == {"text_col": "body", "label_col": "stars"}
    readme = (bundle / "README.md").read_text()
    assert readme.splitlines()[0].endswith("for my-reviews-final.csv: PREDICTED configuration"), readme[:200]
    assert "meeting ;" not in readme and "meeting;" not in readme
    assert str(home) not in readme + (bundle / "train.py").read_text() + json.dumps(config)
    assert "## Data" in readme
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run([sys.executable, "train.py", "--help"], cwd=bundle, env=env, capture_output=True,
                         text=True, timeout=120)
    # train.py is constant code: it reads the data's name from config.json at run time
    assert run.returncode == 0 and "--data" in run.stdout, run.stderr[-2000:]
    from recommender.tasks import load_task  # the bundle's data reference loads from its folder

    task = load_task(str(bundle / source), **config["task"]["ref"]["overrides"])
    assert task.spec.text_col == "body" and task.spec.label_col == "stars"


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
    at.selectbox(key="search_task").set_value("bundled:glue_sst2").run()
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
    assert "head_only" in trials["Method"].tolist() and "complete" in trials["State"].tolist()
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


def _recorded_pareto_search(home: Path, n_trials: int = 5, objective: str = "pareto") -> str:
    """A finished Pareto (or quality) search as the storage and the search record hold it (no training)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from recommender.search.config import SearchConfig
    from recommender.types import LatencyStats, RunResult

    home.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{home / 'runs.db'}"
    config = SearchConfig(methods=("lora", "ia3"), n_trials=4, objective=objective)
    study = optuna.create_study(study_name="pareto-recorded", storage=storage,
                                directions=["maximize", "minimize", "minimize"][: 3 if objective == "pareto" else 1])
    study.set_user_attr("recommender", {"schema": 1, "kind": "search", "task_name": "glue_sst2",
                                        "metric_name": "accuracy", "config": config.to_dict(),
                                        "methods": ["lora", "ia3"]})
    distributions = {"method": CategoricalDistribution(["lora", "ia3"]),
                     "lora.learning_rate": FloatDistribution(1e-5, 1e-2, log=True)}
    points = [(0.8, 30, 40), (0.7, 10, 35), (0.75, 20, 50), (0.6, 40, 60), (0.55, 45, 70)][:n_trials]
    for i, (metric, seconds, latency) in enumerate(points):
        result = RunResult(task="glue_sst2", method="lora", params={}, status="complete", metric_name="accuracy",
                           best_metric=metric, time_to_best_s=seconds, trainable_params=73_728,
                           latency=[LatencyStats(batch_size=1, seq_len=64, p50_ms=latency, p95_ms=latency)])
        study.add_trial(optuna.trial.create_trial(
            params={"method": "lora", "lora.learning_rate": 10 ** -(3 + 0.3 * i)}, distributions=distributions,
            values=[metric, seconds, latency][: 3 if objective == "pareto" else 1], user_attrs={"metric": metric, "result": result.to_dict()}))
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
    assert sorted(front["accuracy"].tolist()) == [0.7, 0.75, 0.8]  # (0.6, 40 s, 60 ms) etc. are dominated
    assert len(at.get("plotly_chart")) >= 1
    importances = [c.value for c in at.caption if "importances" in c.value]
    assert len(at.get("plotly_chart")) == 2, importances  # the trials and the parameter importances
    assert at.session_state["search_study"] == study
    assert not any("_" in c for c in at.dataframe[-1].value.columns)
    assert "Meets constraints" in at.dataframe[-1].value.columns


def test_parameter_importances_wait_for_five_complete_trials(home):
    _recorded_pareto_search(home, n_trials=4)
    at = app("search.py")
    assert_clean(at)
    assert len(at.get("plotly_chart")) == 1
    assert any("once 5 trials have completed (4 so far)" in c for c in texts(at.caption)), texts(at.caption)


def test_the_log_panel_is_readable_not_a_raw_json_line(home):
    _recorded_pareto_search(home)
    log = home / "searches" / "pareto-recorded.log"
    report = {"study_name": "pareto-recorded", "metric_name": "accuracy", "counts": {"COMPLETE": 5},
              "best": [{"number": 0, "method": "lora", "metric": 0.8}]}
    log.write_text("--- start\n" + json.dumps(report) + "\n", encoding="utf-8")
    at = app("search.py")
    assert_clean(at)
    shown = at.get("code")[-1].value
    assert "search pareto-recorded finished: 5 complete; best: trial #0 lora, accuracy 0.8000" in shown
    assert '{"study_name"' not in shown


def test_a_running_trial_is_shown_live(home):
    """A RUNNING trial of an alive search: method, hyperparameters, the dev curve so far, time left."""
    import subprocess

    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from recommender.search.config import SearchConfig

    home.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{home / 'runs.db'}"
    study = optuna.create_study(study_name="live", storage=storage, direction="maximize")
    study.set_user_attr("recommender", {"schema": 1, "kind": "search", "task_name": "glue_sst2",
                                        "metric_name": "accuracy", "methods": ["lora"],
                                        "config": SearchConfig(methods=("lora",), time_budget=600).to_dict()})
    trial = study.ask({"method": CategoricalDistribution(["lora"]),
                       "lora.learning_rate": FloatDistribution(1e-5, 1e-2, log=True)})
    trial.set_user_attr("trial_time_budget_s", 300.0)
    for step, value in ((64, 0.55), (128, 0.61), (192, 0.66)):
        trial.report(value, step)
    # a stand-in for the search process: alive, with "search" and the study on its command line
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "search", "live"])
    try:
        searches = home / "searches"
        searches.mkdir(parents=True, exist_ok=True)
        (searches / "live.log").write_text("--- start\n", encoding="utf-8")
        (searches / "live.json").write_text(json.dumps({
            "pid": proc.pid, "study": "live", "storage": storage, "started_at": time.time() - 20,
            "time_budget": 600, "task": "glue_sst2", "log": str(searches / "live.log"), "stopped": False,
            "ended_at": None}))
        at = app("search.py")
        assert_clean(at)
        assert _state(at) == "running"
        assert any("Trial #0 running: lora" in m.value and "learning_rate=" in m.value for m in at.markdown)
        metrics = {m.label: m.value for m in at.metric}
        assert metrics["Examples seen"] == "192" and metrics["Dev accuracy so far"] == "0.6600"
        assert float(metrics["Time left"].removesuffix(" s")) > 250
        curve = json.loads(at.get("plotly_chart")[0].proto.spec)
        assert curve["data"][0]["y"] == [0.55, 0.61, 0.66]
    finally:
        proc.kill()
        proc.wait()


def test_trial_numbers_are_integers_on_the_axis_and_methods_keep_their_colour(home):
    from app import ui

    colours = ui.method_colours()
    assert len(set(colours.values())) == len(colours) >= 14
    _recorded_pareto_search(home, n_trials=3, objective="quality")
    at = app("search.py")
    assert_clean(at)
    layout = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]
    assert layout["xaxis"]["tickformat"] == "d" and layout["xaxis"]["dtick"] == 1
    traces = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    assert {t["name"]: t["marker"]["color"] for t in traces if t.get("mode") == "markers"} == {"lora": colours["lora"]}


def test_runs_page_headers_are_for_people_and_every_method_has_its_colour(home):
    if kb_runs() < 5:
        pytest.skip("needs the knowledge base")
    from app import ui

    at = app("runs.py")
    assert_clean(at)
    for frame in at.dataframe:
        assert not any("_" in str(c) for c in frame.value.columns), list(frame.value.columns)
    scatter = json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
    colours = {t["name"]: t["marker"]["color"] for t in scatter}
    assert colours == {m: ui.method_colours()[m] for m in colours} and len(set(colours.values())) == len(colours)


# --- library side ------------------------------------------------------------------------------
def test_a_background_search_passes_its_task_and_config_as_one_record(tmp_path, capsys):
    from recommender.cli import build_parser, main
    from recommender.search.background import search_command
    from recommender.search.config import SearchConfig, TaskRef
    from recommender.search.job import SearchJob

    # an override no search flag carries (max_length) and a task seed apart from the search's travel too
    task_ref = TaskRef("glue_rte", {"label_col": "y", "language": "de", "max_length": 64}, max_train=64, seed=3)
    config = SearchConfig(methods=("lora", "ia3"), time_budget=90, latency_budget_ms=40.0, objective="pareto",
                          warm_start=True, patience=5, evals_per_epoch=4.0)
    job_file = SearchJob(task_ref, config).write(tmp_path / "s.job")
    cmd = search_command(job_file, "s")
    assert cmd[1:4] == ["-m", "recommender.cli", "search"] and "--json" in cmd
    assert not any(flag in cmd for flag in ("--time-budget", "--methods", "--objective")), cmd  # no flag by flag
    args = build_parser().parse_args(cmd[3:])  # the real parser reads the command back
    assert (args.job, args.study, args.task) == (str(job_file), "s", None)
    assert SearchJob.read(args.job) == SearchJob(task_ref, config)
    assert config.sampler == "nsga2"  # sampler="auto": the same policy as the CLI's
    assert main(["search", "glue_rte", *cmd[4:]]) == 2
    assert "not both" in capsys.readouterr().err
    race = SearchJob(task_ref, SearchConfig(methods=("lora", "ia3"), time_budget=90), "race")
    race_file = race.write(tmp_path / "r.job")  # the strategy travels too
    assert main(["search", *search_command(race_file, "r")[4:], "--strategy", "optuna"]) == 2
    assert "contradicts" in capsys.readouterr().err


def test_app_command_binds_localhost_and_finds_the_app():
    from recommender.cli import build_parser
    from recommender.cli.app import app_command

    cmd = app_command()
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert Path(cmd[cmd.index("run") + 1]) == MAIN
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


def test_meta_features_are_cached_on_disk_by_fingerprint(home, monkeypatch):
    from recommender import feature_cache, metafeatures
    from recommender.tasks import load_task

    task = load_task("glue_rte").subsample(64, 32, seed=0)
    key = feature_cache.fingerprint("upload", "abc")
    first = feature_cache.cached_metafeatures(key, task)
    path = home / "cache" / "metafeatures" / f"{key}.json"
    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    calls = []
    monkeypatch.setattr(metafeatures, "compute_metafeatures", lambda *a, **k: calls.append(a) or first)
    assert feature_cache.cached_metafeatures(key, lambda: pytest.fail("a hit must not load the task")) == first
    assert not calls
    path.write_text("{not json", encoding="utf-8")  # a damaged entry is recomputed, not trusted
    assert feature_cache.cached_metafeatures(key, task) == first and len(calls) == 1
    assert feature_cache.fingerprint("upload", "abc") != feature_cache.fingerprint("upload", "abd")
    assert feature_cache.load("../../etc/passwd") is None  # never a path outside the cache
    with pytest.raises(ValueError, match="fingerprint"):
        feature_cache.store("../../etc/passwd", first)


def test_warm_up_fills_the_meta_feature_cache_and_the_calibration(home):
    from recommender import feature_cache

    assert feature_cache.warm(["glue_rte"]) == 1
    assert feature_cache.load(feature_cache.bundled_fingerprint("glue_rte")) is not None
    calibration = json.loads((home / "calibration.json").read_text())
    assert any(set(entry.get("base_latency_ms", {})) >= {"1", "32"}
               for key, entry in calibration.items() if key != "auto_device")  # the resolved "auto" is kept too


def test_a_new_session_gets_the_task_and_budgets_back_from_the_url() -> None:
    """A browser that reconnects to a new server session keeps its task and budgets: they are
    mirrored into the URL and restored from it (never evaluated; junk is ignored)."""
    at = AppTest.from_file(str(MAIN), default_timeout=FIRST_RUN_S)
    at.query_params.update({"task_id": "bundled:glue_rte", "budget_latency": "40", "budget_time": "nan",
                            "budget_hardware": "__import__('os')", "budget_top": "999"})
    at.run()
    assert not at.exception
    assert at.session_state["task_id"] == "bundled:glue_rte"
    assert at.session_state["budget_latency"] == 40.0
    assert "budget_time" not in at.session_state or at.session_state["budget_time"] is None
    assert at.session_state["budget_top"] == 15
    assert at.query_params["task_id"] in (["bundled:glue_rte"], "bundled:glue_rte")  # mirrored back
