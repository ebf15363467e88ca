"""Recommend: a task and budgets in, ranked fine-tuning strategies out (before any training)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import state, ui
from recommender.errors import RecommenderError

TASK_TYPES = ["(auto)", "classification", "regression", "token_classification", "extractive_qa"]
AUTO = "(auto)"
POOL = 200  # candidates asked of the library; the page shows the best configuration of each method

st.title("Recommend a fine-tuning strategy")
st.caption("Pick a task and say what you can afford. The meta-model, learned from measured runs, predicts "
           "quality, time to convergence on this machine, latency and size for each strategy, with intervals.")


# --- the task ---------------------------------------------------------------------------------
def read_file() -> dict[str, Any] | None:
    """The session's uploaded file (parsed in memory), kept across pages; None with the reason shown."""
    file = st.file_uploader(f"Task data: CSV, TSV or JSONL, one example per row (at most {ui.MAX_UPLOAD_MB} MB)",
                            type=list(ui.UPLOAD_TYPES), max_upload_size=ui.MAX_UPLOAD_MB, key="rec_upload")
    upload = state.upload()
    if file is None:
        if upload is None:
            st.info("Upload a file with a text column and a label column (a second text column for sentence "
                    "pairs). It is parsed in memory; a private copy is written to your user folder only when you "
                    "start a search on it (the search reads it).")
            return None
        st.caption(f"Using **{ui.md(upload['file_name'])}**, uploaded earlier in this session. Upload another file to "
                   "replace it.")
        return upload
    if file.size > ui.MAX_UPLOAD_MB * 1024 * 1024:
        st.error(f"{file.name} is {file.size / 1024 / 1024:.1f} MB, over the {ui.MAX_UPLOAD_MB} MB upload limit; "
                 "subsample it first")
        return None
    raw = file.getvalue()
    raw_key = ui.digest(raw, file.name)
    if upload is None or upload["raw_key"] != raw_key:
        try:
            rows = ui.parse_upload(file.name, raw)
        except RecommenderError as exc:
            ui.show_error(exc)
            st.session_state.pop("upload", None)
            return None
        upload = {"raw_key": raw_key, "file_name": file.name, "raw": raw, "rows": rows, "key": None, "id": None,
                  "name": ui.safe_name(file.name.rsplit(".", 1)[0], 60), "overrides": {}, "task": None,
                  "path": None}
        st.session_state["upload"] = upload
    return upload


def uploaded_task() -> tuple[Any, str] | None:
    """The uploaded task with its column mapping, or None with the reason shown."""
    upload = read_file()
    if upload is None:
        return None
    rows = upload["rows"]
    st.caption(f"{len(rows):,} rows. First rows:")
    st.dataframe(rows[:5], hide_index=True)
    columns = list(rows[0].keys())
    for key in ("map_text", "map_pair", "map_label"):  # a mapping kept from another file does not apply
        if st.session_state.get(key, AUTO) not in (AUTO, *columns):
            st.session_state[key] = AUTO
    c1, c2, c3, c4 = st.columns(4)
    text_col = c1.selectbox("Text column", [AUTO, *columns], key="map_text")
    pair_col = c2.selectbox("Second text column (pairs)", [AUTO, *columns], key="map_pair")
    label_col = c3.selectbox("Label column", [AUTO, *columns], key="map_label")
    task_type = c4.selectbox("Task type", TASK_TYPES, key="map_type")
    roles = {"text column": text_col, "second text column": pair_col, "label column": label_col}
    chosen = [(role, col) for role, col in roles.items() if col != AUTO]
    for i, (role, col) in enumerate(chosen):
        other = next((r for r, c in chosen[i + 1:] if c == col), None)
        if other is not None:
            st.error(f"The {role} and the {other} must differ: both are {ui.md(repr(col))}. Choose another column for one "
                     "of them.")
            upload["key"] = upload["id"] = None
            return None
    overrides = {k: v for k, v in {"text_col": text_col, "text_pair_col": pair_col, "label_col": label_col,
                                   "task_type": task_type}.items() if v != AUTO}
    key = ui.digest(upload["raw_key"], overrides)
    if upload["key"] != key:
        from recommender.tasks import task_from_rows

        try:
            task = task_from_rows(rows, name=upload["name"], **overrides)
        except RecommenderError as exc:
            ui.show_error(exc)
            upload["key"] = upload["id"] = None
            return None
        upload.update(key=key, id=state.UPLOAD + key, overrides=overrides, task=task, path=None)
    task = upload["task"]
    spec = task.spec
    pair = f", pairs ({spec.text_col!r} + {spec.text_pair_col!r})" if spec.is_pair else f", text {spec.text_col!r}"
    st.success(f"{spec.task_type}{pair}, label {spec.label_col!r}"
               + (f" ({len(task.label_names)} classes)" if task.label_names else "")
               + f": {spec.n_train:,} train / {spec.n_dev:,} dev rows, metric {spec.metric}")
    for note in task.notes:
        st.caption(f"note: {note}")
    return task, upload["id"]


source = st.radio("Task", [state.SOURCE_BUNDLED, state.SOURCE_UPLOAD], horizontal=True, key="rec_source")
chosen: tuple[Any, str] | None = None
if source == state.SOURCE_BUNDLED:
    names = [r["name"] for r in ui.bundled_tasks()]
    if st.session_state.get("rec_task") not in names:
        st.session_state["rec_task"] = state.DEFAULT_TASK if state.DEFAULT_TASK in names else names[0]
    name = st.selectbox("Bundled task", names, format_func=ui.task_label, key="rec_task")
    try:
        chosen = (ui.bundled_task(name), state.bundled_id(name))
    except RecommenderError as exc:
        ui.show_error(exc)
else:
    chosen = uploaded_task()

# --- budgets ----------------------------------------------------------------------------------
st.subheader("Budgets", help="Leave a field empty for no limit.")
st.session_state.setdefault("budget_top", 8)
b1, b2, b3, b4 = st.columns(4)
b1.number_input("Training time (minutes)", min_value=0.1, value=None, step=5.0, placeholder="no limit",
                key="budget_time")
b2.number_input("Latency (ms per batch)", min_value=0.1, value=None, step=5.0, placeholder="no limit",
                key="budget_latency")
b2.number_input("Serving batch size", min_value=1, max_value=4096, step=1, key="budget_batch")
b3.number_input("Trainable parameters", min_value=1, value=None, step=10_000, placeholder="no limit",
                key="budget_params")
b3.number_input("Tasks to serve", min_value=1, max_value=10_000, step=1, key="budget_tasks",
                help="How many tasks share the deployment: prices storage and adding one more task.")
b4.number_input("Storage (MB)", min_value=0.1, value=None, step=50.0, placeholder="no limit", key="budget_storage")
b4.selectbox("Hardware", ["auto", "cpu", "cuda"], key="budget_hardware",
             help="Where times and latencies are calibrated (auto: CUDA when present).")
top = st.slider("Methods to show", 3, 15, key="budget_top")

if chosen is None:
    st.stop()
task, task_id = chosen
st.session_state["task_id"] = task_id

try:
    from recommender import pipeline
    from recommender.types import UserBudgets

    budgets = UserBudgets(**state.budgets())
    with st.spinner("Predicting..."):
        # the task's side first: on a fresh server the warm-up thread fits the model meanwhile
        upload = state.upload()
        features = (ui.bundled_metafeatures(task_id.removeprefix(state.BUNDLED)) if task_id.startswith(state.BUNDLED)
                    else ui.upload_metafeatures(upload["key"] if upload else task_id, task))
        ui.calibrate(budgets.hardware, features.tokens_p95, budgets.latency_batch)
        model = ui.metamodel()
        rec = pipeline.recommend(task, budgets, top=POOL, predictor=model, metafeatures=features)
        device = ui.device_label(budgets.hardware)
except RecommenderError as exc:
    ui.show_error(exc)
    st.stop()

# one row per method: its best configuration (the others differ only in hyperparameters)
shown: list[Any] = []
for c in rec.candidates:
    if c.method not in {s.method for s in shown} and len(shown) < top:
        c.rank = len(shown) + 1
        shown.append(c)
rec.candidates = shown

# --- the answer -------------------------------------------------------------------------------
bundled_ref = ({"source": task.name, "overrides": {}, "max_train": None, "max_dev": None, "seed": 0}
               if task_id.startswith(state.BUNDLED) else None)
st.session_state["recommendation"] = {
    "task": rec.task, "task_id": task_id, "metric_name": rec.metric_name, "task_ref": bundled_ref,
    "candidates": [c.to_dict() for c in rec.candidates], "metafeatures": rec.metafeatures.to_dict(),
    "budgets": rec.budgets.to_dict()}

metric = rec.metric_name
title = (state.upload() or {}).get("file_name", rec.task) if task_id.startswith(state.UPLOAD) else rec.task
st.subheader(f"Recommendations for {ui.md(title) if task_id.startswith(state.UPLOAD) else title}")
st.caption(f"Learned from {rec.n_runs} past runs; times and latencies calibrated on {device} (training in "
           f"{rec.hardware.get('precision', 'fp32')}) at sequence length {rec.hardware.get('seq_len')}. Ranges are the 10th-90th percentiles of each prediction. One row per "
           "method: its best measured configuration.")
limits = [f"training ≤ {budgets.time_budget_s / 60:g} min" if budgets.time_budget_s else "",
          f"latency ≤ {budgets.latency_budget_ms:g} ms at batch {budgets.latency_batch}"
          if budgets.latency_budget_ms else "",
          f"trainable parameters ≤ {budgets.max_trainable_params:,}" if budgets.max_trainable_params else "",
          f"storage ≤ {budgets.storage_budget_mb:g} MB for {budgets.n_tasks} task(s)"
          if budgets.storage_budget_mb else ""]
st.caption("Budgets: " + ("; ".join(x for x in limits if x) or "none set") + ".")
reason = getattr(getattr(task, "spec", None), "metric_reason", "")
baseline_text = ("" if rec.baseline_metric is None else
                 f" A constant predictor (always the most common label) scores {rec.baseline_metric:.3f}.")
st.caption(f"Metric: **{metric}**" + (f" ({reason})." if reason else ".") + baseline_text)
for warning in rec.warnings:  # the extrapolation notes among them, once
    st.warning(warning)
if not rec.candidates:
    st.warning("No measured configuration supports this task type yet: run a search to learn one.")
    st.stop()
if not rec.feasible_found:
    st.warning(f"No candidate meets every budget. {rec.relax_advice}")

best = rec.candidates[0]
m0, m1, m2, m3, m4 = st.columns(5)
m0.metric("Top pick", best.method, help=f"Ranked by: {best.ranked_by}. The robust default is the best fixed rule "
          "on past tasks for these budgets; another configuration takes rank 1 only when predicted to beat it "
          f"with 90 % probability. The other rows follow the predicted {metric}.")
m1.metric(f"Predicted {metric}", f"{best.predicted_metric:.3f}")
m2.metric("Time to converge", "-" if best.predicted_time_s is None else f"{best.predicted_time_s:,.0f} s")
m3.metric(f"Latency (batch {budgets.latency_batch})",
          "-" if best.predicted_latency_ms is None else f"{best.predicted_latency_ms:,.1f} ms")
m4.metric("Trainable parameters", "-" if best.trainable_params is None else f"{best.trainable_params:,}",
          help="Besides the task head, which every method trains.")


def span(values: list[float] | None, digits: int = 3) -> str:
    return "-" if not values else f"{values[0]:,.{digits}f} – {values[1]:,.{digits}f}"


TIME, LATENCY, STORAGE = "Time to converge (s)", "Latency (ms)", "Storage (MB)"
table = [{
    "Rank": c.rank, "Method": c.method, f"Predicted {metric}": c.predicted_metric,
    "Range": span(c.metric_interval), TIME: c.predicted_time_s, LATENCY: c.predicted_latency_ms,
    "Trainable params": c.trainable_params, STORAGE: c.storage_mb, "Meets budgets": c.budget_verdict(rec.budgets.time_budget_s),
} for c in rec.candidates]
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "Rank": st.column_config.NumberColumn(width=40),
    "Method": st.column_config.TextColumn(width=110),
    f"Predicted {metric}": st.column_config.NumberColumn(format="%.3f", width=120),
    "Range": st.column_config.TextColumn(help="10th-90th percentile of the predicted metric", width=110),
    TIME: st.column_config.NumberColumn(format="%.0f", width=130, help="On this machine, with the interval in the "
                                        "details below"),
    LATENCY: st.column_config.NumberColumn(format="%.1f", width=90, help=f"At batch {budgets.latency_batch}"),
    "Trainable params": st.column_config.NumberColumn(format="localized", width=120, help="Besides the task head."),
    STORAGE: st.column_config.NumberColumn(format="%.1f", width=100,
                                           help=f"To serve {budgets.n_tasks} task(s): the base model and what each "
                                                "task adds"),
    "Meets budgets": st.column_config.TextColumn(help="Predicted to meet every budget set (P: the lowest "
                                                      "probability of meeting one)", width=170),
})


def figure(rec: Any) -> Any:
    """Predicted quality vs predicted time to convergence: one marker per method, its rank inside,
    its name in the legend (no labels to collide); size = latency; open = misses a budget."""
    import plotly.graph_objects as go

    colours = ui.method_colours()
    drawn = [c for c in rec.candidates if c.predicted_time_s is not None]
    lat = [c.predicted_latency_ms or 0.0 for c in drawn]
    top_lat = max(lat) if lat and max(lat) > 0 else 1.0
    fig = go.Figure()
    for c in drawn:
        colour = colours.get(c.method, "#1f77b4")
        fig.add_trace(go.Scatter(
            x=[c.predicted_time_s], y=[c.predicted_metric], name=f"{c.rank}. {c.method}", mode="markers+text",
            text=[str(c.rank)], textposition="middle center", textfont={"color": "white" if c.feasible else colour},
            marker={"size": 18 + 24 * (c.predicted_latency_ms or 0.0) / top_lat, "color": colour,
                    "opacity": 0.85 if c.feasible else 1.0, "symbol": "circle" if c.feasible else "circle-open",
                    "line": {"width": 2, "color": colour}},
            error_y={"type": "data", "symmetric": False, "color": colour, "thickness": 1,
                     "array": [c.metric_interval[1] - c.predicted_metric],
                     "arrayminus": [c.predicted_metric - c.metric_interval[0]]},
            customdata=[[c.predicted_latency_ms or float("nan"), c.trainable_params or 0]],
            hovertemplate=f"{c.rank}. {c.method}<br>{metric} %{{y:.3f}}<br>time to converge %{{x:.0f}} s<br>"
                          "latency %{customdata[0]:.1f} ms<br>trainable %{customdata[1]:,}<extra></extra>"))
    fig.update_layout(xaxis_title="predicted time to convergence (s, this machine, log)",
                      yaxis_title=f"predicted {metric} (10-90 % range)", template="plotly_white", height=440,
                      margin={"t": 20, "r": 10}, xaxis_type="log", legend={"title": {"text": "rank. method"}})
    return fig


@st.cache_data(max_entries=16, show_spinner=False)
def quality_curves(rec_json: str) -> dict[str, Any]:
    """Predicted metric against training time per method (cached per recommendation)."""
    import json

    from recommender.metamodel.plots import predicted_quality_curves
    from recommender.types import Recommendation

    return predicted_quality_curves(Recommendation.from_dict(json.loads(rec_json)), predictor=ui.metamodel())


left, right = st.columns([3, 2])
with left:
    import json as _json

    from recommender.metamodel.plots import quality_figure

    curves = quality_curves(_json.dumps(rec.to_dict(), sort_keys=True))
    st.plotly_chart(quality_figure(curves, time_budget_s=budgets.time_budget_s, metric_name=metric,
                                   baseline=rec.baseline_metric), key="quality_chart")
    st.caption("Predicted metric after a given training time on this machine, one line per method with its 80 % "
               "band; the dashed line is your time budget, the dotted one a constant predictor's score. "
               "The top pick is the best at your budget (at convergence without one).")
    st.plotly_chart(figure(rec), key="rec_chart")
    st.caption("Marker size: predicted latency. Open marker: predicted to miss at least one budget.")
with right:
    st.markdown("**Why**")
    for c in rec.candidates:
        st.markdown(f"{c.rank}. **{c.method}**: {c.why}.")
    if rec.nearest_tasks:
        st.markdown("**Nearest past tasks**")
        st.dataframe([{"Task": n["task"], "Train size": n["size"], "Distance": round(n["distance"], 2),
                       "What won": n["summary"], "Its metric": n["best_metric"]}
                      for n in rec.nearest_tasks], hide_index=True)
    if rec.top_features:
        st.markdown("**Meta-features that weigh most:** " + ", ".join(f"`{f}`" for f in rec.top_features))

with st.expander("Details of each candidate: hyperparameters, memory, adding a task"):
    for c in rec.candidates:
        memory = "-" if c.predicted_memory_mb is None else f"{c.predicted_memory_mb:,.0f} MB"
        st.markdown(f"**{c.rank}. {c.method}**: gap to the task's best {c.predicted_gap:+.3f}; time range "
                    f"{span(c.time_interval, 0)} s; latency range {span(c.latency_interval, 1)} ms; peak memory "
                    f"{memory}; adding a task: {c.add_task_cost}.")
        st.json(c.params, expanded=False)
with st.expander("Meta-features of this task"):
    st.json(rec.metafeatures.to_dict())

# --- act on it ----------------------------------------------------------------------------------
st.subheader("Next steps")
e1, e2 = st.columns(2)
with e1:
    upload = state.upload() if task_id.startswith(state.UPLOAD) else None
    carries = f" It carries your file ({ui.md(upload['file_name'])})." if upload else ""
    st.markdown(f"**Export the top pick** ({best.method}): its configuration, a `train.py` that retrains it "
                f"and a README with the predicted numbers.{carries}")
    if st.button("Export top pick", icon=":material/archive:", key="export_top"):
        try:
            with st.spinner("Writing the bundle..."):
                data = ui.recommendation_bundle(st.session_state["recommendation"], 0)
        except RecommenderError as exc:
            ui.show_error(exc)
        else:
            st.session_state["top_pick_zip"] = (task_id, best.to_dict(), data)
    ready = st.session_state.get("top_pick_zip")
    if ready and ready[0] == task_id and ready[1] == best.to_dict():  # only for what is on screen
        st.download_button("Download the bundle (.zip)", ready[2], type="primary",
                           file_name=f"recommendation-{ui.safe_name(title)}-{best.method}.zip",
                           mime="application/zip", icon=":material/download:", key="download_top")
with e2:
    methods = state.recommended_methods(task_id)
    st.markdown(f"**Verify with a search**: train {', '.join(methods)} with tuned hyperparameters under your "
                "budgets, in the background. The Search page opens with this task, these methods and budgets "
                "filled in.")
    if st.button("Verify with a search", icon=":material/play_arrow:", key="verify"):
        st.session_state["search_handoff"] = {"task_id": task_id, "methods": methods}
        st.switch_page("app_pages/search.py")
