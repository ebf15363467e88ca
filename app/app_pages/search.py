"""Search: launch budgeted searches that run outside the app, and watch them live."""

from __future__ import annotations

import json
import time
from typing import Any

import streamlit as st

from app import state, ui
from recommender.errors import RecommenderError
from recommender.search import background

POLL = "3s"
MIN_IMPORTANCE_TRIALS = 5  # fANOVA on fewer complete trials ranks noise

st.title("Budgeted search")
st.caption("Train methods with tuned hyperparameters under a time budget and constraints, to verify a "
           "recommendation or find the best configuration. Searches run in the background: closing or "
           "reloading this page does not stop them.")


# --- launching --------------------------------------------------------------------------------
def task_options() -> list[str]:
    upload = state.upload()
    return ([upload["id"]] if upload and upload.get("id") else []) + [state.bundled_id(r["name"])
                                                                        for r in ui.bundled_tasks()]


def task_type_of(task_id: str) -> str:
    name = state.bundled_name(task_id)
    if name is None:
        return str((state.upload() or {})["task"].task_type)
    return str(next(r["task_type"] for r in ui.bundled_tasks() if r["name"] == name))


def option_label(task_id: str) -> str:
    name = state.bundled_name(task_id)
    return ui.task_label(name) if name is not None else f"{(state.upload() or {}).get('file_name')} (your upload)"


def on_task_change() -> None:
    """The task chosen here becomes the current task on every page; its recommended methods follow."""
    task_id = st.session_state["search_task"]
    state.set_task(task_id)
    st.session_state["_search_synced_task"] = task_id
    available = ui.methods_for(task_type_of(task_id))
    st.session_state["search_methods"] = [m for m in state.recommended_methods(task_id) if m in available]


def sync_with_session(options: list[str], handoff: dict[str, Any] | None) -> None:
    """Arrive with the current task, its recommended methods and the budgets entered on Recommend."""
    current = handoff["task_id"] if handoff else state.current_task_id()
    if current not in options:
        current = options[0]
    if st.session_state.get("search_task") not in options or st.session_state.get("_search_synced_task") != current:
        st.session_state["search_task"] = current
        st.session_state["_search_synced_task"] = current
        available = ui.methods_for(task_type_of(current))
        st.session_state["search_methods"] = [m for m in state.recommended_methods(current) if m in available]
    if handoff:
        available = ui.methods_for(task_type_of(current))
        st.session_state["search_methods"] = [m for m in handoff["methods"] if m in available]
    shared = state.budgets()
    signature = json.dumps(shared, sort_keys=True)
    if handoff or st.session_state.get("_search_synced_budgets") != signature:
        if shared["time_budget_s"]:
            st.session_state["form_trial_time"] = max(5, int(round(shared["time_budget_s"])))
        st.session_state["form_latency"] = shared["latency_budget_ms"]
        st.session_state["form_batch"] = shared["latency_batch"]
        st.session_state["form_params"] = shared["max_trainable_params"]
        st.session_state["form_device"] = shared["hardware"]
        st.session_state["_search_synced_budgets"] = signature


def write_back_budgets(latency: float | None, batch: int, params: int | None, trial_time: float,
                       device: str) -> None:
    """Budgets changed in the search form are the session's budgets from now on (Recommend too)."""
    s = st.session_state
    s["budget_latency"], s["budget_batch"], s["budget_params"], s["budget_hardware"] = latency, batch, params, device
    if s.get("budget_time"):
        s["budget_time"] = trial_time / 60
    s["_search_synced_budgets"] = json.dumps(state.budgets(), sort_keys=True)


STRATEGY_LABELS = {"optuna": "Search", "race": "Race"}


def launch_form(handoff: dict[str, Any] | None) -> None:
    options = task_options()
    sync_with_session(options, handoff)
    for key, value in (("form_time", 600), ("form_trial_time", 180), ("form_warm", True),
                       ("form_strategy", "optuna")):
        st.session_state.setdefault(key, value)
    if handoff:  # verifying a recommendation: race its portfolio
        st.session_state["form_strategy"] = "race"
        st.session_state["form_objective"] = "quality"
        st.info(f"From your recommendation: {ui.md(option_label(handoff['task_id']))}, methods "
                f"{', '.join(st.session_state['search_methods']) or 'all'}, and your budgets. Set the search's total "
                "time (and, for a quick check, fewer training examples), then start it.")
    c1, c2 = st.columns([2, 3])
    labels = {o: option_label(o) for o in options}
    task_choice = c1.selectbox("Task", options, key="search_task", format_func=labels.__getitem__,
                               on_change=on_task_change)
    available = ui.methods_for(task_type_of(task_choice))
    methods = c2.multiselect("Methods (empty: every method that supports the task)", available, key="search_methods",
                             help="\n".join(f"- **{m}**: {d}" for m, d in ui.method_descriptions().items()
                                            if m in available))
    upload = state.upload() if task_choice.startswith(state.UPLOAD) else None
    task_name = upload["name"] if upload else state.bundled_name(task_choice) or "task"
    with st.form("search_form", border=False):
        f1, f2, f3, f4 = st.columns(4)
        stamp = st.session_state.setdefault("search_stamp", time.strftime("%Y%m%d-%H%M%S"))
        study = f1.text_input("Study name", value=f"{ui.safe_name(task_name)}-{stamp}", max_chars=100,
                              help="Letters, digits, '_', '.', '-'. Reusing a finished study's name resumes it.")
        time_budget = f2.number_input("Total time budget (s)", min_value=10, max_value=7 * 24 * 3600, step=60,
                                      key="form_time")
        n_trials = f3.number_input("Trial budget (number of trials)", min_value=1, value=None, step=1,
                                   placeholder="no limit", key="form_trials")
        trial_time = f4.number_input("Time per trial (s)", min_value=5, step=30, key="form_trial_time",
                                     help="Each trial's training time: your training-time budget.")
        g1, g2, g3, g4 = st.columns(4)
        strategy = g1.radio("Strategy", list(STRATEGY_LABELS), horizontal=True, key="form_strategy",
                            format_func=STRATEGY_LABELS.__getitem__,
                            help="Search: Optuna's sampler and pruner try methods and hyperparameters. Race: "
                                 "the recommendation's top pick trains first, with the whole time budget; the "
                                 "time it leaves races the rest of its portfolio (the robust default, the next "
                                 "best methods) by successive halving, so it does no worse than the top pick "
                                 "alone. A race ranks by the dev metric (quality objective).")
        objective = g1.radio("Objective", ["quality", "pareto"], horizontal=True, key="form_objective",
                             help="quality: the best dev metric under the constraints. pareto: metric, time to "
                                  "convergence and latency together (a front of trade-offs).")
        latency = g2.number_input("Latency budget (ms)", min_value=0.1, value=None, step=5.0, placeholder="none",
                                  key="form_latency")
        batch = g2.number_input("at batch size", min_value=1, max_value=4096, step=1, key="form_batch")
        params = g3.number_input("Trainable parameters budget", min_value=1, value=None, step=10_000,
                                 placeholder="none", key="form_params")
        max_train = g4.number_input("At most N training examples", min_value=16, value=None, step=100,
                                    placeholder="all", key="form_max_train")
        max_dev = g4.number_input("At most N dev examples", min_value=8, value=None, step=100, placeholder="all",
                                  key="form_max_dev")
        warm = g3.checkbox("Warm start", key="form_warm",
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
    write_back_budgets(latency, int(batch), int(params) if params else None, float(trial_time), device)
    from recommender import pipeline
    from recommender.search.config import TaskRef
    from recommender.types import UserBudgets

    try:
        model_path = None
        if model.strip():
            from recommender.models import resolve_model_path

            model_path = str(resolve_model_path(model.strip()))  # an existing local model folder, or a clear error
        if upload is not None:
            ref = ui.upload_task_ref() or {}
        else:
            ref = {"source": state.bundled_name(task_choice)}
        task_ref = TaskRef.from_dict({**ref, "max_train": int(max_train) if max_train else None,
                                      "max_dev": int(max_dev) if max_dev else None, "seed": 0})
        budgets = UserBudgets(time_budget_s=float(trial_time), latency_budget_ms=latency, latency_batch=int(batch),
                              max_trainable_params=int(params) if params else None, hardware=device)
        config = pipeline.plan_search(budgets, methods=tuple(methods) or None, time_budget=float(time_budget),
                                      n_trials=int(n_trials) if n_trials else None, objective=objective,
                                      warm_start=warm, model=model_path)
        pid = pipeline.start_search(task_ref, config, storage=ui.default_storage(), study=study.strip(),
                                    strategy=strategy).pid
    except RecommenderError as exc:
        ui.show_error(exc)
        return
    st.session_state["search_study"] = study.strip()
    st.session_state.pop("search_stamp", None)
    st.session_state["_launch_open"] = False
    st.session_state["search_started"] = f"Search {study.strip()!r} started (pid {pid})."


handoff = st.session_state.pop("search_handoff", None)
searches = background.list_searches()
if handoff is not None:
    st.session_state["_launch_open"] = True  # open until a search starts from it
with st.expander("Start a search", expanded=not searches or bool(st.session_state.get("_launch_open")),
                 icon=":material/add:"):
    launch_form(handoff)
    searches = background.list_searches()
started = st.session_state.pop("search_started", None)
if started:  # outside the form's expander, which may close
    st.success(started)

if not searches:
    st.info("No search yet. Start one above, or from a recommendation (\"Verify with a search\").")
    st.stop()


# --- watching ---------------------------------------------------------------------------------
def label(record: dict[str, Any]) -> str:
    started = time.strftime("%m-%d %H:%M", time.localtime(record.get("started_at", 0)))
    kind = "race, " if record.get("strategy") == "race" else ""
    return f"{record['study']} ({kind}{record['state']}, {record.get('task', '?')}, started {started})"


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
    """Pareto objective: metric vs time to convergence (front highlighted); else metric per trial.
    One colour per method, the same as on the Runs page."""
    import plotly.graph_objects as go

    colours = ui.method_colours()
    done = [t for t in result.trials if t.metric is not None and t.state == "COMPLETE"]
    front = {t.number for t in result.best}
    fig = go.Figure()
    if objective == "pareto":
        ordered = sorted([t for t in done if t.number in front], key=lambda t: t.time_to_best_s or 0)
        fig.add_trace(go.Scatter(x=[t.time_to_best_s for t in ordered], y=[t.metric for t in ordered],
                                 mode="lines", line={"shape": "hv", "color": "#d62728"}, name="Pareto front (feasible)"))
        for method in sorted({t.method or "?" for t in done}):
            group = [t for t in done if (t.method or "?") == method]
            fig.add_trace(go.Scatter(
                x=[t.time_to_best_s for t in group], y=[t.metric for t in group], name=method, mode="markers",
                marker={"size": [10 + min(30, (t.latency_ms or 0) / 5) for t in group],
                        "color": colours.get(method, "#7f7f7f"),
                        "line": {"width": [3 if t.number in front else 0 for t in group], "color": "#d62728"}},
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
        fig.add_trace(go.Scatter(x=[t.number for t in ordered], y=best_so_far, mode="lines",
                                 line={"shape": "hv", "color": "#444"}, name="best feasible so far"))
        for method in sorted({t.method or "?" for t in ordered}):
            group = [t for t in ordered if (t.method or "?") == method]
            fig.add_trace(go.Scatter(
                x=[t.number for t in group], y=[t.metric for t in group], mode="markers", name=method,
                marker={"color": colours.get(method, "#7f7f7f"), "size": 11,
                        "symbol": ["circle" if t.feasible else "circle-open" for t in group]},
                hovertemplate="#%{x} " + method + "<br>metric %{y:.4f}<extra></extra>"))
        last = max((t.number for t in ordered), default=0)
        fig.update_xaxes(tickformat="d", dtick=1 if last < 15 else None, rangemode="tozero")
        fig.update_layout(xaxis_title="trial number", yaxis_title=result.metric_name)
    fig.update_layout(template="plotly_white", height=360, margin={"t": 30})
    return fig


METRIC_FORMAT = st.column_config.NumberColumn(format="%.4f")
FORMATS = {"Time to best (s)": st.column_config.NumberColumn(format="%.1f"),
           "Latency (ms)": st.column_config.NumberColumn(format="%.1f"),
           "Trainable params": st.column_config.NumberColumn(format="localized")}


def trial_row(t: Any, metric: str) -> dict[str, Any]:
    return {"Trial": t.number, "Method": t.method, metric: t.metric, "Time to best (s)": t.time_to_best_s,
            "Latency (ms)": t.latency_ms, "Trainable params": t.trainable_params}


def running_trials(storage: str, study: str) -> list[dict[str, Any]]:
    """The study's RUNNING trials as the storage holds them now: method, hyperparameters, the dev
    curve reported so far (examples seen -> metric), time used and left of the trial's budget."""
    import optuna

    from recommender.store import open_storage

    loaded = optuna.load_study(study_name=study, storage=open_storage(storage, heartbeat=False))
    now = time.time()
    out = []
    for t in loaded.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        budget = t.user_attrs.get("trial_time_budget_s")
        elapsed = max(0.0, now - t.datetime_start.timestamp()) if t.datetime_start else None
        out.append({"number": t.number, "method": t.params.get("method"),
                    "params": {k.split(".", 1)[1]: v for k, v in t.params.items() if "." in k},
                    "curve": sorted(t.intermediate_values.items()), "elapsed_s": elapsed, "budget_s": budget,
                    "left_s": None if budget is None or elapsed is None else max(0.0, budget - elapsed)})
    return out


def show_running(trials: list[dict[str, Any]], metric: str) -> None:
    import plotly.graph_objects as go

    for t in trials:
        with st.container(border=True):
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items())
            st.markdown(f"**Trial #{t['number']} running: {t['method']}**  \n{params or 'default hyperparameters'}")
            c1, c2, c3, c4 = st.columns(4)
            c1.metric("Elapsed", "-" if t["elapsed_s"] is None else f"{t['elapsed_s']:,.0f} s")
            c2.metric("Time left", "-" if t["left_s"] is None else f"{t['left_s']:,.0f} s",
                      help=None if t["budget_s"] is None else f"of a {t['budget_s']:,.0f} s trial budget")
            curve = t["curve"]
            c3.metric("Examples seen", f"{int(curve[-1][0]):,}" if curve else "-",
                      help="At the last evaluation on the dev set.")
            c4.metric(f"Dev {metric} so far", f"{max(v for _, v in curve):.4f}" if curve else "-")
            if curve:
                fig = go.Figure(go.Scatter(x=[s for s, _ in curve], y=[v for _, v in curve], mode="lines+markers",
                                           line={"color": ui.method_colours().get(t["method"], "#1f77b4")}))
                fig.update_layout(template="plotly_white", height=220, margin={"t": 10, "b": 40},
                                  xaxis_title="training examples seen", yaxis_title=f"dev {metric}")
                st.plotly_chart(fig, key=f"curve-{t['number']}")
            else:
                st.caption("No evaluation yet: the trial is starting (loading the model) or training its first "
                           "steps.")


def readable_log(tail: str) -> list[str]:
    """The log without its JSON report lines, and what each report says, in words."""
    lines = []
    for line in tail.splitlines():
        if line.startswith("{"):
            try:
                report = json.loads(line)
            except ValueError:
                lines.append(line)
                continue
            if isinstance(report, dict) and "study_name" in report:
                counts = ", ".join(f"{n} {kind.lower()}" for kind, n in report.get("counts", {}).items())
                best = report.get("best") or []
                top = (f"; best: trial #{best[0]['number']} {best[0]['method']}, {report.get('metric_name')} "
                       f"{best[0]['metric']:.4f}") if best and best[0].get("metric") is not None else "; no feasible trial"
                lines.append(f"search {report['study_name']} finished: {counts or 'no trial'}{top}")
                continue
        lines.append(line)
    return lines


def show_status(status: background.SearchStatus) -> None:
    result = status.result
    counts = result.counts if result else {}
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("State", status.state)
    c2.metric("Elapsed", f"{status.elapsed_s:,.0f} s")
    c3.metric("Time left", "-" if status.time_left_s is None else f"{status.time_left_s:,.0f} s")
    finished = sum(n for s, n in counts.items() if s not in ("RUNNING", "WAITING"))
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
    if status.alive and counts.get("RUNNING"):
        try:
            show_running(running_trials(status.storage, status.study), result.metric_name)
        except Exception as exc:  # the storage may be busy for a moment: the next poll shows it
            st.caption(f"Could not read the running trial right now ({type(exc).__name__}).")
    metric = result.metric_name
    formats = {metric: METRIC_FORMAT, **FORMATS}
    if result.best:
        label = "Pareto front (feasible)" if result.objective == "pareto" else "Best feasible so far"
        st.markdown(f"**{label}**")
        st.dataframe([{**trial_row(t, metric), "Hyperparameters": ", ".join(f"{k}={v}" for k, v in t.params.items())}
                      for t in result.best], hide_index=True, column_config=formats)
    elif result.nearest:
        st.warning("No trial met every constraint yet. Nearest: " + "; ".join(
            f"#{t.number} {t.method} ({', '.join(f'{k} over by {v:,.1f}' for k, v in t.violations.items())})"
            for t in result.nearest))
    elif status.alive and not counts.get("RUNNING"):
        st.caption("No trial has finished yet.")
    if result.trials:
        left, right = st.columns(2)
        with left:
            st.plotly_chart(trials_figure(result, result.objective), key=f"trials-{status.study}")
        with right:
            n_complete = counts.get("COMPLETE", 0)
            if n_complete >= MIN_IMPORTANCE_TRIALS:
                fig, why = importance_figure(status.storage, status.study, n_complete, metric)
                if fig is not None:
                    st.plotly_chart(fig, key=f"importance-{status.study}")
                else:
                    st.caption(f"Parameter importances are not available for this study: {why}")
            else:
                st.caption(f"Parameter importances appear once {MIN_IMPORTANCE_TRIALS} trials have completed "
                           f"({n_complete} so far): fewer cannot tell which setting matters.")
        st.markdown("**Trials**")
        st.dataframe([{**trial_row(t, metric), "State": t.state.lower(),
                       "Meets constraints": "yes" if t.feasible else ("no" if t.state == "COMPLETE" else "-"),
                       "Over budget by": ", ".join(f"{k} {v:,.1f}" for k, v in t.violations.items()),
                       "Error": t.error or ""} for t in result.trials], hide_index=True, column_config=formats)


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
        lines = readable_log(status.log_tail[-3000:])
        st.code("\n".join(lines) or "(empty)", language=None, wrap_lines=True)
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
