"""Runs: every measured run (the shipped knowledge base and your own searches), compared by method."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from app import ui
from app.runs_data import SERVING_BATCH, knowledge_base_tables, storage_tables
from recommender.errors import RecommenderError
from recommender.store import mask_url

st.title("Measured runs")
st.caption("Compare methods across tasks: quality against time to convergence, the latency an adapter adds "
           "(merged into the weights or not), and trainable parameters against quality.")


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
colours = ui.method_colours()
LABELS = {"time_to_best_s": "time to convergence (s, log)", "quality": quality_label, "method": "method",
          "task": "task", "size": "train size", "status": "status", "trainable_params": "trainable parameters (log)",
          "latency_b1_ms": "latency at batch 1 (ms)", "artifact_mb": "artifact (MB)"}


def headers(frame: pd.DataFrame) -> pd.DataFrame:
    """The same table with column headers for people."""
    return frame.rename(columns={c: ui.human(c) for c in frame.columns})


tabs = st.tabs(["Quality vs time", "Latency overhead", "Parameters vs quality", "All runs", "Studies"])

with tabs[0]:
    timed = ok[ok["time_to_best_s"].notna()]
    if timed.empty:
        st.info("No run with a time to convergence in this selection.")
    else:
        fig = px.scatter(timed, x="time_to_best_s", y="quality", color="method", log_x=True,
                         color_discrete_map=colours, category_orders={"method": sorted(colours)},
                         hover_data=["task", "size", "status", "trainable_params", "latency_b1_ms"],
                         labels=LABELS, template="plotly_white", height=460)
        fig.update_traces(marker_size=9, marker_opacity=0.8)
        st.plotly_chart(fig, key="runs_quality_time")
    summary = ok.groupby("method").agg(
        runs=("metric", "size"), median_quality=("quality", "median"), best_quality=("quality", "max"),
        median_time_to_best_s=("time_to_best_s", "median"), median_train_s=("train_s", "median"),
    ).reset_index().sort_values("median_quality", ascending=False)
    st.dataframe(headers(summary), hide_index=True, column_config={
        "Median quality": st.column_config.NumberColumn(format="%.3f"),
        "Best quality": st.column_config.NumberColumn(format="%.3f"),
        "Median time to best (s)": st.column_config.NumberColumn(format="%.1f"),
        "Median train (s)": st.column_config.NumberColumn("Median training time (s)", format="%.1f")})

with tabs[1]:
    measured = lat_view[lat_view["overhead_pct"].notna()] if not lat_view.empty else lat_view
    if measured.empty:
        st.info("No latency measurement with a base-model reference in this selection.")
    else:
        batch = st.radio("Batch size", sorted(measured["batch"].unique()), horizontal=True, key="runs_batch")
        chosen_batch = measured[measured["batch"] == batch]
        fig = px.box(chosen_batch, x="method", y="overhead_pct", color="merged", points="all",
                     labels={"overhead_pct": f"latency overhead vs the base model (%, batch {batch})",
                             "method": "method", "merged": "weights"},
                     color_discrete_map={"unmerged": "#1f77b4", "merged": "#ff7f0e"},
                     template="plotly_white", height=420)
        fig.add_hline(y=0, line_dash="dot")
        fig.update_xaxes(tickangle=-30)
        st.plotly_chart(fig, key="runs_latency")
        table = chosen_batch.pivot_table(index="method", columns="merged", values="overhead_pct",
                                         aggfunc="median").reset_index()
        table.columns = ["Method" if c == "method" else f"Median overhead, {c} (%)" for c in table.columns]
        st.dataframe(table, hide_index=True, column_config={
            c: st.column_config.NumberColumn(format="%+.1f") for c in table.columns if c != "Method"})
        st.caption("Unmerged: the adapter runs beside the frozen weights. Merged: its weights were folded into the "
                   "base model (only where the merge was verified to give the same outputs).")

with tabs[2]:
    counted = ok[ok["trainable_params"].notna() & (ok["trainable_params"] > 0)]
    if counted.empty:
        st.info("No run with trainable parameters counted in this selection.")
    else:
        fig = px.scatter(counted, x="trainable_params", y="quality", color="method", log_x=True,
                         color_discrete_map=colours, category_orders={"method": sorted(colours)},
                         hover_data=["task", "size", "artifact_mb"], labels=LABELS, template="plotly_white",
                         height=460)
        fig.update_traces(marker_size=9, marker_opacity=0.8)
        st.plotly_chart(fig, key="runs_params")
        st.caption("Trainable parameters besides the task head; head-only training (0) is not drawn on this log axis.")
    table = ok.groupby("method").agg(
        trainable_params=("trainable_params", "median"), artifact_mb=("artifact_mb", "median"),
        median_quality=("quality", "median")).reset_index().sort_values("trainable_params")
    st.dataframe(headers(table), hide_index=True, column_config={
        "Trainable params": st.column_config.NumberColumn("Trainable parameters", format="localized"),
        "Artifact (MB)": st.column_config.NumberColumn(format="%.2f"),
        "Median quality": st.column_config.NumberColumn(format="%.3f")})

with tabs[3]:
    columns = ["source", "task", "size", "task_type", "language", "method", "status", "metric_name", "metric",
               "metric_se", "baseline", "learned", "precision", "time_to_best_s", "train_s", "latency_b1_ms", "latency_bB_ms", "latency_b1_unmerged_ms",
               "base_latency_b1_ms", "merged", "trainable_params", "artifact_mb", "peak_mem_mb", "study", "error"]
    shown = headers(view[[c for c in columns if c in view.columns]]).rename(columns={
        "Latency bB (ms)": f"Latency at batch {SERVING_BATCH} (ms)", "Latency b1 (ms)": "Latency at batch 1 (ms)",
        "Latency b1 unmerged (ms)": "Latency at batch 1, unmerged (ms)",
        "Base latency b1 (ms)": "Base model latency at batch 1 (ms)", "Train (s)": "Training time (s)",
        "Peak mem (MB)": "Peak memory (MB)", "Size": "Train size"})
    st.dataframe(shown, hide_index=True)

with tabs[4]:
    if studies:
        st.dataframe(headers(pd.DataFrame(studies)), hide_index=True)
        st.caption(f"Run store: `{mask_url(storage)}`")
    else:
        st.info("Your run store has no study yet: start a search on the Search page.")
