"""Markdown tables and the plot of the knowledge-base analyses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recommender.kb_analysis.lr_grid import LrEvidence
from recommender.kb_analysis.relative import MethodSummary, Spread
from recommender.knowledge_base import CoverageRow
from recommender.methods import UNIPELT_PROMPT  # noqa: E402 - the second seed paper's method


def text(value: object) -> str:
    """A string from a store made safe for a markdown table and a terminal: no control
    characters, no HTML, no cell breaks."""
    out = "".join(c if c.isprintable() else "?" for c in str(value))
    return out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("`", "'")


def _md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _spread(s: Spread, fmt: str, scale: float = 1.0, suffix: str = "") -> str:
    """``median [q25, q75]`` (the median alone for a single task)."""
    if s.median is None:
        return "-"
    med = format(s.median * scale, fmt) + suffix
    if s.n < 2 or s.q25 is None or s.q75 is None:
        return med
    return f"{med} [{format(s.q25 * scale, fmt)}, {format(s.q75 * scale, fmt)}]"


def lr_evidence_markdown(evidence: LrEvidence) -> str:
    """Method x learning-rate multiplier: mean normalized gain (tasks), the winner starred."""
    mults = evidence.multipliers
    rows = []
    for v in evidence.verdicts:
        cells = {p.multiplier: p for p in v.points}
        row = [f"`{text(v.method)}`"]
        for m in mults:
            p = cells.get(m)
            if p is None:
                row.append("")
                continue
            star = "*" if m == v.winner and v.status == "ok" else ""
            failed = f", {p.failed} failed" if p.failed else ""
            row.append(f"{p.mean_gain:.2f}{star} ({len(p.tasks)}{failed})")
        default = cells.get(1.0)
        row.append(_num(default.learning_rate if default else None, ".3g"))
        row.append(_num(v.learning_rate, ".3g") if v.status == "ok" else "-")
        row.append(v.status)
        rows.append(row)
    header = ["method", *[f"x{m:g}" for m in mults], "default lr", "winner lr", "status"]
    flat = f" Left out (no run beat the constant predictor): {', '.join(map(text, evidence.flat_tasks))}." \
        if evidence.flat_tasks else ""
    note = (f"Mean normalized gain over tasks, (metric - baseline) / (best on the task - baseline), "
            f"with the number of tasks; * the winner. {evidence.runs} grid runs on "
            f"{len(evidence.tasks)} informative tasks: {', '.join(map(text, evidence.tasks)) or 'none'}.{flat}")
    return _md(header, rows) + "\n\n" + note


def coverage_markdown(table: Sequence[CoverageRow]) -> str:
    rows = [[text(c.task), str(c.size), str(c.protocol), str(c.runs), str(c.methods), f"{c.configs_per_method:.1f}",
             f"{c.learned_runs / c.runs:.0%}" if c.runs else "-", "yes" if c.set_learned else "no", text(c.precision)]
            for c in table]
    header = ["task", "size", "protocol", "runs", "methods", "configs/method", "learned runs",
              "set learned", "precision"]
    learned = sum(c.set_learned for c in table)
    return _md(header, rows) + (f"\n\n{len(table)} (task, size, protocol) sets; learned (best run >= 3 points "
                                f"above its first evaluation): {learned}/{len(table)}.")


def summary_markdown(summaries: Sequence[MethodSummary]) -> str:
    """The seed papers' table: per method, median [25 %, 75 %] over tasks against full_ft."""
    rows = []
    for s in summaries:
        name = f"**`{s.method}`**" if s.method == UNIPELT_PROMPT else f"`{text(s.method)}`"
        rows.append([name, str(s.tasks), _spread(s.quality_points, "+.1f"), _spread(s.time_ratio, ".2f", suffix="x"),
                     _spread(s.flops_ratio, ".2f", suffix="x"), _spread(s.latency_b1, "+.0f", 100, "%"),
                     _spread(s.latency_bB, "+.0f", 100, "%"), s.merged])
    header = ["method", "tasks", "quality vs full_ft (points)", "time to best vs full_ft",
              "FLOPs to best vs full_ft", "latency b1 vs base", "latency b32 vs base", "merged"]
    return _md(header, rows)


def unipelt_prompt_markdown(per_task: dict[str, list[dict[str, Any]]]) -> str:
    """UniPELT + prompt tuning against full fine-tuning, task by task."""
    rows = []
    for task, rel in per_task.items():
        row = next((r for r in rel if r["method"] == UNIPELT_PROMPT), None)
        if row is None:
            continue
        rows.append([text(task), text(row["metric_name"]), _num(row["quality_vs_full_ft"], "+.1f"),
                     _num(row["time_vs_full_ft"], ".2f"), _num(row["flops_vs_full_ft"], ".2f"),
                     _num(None if row["latency_b1_overhead"] is None else 100 * row["latency_b1_overhead"], "+.0f"),
                     _num(None if row["latency_bB_overhead"] is None else 100 * row["latency_bB_overhead"], "+.0f")])
    if not rows:
        return "No task has both a `unipelt_prompt` and a `full_ft` run yet."
    return _md(["task", "metric", "quality vs full_ft (points)", "time ratio", "FLOPs ratio",
                "latency b1 (%)", "latency b32 (%)"], rows)


def save_summary_png(summaries: Sequence[MethodSummary], path: Path, title: str = "") -> None:
    """Quality gain over full_ft (points) against the time and FLOPs ratios, one point per
    method at its median, bars spanning the 25-75 % spread over tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), dpi=110, sharey=True)
    for ax, attr, label in ((axes[0], "time_ratio", "time to best / full_ft (log)"),
                            (axes[1], "flops_ratio", "FLOPs to best / full_ft (log)")):
        for s in summaries:
            x, y = getattr(s, attr), s.quality_points
            if x.median is None or y.median is None or x.median <= 0:
                continue
            xerr = [[x.median - (x.q25 or x.median)], [(x.q75 or x.median) - x.median]]
            yerr = [[y.median - (y.q25 if y.q25 is not None else y.median)],
                    [(y.q75 if y.q75 is not None else y.median) - y.median]]
            ax.errorbar(x.median, y.median, xerr=xerr, yerr=yerr, fmt="o", capsize=3, alpha=0.8)
            ax.annotate(s.method, (x.median, y.median), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(1, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final quality - full_ft (points)")
    fig.suptitle(title or "each method against full fine-tuning: median over tasks, 25-75 % bars")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
