"""Recommend: a task and budgets in, ranked fine-tuning strategies out (before any training)."""

from __future__ import annotations

import time
from typing import Any

import streamlit as st

from app import ui
from recommender.errors import RecommenderError

TASK_TYPES = ["(auto)", "classification", "regression", "token_classification", "extractive_qa"]
AUTO = "(auto)"

st.title("Recommend a fine-tuning strategy")
st.caption("Pick a task and say what you can afford. The meta-model, learned from measured runs, predicts "
           "quality, time to convergence on this machine, latency and size for each strategy, with intervals.")


# --- the task ---------------------------------------------------------------------------------
def uploaded_task() -> tuple[Any, str] | None:
    """The uploaded task of this session (parsed in memory), or None with the reason shown."""
    file = st.file_uploader(f"Task data: CSV, TSV or JSONL, one example per row (at most {ui.MAX_UPLOAD_MB} MB)",
                            type=list(ui.UPLOAD_TYPES), max_upload_size=ui.MAX_UPLOAD_MB, key="rec_upload")
    if file is None:
        st.info("Upload a file with a text column and a label column (a second text column for sentence "
                "pairs). It is parsed in memory; a private copy is written to your user folder only when you "
                "export a bundle for it or start a search on it (the bundle and the search read it).")
        return None
    if file.size > ui.MAX_UPLOAD_MB * 1024 * 1024:
        st.error(f"{file.name} is {file.size / 1024 / 1024:.1f} MB, over the {ui.MAX_UPLOAD_MB} MB upload limit; "
                 "subsample it first")
        return None
    raw = file.getvalue()
    raw_key = ui.digest(raw, file.name)
    parsed = st.session_state.get("upload_rows")
    if parsed is None or parsed[0] != raw_key:
        try:
            rows = ui.parse_upload(file.name, raw)
        except RecommenderError as exc:
            ui.show_error(exc)
            st.session_state.pop("upload", None)
            return None
        parsed = (raw_key, file.name, rows)
        st.session_state["upload_rows"] = parsed
    _, name, rows = parsed
    st.caption(f"{len(rows):,} rows. First rows:")
    st.dataframe(rows[:5], hide_index=True)
    columns = list(rows[0].keys())
    c1, c2, c3, c4 = st.columns(4)
    text_col = c1.selectbox("Text column", [AUTO, *columns], key="map_text")
    pair_col = c2.selectbox("Second text column (pairs)", [AUTO, *columns], key="map_pair")
    label_col = c3.selectbox("Label column", [AUTO, *columns], key="map_label")
    task_type = c4.selectbox("Task type", TASK_TYPES, key="map_type")
    overrides = {k: v for k, v in {"text_col": text_col, "text_pair_col": pair_col, "label_col": label_col,
                                   "task_type": task_type}.items() if v != AUTO}
    key = ui.digest(raw_key, overrides)
    upload = st.session_state.get("upload")
    if upload is None or upload["key"] != key:
        from recommender.tasks import task_from_rows

        task_name = ui.safe_name(name.rsplit(".", 1)[0], 60)
        try:
            task = task_from_rows(rows, name=task_name, **overrides)
        except RecommenderError as exc:
            ui.show_error(exc)
            st.session_state.pop("upload", None)
            return None
        upload = {"key": key, "name": task_name, "rows": rows, "overrides": overrides, "task": task, "path": None}
        st.session_state["upload"] = upload
    task = upload["task"]
    spec = task.spec
    pair = f", pairs ({spec.text_col!r} + {spec.text_pair_col!r})" if spec.is_pair else f", text {spec.text_col!r}"
    st.success(f"{spec.task_type}{pair}, label {spec.label_col!r}"
               + (f" ({len(task.label_names)} classes)" if task.label_names else "")
               + f": {spec.n_train:,} train / {spec.n_dev:,} dev rows, metric {spec.metric}")
    for note in task.notes:
        st.caption(f"note: {note}")
    return task, f"upload:{key}"


source = st.radio("Task", ["Bundled task", "Upload a file"], horizontal=True, key="rec_source")
if source == "Bundled task":
    names = [r["name"] for r in ui.bundled_tasks()]
    name = st.selectbox("Bundled task", names, index=names.index("glue_sst2") if "glue_sst2" in names else 0,
                        format_func=ui.task_label, key="rec_task")
    chosen: tuple[Any, str] | None = None
    try:
        chosen = (ui.bundled_task(name), f"bundled:{name}")
    except RecommenderError as exc:
        ui.show_error(exc)
else:
    chosen = uploaded_task()

# --- budgets ----------------------------------------------------------------------------------
st.subheader("Budgets", help="Leave a field empty for no limit.")
b1, b2, b3, b4 = st.columns(4)
time_min = b1.number_input("Training time (minutes)", min_value=0.1, value=None, step=5.0, placeholder="no limit",
                           key="budget_time")
latency = b2.number_input("Latency (ms per batch)", min_value=0.1, value=None, step=5.0, placeholder="no limit",
                          key="budget_latency")
batch = b2.number_input("Serving batch size", min_value=1, max_value=4096, value=1, step=1, key="budget_batch")
params = b3.number_input("Trainable parameters", min_value=1, value=None, step=10_000, placeholder="no limit",
                         key="budget_params")
n_tasks = b3.number_input("Tasks to serve", min_value=1, max_value=10_000, value=1, step=1, key="budget_tasks",
                          help="How many tasks share the deployment: prices storage and adding one more task.")
storage_mb = b4.number_input("Storage (MB)", min_value=0.1, value=None, step=50.0, placeholder="no limit",
                             key="budget_storage")
hardware = b4.selectbox("Hardware", ["auto", "cpu", "cuda"], key="budget_hardware",
                        help="Where times and latencies are calibrated (auto: CUDA when present).")
top = st.slider("Candidates to show", 3, 15, 8, key="budget_top")

if chosen is None:
    st.stop()
task, task_key = chosen

try:
    from recommender.types import UserBudgets

    budgets = UserBudgets(time_budget_s=time_min * 60 if time_min else None, latency_budget_ms=latency,
                          latency_batch=int(batch), max_trainable_params=int(params) if params else None,
                          n_tasks=int(n_tasks), storage_budget_mb=storage_mb, hardware=hardware)
    with st.spinner("Predicting..."):
        from recommender.metamodel.recommend import recommend

        model = ui.metamodel()
        features = ui.metafeatures(task_key, task)
        rec = recommend(task, budgets, top=top, model=model, metafeatures=features)
except RecommenderError as exc:
    ui.show_error(exc)
    st.stop()

# --- the answer -------------------------------------------------------------------------------
ref = {"source": task.name, "overrides": {}, "max_train": None, "max_dev": None, "seed": 0} \
    if task_key.startswith("bundled:") else None
st.session_state["recommendation"] = {
    "task": rec.task, "task_key": task_key, "metric_name": rec.metric_name, "task_ref": ref,
    "candidates": [c.to_dict() for c in rec.candidates], "metafeatures": rec.metafeatures.to_dict(),
    "budgets": rec.budgets.to_dict()}

metric = rec.metric_name
st.subheader(f"Recommendations for {rec.task}")
st.caption(f"Learned from {rec.n_runs} past runs; times and latencies calibrated on "
           f"{rec.hardware.get('device')} at sequence length {rec.hardware.get('seq_len')}. Intervals are the "
           "10th-90th percentiles of the prediction; P(meets) is the probability of meeting each budget.")
limits = [f"training ≤ {budgets.time_budget_s / 60:g} min" if budgets.time_budget_s else "",
          f"latency ≤ {budgets.latency_budget_ms:g} ms at batch {budgets.latency_batch}"
          if budgets.latency_budget_ms else "",
          f"trainable parameters ≤ {budgets.max_trainable_params:,}" if budgets.max_trainable_params else "",
          f"storage ≤ {budgets.storage_budget_mb:g} MB for {budgets.n_tasks} task(s)"
          if budgets.storage_budget_mb else ""]
st.caption("Budgets: " + ("; ".join(x for x in limits if x) or "none set") + ".")
if not rec.candidates:
    st.warning("No measured configuration supports this task type yet: run a search to learn one.")
    st.stop()
if not rec.feasible_found:
    st.warning(f"No candidate meets every budget. {rec.relax_advice}")

best = rec.candidates[0]
m0, m1, m2, m3, m4 = st.columns(5)
m0.metric("Top pick", best.method)
m1.metric(f"Predicted {metric}", f"{best.predicted_metric:.3f}")
m2.metric("Time to converge", "-" if best.predicted_time_s is None else f"{best.predicted_time_s:,.0f} s")
m3.metric(f"Latency (batch {budgets.latency_batch})",
          "-" if best.predicted_latency_ms is None else f"{best.predicted_latency_ms:,.1f} ms")
m4.metric("Trainable parameters", "-" if best.trainable_params is None else f"{best.trainable_params:,}")


def interval(values: list[float] | None, digits: int = 3) -> str:
    return "-" if not values else f"{values[0]:,.{digits}f} – {values[1]:,.{digits}f}"


rows = [{
    "rank": c.rank, "method": c.method, f"predicted {metric}": c.predicted_metric,
    f"{metric} interval": interval(c.metric_interval), "gap to best": c.predicted_gap,
    "time to converge (s)": c.predicted_time_s, "time interval (s)": interval(c.time_interval, 0),
    "latency (ms)": c.predicted_latency_ms, "latency interval (ms)": interval(c.latency_interval, 1),
    "memory (MB)": c.predicted_memory_mb, "trainable params": c.trainable_params, "storage (MB)": c.storage_mb,
    "P(meets)": " · ".join(f"{k} {v:.2f}" for k, v in c.p_meets.items()) or "no budget set",
    "feasible": c.feasible, "adding a task": c.add_task_cost,
} for c in rec.candidates]
st.dataframe(rows, hide_index=True, column_config={
    f"predicted {metric}": st.column_config.NumberColumn(format="%.3f"),
    "gap to best": st.column_config.NumberColumn(format="%+.3f"),
    "time to converge (s)": st.column_config.NumberColumn(format="%.0f"),
    "latency (ms)": st.column_config.NumberColumn(format="%.1f"),
    "memory (MB)": st.column_config.NumberColumn(format="%.0f"),
    "trainable params": st.column_config.NumberColumn(format="localized"),
    "storage (MB)": st.column_config.NumberColumn(format="%.1f"),
})


def figure(rec: Any) -> Any:
    """Predicted quality vs predicted time to convergence; size = latency, grey = misses a budget."""
    import plotly.graph_objects as go

    shown = [c for c in rec.candidates if c.predicted_time_s is not None]
    lat = [c.predicted_latency_ms or 0.0 for c in shown]
    top_lat = max(lat) if lat and max(lat) > 0 else 1.0
    # candidates predicted (almost) alike would print their names over each other: one label per
    # cell of a 40 x 40 grid over the plot, naming every candidate in it
    xs, ys = [c.predicted_time_s or 0.0 for c in shown], [c.predicted_metric for c in shown]
    span_x, span_y = (max(xs) - min(xs)) or 1.0, (max(ys) - min(ys)) or 1.0
    cells: dict[tuple[int, int], list[Any]] = {}
    for c in shown:
        key = (round(((c.predicted_time_s or 0.0) - min(xs)) / span_x * 40), round((c.predicted_metric - min(ys))
                                                                                 / span_y * 40))
        cells.setdefault(key, []).append(c)
    labels = {id(group[0]): ", ".join(f"{c.rank}. {c.method}" for c in group) for group in cells.values()}
    fig = go.Figure()
    for feasible, colour, label in ((True, "#1f77b4", "meets the budgets"), (False, "#b0b0b0", "misses a budget")):
        group = [c for c in shown if c.feasible is feasible]
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[c.predicted_time_s for c in group], y=[c.predicted_metric for c in group], name=label,
            mode="markers+text", text=[labels.get(id(c), "") for c in group], textposition="top center",
            marker={"size": [14 + 30 * (c.predicted_latency_ms or 0.0) / top_lat for c in group],
                    "color": colour, "opacity": 0.75, "line": {"width": 1, "color": "#333"}},
            error_y={"type": "data", "symmetric": False, "color": colour, "thickness": 1,
                     "array": [c.metric_interval[1] - c.predicted_metric for c in group],
                     "arrayminus": [c.predicted_metric - c.metric_interval[0] for c in group]},
            customdata=[[c.predicted_latency_ms or float("nan"), c.trainable_params or 0] for c in group],
            hovertext=[f"{c.rank}. {c.method}" for c in group],
            hovertemplate="%{hovertext}<br>" + metric + " %{y:.3f}<br>time to converge %{x:.0f} s<br>"
                          "latency %{customdata[0]:.1f} ms<br>trainable %{customdata[1]:,}<extra></extra>"))
    if shown:  # room for the labels at both ends
        fig.update_xaxes(range=[min(xs) - 0.3 * span_x, max(xs) + 0.3 * span_x])
    fig.update_layout(xaxis_title="predicted time to convergence (s, this machine)",
                      yaxis_title=f"predicted {metric} (10-90 % interval)", template="plotly_white",
                      height=420, margin={"t": 30}, legend={"orientation": "h", "y": -0.2})
    return fig


left, right = st.columns([3, 2])
with left:
    st.plotly_chart(figure(rec), key="rec_chart")
    st.caption("Marker size: predicted latency. Grey: predicted to miss at least one budget.")
with right:
    st.markdown("**Why**")
    for c in rec.candidates:
        st.markdown(f"{c.rank}. **{c.method}**: {c.why}.")
    if rec.nearest_tasks:
        st.markdown("**Nearest past tasks**")
        st.dataframe([{"task": n["task"], "train size": n["size"], "distance": round(n["distance"], 2),
                       "best method": n["best_method"], "its metric": n["best_metric"]}
                      for n in rec.nearest_tasks], hide_index=True)
    if rec.top_features:
        st.markdown("**Meta-features that weigh most:** " + ", ".join(f"`{f}`" for f in rec.top_features))

with st.expander("Hyperparameters of each candidate"):
    for c in rec.candidates:
        st.markdown(f"**{c.rank}. {c.method}**")
        st.json(c.params, expanded=False)
with st.expander("Meta-features of this task"):
    st.json(rec.metafeatures.to_dict())

# --- act on it ----------------------------------------------------------------------------------
st.subheader("Next steps")
e1, e2 = st.columns(2)
with e1:
    st.markdown(f"**Export the top pick** ({best.method}): its configuration, a `train.py` that retrains it "
                "and a README with the predicted numbers.")
    if st.button("Export top pick", icon=":material/archive:", key="export_top"):
        try:
            with st.spinner("Writing the bundle..."):
                # an upload gets a private copy on disk now: the bundle's train.py reads it
                current_ref = ref if ref is not None else ui.upload_task_ref()
                data = ui.recommendation_zip(best.to_dict(), current_ref, rec.metafeatures.to_dict())
        except RecommenderError as exc:
            ui.show_error(exc)
        else:
            st.session_state["top_pick_zip"] = (task_key, best.to_dict(), data)
    ready = st.session_state.get("top_pick_zip")
    if ready and ready[0] == task_key and ready[1] == best.to_dict():  # only for what is on screen
        st.download_button("Download the bundle (.zip)", ready[2], type="primary",
                           file_name=f"recommendation-{ui.safe_name(rec.task)}-{best.method}.zip",
                           mime="application/zip", icon=":material/download:", key="download_top")
with e2:
    methods = list(dict.fromkeys(c.method for c in rec.candidates))
    st.markdown(f"**Verify with a search**: train {', '.join(methods)} with tuned hyperparameters under your "
                "budgets, in the background.")
    v1, v2 = st.columns(2)
    minutes = v1.number_input("Search time (minutes)", min_value=1.0, max_value=24 * 60.0,
                              value=float(max(5.0, round((budgets.time_budget_s or 600) / 60))), step=5.0,
                              key="verify_minutes")
    max_train = v2.number_input("At most N training examples", min_value=16, value=None, step=100,
                                placeholder="all", key="verify_max_train")
    if st.button("Verify with a search", icon=":material/play_arrow:", key="verify"):
        from recommender.search.background import start_search_process
        from recommender.search.config import SearchConfig, TaskRef

        study = f"verify-{ui.safe_name(rec.task)}-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            task_ref = TaskRef.from_dict({**(ref if ref is not None else ui.upload_task_ref() or {}),
                                          "max_train": int(max_train) if max_train else None})
            config = SearchConfig(methods=tuple(methods), time_budget=minutes * 60,
                                  latency_budget_ms=budgets.latency_budget_ms, latency_batch=budgets.latency_batch,
                                  max_trainable_params=budgets.max_trainable_params, warm_start=True,
                                  device=budgets.hardware)
            pid = start_search_process(task_ref, ui.default_storage(), study, config)
        except RecommenderError as exc:
            ui.show_error(exc)
        else:
            st.session_state["search_study"] = study
            st.success(f"Search {study!r} started in the background (pid {pid}). Open the Search page to "
                       "follow it; it keeps running if you close this tab.")
            st.page_link("app_pages/search.py", label="Open the Search page", icon=":material/manage_search:")
