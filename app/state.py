"""What the user entered, shared by every page of a browser session.

One task identifier scheme for the whole app: ``"bundled:<name>"`` for a bundled task and
``"upload:<digest>"`` for the session's upload (the digest covers its bytes and its column
mapping). Widgets whose values must survive a page change are listed in :data:`KEPT`: Streamlit
drops a widget's state when a run does not draw it, so :func:`keep_widgets` (called by the
frame before every page) re-assigns them, which keeps them for the next page, and restores any
that a page change dropped anyway from a plain copy.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

BUNDLED, UPLOAD = "bundled:", "upload:"
SOURCE_BUNDLED, SOURCE_UPLOAD = "Bundled task", "Upload a file"
DEFAULT_TASK = "glue_sst2"

#: Recommend's budget widgets: the budgets every page works with
BUDGET_KEYS = ("budget_time", "budget_latency", "budget_batch", "budget_params", "budget_tasks", "budget_storage",
               "budget_hardware", "budget_top")
#: widget keys kept across page changes (file uploads cannot be: the parsed upload is kept instead)
KEPT = (
    "rec_source", "rec_task", "map_text", "map_pair", "map_label", "map_type", *BUDGET_KEYS,
    "search_task", "search_methods", "form_time", "form_trials", "form_trial_time", "form_objective",
    "form_latency", "form_batch", "form_params", "form_max_train", "form_max_dev", "form_warm", "form_model",
    "form_device", "runs_source", "runs_type", "runs_language", "runs_size", "runs_method", "runs_tasks",
    "runs_relative", "export_fmt", "export_source", "export_candidate", "export_study", "export_trial",
)


#: a plain (non-widget) copy of each kept value: Streamlit drops the widget keys of the page being
#: left when a page change interrupts a run (e.g. a click while a finished search redraws its page)
SHADOW = "_kept:"

#: kept in the page URL too, so a browser that reconnects to a new server session (a long
#: search on a busy machine can drop the websocket) gets its task and budgets back
IN_URL = ("task_id", *BUDGET_KEYS)
_NUMBERS = {"budget_time": float, "budget_latency": float, "budget_batch": int, "budget_params": int,
            "budget_tasks": int, "budget_storage": float, "budget_top": int}


def keep_widgets() -> None:
    """Re-assign the kept widgets' values so that a page which does not draw them keeps them;
    mirror the task and budgets into the URL, and restore them from it in a new session."""
    if "_restored" not in st.session_state:
        st.session_state["_restored"] = True
        _restore_from_url()
    for key in KEPT:
        if key in st.session_state:
            st.session_state[key] = st.session_state[SHADOW + key] = st.session_state[key]
        elif SHADOW + key in st.session_state:  # dropped by a page change that interrupted a run
            st.session_state[key] = st.session_state[SHADOW + key]
    _mirror_to_url()


def _restore_from_url() -> None:
    """A new session (first visit or a reconnect): take the task and budgets the URL carries.
    Values are parsed, never evaluated; anything that does not parse is ignored."""
    import math

    params = st.query_params
    for key in IN_URL:
        raw = params.get(key)
        if raw is None or key in st.session_state:
            continue
        if key in _NUMBERS:
            try:
                value: Any = _NUMBERS[key](raw)
            except (TypeError, ValueError):
                continue
            if (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
                continue
            if key == "budget_top":
                value = min(max(value, 3), 15)  # the slider's range
            st.session_state[key] = value
        elif key == "task_id":
            if raw.startswith(BUNDLED):  # an upload's rows are not in the URL: only bundled tasks
                set_task(raw)
        elif key == "budget_hardware" and raw in ("auto", "cpu", "cuda"):  # the widget's options
            st.session_state[key] = raw


def _mirror_to_url() -> None:
    wanted = {}
    for key in IN_URL:
        value = st.session_state.get(key)
        if value is not None and (key != "task_id" or str(value).startswith(BUNDLED)):
            wanted[key] = str(value)
    current = {k: st.query_params.get(k) for k in IN_URL if k in st.query_params}
    if current != wanted:
        for key in IN_URL:
            if key not in wanted and key in st.query_params:
                del st.query_params[key]
        st.query_params.update(wanted)


# --- the current task ------------------------------------------------------------------------
def bundled_id(name: str) -> str:
    return BUNDLED + name


def bundled_name(task_id: str) -> str | None:
    return task_id[len(BUNDLED):] if task_id.startswith(BUNDLED) else None


def upload() -> dict[str, Any] | None:
    """The session's upload: file name, rows, column mapping, the parsed task and its ``id``."""
    return st.session_state.get("upload")


def current_task_id() -> str:
    """The task the user is working on, as Recommend and Search show it."""
    task_id = st.session_state.get("task_id")
    if isinstance(task_id, str) and (task_id.startswith(BUNDLED) or (upload() or {}).get("id") == task_id):
        return task_id
    return bundled_id(DEFAULT_TASK)


def set_task(task_id: str) -> None:
    """Make ``task_id`` the current task everywhere (Recommend's source and task widgets too)."""
    st.session_state["task_id"] = task_id
    name = bundled_name(task_id)
    if name is not None:
        st.session_state["rec_source"] = SOURCE_BUNDLED
        st.session_state["rec_task"] = name
    else:
        st.session_state["rec_source"] = SOURCE_UPLOAD


def budgets() -> dict[str, Any]:
    """The budgets as entered on Recommend (None: no limit)."""
    s = st.session_state
    minutes = s.get("budget_time")
    return {"time_budget_s": minutes * 60 if minutes else None, "latency_budget_ms": s.get("budget_latency"),
            "latency_batch": int(s.get("budget_batch") or 1),
            "max_trainable_params": int(s["budget_params"]) if s.get("budget_params") else None,
            "n_tasks": int(s.get("budget_tasks") or 1), "storage_budget_mb": s.get("budget_storage"),
            "hardware": s.get("budget_hardware") or "auto"}


def recommended_methods(task_id: str) -> list[str]:
    """Methods of the session's recommendation for ``task_id`` (best first), or none."""
    rec = st.session_state.get("recommendation") or {}
    if rec.get("task_id") != task_id:
        return []
    return list(dict.fromkeys(c["method"] for c in rec.get("candidates", [])))
