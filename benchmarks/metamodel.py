#!/usr/bin/env python
"""Benchmark the meta-model (``recommender.metamodel``) on the shipped knowledge base.

One run measures::

  scenarios   (s) the budgeted replay of issue 13, ``recommender.metamodel.replay_eval``:
              leave-one-task-group-out, six scenarios (25/50/100 % of full fine-tuning's time to
              convergence, latency <= 1.1x base at batch 1, <= 1M trainable parameters, 20 tasks in
              500 MB), policies meta-model / race / best fixed rule / always full_ft / random /
              oracle, mean regret with paired-bootstrap 90 % intervals, gap closed, coverage of the
              80 % intervals, and the meta-model's regret for several regret-aware margins. Writes
              ``data/knowledge_base/evaluation.json`` and ``evaluation.png`` (regret vs budget).
  evaluation  (a) leave-one-task-out evaluation, ``recommender.metamodel.evaluate.evaluate`` on
              the knowledge base (``data/knowledge_base/runs.jsonl`` by default): top-1 regret,
              hit@3, Spearman (predicted gap vs measured metric), median relative error of the
              predicted time to convergence and latency ratio, against the baselines always
              full_ft, always lora, best method on average, random. ``evaluate`` reports the
              baselines' regret only; this script adds, with the same held-out units, hit@3 of
              the two baselines that rank (best on average: methods ordered by their mean gap on
              the training groups; random: a random order) and a "method median" baseline for
              time and latency (each method's median over the training groups). It also lists
              every task group and why it was or was not evaluated: a group is held out only if
              the remaining groups hold >= 2 (task, size) sets, and a held-out (task, size) set
              only counts with >= 2 scored runs. Goes to ``benchmarks/results/metamodel.json``
              (and, with ``evaluation.write_kb_files``, to the knowledge base's files instead of
              the scenarios).
  warm_start  (a2) warm-started vs cold TPE search, replayed on the measured runs
              (``recommender.metamodel.replay``): per held-out (task, size), trials until a
              result within 1 point of the best measured one, cold vs with the meta-model's
              top-k enqueued first.
  latency     (b) recommendation latency once the model is loaded: median of N calls of
              ``recommend()`` with a cached ``MetaModel`` and precomputed meta-features (the first
              call, which may calibrate the machine and computes feature importance, is shown
              apart), beside the time to fit the model on the knowledge base (what
              ``load_metamodel`` pays once per process).
  cli         (b2) what a user waits for: ``recommender recommend TASK`` as a new process, cold
              (a fresh user folder: the machine calibration, the task's meta-features and the
              shipped predictor, ``data/knowledge_base/predictor.pkl.gz``) and warm (all cached),
              interleaved, ``cli.repeats`` each; targets 10 s cold, 2 s warm (issue 13). Also
              records which heavy libraries a warm answer imports (none of scikit-learn, SciPy,
              ``datasets``, torch is the aim).
  fit         (c) ``MetaModel.fit`` on synthetic runs (default 100,000): real knowledge-base rows
              resampled onto synthetic tasks (perturbed meta-features, new fingerprints) with
              perturbed learning rate, metric, time to convergence and memory. Times the whole
              fit (training table + design matrix + 6 targets x 3 quantile
              ``HistGradientBoostingRegressor``s, each on at most ``fit.max_samples`` rows) and
              the table/matrix part alone.

Prints tables and writes ``benchmarks/results/metamodel.json``. Parameters:
``benchmarks/params/metamodel.json``. Timings are only comparable within one run: the machine
may be shared (the load average is printed).

    python benchmarks/metamodel.py                  # default run (~3-4 min on 2 idle CPU cores)
    python benchmarks/metamodel.py --quick          # 20,000 synthetic runs, 10 latency calls
    python benchmarks/metamodel.py --only scenarios     # evaluation.json + .png (~3 min idle, 14 on a busy machine)
    python benchmarks/metamodel.py --only evaluation --kb path/to/runs.jsonl
    python benchmarks/metamodel.py --set fit.n_runs=50000
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import statistics
import sys
import time
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path; importing _params first sets the offline environment
from _params import apply_overrides, fmt, load_avg, log, parameter_parser, read_params, table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_PARAMS = HERE / "params" / "metamodel.json"
DEFAULT_OUT = HERE / "results" / "metamodel.json"
SECTIONS = ("scenarios", "evaluation", "warm_start", "latency", "cli", "fit")
APPROACHES = ("metamodel", "always_full_ft", "always_lora", "best_on_average", "random")


# -- parameters (flags shared through _params.parameter_parser) ------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parameter_parser(__doc__, DEFAULT_PARAMS, DEFAULT_OUT, SECTIONS,
                          quick_help="smaller fit: merge the file's 'quick' block", set_example="fit.n_runs=50000")
    ap.add_argument("--kb", type=Path, help="knowledge base file (default: the shipped runs.jsonl)")
    ap.add_argument("--no-kb-files", action="store_true",
                    help="do not write data/knowledge_base/evaluation.{json,png}")
    return ap.parse_args(argv)


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    params = read_params(args)
    if args.kb is not None:
        params["kb_path"] = str(args.kb)
    if args.no_kb_files:
        params["evaluation"]["write_kb_files"] = False
        params.setdefault("scenarios", {})["write_kb_files"] = False
    return apply_overrides(params, args, SECTIONS)


# -- small helpers ---------------------------------------------------------------------------------
def rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def kb_file(params: dict[str, Any]) -> Path:
    from recommender.knowledge_base import default_path

    return Path(params["kb_path"]) if params.get("kb_path") else default_path()


_FOLDS: dict[tuple[str, int], tuple[list[Any], list[Any]]] = {}


def rows_and_folds(params: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """The knowledge base and its leave-one-task-out models, fitted once for sections (a) and (a2)."""
    from recommender.knowledge_base import load_knowledge_base
    from recommender.metamodel.evaluate import held_out_folds

    key = (str(kb_file(params)), int(params["evaluation"]["max_iter"]))
    if key not in _FOLDS:
        rows = load_knowledge_base(kb_file(params))
        _FOLDS[key] = rows, list(held_out_folds(rows, key[1]))
    return _FOLDS[key]


# -- (a) leave-one-task-out ------------------------------------------------------------------------
def group_diagnostics(rows: list[Any]) -> list[dict[str, Any]]:
    """Per task group: what ``evaluate`` can do with it, and why not when it cannot."""
    from recommender.metamodel.evaluate import scored_runs, task_group

    by_group: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_group[task_group(r)].append(r)
    out = []
    for group in sorted(by_group):
        test = by_group[group]
        train_sets = {(r.metafeatures.fingerprint, r.size) for r in rows if task_group(r) != group}
        train_fingerprints = {r.metafeatures.fingerprint for r in rows if task_group(r) != group}
        scored = scored_runs(test)
        usable = {f"{runs[0].task}:n{size}": len(runs) for (_, size), runs in scored.items() if len(runs) >= 2}
        if len(train_fingerprints) < 2:
            status = (f"skipped: the other groups hold {len(train_sets)} (task, size) set(s); "
                      "LOTO needs >= 2 to train on")
        elif not usable:
            status = "skipped: no held-out (task, size) set with >= 2 scored runs"
        else:
            status = "evaluated"
        out.append({"group": group, "runs": len(test), "tasks": sorted({r.task for r in test}),
                    "held_out_sets": usable, "train_sets": len(train_sets), "status": status})
    return out


def baseline_extras(rows: list[Any], seed: int) -> dict[str, Any]:
    """Figures ``evaluate`` does not report, on the same held-out units (see the module doc)."""
    import numpy as np

    from recommender.metamodel.evaluate import _average_gap_by_method, scored_runs, task_group
    from recommender.metamodel.features import run_targets

    rng = random.Random(seed + 1)
    hits: dict[str, list[float]] = defaultdict(list)
    time_err: list[float] = []
    lat_err: list[float] = []
    for group in sorted({task_group(r) for r in rows}):
        train = [r for r in rows if task_group(r) != group]
        test = [r for r in rows if task_group(r) == group]
        if len({r.metafeatures.fingerprint for r in train}) < 2:
            continue
        avg = _average_gap_by_method(train)
        medians: dict[str, dict[str, float]] = {"log_cost": {}, "latency_ratio_b1": {}}
        values: dict[str, dict[str, list[float]]] = {k: defaultdict(list) for k in medians}
        for runs in scored_runs(train).values():
            for r in runs:
                truth = run_targets(r.result)
                for k in medians:
                    if math.isfinite(truth[k]):
                        values[k][r.result.method].append(truth[k])
        for k in medians:
            medians[k] = {m: float(np.median(v)) for m, v in values[k].items()}
        for runs in scored_runs(test).values():
            if len(runs) < 2:
                continue
            measured = [r.result.best_metric for r in runs]
            best = max(range(len(runs)), key=lambda i: measured[i])
            order = sorted(range(len(runs)), key=lambda i: -avg.get(runs[i].result.method, -math.inf))
            hits["best_on_average"].append(float(best in order[:3]))
            shuffled = list(range(len(runs)))
            rng.shuffle(shuffled)
            hits["random"].append(float(best in shuffled[:3]))
            for r in runs:
                truth = run_targets(r.result)
                m = r.result.method
                if math.isfinite(truth["log_cost"]) and m in medians["log_cost"]:
                    time_err.append(abs(math.exp(medians["log_cost"][m] - truth["log_cost"]) - 1))
                if math.isfinite(truth["latency_ratio_b1"]) and m in medians["latency_ratio_b1"]:
                    lat_err.append(abs(medians["latency_ratio_b1"][m] / truth["latency_ratio_b1"] - 1))
    return {"hit_at_3": {k: float(np.mean(v)) for k, v in hits.items()},
            "method_median": {"time_median_rel_error": float(np.median(time_err)) if time_err else None,
                              "latency_median_rel_error": float(np.median(lat_err)) if lat_err else None,
                              "n_time": len(time_err), "n_latency": len(lat_err)}}


def plot_regret(summary: dict[str, Any], path: Path, title: str, empty_reason: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [a for a in APPROACHES if a in summary]
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    if names:
        values = [summary[a]["top1_regret"] for a in names]
        colours = ["#1f77b4" if a == "metamodel" else "#9aa5b1" for a in names]
        bars = ax.bar(names, values, color=colours)
        for bar, a in zip(bars, names, strict=True):
            ax.annotate(f"{summary[a]['top1_regret']:.3f}\nn={summary[a]['n_tasks']}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel("mean top-1 regret (metric, 0-1 scale)")
        ax.set_ylim(0, max(values + [0.01]) * 1.3)
        ax.tick_params(axis="x", labelrotation=15)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no leave-one-task-out result\n" + (empty_reason or ""), ha="center", va="center",
                wrap=True, fontsize=10)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


#: how the meta-model's top pick is made (recommender.metamodel.pairwise); the margins compared beside it
RACE = ("the top pick first, alone, with the whole budget (it stops when it converges); the rest of the "
        "portfolio raced by successive halving in the time it left")
PROBE_RACE = ("every configuration of the portfolio trains for `probe` of the budget; the best probe (the top "
              "pick unless another beat it by more than `switch`) goes on without a restart in the time left")
TOP_PICK = ("pairwise: leave the fixed rule only for a configuration predicted to beat its run with probability "
            "> 0.9 (a classifier over every pair of configurations of each training set)")


# -- (s) budgeted scenarios by replay (writes data/knowledge_base/evaluation.json + .png) ------------
SCENARIO_LABELS = {"time_25": "25 % of full FT's time", "time_50": "50 %", "time_100": "100 %",
                   "latency_b1": "latency <= 1.1x base", "params_1m": "<= 1M trainable", "storage_20": "20 tasks, 500 MB"}


def plot_scenarios(result: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from recommender.metamodel.replay_eval import POLICIES, TIME_FRACTIONS

    by_name = {s["name"]: s for s in result["scenarios"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    xs = [100 * f for f in TIME_FRACTIONS.values()]
    for policy in POLICIES:
        points = [(x, by_name[n]["policies"].get(policy)) for x, n in zip(xs, TIME_FRACTIONS, strict=True)]
        points = [(x, v) for x, v in points if v]
        if not points:
            continue
        x = [p[0] for p in points]
        y = [p[1]["regret"] for p in points]
        lo = [p[1]["regret"] - p[1]["ci90"][0] for p in points]
        hi = [p[1]["ci90"][1] - p[1]["regret"] for p in points]
        left.errorbar(x, y, yerr=[lo, hi], marker="o", capsize=3, label=policy)
    left.set_xlabel("training budget (% of full fine-tuning's time to convergence)")
    left.set_ylabel("mean regret (points), 90 % CI")
    left.set_xticks(xs)
    left.legend(fontsize=8)
    others = [n for n in by_name if n not in TIME_FRACTIONS]
    width = 0.8 / len(POLICIES)
    for i, policy in enumerate(POLICIES):
        vals = [by_name[n]["policies"].get(policy) for n in others]
        errors = [[v["regret"] - v["ci90"][0] if v else 0 for v in vals], [v["ci90"][1] - v["regret"] if v else 0
                                                                           for v in vals]]
        right.bar([j + i * width for j in range(len(others))], [v["regret"] if v else 0 for v in vals], width,
                  yerr=errors, capsize=2, label=policy)
    right.set_xticks([j + 0.4 - width / 2 for j in range(len(others))], [SCENARIO_LABELS[n] for n in others],
                     fontsize=8)
    right.set_ylabel("mean regret (points), 90 % CI")
    right.set_title("no time budget (the race: full FT's time)", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def section_scenarios(params: dict[str, Any], out: dict[str, Any], tables: list[str]) -> None:
    from recommender.knowledge_base import load_knowledge_base
    from recommender.metamodel.quality import CURRENT_PROTOCOL, select_protocol
    from recommender.metamodel.replay_eval import (
        RacePlan,
        evaluate_scenarios,
        pairwise_diagnostics,
        probe_race_outcome,
        refit_gaps,
        replay_predictions,
    )
    from recommender.metamodel.rule_gap import RuleGapModel

    cfg = params.get("scenarios", {})
    path = kb_file(params)
    rows, note = select_protocol(load_knowledge_base(path), int(cfg.get("min_protocol", CURRENT_PROTOCOL)))
    t0 = time.perf_counter()
    preds = replay_predictions(rows)
    fitted_s = time.perf_counter() - t0
    result = evaluate_scenarios(rows, predictions=preds, n_boot=int(cfg.get("n_boot", 2000)),
                                seed=int(params["seed"]))
    margins = {}
    for m in cfg.get("margins", [0.0, 0.01, 0.02, 0.03, 0.05, 0.08]):
        other = evaluate_scenarios(rows, predictions=preds, margin=float(m), n_boot=10)
        margins[str(m)] = {s["name"]: s["policies"]["metamodel"]["regret"] for s in other["scenarios"]}
    plans = {}  # the race's split, compared the same way (the shipped RacePlan is the default)
    for size in cfg.get("race_portfolios", [2, 3]):
        for final in cfg.get("race_final_fractions", [0.5, 0.7, 0.9]):
            other = evaluate_scenarios(rows, predictions=preds, n_boot=10,
                                       plan=RacePlan(portfolio=int(size), final_fraction=float(final)))
            plans[f"portfolio={size},final={final}"] = {s["name"]: (s["policies"]["race"] or {}).get("regret")
                                                        for s in other["scenarios"]}
    probes = {}  # the race variant that probes every configuration and continues the best (not shipped)
    for size in cfg.get("probe_portfolios", [2, 3]):
        for probe, switch in cfg.get("probe_races", [[0.05, 0.0], [0.05, 0.05], [0.1, 0.0], [0.1, 0.05]]):
            other = evaluate_scenarios(rows, predictions=preds, n_boot=10, plan=RacePlan(portfolio=int(size)),
                                       race=partial(probe_race_outcome, probe=float(probe), switch=float(switch)))
            probes[f"portfolio={size},probe={probe},switch={switch}"] = {
                s["name"]: (s["policies"]["race"] or {}).get("regret") for s in other["scenarios"]}

    def lead_regrets(model: Any) -> dict[str, Any]:
        """The meta-model's regret per scenario with ``model`` refitted as the pick's lead."""
        other = evaluate_scenarios(rows, predictions=refit_gaps(preds, rows, model=model), n_boot=2000,
                                   seed=int(params["seed"]))
        return {s["name"]: {"regret": s["policies"]["metamodel"]["regret"],
                            "vs_best_fixed_rule": s["policies"]["metamodel"].get("vs_best_fixed_rule"),
                            "departures": s["departures"]}
                for s in other["scenarios"]}

    # the difference model with its nearest-groups feature (not shipped)
    neighbours = {str(k): lead_regrets(RuleGapModel(neighbours=int(k))) for k in cfg.get("gap_neighbours", [5])}
    # the difference-to-rule model (the pick until 2026-12-07) as the lead instead
    difference = {"rule_gap": lead_regrets(RuleGapModel())}
    diagnostics = pairwise_diagnostics(rows)  # why the pick seldom leaves the rule
    at_last = {}  # the former scoring (a run's last evaluation before the budget), refitted: ~2x the time
    if cfg.get("compare_at_last_evaluation", False):
        former = evaluate_scenarios(rows, predictions=replay_predictions(rows, interpolate=False), n_boot=10)
        at_last = {s["name"]: {p: (v or {}).get("regret") for p, v in s["policies"].items()}
                   for s in former["scenarios"]}
    record = {"scenarios": result["scenarios"], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "source": "benchmarks/metamodel.py --only scenarios", "kb_path": rel(path), "n_runs": len(rows),
              "protocol_note": note, "n_groups": result["n_groups"], "n_sets": result["n_sets"],
              "race_plan": result["race_plan"], "top_pick": TOP_PICK, "race": RACE,
              "metamodel_regret_by_margin": margins,
              "race_regret_by_plan": plans, "probe_race_regret": probes, "probe_race": PROBE_RACE,
              "regret_scored_at_last_evaluation": at_last, "metamodel_regret_with_neighbours": neighbours,
              "metamodel_regret_rule_gap": difference, "pairwise_diagnostics": diagnostics,
              "seconds": time.perf_counter() - t0}
    out["scenarios"] = record
    body = []
    for s in result["scenarios"]:
        pol = s["policies"]

        def cell(name: str, pol: dict[str, Any] = pol) -> str:
            v = pol.get(name)
            return "-" if v is None else f"{v['regret']:.2f} [{v['ci90'][0]:.1f}, {v['ci90'][1]:.1f}]"
        diff = (pol.get("metamodel") or {}).get("vs_best_fixed_rule", {})
        dep = s["departures"]
        left = f"{dep['sets']}/{s['n_sets']}: {dep['better']}+ {dep['worse']}-" + (
            f" ({dep['mean_gain']:+.2f})" if dep["mean_gain"] is not None else "")
        body.append([s["name"], cell("metamodel"), cell("race"), cell("race_ceiling"),
                     f"{cell('best_fixed_rule')} ({s['best_fixed_rule_method']})",
                     cell("always_full_ft"), cell("random"),
                     f"{diff.get('diff', 0):+.2f} [{diff.get('ci90', [0, 0])[0]:.1f}, {diff.get('ci90', [0, 0])[1]:.1f}]",
                     fmt(s["gap_closed"]["metamodel"], ".2f"), fmt(s["gap_closed"]["race"], ".2f"),
                     fmt(s["gap_closed"]["race_ceiling"], ".2f"),
                     fmt(s["coverage80"], ".2f"), left])
    lines = [f"(s) Budgeted scenarios by replay on {rel(path)}: {len(rows)} runs, {result['n_groups']} held-out "
             f"groups, {result['n_sets']} sets; fitted in {fitted_s:.0f}s" + (f"; {note}" if note else ""),
             table(["scenario", "metamodel", "race", "race ceiling", "best fixed rule", "always full_ft", "random",
                    "meta - fixed", "gap closed (meta)", "gap closed (race)", "(ceiling)", "coverage80",
                    "left the rule: better+ worse- (mean gain)"], body),
             "metamodel regret with a margin on the predicted metric instead: " + json.dumps(margins),
             "race regret by plan: " + json.dumps(plans),
             "probe-and-continue race regret (not shipped): " + json.dumps(probes),
             "metamodel regret with the nearest-groups feature (not shipped): " + json.dumps(neighbours),
             "metamodel regret with the difference model as the lead (the former pick): " + json.dumps(difference)]
    lines.append(f"the pairwise model on held-out pairs (rank 1 needs P > {diagnostics['confidence']}):")
    lines.append(table(["scenario", "pairs", "AUC", "pairs with the rule", "other won", "AUC", "max P",
                        "P > confidence (won)"],
                       [[sc, d["pairs"], fmt(d["auc"], ".3f"), d["vs_rule"]["pairs"], fmt(d["vs_rule"]["won"], ".3f"),
                         fmt(d["vs_rule"]["auc"], ".3f"), fmt(d["vs_rule"]["max_probability"], ".3f"),
                         f"{d['vs_rule']['confident']} ({d['vs_rule']['confident_won']})"]
                        for sc, d in diagnostics["scenarios"].items()]))
    if at_last:
        lines.append("regret scored at each run's last evaluation before the budget: " + json.dumps(at_last))
    if cfg.get("write_kb_files", True):
        json_path = ROOT / params["evaluation"]["evaluation_json"]
        png_path = ROOT / params["evaluation"]["plot"]
        json_path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        plot_scenarios(result, png_path, f"Replay, leave-one-task-group-out: {len(rows)} runs, "
                       f"{result['n_groups']} groups ({time.strftime('%Y-%m-%d')})")
        lines.append(f"wrote {rel(json_path)} and {rel(png_path)}")
    tables.append("\n".join(lines))


def section_evaluation(params: dict[str, Any], out: dict[str, Any], tables: list[str]) -> None:
    from recommender.metamodel.evaluate import evaluate

    cfg = params["evaluation"]
    path = kb_file(params)
    t0 = time.perf_counter()
    rows, folds = rows_and_folds(params)
    groups = group_diagnostics(rows)
    log(f"evaluation: {len(rows)} runs, {len(groups)} task groups ({', '.join(g['group'] for g in groups)})")
    summary = evaluate(rows, seed=int(params["seed"]), max_iter=int(cfg["max_iter"]), folds=folds)
    seconds = time.perf_counter() - t0
    extras = baseline_extras(rows, int(params["seed"]))
    evaluated = [g for g in groups if g["status"] == "evaluated"]
    reason = None
    if not evaluated:
        reason = (f"{len(groups)} task group(s) in {len(rows)} runs; leave-one-task-out needs at least 2 "
                  "(task, size) sets outside the held-out group, i.e. >= 2 task groups with one of them "
                  "at 2 sizes, or >= 3 task groups")
    record = {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "source": "benchmarks/metamodel.py",
              "kb_path": rel(path), "n_runs": len(rows), "n_groups": len(groups),
              "evaluate_seconds": seconds, "summary": summary, "groups": groups,
              "benchmark_extras": extras, "not_evaluated_reason": reason}
    out["evaluation"] = record

    headers = ["approach", "top-1 regret", "hit@3", "Spearman", "time med rel err", "latency med rel err",
               "held-out sets"]
    body = []
    for name in APPROACHES:
        s = summary.get(name)
        if s is None:
            body.append([name, "-", "-", "-", "-", "-", 0])
            continue
        hit = s.get("hit_at_3", extras["hit_at_3"].get(name))
        body.append([name, fmt(s["top1_regret"], ".3f"), fmt(hit, ".2f"), fmt(s.get("spearman"), ".2f"),
                     fmt(s.get("time_median_rel_error"), ".2f"), fmt(s.get("latency_median_rel_error"), ".2f"),
                     s["n_tasks"]])
    mm = extras["method_median"]
    body.append(["method median (time/latency)", "", "", "", fmt(mm["time_median_rel_error"], ".2f"),
                 fmt(mm["latency_median_rel_error"], ".2f"), ""])
    lines = [f"(a) Leave-one-task-out evaluation on {rel(path)}: {len(rows)} runs, {len(groups)} task group(s), "
             f"evaluate() {seconds:.1f}s", table(headers, body)]
    if "metamodel" in summary and summary["metamodel"].get("vs_best_always_baseline") is not None:
        gain = summary["metamodel"]["vs_best_always_baseline"]
        lines.append(f"meta-model top-1 regret is {abs(100 * gain):.0f}% {'lower' if gain >= 0 else 'higher'} "
                     "than the best 'always' baseline's")
    lines.append("task groups:")
    for g in groups:
        sets = ", ".join(f"{k} ({v} runs)" for k, v in g["held_out_sets"].items()) or "none with >= 2 runs"
        lines.append(f"  {g['group']}: {g['runs']} runs; held-out sets: {sets}; {g['status']}")
    if reason:
        lines.append(f"NOT EVALUATED: {reason}.")
    lines.append("hit@3 of best_on_average / random and the 'method median' row are computed by this script "
                 "(evaluate() reports regret only for the baselines); always_* pick one run, so no hit@3.")
    if cfg.get("write_kb_files", False):
        json_path, png_path = ROOT / cfg["evaluation_json"], ROOT / cfg["plot"]
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        plot_regret(summary, png_path, f"Leave-one-task-out top-1 regret ({len(rows)} runs, {len(groups)} "
                    f"task groups, {time.strftime('%Y-%m-%d')})", reason)
        record["written"] = [rel(json_path), rel(png_path)]
        lines.append(f"wrote {rel(json_path)} and {rel(png_path)}")
    tables.append("\n".join(lines))


# -- (a2) warm-started vs cold search, replayed on the measured runs -------------------------------
def section_warm_start(params: dict[str, Any], out: dict[str, Any], tables: list[str]) -> None:
    from recommender.metamodel.replay import warm_start_replay

    cfg = params["warm_start"]
    path = kb_file(params)
    t0 = time.perf_counter()
    rows, folds = rows_and_folds(params)  # fitted by section (a) when it ran
    summary = warm_start_replay(rows, k=int(cfg["k"]), tolerance=float(cfg["tolerance"]),
                                n_seeds=int(cfg["n_seeds"]), max_iter=int(params["evaluation"]["max_iter"]),
                                folds=folds)
    seconds = time.perf_counter() - t0
    summary["seconds"] = seconds
    out["warm_start"] = summary
    body = [[f"{s['task']} n={s['size']}", s["n_configs"], fmt(s["cold_trials"], ".1f"), fmt(s["warm_trials"], ".1f"),
             fmt(s["ratio"], ".2f")] for s in summary["sets"]]
    lines = [f"(a2) Warm-started vs cold TPE, replayed on {rel(path)} (leave-one-task-out; a trial returns the "
             f"measured metric): trials to within {summary['tolerance']:g} of the task's best, mean of "
             f"{summary['n_seeds']} seeds, warm start = meta-model top-{summary['k']}; {seconds:.0f}s",
             table(["held-out set", "configs", "cold trials", "warm trials", "warm/cold"], body)]
    if summary["n_sets"]:
        ratio = summary["ratio_of_means"]
        lines.append(f"mean trials: cold {summary['mean_cold_trials']:.1f}, warm {summary['mean_warm_trials']:.1f}; "
                     f"warm/cold {ratio:.2f} (median per set {summary['median_ratio']:.2f}; aim <= 0.33: "
                     f"{'PASS' if ratio <= 1 / 3 else 'FAIL'})")
    else:
        lines.append("no held-out set with enough measured configurations")
    eval_json = ROOT / params["evaluation"]["evaluation_json"]
    if params["evaluation"].get("write_kb_files", False) and eval_json.exists():
        record = json.loads(eval_json.read_text(encoding="utf-8"))
        record["warm_start"] = summary
        eval_json.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
        lines.append(f"added to {rel(eval_json)}")
    tables.append("\n".join(lines))


# -- (b) recommendation latency --------------------------------------------------------------------
def section_latency(params: dict[str, Any], out: dict[str, Any], tables: list[str]) -> None:
    from recommender.metafeatures import compute_metafeatures
    from recommender.metamodel.recommend import load_metamodel, recommend
    from recommender.tasks import load_task

    cfg = params["latency"]
    t0 = time.perf_counter()
    model = load_metamodel(kb_path=kb_file(params))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_again = load_metamodel(kb_path=kb_file(params))
    cached_s = time.perf_counter() - t0
    task = load_task(cfg["task"])
    t0 = time.perf_counter()
    mf = compute_metafeatures(task)
    mf_s = time.perf_counter() - t0
    top = int(cfg["top"])
    t0 = time.perf_counter()
    rec = recommend(task, model=model, metafeatures=mf, top=top)
    first_ms = (time.perf_counter() - t0) * 1000
    times = []
    for _ in range(int(cfg["calls"])):
        t0 = time.perf_counter()
        recommend(task, model=model, metafeatures=mf, top=top)
        times.append((time.perf_counter() - t0) * 1000)
    median = statistics.median(times)
    t0 = time.perf_counter()
    model.feature_importance("gap") if "gap" in model.models_ else None
    importance_ms = (time.perf_counter() - t0) * 1000  # what the first call paid for top_features()
    target = float(cfg["target_ms"])
    out["latency"] = {"task": cfg["task"], "n_runs": model.n_runs_, "candidates": len(rec.candidates),
                      "fit_on_load_s": fit_s, "cached_load_s": cached_s, "same_object": model is model_again,
                      "metafeatures_s": mf_s, "first_call_ms": first_ms, "feature_importance_ms": importance_ms, "calls_ms": times,
                      "median_ms": median, "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))],
                      "min_ms": min(times), "target_ms": target, "meets_target": median < target,
                      "load": load_avg(), "top": [(c.method, c.predicted_metric) for c in rec.candidates]}
    rows = [["load_metamodel() first call (fits on the knowledge base)", fmt(fit_s * 1000, ".0f")],
            ["load_metamodel() again (cached)", fmt(cached_s * 1000, ".2f")],
            [f"compute_metafeatures({cfg['task']})", fmt(mf_s * 1000, ".0f")],
            ["recommend() first call (hardware profile, feature importance)", fmt(first_ms, ".0f")],
            ["  feature importance alone, timed again after (uncached call)", fmt(importance_ms, ".0f")],
            [f"recommend() median of {len(times)} calls", fmt(median, ".1f")],
            ["recommend() min / p90", f"{min(times):.1f} / {out['latency']['p90_ms']:.1f}"]]
    tables.append(f"(b) Recommendation latency, model fitted on {model.n_runs_} runs, task {cfg['task']} "
                  f"(cached MetaModel, precomputed meta-features, top {top}):\n"
                  + table(["step", "ms"], rows)
                  + f"\nmedian {median:.1f} ms (aim < {target:.0f} ms: {'PASS' if median < target else 'FAIL'})")


# -- (b2) the CLI's answer time, cold and warm -----------------------------------------------------
HEAVY_MODULES = ("sklearn", "scipy", "datasets", "torch", "transformers")


def section_cli(params: dict[str, Any], out: dict[str, Any], tables: list[str]) -> None:
    import os
    import subprocess
    import tempfile

    cfg = params["cli"]
    command = [sys.executable, "-m", "recommender.cli", "recommend", cfg["task"], *cfg.get("args", [])]
    probe = ("import runpy, sys; sys.argv = {argv!r}\ntry:\n    runpy.run_module('recommender.cli', "
             "run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "print('IMPORTED', *sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})), file=sys.stderr)")

    def run(home: Path, argv: list[str]) -> tuple[float, str]:
        env = {**os.environ, "RECOMMENDER_HOME": str(home), "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"cli: {' '.join(argv[2:])} failed: {done.stderr.strip()[-500:]}")
        return seconds, done.stderr

    cold, warm = [], []
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        for i in range(int(cfg["repeats"])):  # interleaved: a load change hits both alike
            home = Path(tmp) / f"home{i}"
            cold.append(run(home, command)[0])
            warm.append(run(home, command)[0])
        code = probe.format(argv=["recommender", *command[3:]], heavy=HEAVY_MODULES)
        stderr = run(Path(tmp) / "home0", [sys.executable, "-c", code])[1]
    imported = next((line.split()[1:] for line in stderr.splitlines() if line.startswith("IMPORTED")), [])
    targets = {"cold_s": float(cfg["target_cold_s"]), "warm_s": float(cfg["target_warm_s"])}
    med_cold, med_warm = statistics.median(cold), statistics.median(warm)
    out["cli"] = {"command": "recommender recommend " + " ".join(command[4:]), "cold_s": cold, "warm_s": warm,
                  "median_cold_s": med_cold, "median_warm_s": med_warm, "targets": targets,
                  "meets": {"cold": med_cold < targets["cold_s"], "warm": med_warm < targets["warm_s"]},
                  "warm_imports": imported, "load": load_avg()}
    rows = [["cold (fresh user folder)", fmt(med_cold, ".2f"), f"{min(cold):.2f} / {max(cold):.2f}",
             f"< {targets['cold_s']:.0f}", "PASS" if med_cold < targets["cold_s"] else "FAIL"],
            ["warm (cached)", fmt(med_warm, ".2f"), f"{min(warm):.2f} / {max(warm):.2f}",
             f"< {targets['warm_s']:.0f}", "PASS" if med_warm < targets["warm_s"] else "FAIL"]]
    tables.append(f"(b2) `{out['cli']['command']}` as a new process, {len(cold)} interleaved cold/warm pairs "
                  f"(load {out['cli']['load']}):\n" + table(["answer", "median s", "min / max", "target", ""], rows)
                  + f"\nheavy libraries a warm answer imports: {', '.join(imported) or 'none'}")


# -- (c) fit time on synthetic runs ----------------------------------------------------------------
def synthetic_rows(real: list[Any], cfg: dict[str, Any], seed: int) -> list[Any]:
    """Real rows resampled onto synthetic tasks, with perturbed features, params and results."""
    import numpy as np

    from recommender.knowledge_base import KnowledgeBaseRow

    rng = np.random.default_rng(seed)
    usable = [r for r in real if r.result.has_metric and r.result.status not in ("failed", "oom")]
    if not usable:
        raise SystemExit("fit: the knowledge base has no run with a metric to resample")
    n_runs, n_tasks = int(cfg["n_runs"]), max(1, int(cfg["n_tasks"]))
    tasks = []
    for t in range(n_tasks):
        base = usable[int(rng.integers(len(usable)))].metafeatures
        scale = float(np.exp(rng.normal(0, 0.3)))
        n_labels = max(2, base.n_labels + int(rng.integers(0, 4)))
        tasks.append((dataclasses.replace(
            base, fingerprint=f"synthetic{t:06d}", n_train=int(max(32, base.n_train * np.exp(rng.normal(0, 1.0)))),
            n_labels=n_labels, label_entropy=float(np.clip(base.label_entropy + rng.normal(0, 0.1), 0.05, 1.0)),
            imbalance_ratio=float(max(1.0, base.imbalance_ratio * np.exp(abs(rng.normal(0, 0.5))))),
            is_pair=bool(rng.random() < 0.4), tokens_mean=base.tokens_mean * scale,
            tokens_p95=base.tokens_p95 * scale, fertility=float(max(1.0, base.fertility * np.exp(rng.normal(0, 0.1))))),
            float(rng.normal(0, 0.15))))
    lr_sd, cost_sd, noise = float(cfg["lr_log_sd"]), float(cfg["cost_log_sd"]), float(cfg["metric_noise"])
    picks = rng.integers(len(usable), size=n_runs)
    lr_f, cost_f, mem_f = (np.exp(rng.normal(0, s, size=n_runs)) for s in (lr_sd, cost_sd, 0.1))
    metric_eps = rng.normal(0, noise, size=n_runs)
    out = []
    for i in range(n_runs):
        t = i % n_tasks
        mf, offset = tasks[t]
        src = usable[int(picks[i])]
        res = src.result
        params = dict(res.params)
        if isinstance(params.get("learning_rate"), (int, float)):
            params["learning_rate"] = float(params["learning_rate"] * lr_f[i])
        result = dataclasses.replace(
            res, params=params, best_metric=float(np.clip(res.best_metric + offset + metric_eps[i], 0.0, 1.0)),
            time_to_best_s=None if res.time_to_best_s is None else float(res.time_to_best_s * cost_f[i]),
            peak_memory_mb=None if res.peak_memory_mb is None else float(res.peak_memory_mb * mem_f[i]))
        out.append(KnowledgeBaseRow(run_id=f"synthetic#{i}", study="synthetic", kind="sweep", task=f"synthetic{t}",
                                    size=mf.n_train, metafeatures=mf, result=result, config_key=src.config_key))
    return out


def section_fit(params: dict[str, Any], out: dict[str, Any], tables: list[str]) -> None:
    from threadpoolctl import threadpool_info

    from recommender.knowledge_base import load_knowledge_base
    from recommender.metamodel.estimators import SINGLE_THREAD_ROWS, MetaModel
    from recommender.metamodel.features import design_matrix, training_table

    cfg = params["fit"]
    t0 = time.perf_counter()
    rows = synthetic_rows(load_knowledge_base(kb_file(params)), cfg, int(params["seed"]))
    build_s = time.perf_counter() - t0
    log(f"fit: built {len(rows):,} synthetic runs in {build_s:.1f}s; timing the table and design matrix")
    t0 = time.perf_counter()
    table_rows, _ = training_table(rows)
    methods = sorted({r["method"] for r in table_rows})
    columns, X = design_matrix(table_rows, methods)
    prep_s = time.perf_counter() - t0
    del table_rows, X
    log(f"fit: table + design matrix {prep_s:.1f}s; fitting MetaModel (load {load_avg()})")
    load_before = load_avg()
    t0 = time.perf_counter()
    c0 = time.process_time()
    max_samples = None if cfg.get("max_samples") is None else int(cfg["max_samples"])
    model = MetaModel(max_iter=int(cfg["max_iter"]), max_samples=max_samples).fit(rows)
    fit_s = time.perf_counter() - t0
    cpu_s = time.process_time() - c0
    threads = max((i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "openmp"), default=None)
    per_target = {name: {"n_iter": m.n_iter_,
                         "early_stopping": bool(getattr(m.estimators_[0], "do_early_stopping_", False))}
                  for name, m in model.models_.items()}
    target = float(cfg["target_s"])
    out["fit"] = {"n_runs": len(rows), "n_tasks": int(cfg["n_tasks"]), "n_features": len(columns),
                  "n_methods": len(methods), "targets": list(model.models_), "quantiles": list(model.quantiles),
                  "max_iter": int(cfg["max_iter"]), "max_samples": max_samples, "build_synthetic_s": build_s, "table_and_matrix_s": prep_s,
                  "fit_s": fit_s, "fit_cpu_s": cpu_s, "estimators_s_approx": fit_s - prep_s,
                  "openmp_threads": threads, "single_thread_below_rows": SINGLE_THREAD_ROWS,
                  "per_target": per_target, "target_s": target, "meets_target": fit_s < target,
                  "load": {"before": load_before, "after": load_avg()}}
    rows_out = [["synthetic runs / tasks / features", f"{len(rows):,} / {int(cfg['n_tasks']):,} / {len(columns)}"],
                ["build the synthetic rows (not timed in the fit)", f"{build_s:.1f} s"],
                ["training_table + design_matrix alone", f"{prep_s:.1f} s"],
                [f"MetaModel.fit, {len(model.models_)} targets x {len(model.quantiles)} quantiles, "
                 f"<= {max_samples or len(rows):,} rows each", f"{fit_s:.1f} s"],
                ["  of which estimators (fit - table/matrix)", f"{fit_s - prep_s:.1f} s"],
                ["  process CPU time of the fit", f"{cpu_s:.1f} s"],
                ["boosting iterations per target (early stopping)",
                 ", ".join(f"{k} {v['n_iter']}{'*' if v['n_iter'] < int(cfg['max_iter']) else ''}"
                           for k, v in per_target.items())]]
    tables.append(f"(c) Fit time on {len(rows):,} synthetic runs (resampled and perturbed knowledge-base rows), "
                  f"OpenMP threads {threads}, load avg {load_before} -> {load_avg()}:\n"
                  + table(["step", "value"], rows_out)
                  + f"\n* stopped before max_iter={int(cfg['max_iter'])} by scikit-learn's early stopping "
                    f"(on by default above 10,000 rows: {'on' if any(v['early_stopping'] for v in per_target.values()) else 'off'} here)"
                  + f"\nfit {fit_s:.1f} s (aim < {target:.0f} s: {'PASS' if fit_s < target else 'FAIL'})")


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = build_params(args)
    from recommender.training.environment import describe_environment

    started = time.perf_counter()
    load_start = load_avg()
    out: dict[str, Any] = {}
    tables: list[str] = []
    timings: dict[str, float] = {}
    for name in SECTIONS:
        if name in params["sections"]:
            t0 = time.perf_counter()
            log(f"section {name} (load {load_avg()})")
            {"scenarios": section_scenarios, "evaluation": section_evaluation, "warm_start": section_warm_start, "latency": section_latency,
             "cli": section_cli, "fit": section_fit}[name](params, out, tables)
            timings[name] = time.perf_counter() - t0
    total = time.perf_counter() - started
    env = describe_environment("cpu", with_calibration=False).to_dict()
    print(f"benchmarks/metamodel.py{' --quick' if params['quick'] else ''}: knowledge base {rel(kb_file(params))}, "
          f"{env['cpu']}, load avg {load_start} -> {load_avg()}")
    for text in tables:
        print()
        print(text)
    print(f"\ntotal {total:.0f}s wall (" + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()) + ")")
    record = {"benchmark": "metamodel", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "params": params,
              "environment": env, "load_average": {"start": load_start, "end": load_avg()}, "seconds": total,
              "section_seconds": timings, "results": out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {rel(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
