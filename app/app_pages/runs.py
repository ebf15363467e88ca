"""Runs: every measured run (the shipped knowledge base and your own searches), compared by method."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from app import ui
from recommender.errors import RecommenderError

SERVING_BATCH = 32
KB, STORE = "knowledge base", "your runs"

st.title("Measured runs")
st.caption("Compare methods across tasks: quality against time to convergence, the latency an adapter adds "
           "(merged into the weights or not), and trainable parameters against quality.")


def _row(source: str, study: str, task: str, size: int, features: Any, result: Any) -> dict[str, Any]:
    from recommender.report import result_row

    language = features.language if not features.cross_lingual else f"{features.language}->{features.eval_language}"
    return {"source": source, "study": study, "task": task, "size": int(size), "task_type": features.task_type,
            "language": language, **result_row(result, SERVING_BATCH)}


def _latency_rows(base: dict[str, Any], result: Any) -> list[dict[str, Any]]:
    out = []
    for stats in result.latency:
        reference = result.base_latency_ms(stats.batch_size)
        out.append({"task": base["task"], "size": base["size"], "method": base["method"],
                    "batch": stats.batch_size, "merged": "merged" if stats.merged else "unmerged",
                    "latency_ms": stats.p50_ms, "base_latency_ms": reference,
                    "overhead_pct": 100 * (stats.p50_ms / reference - 1) if reference else None})
    return out


@st.cache_data(show_spinner="Reading the knowledge base...")
def knowledge_base_tables(kb_key: tuple[str, float]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from pathlib import Path

    from recommender.knowledge_base import load_knowledge_base

    runs, latencies = [], []
    for r in load_knowledge_base(Path(kb_key[0])):
        row = _row(KB, r.study, r.task, r.size, r.metafeatures, r.result)
        runs.append(row)
        latencies += [{**x, "source": KB} for x in _latency_rows(row, r.result)]
    return runs, latencies


@st.cache_data(ttl=15, show_spinner="Reading your run store...")
def storage_tables(storage: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    import optuna

    from recommender.store import iter_runs, open_storage
    from recommender.types import MetaFeatures

    store = open_storage(storage, heartbeat=False)
    studies = []
    for summary in optuna.study.get_all_study_summaries(store, include_best_trial=False):
        info = summary.user_attrs.get("recommender", {})
        studies.append({"study": summary.study_name, "kind": info.get("kind", "other"),
                        "task": info.get("task_name", ""), "trials": summary.n_trials,
                        "started": summary.datetime_start.strftime("%Y-%m-%d %H:%M") if summary.datetime_start else "",
                        "objective": (info.get("config") or {}).get("objective", "")})
    runs, latencies = [], []
    for run in iter_runs(store):
        info = run.study_info
        if "metafeatures" not in info:
            continue
        features = MetaFeatures.from_dict(info["metafeatures"])
        row = _row(STORE, run.study, info.get("task_name", run.result.task), features.n_train, features, run.result)
        row["trial"] = run.trial_number
        runs.append(row)
        latencies += [{**x, "source": STORE} for x in _latency_rows(row, run.result)]
    return studies, runs, latencies


runs: list[dict[str, Any]] = []
latencies: list[dict[str, Any]] = []
studies: list[dict[str, Any]] = []
try:
    kb_runs, kb_lat = knowledge_base_tables(ui.knowledge_base_key())
    runs += kb_runs
    latencies += kb_lat
except RecommenderError as exc:
    ui.show_error(exc, "Knowledge base: ")
storage = ui.default_storage()
try:
    studies, st_runs, st_lat = storage_tables(storage)
    runs += st_runs
    latencies += st_lat
except RecommenderError as exc:
    ui.show_error(exc, "Run store: ")

if not runs:
    st.info("No measured run yet. The knowledge base fills as the sweep runs; your searches appear here too.")
    st.stop()

frame = pd.DataFrame(runs)
lat_frame = pd.DataFrame(latencies)

# --- filters ----------------------------------------------------------------------------------
with st.container(border=True):
    f1, f2, f3, f4, f5 = st.columns(5)

    def choose(column: Any, label: str, field: str, key: str) -> list[Any]:
        values = sorted(frame[field].dropna().unique().tolist(), key=str)
        return column.multiselect(label, values, placeholder="all", key=key)

    sources = choose(f1, "Source", "source", "runs_source")
    task_types = choose(f2, "Task type", "task_type", "runs_type")
    languages = choose(f3, "Language", "language", "runs_language")
    sizes = choose(f4, "Train size", "size", "runs_size")
    methods = choose(f5, "Method", "method", "runs_method")
    tasks = st.multiselect("Tasks", sorted(frame["task"].unique()), placeholder="all", key="runs_tasks")
    relative = st.toggle("Quality relative to the best run on the same task and size", key="runs_relative",
                         help="Makes tasks with different metrics and difficulty comparable.")

mask = pd.Series(True, index=frame.index)
for field, chosen in (("source", sources), ("task_type", task_types), ("language", languages), ("size", sizes),
                      ("method", methods), ("task", tasks)):
    if chosen:
        mask &= frame[field].isin(chosen)
view = frame[mask].copy()
view["best_on_task"] = view.groupby(["task", "size"])["metric"].transform("max")
view["quality"] = view["metric"] - view["best_on_task"] if relative else view["metric"]
quality_label = "metric minus the task's best" if relative else "dev metric"
keys = set(zip(view["task"], view["size"], view["method"], strict=True))
lat_view = lat_frame[[k in keys for k in zip(lat_frame["task"], lat_frame["size"], lat_frame["method"],
                                              strict=True)]] if not lat_frame.empty else lat_frame
st.caption(f"{len(view)} of {len(frame)} runs, {view['task'].nunique()} tasks, {view['method'].nunique()} methods.")
if view.empty:
    st.warning("No run matches these filters.")
    st.stop()

ok = view[view["metric"].notna()]
tabs = st.tabs(["Quality vs time", "Latency overhead", "Parameters vs quality", "All runs", "Studies"])

with tabs[0]:
    timed = ok[ok["time_to_best_s"].notna()]
    if timed.empty:
        st.info("No run with a time to convergence in this selection.")
    else:
        fig = px.scatter(timed, x="time_to_best_s", y="quality", color="method", log_x=True,
                         hover_data=["task", "size", "status", "trainable_params", "latency_b1_ms"],
                         labels={"time_to_best_s": "time to convergence (s, log)", "quality": quality_label},
                         template="plotly_white", height=460)
        fig.update_traces(marker_size=10)
        st.plotly_chart(fig, key="runs_quality_time")
    summary = ok.groupby("method").agg(
        runs=("metric", "size"), median_quality=("quality", "median"), best_quality=("quality", "max"),
        median_time_to_best_s=("time_to_best_s", "median"), median_train_s=("train_s", "median"),
    ).reset_index().sort_values("median_quality", ascending=False)
    st.dataframe(summary, hide_index=True, column_config={
        "median_quality": st.column_config.NumberColumn(format="%.3f"),
        "best_quality": st.column_config.NumberColumn(format="%.3f"),
        "median_time_to_best_s": st.column_config.NumberColumn(format="%.1f"),
        "median_train_s": st.column_config.NumberColumn(format="%.1f")})

with tabs[1]:
    measured = lat_view[lat_view["overhead_pct"].notna()] if not lat_view.empty else lat_view
    if measured.empty:
        st.info("No latency measurement with a base-model reference in this selection.")
    else:
        batch = st.radio("Batch size", sorted(measured["batch"].unique()), horizontal=True, key="runs_batch")
        chosen_batch = measured[measured["batch"] == batch]
        fig = px.box(chosen_batch, x="method", y="overhead_pct", color="merged", points="all",
                     labels={"overhead_pct": f"latency overhead vs the base model (%, batch {batch})"},
                     template="plotly_white", height=420)
        fig.add_hline(y=0, line_dash="dot")
        st.plotly_chart(fig, key="runs_latency")
        table = chosen_batch.pivot_table(index="method", columns="merged", values="overhead_pct",
                                         aggfunc="median").reset_index()
        table.columns = [str(c) if c == "method" else f"median overhead % ({c})" for c in table.columns]
        st.dataframe(table, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%+.1f") for c in table.columns if c != "method"})
        st.caption("Unmerged: the adapter runs beside the frozen weights. Merged: its weights were folded into the "
                   "base model (only where the merge was verified to give the same outputs).")

with tabs[2]:
    counted = ok[ok["trainable_params"].notna() & (ok["trainable_params"] > 0)]
    if counted.empty:
        st.info("No run with trainable parameters counted in this selection.")
    else:
        fig = px.scatter(counted, x="trainable_params", y="quality", color="method", log_x=True,
                         hover_data=["task", "size", "artifact_mb"],
                         labels={"trainable_params": "trainable parameters (log)", "quality": quality_label},
                         template="plotly_white", height=460)
        fig.update_traces(marker_size=10)
        st.plotly_chart(fig, key="runs_params")
    table = ok.groupby("method").agg(
        trainable_params=("trainable_params", "median"), artifact_mb=("artifact_mb", "median"),
        median_quality=("quality", "median")).reset_index().sort_values("trainable_params")
    st.dataframe(table, hide_index=True, column_config={
        "trainable_params": st.column_config.NumberColumn(format="localized"),
        "artifact_mb": st.column_config.NumberColumn(format="%.2f"),
        "median_quality": st.column_config.NumberColumn(format="%.3f")})

with tabs[3]:
    columns = ["source", "task", "size", "task_type", "language", "method", "status", "metric_name", "metric",
               "time_to_best_s", "train_s", "latency_b1_ms", "latency_bB_ms", "latency_b1_unmerged_ms",
               "base_latency_b1_ms", "merged", "trainable_params", "artifact_mb", "peak_mem_mb", "study", "error"]
    st.dataframe(view[[c for c in columns if c in view.columns]], hide_index=True)

with tabs[4]:
    if studies:
        st.dataframe(studies, hide_index=True)
        st.caption(f"Run store: `{storage}`")
    else:
        st.info("Your run store has no study yet: start a search on the Search page.")
