"""The tables behind the Runs page: every measured run of the knowledge base and of the app's
run store, one row each (cached; the warm-up thread fills the knowledge base's)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from recommender.types import SERVING_BATCH  # noqa: E402 - the serving batch latency is shown at

KB, STORE = "knowledge base", "your runs"


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
    for r in (row for path in kb_key[0].split(",") if path for row in load_knowledge_base(Path(path))):
        row = _row(KB, r.study, r.task, r.size, r.metafeatures, r.result)
        runs.append(row)
        latencies += [{**x, "source": KB} for x in _latency_rows(row, r.result)]
    return runs, latencies


@st.cache_data(ttl=15, show_spinner="Reading your run store...")
def storage_tables(storage: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    from recommender.store import open_storage
    from recommender.studies import iter_runs, study_summaries

    store = open_storage(storage, heartbeat=False)
    studies = []
    for summary in study_summaries(store):
        record = summary.record
        studies.append({"study": summary.name, "kind": summary.kind,
                        "task": record.task_name if record else "", "trials": summary.n_trials,
                        "started": summary.started.strftime("%Y-%m-%d %H:%M") if summary.started else "",
                        "objective": record.config.objective if record and record.config else ""})
    runs, latencies = [], []
    for run in iter_runs(store):
        features = run.record.metafeatures
        if features is None:
            continue
        row = _row(STORE, run.study, run.record.task_name or run.result.task, features.n_train, features,
                   run.result)
        row["trial"] = run.trial_number
        runs.append(row)
        latencies += [{**x, "source": STORE} for x in _latency_rows(row, run.result)]
    return studies, runs, latencies
