#!/usr/bin/env python
"""Benchmark the budgeted trainer (``recommender.training.train``) on the bundled model.

One run measures, on one short-text bundled task (``glue_sst2`` by default)::

  throughput  (a) our trainer's training samples/s (``result.samples_per_second``: training-step
              time only) vs a bare PyTorch loop over the *same* batches (same model, full_ft,
              batch size, dynamic padding and length grouping). The bare loop is: forward,
              cross-entropy, backward, clip_grad_norm_, AdamW step, zero_grad, over batches
              collated before its clock starts (the trainer collates inside its clock: a strict
              comparison). The two are interleaved step by step -- bare step k runs in the
              trainer's ``on_step`` callback, off the trainer's clock -- so both see the same
              machine load. Also: the trainer's wall-clock samples/s including setup.
  padding     (b) epoch time with dynamic padding + length grouping vs fixed padding to 128
              (``dynamic_padding`` / ``group_by_length`` = False). Each variant trains a fixed
              number of steps and the epoch time is EXTRAPOLATED: mean step time (steps 2..n) x
              steps per epoch, corrected for the measured batches' length (ms = a + b x padded
              tokens, fitted on the grouped runs' steps). Grouped runs bracket the others (ABA),
              and each ratio uses the mean of its two brackets, so a slow load drift cancels.
  flops       (c) useful FLOP/s of full fine-tuning: ``result.train_flops / result.train_seconds``.
              The trainer counts only real (non-padding) tokens and (4 N + 2 N_trainable) FLOPs
              per token, N = non-embedding parameters (forward 2N, activation gradients 2N,
              weight gradients 2 per trainable weight; attention score FLOPs not counted). The
              reference is an fp32 torch matmul (n x n @ n x n) interleaved between the same
              run's steps (off its clock). A "6N" figure -- no weight-gradient FLOPs for the
              embedding tables, whose gradient is a row scatter, not a matmul -- is shown beside it.
  methods     (d) per registered method: median training step time (batch 16, the task's own
              length distribution, steps 2..n; every single-task method sees the same batches)
              and inference latency p50 at batch 1 and 32, seq len 128, from
              ``RunResult.latency`` (merged rows where the trainer verified the merge). A matmul
              speed probe before each method shows when other processes slowed the machine.

Ratios are only meaningful within one run: the machine may be shared. Prints tables and writes
``benchmarks/results/trainer.json``. Parameters: ``benchmarks/params/trainer.json``.

    python benchmarks/trainer.py                       # default run (< ~15 min on 2 idle CPU cores)
    python benchmarks/trainer.py --quick               # few steps (< ~4 min on 2 idle CPU cores)
    python benchmarks/trainer.py --task glue_sst2 --n-train 512 --quick
    python benchmarks/trainer.py --only throughput,flops --set throughput.steps=100
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
DEFAULT_PARAMS = HERE / "params" / "trainer.json"
DEFAULT_OUT = HERE / "results" / "trainer.json"
SECTIONS = ("throughput", "padding", "flops", "methods")


# -- parameters ------------------------------------------------------------------------------------
def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` wins; nested dicts merge, everything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_dotted(params: dict[str, Any], assignment: str) -> None:
    """``a.b=VALUE``: VALUE parsed as JSON when it is JSON, else kept as a string."""
    if "=" not in assignment:
        raise SystemExit(f"--set {assignment!r}: expected section.key=value")
    key, raw = assignment.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=DEFAULT_PARAMS, help="parameter file (JSON)")
    ap.add_argument("--quick", action="store_true", help="few steps: merge the file's 'quick' block")
    ap.add_argument("--task", help="bundled task name (default from the parameter file)")
    ap.add_argument("--n-train", type=int, help="train examples kept (seeded subsample)")
    ap.add_argument("--n-dev", type=int, help="dev examples kept (only the final evaluation uses them)")
    ap.add_argument("--methods", help="comma-separated methods for the per-method table (default: all)")
    ap.add_argument("--only", help=f"comma-separated sections to run, of {','.join(SECTIONS)}")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override any parameter, e.g. throughput.steps=100 (repeatable)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON path")
    return ap.parse_args(argv)


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    params = json.loads(args.params.read_text(encoding="utf-8"))
    quick = params.pop("quick", {})
    params.pop("_doc", None)
    if args.quick:
        params = deep_merge(params, quick)
    params["quick"] = bool(args.quick)
    if args.task:
        params["task"] = args.task
    if args.n_train is not None:
        params["n_train"] = args.n_train
    if args.n_dev is not None:
        params["n_dev"] = args.n_dev
    if args.methods:
        params["methods"]["names"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.only:
        params["sections"] = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.threads is not None:
        params["threads"] = args.threads
    for assignment in args.set:
        set_dotted(params, assignment)
    unknown = set(params["sections"]) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"unknown sections {sorted(unknown)}; expected some of {list(SECTIONS)}")
    return params


# -- small helpers ---------------------------------------------------------------------------------
def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load_avg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    sep = "-+-".join("-" * w for w in widths)
    body = [" | ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]
    return "\n".join([line, sep, *body])


def budget_for(steps: int) -> Any:
    from recommender.types import Budget

    # no evaluation during training (one final evaluation on the small dev set), no early stop
    return Budget(max_steps=steps, max_epochs=1e6, eval_every_steps=10**9, patience=None)


# -- matmul peak -----------------------------------------------------------------------------------
def matmul_gflops(n: int, seconds: float) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        repeats += 1
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


# -- trainer and bare runs -------------------------------------------------------------------------
@dataclass
class TrainerRun:
    result: Any
    call_seconds: float  # the whole train() call (final evaluation and artifact save too), minus callbacks
    own_seconds_to_last_step: float  # call start -> last step done, minus time spent in our callback
    step_ms: list[float] = field(default_factory=list)  # steps 2..n (step 1 has no previous mark)
    load: float | None = None
    callback_seconds: float = 0.0  # time spent in ``between_steps`` (not the trainer's)

    @property
    def steady_mean_ms(self) -> float | None:
        return statistics.fmean(self.step_ms) if self.step_ms else None

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.step_ms) if self.step_ms else None

    @property
    def setup_seconds(self) -> float:
        return self.own_seconds_to_last_step - self.result.train_seconds


def run_trainer(task: Any, method: str, params: dict[str, Any], steps: int, seed: int, device: str,
                latency: Any = None, between_steps: Callable[[int], None] | None = None) -> TrainerRun:
    """``train()`` for ``steps`` steps; ``between_steps(k)`` runs after step k (0-based), off its clock."""
    from recommender.training import LatencyConfig, train

    enters: list[float] = []
    exits: list[float] = []

    def on_step(step: int, total: int) -> None:
        enters.append(time.perf_counter())
        if between_steps is not None:
            between_steps(step - 1)
        exits.append(time.perf_counter())

    load = load_avg()
    start = time.perf_counter()
    result = train(task, method, params=params, budget=budget_for(steps), device=device, seed=seed,
                   latency=latency or LatencyConfig(enabled=False), on_step=on_step)
    end = time.perf_counter()
    step_ms = [(enters[k] - exits[k - 1]) * 1000 for k in range(1, len(enters))]
    in_callback = sum(b - a for a, b in zip(enters[:-1], exits[:-1], strict=True))
    own = (enters[-1] - start - in_callback) if enters else end - start
    callbacks = sum(b - a for a, b in zip(enters, exits, strict=True))
    return TrainerRun(result, end - start - callbacks, own, step_ms, load, callbacks)


def trainer_plan(features: Any, batch_size: int, group_by_length: bool, seed: int, steps: int) -> list[list[int]]:
    """The trainer's batches for a single-task run (same seeds as ``_Run._epoch_batches``)."""
    from recommender.training.data import batch_indices

    plan: list[list[int]] = []
    epoch = 0
    while len(plan) < steps:
        plan += batch_indices(features, batch_size, shuffle=True, group_by_length=group_by_length,
                              seed=seed * 1000 + epoch * 10)
        epoch += 1
    return plan[:steps]


def batch_tokens(features: Any, indices: list[int], pad_to: int | None) -> int:
    return len(indices) * (pad_to or max(features.lengths[i] for i in indices))


def padded_tokens(features: Any, plan: list[list[int]], pad_to: int | None) -> int:
    return sum(batch_tokens(features, b, pad_to) for b in plan)


class BareLoop:
    """A bare PyTorch loop: forward, CE loss, backward, clip, AdamW step, zero_grad.

    Batches are collated when the loop is built, before any clock starts.
    """

    def __init__(self, task: Any, model_path: Path, features: Any, plan: list[list[int]], *, lr: float,
                 weight_decay: float, max_grad_norm: float, seed: int, device: str, pad_id: int) -> None:
        import numpy as np
        import torch

        from recommender.methods.base import make_method
        from recommender.models import load_model
        from recommender.training.data import MODEL_INPUTS, collate

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.model = load_model(model_path, task.task_type, task.num_labels)
        make_method("full_ft").apply(self.model)
        self.model.to(device)
        self.model.train()
        self.inputs, self.labels = [], []
        for indices in plan:
            batch = {k: v.to(device) for k, v in collate(features, indices, task.task_type, pad_id).items()}
            self.inputs.append({k: batch[k] for k in MODEL_INPUTS if k in batch})
            self.labels.append(batch["labels"])
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.max_grad_norm = max_grad_norm
        self.examples = [len(b) for b in plan]
        self.step_s: list[float] = []
        self.phase_s: dict[str, list[float]] = {"forward": [], "backward": [], "clip": [], "optimizer": []}

    def step(self, k: int) -> None:
        import torch
        import torch.nn.functional as F

        t0 = time.perf_counter()
        outputs = self.model(**self.inputs[k])
        loss = F.cross_entropy(outputs.logits, self.labels[k])
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.max_grad_norm)
        t3 = time.perf_counter()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        t4 = time.perf_counter()
        self.step_s.append(t4 - t0)
        for name, a, b in (("forward", t0, t1), ("backward", t1, t2), ("clip", t2, t3), ("optimizer", t3, t4)):
            self.phase_s[name].append(b - a)

    def run(self) -> None:
        for k in range(len(self.inputs)):
            self.step(k)

    @property
    def samples_per_second(self) -> float:
        return sum(self.examples[: len(self.step_s)]) / sum(self.step_s)


def fit_line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares ms = a + b * tokens; None unless both coefficients come out positive."""
    import numpy as np

    if len(points) < 3 or len({x for x, _ in points}) < 2:
        return None
    b, a = np.polyfit([x for x, _ in points], [y for _, y in points], 1)
    return (float(a), float(b)) if a > 0 and b > 0 else None


# -- sections --------------------------------------------------------------------------------------
class Bench:
    def __init__(self, params: dict[str, Any]) -> None:
        from recommender.models import bundled_model_path, load_tokenizer
        from recommender.tasks import load_task
        from recommender.training.config import TrainingConfig
        from recommender.training.data import featurize

        self.p = params
        self.seed = int(params["seed"])
        self.device = params["device"]
        self.batch_size = int(params["batch_size"])
        self.model_path = bundled_model_path()
        full = load_task(params["task"])
        self.task = full.subsample(params.get("n_train"), params.get("n_dev"), seed=self.seed)
        if self.task.task_type != "classification":
            raise SystemExit(f"{params['task']} is {self.task.task_type}; the bare loop (cross-entropy on "
                             "sequence logits) needs a classification task")
        self.tokenizer = load_tokenizer(self.model_path)
        self.max_len = int(params["padding"]["max_seq_length"])
        self.config = TrainingConfig(batch_size=self.batch_size, max_seq_length=self.max_len)
        self.features = featurize(self.task, "train", self.tokenizer, self.config)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.steps_per_epoch = math.ceil(len(self.features) / self.batch_size)
        self.base_params = {"batch_size": self.batch_size, "max_seq_length": self.max_len}
        self.out: dict[str, Any] = {}
        self.tables: list[str] = []
        self.grouped_runs: list[TrainerRun] = []  # full_ft, dynamic padding + grouping
        self.matmul: list[float] = []

    def measure_matmul(self) -> float:
        m = self.p["matmul"]
        value = matmul_gflops(int(m["n"]), float(m["seconds"]))
        self.matmul.append(value)
        return value

    # (a) ------------------------------------------------------------------------------------------
    def bare_loop(self, plan: list[list[int]]) -> BareLoop:
        from recommender.methods.base import make_method

        return BareLoop(self.task, self.model_path, self.features, plan,
                        lr=make_method("full_ft").default_learning_rate, weight_decay=self.config.weight_decay,
                        max_grad_norm=self.config.max_grad_norm, seed=self.seed, device=self.device,
                        pad_id=self.pad_id)

    def throughput(self) -> None:
        """Trainer and bare loop interleaved step by step: bare step k runs in the trainer's
        on_step callback right after trainer step k, off the trainer's clock, on the same batch."""
        cfg = self.p["throughput"]
        steps, repeats = int(cfg["steps"]), int(cfg["repeats"])
        plan = trainer_plan(self.features, self.batch_size, True, self.seed, steps)
        warmup = int(cfg["warmup_steps"])
        if warmup > 0:
            log(f"throughput: warm-up ({warmup} bare steps, untimed)")
            self.bare_loop(plan[:warmup]).run()
        expected_tokens = sum(self.features.lengths[i] for b in plan for i in b)
        reps: list[dict[str, Any]] = []
        for r in range(repeats):
            log(f"throughput: repeat {r + 1}/{repeats}: trainer and bare loop interleaved, {steps} steps each "
                f"(load {load_avg()})")
            bare = self.bare_loop(plan)
            run = run_trainer(self.task, "full_ft", self.base_params, steps, self.seed, self.device,
                              between_steps=bare.step)
            res = run.result
            if res.status != "complete" or len(bare.step_s) != steps:
                raise RuntimeError(f"trainer run failed: {res.status} {res.error}")
            self.grouped_runs.append(run)
            bare_ms = [x * 1000 for x in bare.step_s]
            paired = [b / t for t, b in zip(run.step_ms, bare_ms[1:], strict=True) if t > 0]
            reps.append({
                "trainer_samples_per_second": res.samples_per_second,
                "bare_samples_per_second": bare.samples_per_second,
                "ratio": res.samples_per_second / bare.samples_per_second,
                "median_paired_step_ratio": statistics.median(paired) if paired else None,
                "trainer_train_seconds": res.train_seconds, "bare_seconds": sum(bare.step_s),
                "trainer_step_ms": run.step_ms, "bare_step_ms": bare_ms,
                "bare_phase_share": {k: sum(v) / sum(bare.step_s) for k, v in bare.phase_s.items()},
                "same_batches_verified": res.tokens_seen == expected_tokens
                and res.examples_seen == sum(map(len, plan)),
                "wall_samples_per_second_incl_setup": res.examples_seen / run.own_seconds_to_last_step,
                "setup_seconds": run.setup_seconds, "call_seconds": run.call_seconds,
                "call_samples_per_second": res.examples_seen / run.call_seconds, "load": run.load,
            })
            del bare
        ratio = statistics.median(r["ratio"] for r in reps)
        rep = min(reps, key=lambda r: abs(r["ratio"] - ratio))  # the repeat shown in the table
        same = all(r["same_batches_verified"] for r in reps)
        target = self.p["targets"]["trainer_vs_bare"]
        self.out["throughput"] = {
            "steps": steps, "repeats": repeats, "batch_size": self.batch_size, "warmup_steps": warmup,
            "design": "interleaved: bare step k runs right after trainer step k, off the trainer's clock",
            "same_batches_verified": same, "real_tokens": expected_tokens,
            "padded_tokens": padded_tokens(self.features, plan, None), "repeats_detail": reps,
            "ratio_trainer_over_bare": ratio,
            "median_paired_step_ratio": statistics.median(r["median_paired_step_ratio"] for r in reps),
            "trainer_samples_per_second": rep["trainer_samples_per_second"],
            "bare_samples_per_second": rep["bare_samples_per_second"],
            "trainer_wall_samples_per_second_incl_setup": rep["wall_samples_per_second_incl_setup"],
            "bare_phase_share": rep["bare_phase_share"], "target": target, "meets_target": ratio >= target,
        }
        rows = [
            ["our trainer (train-step time only)", fmt(rep["trainer_samples_per_second"], ".2f"),
             fmt(rep["trainer_train_seconds"], ".2f"), "result.samples_per_second"],
            ["bare PyTorch loop, same batches", fmt(rep["bare_samples_per_second"], ".2f"),
             fmt(rep["bare_seconds"], ".2f"), "pre-collated batches"],
            ["our trainer, wall incl. setup", fmt(rep["wall_samples_per_second_incl_setup"], ".2f"),
             fmt(rep["setup_seconds"] + rep["trainer_train_seconds"], ".2f"), f"setup {rep['setup_seconds']:.1f}s"],
            ["our trainer, whole train() call", fmt(rep["call_samples_per_second"], ".2f"),
             fmt(rep["call_seconds"], ".2f"), "+ final eval, artifact save"],
        ]
        per_rep = ", ".join(f"{r['ratio']:.3f}" for r in reps)
        self.tables.append(
            f"(a) Training throughput, full_ft, batch {self.batch_size}, {steps} steps, dynamic padding + "
            f"length grouping; trainer and bare loop interleaved step by step (same batches: "
            f"{'verified' if same else 'NOT VERIFIED'})\n"
            + table(["run", "samples/s", "seconds", "note"], rows)
            + f"\nratio trainer/bare = {ratio:.3f} (median of {repeats} repeat(s): {per_rep}; target >= {target}: "
            f"{'PASS' if ratio >= target else 'FAIL'}); median paired per-step ratio = "
            f"{fmt(self.out['throughput']['median_paired_step_ratio'], '.3f')}\nbare step time shares: "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in rep["bare_phase_share"].items()))

    # (b) ------------------------------------------------------------------------------------------
    def padding(self) -> None:
        """ABA: grouped-dynamic runs bracket every round of the other variants, so a slow drift of
        the machine's load cancels; each variant is compared with the mean of its two brackets."""
        cfg = self.p["padding"]
        repeats = int(cfg["repeats"])
        g_steps = int(cfg["grouped_steps"])
        variants = [{"name": "dynamic_grouped", "params": {}, "steps": g_steps},
                    *[dict(v) for v in cfg["variants"]]]
        runs: dict[str, list[TrainerRun]] = {v["name"]: [] for v in variants}

        def go(v: dict[str, Any], r: int) -> None:
            log(f"padding: {v['name']} run {r + 1} ({v['steps']} steps, load {load_avg()})")
            run = run_trainer(self.task, "full_ft", {**self.base_params, **v["params"]}, int(v["steps"]),
                              self.seed, self.device)
            if run.result.status != "complete":
                raise RuntimeError(f"{v['name']} run failed: {run.result.error}")
            runs[v["name"]].append(run)

        for r in range(repeats):
            go(variants[0], r)
            for v in variants[1:]:
                go(v, r)
        go(variants[0], repeats)
        self.grouped_runs += runs["dynamic_grouped"]
        # per-step cost model ms = a + b * padded tokens, from the grouped runs' own steps, to correct
        # the extrapolation when the measured batches are not of the epoch's average length
        g_plan = trainer_plan(self.features, self.batch_size, True, self.seed, g_steps)
        points = [(batch_tokens(self.features, g_plan[k + 1], None), ms)
                  for run in runs["dynamic_grouped"] for k, ms in enumerate(run.step_ms)]
        line = fit_line(points)
        results: dict[str, dict[str, Any]] = {}
        for v in variants:
            merged = {**self.base_params, **v["params"]}
            dynamic = merged.get("dynamic_padding", True)
            group = merged.get("group_by_length", True)
            pad_to = None if dynamic else self.max_len
            epoch_plan = trainer_plan(self.features, self.batch_size, group, self.seed, self.steps_per_epoch)
            measured = trainer_plan(self.features, self.batch_size, group, self.seed, int(v["steps"]))[1:]
            tok_measured = padded_tokens(self.features, measured, pad_to) / max(1, len(measured))
            tok_epoch = padded_tokens(self.features, epoch_plan, pad_to) / len(epoch_plan)
            adjust = (line[0] + line[1] * tok_epoch) / (line[0] + line[1] * tok_measured) if line and dynamic else 1.0
            means = [x.steady_mean_ms for x in runs[v["name"]]]
            step_ms = statistics.median(means)
            best = max(runs[v["name"]], key=lambda x: x.result.train_flops / x.result.train_seconds)
            results[v["name"]] = {
                "params": v["params"], "steps_measured": int(v["steps"]), "runs": len(means),
                "steady_mean_step_ms_per_run": means, "steady_mean_step_ms": step_ms,
                "loads": [x.load for x in runs[v["name"]]],
                "epoch_seconds_extrapolated": step_ms * self.steps_per_epoch / 1000,
                "length_adjustment": adjust,
                "epoch_seconds_length_adjusted": step_ms * adjust * self.steps_per_epoch / 1000,
                "padded_tokens_per_step_measured": tok_measured, "padded_tokens_per_step_epoch": tok_epoch,
                "epoch_padding_efficiency": sum(self.features.lengths) / (tok_epoch * len(epoch_plan)),
                "useful_flops_per_second": best.result.train_flops / best.result.train_seconds,
            }
        g = results["dynamic_grouped"]
        g_means = g["steady_mean_step_ms_per_run"]
        for name, v in results.items():
            if name == "dynamic_grouped":
                v["x_slower_than_grouped"] = v["x_slower_length_adjusted"] = 1.0
                continue
            bracketed = [m / ((g_means[r] + g_means[r + 1]) / 2)
                         for r, m in enumerate(v["steady_mean_step_ms_per_run"])]
            v["step_ratio_vs_brackets"] = bracketed
            v["x_slower_than_grouped"] = statistics.median(bracketed)
            v["x_slower_length_adjusted"] = v["x_slower_than_grouped"] * v["length_adjustment"] / g["length_adjustment"]
        fixed = next((k for k, v in results.items()
                      if not {**self.base_params, **v["params"]}.get("dynamic_padding", True)), None)
        speedup = results[fixed]["x_slower_length_adjusted"] if fixed else None
        target = self.p["targets"]["padding_speedup"]
        self.out["padding"] = {
            "variants": results, "steps_per_epoch": self.steps_per_epoch, "n_train": len(self.features),
            "cost_model_ms": {"a": line[0], "b_per_token": line[1]} if line else None,
            "speedup_vs_fixed": speedup,
            "speedup_vs_fixed_unadjusted": results[fixed]["x_slower_than_grouped"] if fixed else None,
            "target": target, "meets_target": speedup is not None and speedup >= target,
            "note": "epoch time extrapolated: median over runs of the mean step time (steps 2..n) x steps/epoch; "
                    "length-adjusted by ms = a + b * padded tokens fitted on the grouped runs' steps; "
                    "ratios use ABA bracketing",
        }
        rows = [[name, f"{v['steps_measured']} x{v['runs']}", fmt(v["steady_mean_step_ms"], ".0f"),
                 fmt(v["epoch_seconds_extrapolated"], ".1f"), fmt(v["epoch_seconds_length_adjusted"], ".1f"),
                 f"{v['padded_tokens_per_step_measured']:.0f} / {v['padded_tokens_per_step_epoch']:.0f}",
                 fmt(v["epoch_padding_efficiency"], ".2f"), fmt(v["x_slower_length_adjusted"], ".2f")]
                for name, v in results.items()]
        verdict = "-" if speedup is None else ("PASS" if speedup >= target else "FAIL")
        fit = f"ms = {line[0]:.0f} + {line[1]:.3f} x tokens" if line else "no valid fit: not adjusted"
        self.tables.append(
            f"(b) Epoch time, full_ft, batch {self.batch_size}, {len(self.features)} train examples = "
            f"{self.steps_per_epoch} steps/epoch, EXTRAPOLATED from the steps measured (cost model {fit})\n"
            + table(["padding", "steps x runs", "step ms", "epoch s", "epoch s (len-adj.)",
                     "tok/step meas./epoch", "real/padded", "x slower"], rows)
            + f"\ndynamic padding + length grouping is {fmt(speedup, '.2f')}x faster per epoch than fixed padding "
            f"to {self.max_len} (length-adjusted, ABA-bracketed; unadjusted "
            f"{fmt(self.out['padding']['speedup_vs_fixed_unadjusted'], '.2f')}x; target >= {target}x: {verdict})")

    # (c) ------------------------------------------------------------------------------------------
    def flops(self) -> None:
        """A full_ft run with fp32 matmul bursts interleaved between its steps (off its clock), so
        the training FLOP/s and the matmul reference are measured under the same load."""
        import torch

        from recommender.methods.base import count_parameters
        from recommender.models import load_model

        cfg = self.p["flops"]
        steps, per_step, n = int(cfg["steps"]), int(cfg["matmuls_per_step"]), int(self.p["matmul"]["n"])
        a, b = torch.randn(n, n), torch.randn(n, n)
        for _ in range(2):
            a @ b
        bursts: list[float] = []

        def burst(k: int) -> None:
            t0 = time.perf_counter()
            for _ in range(per_step):
                a @ b
            bursts.append(time.perf_counter() - t0)

        log(f"flops: full_ft run, {steps} steps, {per_step} matmuls ({n}^3) after each (load {load_avg()})")
        run = run_trainer(self.task, "full_ft", self.base_params, steps, self.seed, self.device,
                          between_steps=burst)
        res = run.result
        if res.status != "complete":
            raise RuntimeError(f"flops run failed: {res.error}")
        matmul = 2 * n**3 * per_step * len(bursts) / sum(bursts)
        counts = count_parameters(load_model(self.model_path, self.task.task_type, self.task.num_labels))
        non_embedding = counts["total"] - counts["embedding"]
        per_token = res.train_flops / res.tokens_seen
        six_n = 6.0 * non_embedding
        useful = res.train_flops / res.train_seconds
        useful_6n = six_n * res.tokens_seen / res.train_seconds
        target = self.p["targets"]["flops_vs_matmul"]
        ratio = useful / matmul
        standalone = max(self.matmul) * 1e9 if self.matmul else None
        shares = self.out.get("throughput", {}).get("bare_phase_share")
        by_padding = {k: v["useful_flops_per_second"]
                      for k, v in self.out.get("padding", {}).get("variants", {}).items()}
        self.out["flops"] = {
            "steps": steps, "trainer_flops_per_token": per_token, "six_n_flops_per_token": six_n,
            "non_embedding_params": non_embedding, "embedding_params": counts["embedding"],
            "total_params": counts["total"], "real_tokens": res.tokens_seen,
            "padded_tokens": padded_tokens(self.features, trainer_plan(
                self.features, self.batch_size, True, self.seed, steps), None),
            "train_seconds": res.train_seconds, "useful_flops_per_second": useful,
            "useful_flops_per_second_6n": useful_6n, "matmul_n": n,
            "matmul_flops_per_second_interleaved": matmul, "matmul_gflops_standalone_readings": self.matmul,
            "ratio": ratio, "ratio_6n": useful_6n / matmul,
            "ratio_vs_standalone_peak": useful / standalone if standalone else None,
            "target": target, "meets_target": ratio >= target,
            "useful_flops_per_second_by_padding_run": by_padding,
        }
        rows = [["trainer estimate (4N + 2N_trainable)", fmt(per_token / 1e6, ".1f"), fmt(useful / 1e9, ".2f"),
                 fmt(ratio, ".3f")],
                ["6N (no embedding weight-grad FLOPs)", fmt(six_n / 1e6, ".1f"), fmt(useful_6n / 1e9, ".2f"),
                 fmt(useful_6n / matmul, ".3f")]]
        for name, v in by_padding.items():
            rows.append([f"trainer estimate, (b) {name} run", "", fmt(v / 1e9, ".2f"), "-"])
        readings = ", ".join(f"{x:.1f}" for x in self.matmul) or "-"
        self.tables.append(
            f"(c) Useful FLOP/s of full_ft training, real tokens only ({res.tokens_seen} tokens, {steps} steps, "
            f"{res.train_seconds:.2f}s) vs fp32 {n}^3 matmul interleaved with the same run: "
            f"{matmul / 1e9:.1f} GFLOP/s (standalone readings: {readings})\n"
            + table(["FLOPs per token", "MFLOP/token", "useful GFLOP/s", "ratio to matmul"], rows)
            + f"\nratio (trainer estimate) = {ratio:.3f} (aim >= {target}: {'PASS' if ratio >= target else 'FAIL'})"
            + (f"; in (a)'s bare loop the optimizer step (AdamW over all {counts['total']:,} weights, "
               f"{counts['embedding']:,} of them embeddings) took {100 * shares['optimizer']:.0f}% of step time"
               if shares else ""))

    # (d) ------------------------------------------------------------------------------------------
    def methods(self) -> None:
        from recommender.methods.base import get_method_class, method_names
        from recommender.models import load_model
        from recommender.training import LatencyConfig
        from recommender.training.latency import measure_latency

        cfg = self.p["methods"]
        names = method_names() if cfg["names"] == "all" else list(cfg["names"])
        names = [n for n in names if n not in set(cfg.get("skip", []))]
        batch_sizes = tuple(int(b) for b in cfg["latency_batch_sizes"])
        seq_len = int(cfg["latency_seq_len"])
        reuse_base = bool(cfg.get("reuse_base_latency"))
        timed = set(names) if cfg.get("latency_methods", "all") == "all" else set(cfg["latency_methods"])
        steps = int(cfg["steps"])
        rows_out: dict[str, dict[str, Any]] = {}
        base_latency: dict[int, float] = {}
        for name in names:
            cls = get_method_class(name)
            base_arch = not cls.uses_adapters  # only requires_grad changes: the deployed graph is the base model
            measure = name in timed and not (reuse_base and base_arch)
            latency = LatencyConfig(enabled=measure, batch_sizes=batch_sizes, seq_len=seq_len,
                                    max_seconds=float(cfg["latency_max_seconds"]), base_model=True)
            params = {**self.base_params, **cfg.get("method_params", {}).get(name, {})}
            probe = matmul_gflops(512, 0.25)  # machine speed just before the run (drift indicator)
            log(f"methods: {name} ({steps} steps{', latency' if measure else ''}, load {load_avg()}, "
                f"probe {probe:.1f} GFLOP/s)")
            run = run_trainer(self.task, name, params, steps, self.seed, self.device, latency=latency)
            res = run.result
            row: dict[str, Any] = {"status": res.status, "error": res.error, "steps": res.steps,
                                   "params": params, "median_step_ms": run.median_ms,
                                   "steady_mean_step_ms": run.steady_mean_ms, "step_ms": run.step_ms,
                                   "trainable_params": res.trainable_params, "head_params": res.head_params,
                                   "total_params": res.total_params, "mergeable": res.mergeable,
                                   "merge_max_abs_diff": res.merge_max_abs_diff,
                                   "merge_error": res.extra.get("merge_error"),
                                   "latency_measured": measure, "call_seconds": run.call_seconds,
                                   "probe_gflops": probe, "load": run.load,
                                   "extra": {k: v for k, v in res.extra.items() if k != "merge_error"}}
            for stat in res.latency:
                row[f"latency_b{stat.batch_size}{'_merged' if stat.merged else ''}_ms"] = stat.p50_ms
            for stat in res.base_latency:
                base_latency.setdefault(stat.batch_size, stat.p50_ms)
            rows_out[name] = row
            if res.status != "complete":
                log(f"methods: {name} {res.status}: {(res.error or '').splitlines()[0] if res.error else ''}")
        missing = [b for b in batch_sizes if b not in base_latency]
        if missing:  # every measured method failed or none was measured: time the base model here
            model = load_model(self.model_path, self.task.task_type, self.task.num_labels)
            for b in missing:
                base_latency[b] = measure_latency(model, batch_size=b, seq_len=seq_len,
                                                  vocab_size=model.config.vocab_size, device=self.device,
                                                  max_seconds=float(cfg["latency_max_seconds"])).p50_ms
        for name, row in rows_out.items():
            if not row["latency_measured"] and reuse_base and not get_method_class(name).uses_adapters:
                for b in batch_sizes:
                    row[f"latency_b{b}_ms"] = base_latency.get(b)
                row["latency_source"] = "base model (same graph; not re-measured in this mode)"
        self.out["methods"] = {"steps": steps, "batch_size": self.batch_size, "latency_seq_len": seq_len,
                               "base_latency_ms": base_latency, "rows": rows_out}
        headers = ["method", "train step ms", *[f"latency b{b} ms" for b in batch_sizes],
                   *[f"merged b{b}" for b in batch_sizes], "trainable params", "% of total", "probe GFLOP/s"]
        rows = []
        for name in sorted(rows_out):
            r = rows_out[name]
            star = "*" if r.get("latency_source") else ""
            trainable = None if r["trainable_params"] is None else r["trainable_params"] + (r["head_params"] or 0)
            share = 100 * trainable / r["total_params"] if trainable is not None and r["total_params"] else None
            merged = []
            for b in batch_sizes:
                value = r.get(f"latency_b{b}_merged_ms")
                if value is not None:
                    merged.append(fmt(value, ".1f"))
                elif not mergeable_by_design(name):
                    merged.append("n/a")
                elif r["merge_error"] or r["mergeable"] is False:
                    merged.append("not exact")  # merge failed, or outputs changed by >= 1e-4
                else:
                    merged.append("-")
            label = name if r["status"] == "complete" else f"{name} [{r['status']}]"
            rows.append([label, fmt(r["median_step_ms"], ".0f"),
                         *[fmt(r.get(f"latency_b{b}_ms"), ".1f") + star for b in batch_sizes], *merged,
                         f"{trainable:,}" if trainable is not None else "-", fmt(share, ".2f"),
                         fmt(r["probe_gflops"], ".0f")])
        rows.append(["(base model)", "", *[fmt(base_latency.get(b), ".1f") for b in batch_sizes],
                     *["" for _ in batch_sizes], "", "", ""])
        note = ("\nprobe: 512^3 matmul GFLOP/s just before the method's run; a low value means other "
                "processes were slowing the machine")
        if reuse_base:
            note += ("\n* latency of the base model: these methods only change which weights train, so the "
                     "deployed graph is the base model's (not re-measured in this mode)")
        skipped = sorted(n for n, r in rows_out.items() if not r["latency_measured"] and not r.get("latency_source"))
        if skipped:
            note += f"\nlatency not measured in this mode (methods.latency_methods): {', '.join(skipped)}"
        self.tables.append(
            f"(d) Per method: median training step (batch {self.batch_size}, the task's lengths, steps 2..{steps}) "
            f"and inference latency p50 (seq len {seq_len}); trainable params include the task head\n"
            + table(headers, rows) + note)


def mergeable_by_design(name: str) -> bool:
    """The method implements a merge (adapter methods declare a ``not_mergeable_reason`` otherwise)."""
    from recommender.methods.base import get_method_class

    cls = get_method_class(name)
    return cls().merge_supported and getattr(cls, "not_mergeable_reason", None) is None


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = build_params(args)
    import torch

    if params.get("threads"):
        torch.set_num_threads(int(params["threads"]))
    from recommender.models import model_display_name
    from recommender.training.environment import describe_environment

    started = time.perf_counter()
    load_start = load_avg()
    bench = Bench(params)
    log(f"task {params['task']}: {len(bench.features)} train examples, {bench.steps_per_epoch} steps/epoch, "
        f"torch threads {torch.get_num_threads()}, load {load_start}")
    sections = params["sections"]
    timings: dict[str, float] = {}
    cpu_times: dict[str, float] = {}
    bench.measure_matmul()  # standalone readings, at the start and at the end, for reference
    for name in SECTIONS:
        if name in sections:
            t0, c0 = time.perf_counter(), cpu_seconds()
            getattr(bench, name)()
            timings[name] = time.perf_counter() - t0
            cpu_times[name] = cpu_seconds() - c0
    bench.measure_matmul()
    total = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    env = describe_environment(bench.device).to_dict()
    header = (f"benchmarks/trainer.py{' --quick' if params['quick'] else ''}: task {params['task']} "
              f"({len(bench.features)} train), model {model_display_name(bench.model_path)}, {env['cpu']}, "
              f"{env['threads']} torch threads, load avg {load_start} -> {load_avg()}")
    print(header)
    for text in bench.tables:
        print()
        print(text)
    print(f"\ntotal {total:.0f}s wall (" + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items())
          + f"); process CPU {usage.ru_utime + usage.ru_stime:.0f}s ("
          + ", ".join(f"{k} {v:.0f}s" for k, v in cpu_times.items()) + ")")
    record = {"benchmark": "trainer", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "params": params,
              "model": str(bench.model_path), "environment": env,
              "load_average": {"start": load_start, "end": load_avg()}, "seconds": total,
              "section_seconds": timings, "section_cpu_seconds": cpu_times,
              "process_cpu_seconds": usage.ru_utime + usage.ru_stime,
              "results": bench.out}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
