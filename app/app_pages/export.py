"""Export: a measured trial of a search, or the current recommendation, as a reproducible bundle (zip)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app import state, ui
from recommender.errors import RecommenderError

TRIAL, RECOMMENDATION = "A trial of a search", "The current recommendation"

st.title("Export a configuration")
st.caption("A bundle holds the configuration (method, every hyperparameter, the `adapters` config and the "
           "equivalent PEFT config where one exists), a `train.py` that retrains it, and a README with the "
           "measured or predicted numbers. To include trained weights, run `train.py`, or "
           "`recommender export --with-weights` on the command line.")


@st.cache_data(ttl=10, show_spinner=False)
def search_studies(storage: str) -> list[dict[str, Any]]:
    """Search studies in the storage, with their completed trials."""
    import optuna

    from recommender.store import open_storage
    from recommender.studies import study_summaries

    store = open_storage(storage, heartbeat=False)
    out = []
    for summary in study_summaries(store):
        if summary.record is None or not summary.record.is_search:
            continue
        study = optuna.load_study(study_name=summary.name, storage=store)
        trials = [{"number": t.number, "method": t.params.get("method"), "metric": t.user_attrs.get("metric")}
                  for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        out.append({"study": summary.name, "task": summary.record.task_name,
                    "metric_name": summary.record.metric_label, "trials": trials})
    return out


def offer(data: bytes, file_name: str) -> None:
    st.success(f"Bundle ready: {file_name} ({len(data) / 1024:.1f} kB).")
    st.download_button("Download the bundle", data, file_name=file_name, mime="application/zip",
                       icon=":material/download:", type="primary", key="export_download")


fmt = st.radio("Configuration format", ["json", "yaml"], horizontal=True, key="export_fmt")
if "export_source" not in st.session_state:
    st.session_state["export_source"] = RECOMMENDATION if st.session_state.get("recommendation") else TRIAL
source = st.radio("What to export", [TRIAL, RECOMMENDATION], horizontal=True, key="export_source")

if source == RECOMMENDATION:
    rec = st.session_state.get("recommendation")
    if not rec:
        st.info("No recommendation in this session yet: get one on the Recommend page first.")
        st.page_link("app_pages/recommend.py", label="Open the Recommend page", icon=":material/recommend:")
        st.stop()
    candidates = rec["candidates"]
    index = st.selectbox("Candidate", range(len(candidates)), key="export_candidate",
                         format_func=lambda i: f"{candidates[i]['rank']}. {candidates[i]['method']} (predicted "
                                               f"{rec['metric_name']} {candidates[i]['predicted_metric']:.3f})")
    candidate = candidates[index]
    selection: tuple[Any, ...] = (source, fmt, rec["task_id"], index)
    upload = state.upload() if rec["task_id"].startswith(state.UPLOAD) else None
    title = upload["file_name"] if upload else rec["task"]
    st.markdown(f"Task **{ui.md(title)}**; {candidate['why']}."
                + (" The bundle carries your uploaded file; `train.py` reads it from the bundle." if upload else ""))
    if st.button("Build the bundle", key="export_build_rec"):
        try:
            data = ui.recommendation_bundle(rec, index, fmt)
        except RecommenderError as exc:
            ui.show_error(exc)
        else:
            st.session_state["export_zip"] = (data, f"recommendation-{ui.safe_name(title)}-"
                                                    f"{candidate['method']}.zip", selection)
else:
    storage = ui.default_storage()
    try:
        studies = search_studies(storage)
    except RecommenderError as exc:
        ui.show_error(exc)
        st.stop()
    if not studies:
        st.info("No search study in your run store yet: start one on the Search page.")
        st.page_link("app_pages/search.py", label="Open the Search page", icon=":material/manage_search:")
        st.stop()
    names = [s["study"] for s in studies]
    wanted = st.session_state.get("search_study")
    if wanted in names and st.session_state.get("_export_synced_study") != wanted:  # the study watched on Search
        st.session_state["export_study"] = st.session_state["_export_synced_study"] = wanted
    chosen = st.selectbox("Study", names, key="export_study",
                          format_func=lambda n: f"{n} ({next(s for s in studies if s['study'] == n)['task']})")
    study = next(s for s in studies if s["study"] == chosen)
    if not study["trials"]:
        st.info("This study has no completed trial yet.")
        st.stop()
    options: list[Any] = ["best", *[t["number"] for t in study["trials"]]]
    by_number = {t["number"]: t for t in study["trials"]}

    def trial_label(option: Any) -> str:
        if option == "best":
            return "the best feasible trial"
        t = by_number[option]
        metric = "-" if t["metric"] is None else f"{t['metric']:.4f}"
        return f"#{option} {t['method']} ({study['metric_name']} {metric})"

    trial = st.selectbox("Trial", options, format_func=trial_label, key="export_trial")
    selection = (source, fmt, chosen, trial)
    if st.button("Build the bundle", key="export_build_trial"):
        from recommender import pipeline

        name = f"{ui.safe_name(chosen)}-trial-{trial}"
        try:
            with st.spinner("Exporting..."):
                data = ui.export_zip(lambda out: pipeline.export_trial(storage, chosen, out, trial=trial, fmt=fmt), name)
        except RecommenderError as exc:
            ui.show_error(exc)
        else:
            st.session_state["export_zip"] = (data, f"{name}.zip", selection)

ready = st.session_state.get("export_zip")
if ready and ready[2] == selection:  # a bundle built for another choice is not offered
    offer(ready[0], ready[1])
