"""Search: launch budgeted searches that run outside the app, and watch them live."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from app import ui
from recommender.errors import RecommenderError
from recommender.search import background

POLL = "3s"
UPLOADED = "uploaded:"

st.title("Budgeted search")
st.caption("Train methods with tuned hyperparameters under a time budget and constraints, to verify a "
           "recommendation or find the best configuration. Searches run in the background: closing or "
           "reloading this page does not stop them.")


# --- launching --------------------------------------------------------------------------------
def launch_form() -> None:
    names = [r["name"] for r in ui.bundled_tasks()]
    upload = st.session_state.get("upload")
    options = ([UPLOADED + upload["name"]] if upload else []) + names
    recommended = st.session_state.get("recommendation") or {}
    default_task = recommended.get("task_key", "").removeprefix("bundled:")
    index = options.index(default_task) if default_task in options else (
        options.index("glue_sst2") if "glue_sst2" in options else 0)
    c1, c2 = st.columns([2, 3])
    task_choice = c1.selectbox("Task", options, index=index, key="search_task",
                               format_func=lambda o: o if o.startswith(UPLOADED) else ui.task_label(o))
    if task_choice.startswith(UPLOADED):
        assert upload is not None
        task_type = upload["task"].task_type
    else:
        task_type = next(r["task_type"] for r in ui.bundled_tasks() if r["name"] == task_choice)
    available = ui.methods_for(task_type)
    suggested = [c["method"] for c in recommended.get("candidates", [])
                 if recommended.get("task_key", "").endswith(task_choice)]
    methods = c2.multiselect("Methods (empty: every method that supports the task)", available,
                             default=[m for m in dict.fromkeys(suggested) if m in available], key="search_methods",
                             help="\n".join(f"- **{m}**: {d}" for m, d in ui.method_descriptions().items()
                                            if m in available))
    with st.form("search_form", border=False):
        f1, f2, f3, f4 = st.columns(4)
        stamp = st.session_state.setdefault("search_stamp", time.strftime("%Y%m%d-%H%M%S"))
        study = f1.text_input("Study name", value=f"{ui.safe_name(task_choice.removeprefix(UPLOADED))}-{stamp}",
                              max_chars=100,
                              help="Letters, digits, '_', '.', '-'. Reusing a finished study's name resumes it.")
        time_budget = f2.number_input("Total time budget (s)", min_value=10, max_value=7 * 24 * 3600, value=600,
                                      step=60, key="form_time")
        n_trials = f3.number_input("Trial budget (number of trials)", min_value=1, value=None, step=1,
                                   placeholder="no limit", key="form_trials")
        trial_time = f4.number_input("Time per trial (s)", min_value=5, value=180, step=30, key="form_trial_time")
        g1, g2, g3, g4 = st.columns(4)
        objective = g1.radio("Objective", ["quality", "pareto"], horizontal=True, key="form_objective",
                             help="quality: the best dev metric under the constraints. pareto: metric, time to "
                                  "convergence and latency together (a front of trade-offs).")
        latency = g2.number_input("Latency budget (ms)", min_value=0.1, value=None, step=5.0, placeholder="none",
                                  key="form_latency")
        batch = g2.number_input("at batch size", min_value=1, max_value=4096, value=1, step=1, key="form_batch")
        params = g3.number_input("Trainable parameters budget", min_value=1, value=None, step=10_000,
                                 placeholder="none", key="form_params")
        max_train = g4.number_input("At most N training examples", min_value=16, value=None, step=100,
                                    placeholder="all", key="form_max_train")
        max_dev = g4.number_input("At most N dev examples", min_value=8, value=None, step=100, placeholder="all",
                                  key="form_max_dev")
        warm = g3.checkbox("Warm start", value=True, key="form_warm",
                           help="Try the meta-model's top configurations first, then search around them.")
        h1, h2 = st.columns([3, 1])
        model = h1.text_input("Model: a local Hugging Face model folder (empty: the bundled all-MiniLM-L6-v2)",
                              key="form_model", placeholder="bundled all-MiniLM-L6-v2",
                              help="Must be an existing folder on this machine with config.json and weights. "
                                   "Nothing is downloaded, and no code from the model folder is run.")
        device = h2.selectbox("Device", ["auto", "cpu", "cuda"], key="form_device")
        submitted = st.form_submit_button("Start search", icon=":material/play_arrow:", type="primary")
    if not submitted:
        return
    from recommender.search.config import SearchConfig, TaskRef

    try:
        model_path = None
        if model.strip():
            from recommender.models import resolve_model_path

            model_path = str(resolve_model_path(model.strip()))  # an existing local model folder, or a clear error
        if task_choice.startswith(UPLOADED):
            ref = ui.upload_task_ref() or {}
        else:
            ref = {"source": task_choice}
        task_ref = TaskRef.from_dict({**ref, "max_train": int(max_train) if max_train else None,
                                      "max_dev": int(max_dev) if max_dev else None, "seed": 0})
        config = SearchConfig(methods=tuple(methods) or None, time_budget=float(time_budget),
                              trial_time_budget=float(trial_time), n_trials=int(n_trials) if n_trials else None,
                              latency_budget_ms=latency, latency_batch=int(batch),
                              max_trainable_params=int(params) if params else None, objective=objective,
                              sampler="nsga2" if objective == "pareto" else "tpe", warm_start=warm,
                              model=model_path, device=device)
        pid = background.start_search_process(task_ref, ui.default_storage(), study.strip(), config)
    except RecommenderError as exc:
        ui.show_error(exc)
        return
    st.session_state["search_study"] = study.strip()
    st.session_state.pop("search_stamp", None)
    st.success(f"Search {study.strip()!r} started (pid {pid}).")


searches = background.list_searches()
with st.expander("Start a search", expanded=not searches,
                 icon=":material/add:"):
    launch_form()
    searches = background.list_searches()

if not searches:
    st.info("No search yet. Start one above, or from a recommendation (\"Verify with a search\").")
    st.stop()


# --- watching ---------------------------------------------------------------------------------
def label(record: dict[str, Any]) -> str:
    started = time.strftime("%m-%d %H:%M", time.localtime(record.get("started_at", 0)))
    return f"{record['study']} ({record['state']}, {record.get('task', '?')}, started {started})"


studies = [r["study"] for r in searches]
wanted = st.session_state.get("search_study")
by_name = {r["study"]: r for r in searches}
study = st.selectbox("Search", studies, index=studies.index(wanted) if wanted in studies else 0,
                     format_func=lambda s: label(by_name[s]))
st.session_state["search_study"] = study


@st.cache_data(max_entries=16, show_spinner=False)
def importance_figure(storage: str, study: str, n_complete: int, metric: str) -> tuple[Any, str | None]:
    """Optuna's parameter importances (fANOVA), recomputed only when a trial completes."""
    import warnings

    import optuna

    from recommender.search.study import load_search

    try:
        st_obj, config = load_search(storage, study)
        # optuna's default evaluator ranks params by how they lead to LOW targets: negate the metric
        target = (lambda t: -t.values[0]) if config.objective == "pareto" else None
        with warnings.catch_warnings():  # it warns about any custom target, negated or not
            warnings.simplefilter("ignore", UserWarning)
            fig = optuna.visualization.plot_param_importances(st_obj, target=target, target_name=metric)
        fig.update_layout(height=360, margin={"t": 40})
        return fig, None
    except Exception as exc:  # optuna raises many kinds on conditional spaces: show why, go on
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def trials_figure(result: Any, objective: str) -> Any:
    """Pareto objective: metric vs time to convergence (front highlighted); else metric per trial."""
    import plotly.graph_objects as go

    done = [t for t in result.trials if t.metric is not None and t.state == "COMPLETE"]
    front = {t.number for t in result.best}
    fig = go.Figure()
    if objective == "pareto":
        for on_front, name, colour in ((False, "other trials", "#b0b0b0"), (True, "Pareto front (feasible)",
                                                                           "#d62728")):
            group = sorted([t for t in done if (t.number in front) is on_front], key=lambda t: t.time_to_best_s or 0)
            fig.add_trace(go.Scatter(
                x=[t.time_to_best_s for t in group], y=[t.metric for t in group], name=name,
                mode="markers+lines" if on_front else "markers", line={"shape": "hv"},
                marker={"size": [10 + min(30, (t.latency_ms or 0) / 5) for t in group], "color": colour},
                text=[f"#{t.number} {t.method}" for t in group],
                hovertemplate="%{text}<br>metric %{y:.4f}<br>time to best %{x:.1f}s<extra></extra>"))
        fig.update_layout(xaxis_title="time to convergence (s)", yaxis_title=result.metric_name)
    else:
        ordered = sorted(done, key=lambda t: t.number)
        best_so_far, running = [], None
        for t in ordered:
            if t.feasible and (running is None or (t.metric or 0) > running):
                running = t.metric
            best_so_far.append(running)
        fig.add_trace(go.Scatter(x=[t.number for t in ordered], y=[t.metric for t in ordered], mode="markers",
                                 name="trial", text=[t.method for t in ordered],
                                 marker={"color": ["#1f77b4" if t.feasible else "#b0b0b0" for t in ordered],
                                         "size": 10},
                                 hovertemplate="#%{x} %{text}<br>metric %{y:.4f}<extra></extra>"))
        fig.add_trace(go.Scatter(x=[t.number for t in ordered], y=best_so_far, mode="lines",
                                 line={"shape": "hv"}, name="best feasible so far"))
        fig.update_layout(xaxis_title="trial", yaxis_title=result.metric_name)
    fig.update_layout(template="plotly_white", height=360, margin={"t": 30}, legend={"orientation": "h", "y": -0.25})
    return fig


def formats(metric: str) -> dict[str, Any]:
    return {metric: st.column_config.NumberColumn(format="%.4f"),
            "time to best (s)": st.column_config.NumberColumn(format="%.1f"),
            "latency (ms)": st.column_config.NumberColumn(format="%.1f"),
            "trainable params": st.column_config.NumberColumn(format="localized")}


def show_status(status: background.SearchStatus) -> None:
    result = status.result
    counts = result.counts if result else {}
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("State", status.state)
    c2.metric("Elapsed", f"{status.elapsed_s:,.0f} s")
    c3.metric("Time left", "-" if status.time_left_s is None else f"{status.time_left_s:,.0f} s")
    finished = sum(n for state, n in counts.items() if state not in ("RUNNING", "WAITING"))
    c4.metric("Trials finished", finished,
              help=f"{counts.get('RUNNING', 0)} running, {counts.get('WAITING', 0)} queued")
    c5.metric("Complete / pruned / failed",
              f"{counts.get('COMPLETE', 0)} / {counts.get('PRUNED', 0)} / {counts.get('FAIL', 0)}")
    if status.time_budget and status.alive:
        st.progress(min(1.0, status.elapsed_s / status.time_budget),
                    text=f"{status.elapsed_s:,.0f} of {status.time_budget:,.0f} s")
    if status.state == "starting":
        st.info("Preparing the task and its meta-features; the first trial starts in a few seconds.")
    if status.error:
        st.error(f"The search failed: {status.error}")
    if result is None:
        return
    if result.best:
        label = "Pareto front (feasible)" if result.objective == "pareto" else "Best feasible so far"
        st.markdown(f"**{label}**")
        st.dataframe([{"trial": t.number, "method": t.method, result.metric_name: t.metric,
                       "time to best (s)": t.time_to_best_s, "latency (ms)": t.latency_ms,
                       "trainable params": t.trainable_params, "hyperparameters": str(t.params)}
                      for t in result.best], hide_index=True, column_config=formats(result.metric_name))
    elif result.nearest:
        st.warning("No trial met every constraint yet. Nearest: " + "; ".join(
            f"#{t.number} {t.method} ({', '.join(f'{k} over by {v:,.1f}' for k, v in t.violations.items())})"
            for t in result.nearest))
    elif status.alive:
        st.caption("No trial has finished yet.")
    if result.trials:
        left, right = st.columns(2)
        with left:
            st.plotly_chart(trials_figure(result, result.objective), key=f"trials-{status.study}")
        with right:
            n_complete = counts.get("COMPLETE", 0)
            if n_complete >= 2:
                fig, why = importance_figure(status.storage, status.study, n_complete, result.metric_name)
                if fig is not None:
                    st.plotly_chart(fig, key=f"importance-{status.study}")
                else:
                    st.caption(f"Parameter importances are not available for this study: {why}")
            else:
                st.caption("Parameter importances appear once two trials have completed.")
        st.markdown("**Trials**")
        st.dataframe([{"trial": t.number, "state": t.state, "method": t.method, result.metric_name: t.metric,
                       "time to best (s)": t.time_to_best_s, "latency (ms)": t.latency_ms,
                       "trainable params": t.trainable_params, "feasible": t.feasible,
                       "violations": ", ".join(f"{k} +{v:,.1f}" for k, v in t.violations.items()),
                       "error": t.error or ""} for t in result.trials], hide_index=True,
                     column_config=formats(result.metric_name))


def panel_body(study: str) -> None:
    try:
        status = background.search_status(study)
    except RecommenderError as exc:
        ui.show_error(exc)
        return
    except Exception as exc:  # the storage may be busy or locked for a moment: retry on the next poll
        st.warning(f"Could not read the storage right now ({type(exc).__name__}); retrying.")
        return
    if status.alive and st.button("Stop this search", icon=":material/stop:", key=f"stop-{study}"):
        try:
            status = background.stop_search(study)
        except RecommenderError as exc:
            ui.show_error(exc)
    show_status(status)
    with st.expander("Log"):
        st.code(status.log_tail[-3000:] or "(empty)", language=None)
    was_alive = st.session_state.get(f"alive-{study}")
    st.session_state[f"alive-{study}"] = status.alive
    if was_alive and not status.alive:
        st.rerun()  # the whole page: stop polling, refresh the list


alive_now = by_name[study]["alive"]
st.session_state[f"alive-{study}"] = alive_now


@st.fragment(run_every=POLL if alive_now else None)
def live_panel(study: str) -> None:
    panel_body(study)


live_panel(study)
