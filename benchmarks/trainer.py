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
              (``dynamic_padding`` / ``group_by_length`` = False, passed as ``params``). Each pair
              of runs is cross-interleaved step by step so both sides see the same load: run A
              trains the variant with our trainer while a bare loop does dynamic+grouped steps
              between its steps; run B trains dynamic+grouped with our trainer while the bare loop
              does the variant's steps; x slower = sqrt(A x B). A fixed number of steps is timed
              and the epoch is EXTRAPOLATED, corrected for the measured batches' length vs the
              epoch's (step cost = a + b x padded tokens, fitted in units of the adjacent
              fixed-padding step). Exact padding efficiency of a whole epoch comes from the plan.
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
              ``RunResult.latency`` (merged rows where the trainer verified the merge). A 512^3
              matmul probe before the run and after every step (off the trainer's clock) shows
              when other processes slowed the machine, and gives a probe-scaled step time.
              ``--quick`` times latency for a subset of methods only (methods.latency_methods) and
              reuses the base model's latency for methods that only change which weights train.
  precision   (e) bf16 autocast (fp32 master weights) vs fp32, both with the fused AdamW: per
              method, seconds per epoch and the final dev metric after the same epochs, for two
              seeds; the runs alternate fp32 / bf16 so both see the same load. Full fine-tuning's
              useful FLOP/s is taken against the matmul peak of its own precision (fp32 and bf16
              matmuls measured in the same run). Sections (a)-(d) train in fp32, like the bare loop.
  embeddings  (f) full fine-tuning with the token-embedding table trained vs frozen
              (``freeze_embeddings``; about half of the model's weights get no gradient and no
              optimizer state): seconds per epoch and the final dev metric after the same epochs,
              two seeds, runs alternating.

Ratios are only meaningful within one run: the machine may be shared. Prints tables and writes
``benchmarks/results/trainer.json``. Parameters: ``benchmarks/params/trainer.json``.

    python benchmarks/trainer.py                       # default run (< ~15 min on 2 idle CPU cores)
    python benchmarks/trainer.py --quick               # few steps (< ~4 min on 2 idle CPU cores)
    python benchmarks/trainer.py --task glue_sst2 --n-train 512 --quick
    python benchmarks/trainer.py --only throughput,flops --set throughput.steps=100
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# benchmarks/ is on sys.path; importing _params first sets the offline environment
from _params import apply_overrides, fmt, load_avg, log, parameter_parser, read_params, table

from recommender.methods.base import REFERENCE_METHOD  # full fine-tuning

HERE = Path(__file__).resolve().parent
DEFAULT_PARAMS = HERE / "params" / "trainer.json"
DEFAULT_OUT = HERE / "results" / "trainer.json"
SECTIONS = ("throughput", "padding", "flops", "methods", "precision", "embeddings")


# -- parameters ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = parameter_parser(__doc__, DEFAULT_PARAMS, DEFAULT_OUT, SECTIONS,
                          quick_help="few steps: merge the file's 'quick' block", set_example="throughput.steps=100")
    ap.add_argument("--task", help="bundled task name (default from the parameter file)")
    ap.add_argument("--n-train", type=int, help="train examples kept (seeded subsample)")
    ap.add_argument("--n-dev", type=int, help="dev examples kept (only the final evaluation uses them)")
    ap.add_argument("--methods", help="comma-separated methods for the per-method table (default: all)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    return ap.parse_args(argv)


def build_params(args: argparse.Namespace) -> dict[str, Any]:
    params = read_params(args)
    if args.task:
        params["task"] = args.task
    if args.n_train is not None:
        params["n_train"] = args.n_train
    if args.n_dev is not None:
        params["n_dev"] = args.n_dev
    if args.methods:
        params["methods"]["names"] = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.threads is not None:
        params["threads"] = args.threads
    return apply_overrides(params, args, SECTIONS)


# -- small helpers ---------------------------------------------------------------------------------
def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def budget_for(steps: int) -> Any:
    from recommender.types import Budget

    # no evaluation during training (one final evaluation on the small dev set), no early stop
    return Budget(max_steps=steps, max_epochs=1e6, eval_every_steps=10**9, patience=None)


# -- matmul peak -----------------------------------------------------------------------------------
def matmul_gflops(n: int, seconds: float, dtype: str = "fp32") -> float:
    import torch

    kind = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=kind), torch.randn(n, n, dtype=kind)
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
                latency: Any = None, between_steps: Callable[[int], None] | None = None,
                precision: str = "fp32") -> TrainerRun:
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
                   latency=latency or LatencyConfig(enabled=False), on_step=on_step, precision=precision)
    end = time.perf_counter()
    step_ms = [(enters[k] - exits[k - 1]) * 1000 for k in range(1, len(enters))]
    in_callback = sum(b - a for a, b in zip(enters[:-1], exits[:-1], strict=True))
    own = (enters[-1] - start - in_callback) if enters else end - start
    callbacks = sum(b - a for a, b in zip(enters, exits, strict=True))
    return TrainerRun(result, end - start - callbacks, own, step_ms, load, callbacks)


def trainer_plan(features: Any, batch_size: int, group_by_length: bool, seed: int, steps: int) -> list[list[int]]:
    """The trainer's batches for a single-task run (same seeds as ``TrainingLoop.epoch_batches``)."""
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
                 weight_decay: float, max_grad_norm: float, seed: int, device: str, pad_id: int,
                 pad_to: int | None = None) -> None:
        import numpy as np
        import torch

        from recommender.methods.base import make_method
        from recommender.models import load_model
        from recommender.training.data import MODEL_INPUTS, collate

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        self.model = load_model(model_path, task.task_type, task.num_labels)
        make_method(REFERENCE_METHOD).apply(self.model)
        self.model.to(device)
        self.model.train()
        self.inputs, self.labels = [], []
        for indices in plan:
            batch = {k: v.to(device) for k, v in collate(features, indices, task.task_type, pad_id,
                                                                 pad_to).items()}
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


class Probe:
    """A short fp32 matmul burst: the machine's speed right now (GFLOP/s)."""

    def __init__(self, n: int, repeats: int) -> None:
        import torch

        self.n, self.repeats = n, repeats
        self.a, self.b = torch.randn(n, n), torch.randn(n, n)
        self.a @ self.b
        self.readings: list[float] = []

    def burst(self) -> float:
        t0 = time.perf_counter()
        for _ in range(self.repeats):
            self.a @ self.b
        value = 2 * self.n**3 * self.repeats / (time.perf_counter() - t0) / 1e9
        self.readings.append(value)
        return value


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
    def bare_loop(self, plan: list[list[int]], pad_to: int | None = None) -> BareLoop:
        from recommender.methods.base import make_method

        return BareLoop(self.task, self.model_path, self.features, plan,
                        lr=make_method(REFERENCE_METHOD).default_lr(), weight_decay=self.config.weight_decay,
                        max_grad_norm=self.config.max_grad_norm, seed=self.seed, device=self.device,
                        pad_id=self.pad_id, pad_to=pad_to)

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
            run = run_trainer(self.task, REFERENCE_METHOD, self.base_params, steps, self.seed, self.device,
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
        """Cross-interleaved pairs, so both sides of every ratio see the same machine load:
        run A trains the variant (e.g. fixed padding) with our trainer while a bare loop does
        dynamic+grouped steps between its steps; run B trains dynamic+grouped with our trainer
        while the bare loop does the variant's steps. x slower = sqrt(A x B), which cancels any
        trainer/bare difference to first order."""
        cfg = self.p["padding"]
        repeats = int(cfg["repeats"])
        spe = self.steps_per_epoch
        real_tokens = sum(self.features.lengths)
        g_epoch = trainer_plan(self.features, self.batch_size, True, self.seed, spe)
        g_tok_epoch = padded_tokens(self.features, g_epoch, None) / spe
        results: dict[str, dict[str, Any]] = {}
        normalized: list[tuple[float, float]] = []  # (tokens, grouped step / adjacent fixed step)
        grouped_ms: list[float] = []
        g_flops: list[float] = []
        g_tok_measured: list[float] = []
        for v in cfg["variants"]:
            name, steps = v["name"], int(v["steps"])
            merged = {**self.base_params, **v["params"]}
            dynamic = merged.get("dynamic_padding", True)
            group = merged.get("group_by_length", True)
            pad_to = None if dynamic else self.max_len
            g_plan = trainer_plan(self.features, self.batch_size, True, self.seed, steps)
            v_plan = trainer_plan(self.features, self.batch_size, group, self.seed, steps)
            g_tok = [batch_tokens(self.features, b, None) for b in g_plan]
            ratios_a, ratios_b, v_ms, runs_ms, v_flops = [], [], [], [], []
            for r in range(repeats):
                log(f"padding: A{r + 1} trainer {name} x bare dynamic_grouped, {steps} steps (load {load_avg()})")
                bare = self.bare_loop(g_plan)
                run_a = run_trainer(self.task, REFERENCE_METHOD, merged, steps, self.seed, self.device,
                                    between_steps=bare.step)
                bare_ms = [x * 1000 for x in bare.step_s[1:]]
                ratios_a.append(sum(run_a.step_ms) / sum(bare_ms))
                v_ms += run_a.step_ms
                v_flops.append(run_a.result.train_flops / run_a.result.train_seconds)
                runs_ms.append(("A", run_a.load))
                if not dynamic:
                    normalized += [(g_tok[k + 1], b / t) for k, (t, b) in enumerate(zip(run_a.step_ms, bare_ms,
                                                                                    strict=True))]
                self.check_run(run_a)
                log(f"padding: B{r + 1} trainer dynamic_grouped x bare {name}, {steps} steps (load {load_avg()})")
                bare = self.bare_loop(v_plan, pad_to=pad_to)
                run_b = run_trainer(self.task, REFERENCE_METHOD, self.base_params, steps, self.seed, self.device,
                                    between_steps=bare.step)
                bare_ms = [x * 1000 for x in bare.step_s[1:]]
                ratios_b.append(sum(bare_ms) / sum(run_b.step_ms))
                grouped_ms += run_b.step_ms
                g_flops.append(run_b.result.train_flops / run_b.result.train_seconds)
                g_tok_measured += g_tok[1:]
                runs_ms.append(("B", run_b.load))
                if not dynamic:
                    normalized += [(g_tok[k + 1], t / b) for k, (t, b) in enumerate(zip(run_b.step_ms, bare_ms,
                                                                                    strict=True))]
                self.check_run(run_b)
                self.grouped_runs.append(run_b)
            v_epoch = trainer_plan(self.features, self.batch_size, group, self.seed, spe)
            v_tok_epoch = padded_tokens(self.features, v_epoch, pad_to) / spe
            results[name] = {
                "params": v["params"], "steps": steps, "repeats": repeats, "loads": [x[1] for x in runs_ms],
                "ratio_a_trainer_variant_over_bare_grouped": ratios_a,
                "ratio_b_bare_variant_over_trainer_grouped": ratios_b,
                "x_slower_raw": math.sqrt(statistics.median(ratios_a) * statistics.median(ratios_b)),
                "trainer_mean_step_ms": statistics.fmean(v_ms),
                "padded_tokens_per_step_measured": padded_tokens(self.features, v_plan[1:], pad_to) / (steps - 1),
                "padded_tokens_per_step_epoch": v_tok_epoch,
                "epoch_padding_efficiency": real_tokens / (v_tok_epoch * spe),
                "dynamic": dynamic, "useful_flops_per_second": max(v_flops),
            }
        # cost of a dynamic step vs padded tokens, in units of the adjacent fixed-padding step (load cancels)
        line = fit_line(normalized)

        def cost(tokens: float) -> float:
            assert line is not None
            return line[0] + line[1] * tokens

        g_tok_meas = statistics.fmean(g_tok_measured) if g_tok_measured else g_tok_epoch
        g_adjust = cost(g_tok_epoch) / cost(g_tok_meas) if line else 1.0
        g_step = statistics.fmean(grouped_ms) if grouped_ms else None
        rows_out = {"dynamic_grouped": {
            "trainer_mean_step_ms": g_step, "padded_tokens_per_step_measured": g_tok_meas,
            "padded_tokens_per_step_epoch": g_tok_epoch, "length_adjustment": g_adjust,
            "epoch_padding_efficiency": real_tokens / (g_tok_epoch * spe), "x_slower": 1.0,
            "useful_flops_per_second": max(g_flops) if g_flops else None,
            "epoch_seconds": g_step * g_adjust * spe / 1000 if g_step else None}}
        for name, v in results.items():
            adj = cost(v["padded_tokens_per_step_epoch"]) / cost(v["padded_tokens_per_step_measured"]) \
                if line and v["dynamic"] else 1.0
            v["length_adjustment"] = adj
            v["x_slower"] = v["x_slower_raw"] * adj / g_adjust
            v["epoch_seconds"] = v["trainer_mean_step_ms"] * adj * spe / 1000
            rows_out[name] = v
        fixed = next((k for k, v in results.items() if not v["dynamic"]), None)
        speedup = results[fixed]["x_slower"] if fixed else None
        target = self.p["targets"]["padding_speedup"]
        self.out["padding"] = {
            "variants": rows_out, "steps_per_epoch": spe, "n_train": len(self.features),
            "cost_model_in_fixed_steps": {"a": line[0], "b_per_token": line[1]} if line else None,
            "speedup_vs_fixed": speedup,
            "speedup_vs_fixed_unadjusted": results[fixed]["x_slower_raw"] if fixed else None,
            "target": target, "meets_target": speedup is not None and speedup >= target,
            "note": "x slower = sqrt(A x B) from cross-interleaved trainer/bare pairs (steps 2..n), corrected "
                    "for the measured batches' length vs the epoch's (step cost = a + b x padded tokens, in "
                    "units of the adjacent fixed-padding step); epoch seconds = mean trainer step x "
                    "adjustment x steps/epoch, at this run's load (EXTRAPOLATED)",
        }
        rows = []
        for name, v in rows_out.items():
            pairs = "" if name == "dynamic_grouped" else ", ".join(
                f"{a:.2f}/{b:.2f}" for a, b in zip(v["ratio_a_trainer_variant_over_bare_grouped"],
                                                  v["ratio_b_bare_variant_over_trainer_grouped"], strict=True))
            rows.append([name, fmt(v["trainer_mean_step_ms"], ".0f"), fmt(v["epoch_seconds"], ".1f"),
                         f"{v['padded_tokens_per_step_measured']:.0f} / {v['padded_tokens_per_step_epoch']:.0f}",
                         fmt(v["epoch_padding_efficiency"], ".2f"), pairs, fmt(v["x_slower"], ".2f")])
        verdict = "-" if speedup is None else ("PASS" if speedup >= target else "FAIL")
        measured_steps = "/".join(str(v["steps"]) for v in cfg["variants"])
        fit = (f"step = {line[0]:.2f} + {line[1] * 1000:.3f}/1k tokens, in fixed-128 steps" if line
               else "no valid fit: not length-adjusted")
        self.tables.append(
            f"(b) Epoch time, full_ft, batch {self.batch_size}, {len(self.features)} train examples = {spe} "
            f"steps/epoch, EXTRAPOLATED from {measured_steps} steps per run (cost model: {fit})\n"
            + table(["padding", "step ms", "epoch s", "tok/step meas./epoch", "real/padded",
                     "pair ratios A/B", "x slower"], rows)
            + f"\ndynamic padding + length grouping is {fmt(speedup, '.2f')}x faster per epoch than fixed padding "
            f"to {self.max_len} (paired, length-adjusted; unadjusted "
            f"{fmt(self.out['padding']['speedup_vs_fixed_unadjusted'], '.2f')}x; target >= {target}x: {verdict})")

    @staticmethod
    def check_run(run: TrainerRun) -> None:
        if run.result.status != "complete":
            raise RuntimeError(f"trainer run failed: {run.result.status} {run.result.error}")

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
        run = run_trainer(self.task, REFERENCE_METHOD, self.base_params, steps, self.seed, self.device,
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
                      for k, v in self.out.get("padding", {}).get("variants", {}).items()
                      if v.get("useful_flops_per_second")}
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
            rows.append([f"trainer estimate, (b) {name} runs (best)", "", fmt(v / 1e9, ".2f"), "-"])
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
        probe = Probe(int(cfg.get("probe_n", 512)), int(cfg.get("probe_repeats", 4)))
        for name in names:
            cls = get_method_class(name)
            base_arch = not cls.uses_adapters  # only requires_grad changes: the deployed graph is the base model
            measure = name in timed and not (reuse_base and base_arch)
            latency = LatencyConfig(enabled=measure, batch_sizes=batch_sizes, seq_len=seq_len,
                                    max_seconds=float(cfg["latency_max_seconds"]), base_model=True)
            params = {**self.base_params, **cfg.get("method_params", {}).get(name, {})}
            probes = [probe.burst()]  # machine speed before the run and after every step (drift indicator)
            log(f"methods: {name} ({steps} steps{', latency' if measure else ''}, load {load_avg()}, "
                f"probe {probes[0]:.1f} GFLOP/s)")
            run = run_trainer(self.task, name, params, steps, self.seed, self.device, latency=latency,
                              between_steps=lambda k, probes=probes: probes.append(probe.burst()))
            res = run.result
            # step k (k >= 2) ran between the probes after steps k-1 and k
            speeds = [(probes[j + 1] + probes[j + 2]) / 2 for j in range(len(run.step_ms))]
            row: dict[str, Any] = {"status": res.status, "error": res.error, "steps": res.steps,
                                   "params": params, "median_step_ms": run.median_ms,
                                   "steady_mean_step_ms": run.steady_mean_ms, "step_ms": run.step_ms,
                                   "trainable_params": res.trainable_params, "head_params": res.head_params,
                                   "total_params": res.total_params, "mergeable": res.mergeable,
                                   "merge_max_abs_diff": res.merge_max_abs_diff,
                                   "merge_error": res.extra.get("merge_error"),
                                   "latency_measured": measure, "call_seconds": run.call_seconds,
                                   "probe_gflops": statistics.median(probes), "probes_gflops": probes,
                                   "step_speeds_gflops": speeds, "load": run.load,
                                   "extra": {k: v for k, v in res.extra.items() if k != "merge_error"}}
            for stat in res.latency:
                row[f"latency_b{stat.batch_size}{'_merged' if stat.merged else ''}_ms"] = stat.p50_ms
            for stat in res.base_latency:
                base_latency.setdefault(stat.batch_size, stat.p50_ms)
            rows_out[name] = row
            if res.status != "complete":
                log(f"methods: {name} {res.status}: {(res.error or '').splitlines()[0] if res.error else ''}")
        reference = max(probe.readings)
        for row in rows_out.values():
            scaled = [ms * speed / reference for ms, speed in zip(row["step_ms"], row["step_speeds_gflops"],
                                                                 strict=True)]
            row["probe_scaled_median_step_ms"] = statistics.median(scaled) if scaled else None
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
                               "probe_reference_gflops": reference,
                               "base_latency_ms": base_latency, "rows": rows_out}
        headers = ["method", "train step ms", "probe-scaled", *[f"latency b{b} ms" for b in batch_sizes],
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
            rows.append([label, fmt(r["median_step_ms"], ".0f"), fmt(r["probe_scaled_median_step_ms"], ".0f"),
                         *[fmt(r.get(f"latency_b{b}_ms"), ".1f") + star for b in batch_sizes], *merged,
                         f"{trainable:,}" if trainable is not None else "-", fmt(share, ".2f"),
                         fmt(r["probe_gflops"], ".0f")])
        rows.append(["(base model)", "", "", *[fmt(base_latency.get(b), ".1f") for b in batch_sizes],
                     *["" for _ in batch_sizes], "", "", ""])
        note = (f"\nprobe: median 512^3 matmul GFLOP/s before the run and after each step (off the trainer's "
                f"clock); low = other processes were slowing the machine. probe-scaled: each step x its "
                f"adjacent probe speed / the fastest probe of this section ({reference:.0f} GFLOP/s), an "
                f"estimate of the step on a quiet machine")
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


def timed_run(task: Any, method: str, cfg: dict[str, Any], device: str, seed: int, precision: str,
              params: dict[str, Any] | None = None) -> dict[str, float]:
    """One training run of ``cfg['epochs']`` epochs (no early stop, no latency): its seconds per
    epoch, final dev metric and useful FLOP/s."""
    from recommender.training import LatencyConfig, train
    from recommender.types import Budget

    budget = Budget(max_epochs=float(cfg["epochs"]), patience=None, evals_per_epoch=1.0)
    r = train(task, method, params=params, budget=budget, device=device, seed=seed, precision=precision,
              latency=LatencyConfig(enabled=False))
    if r.status != "complete":
        raise RuntimeError(f"run {method} {params or ''} {precision} failed: {r.error}")
    return {"seed": seed, "epoch_seconds": r.train_seconds / max(r.epochs, 1e-9), "metric": r.best_metric,
            "metric_se": r.metric_se, "trainable_params": r.trainable_params,
            "useful_flops_per_second": (r.train_flops or 0) / max(r.train_seconds, 1e-9)}


def embeddings_section(bench: Any) -> None:
    """(f) full fine-tuning with the embedding table trained vs frozen, alternating runs."""
    from recommender.tasks import load_task

    cfg = bench.p["embeddings"]
    task = load_task(bench.p["task"]).subsample(cfg["n_train"], cfg["n_dev"], seed=0)
    variants = {"trained": {}, "frozen": {"freeze_embeddings": True}}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in variants}
    for seed in cfg["seeds"]:
        for name, extra in variants.items():
            log(f"embeddings: {name} seed {seed} {cfg['precision']} (load {load_avg()})")
            runs[name].append(timed_run(task, REFERENCE_METHOD, cfg, bench.device, seed, cfg["precision"], extra))
    t = {k: statistics.median(x["epoch_seconds"] for x in v) for k, v in runs.items()}
    m = {k: statistics.fmean(x["metric"] for x in v) for k, v in runs.items()}
    bench.out["embeddings"] = {
        "n_train": cfg["n_train"], "n_dev": cfg["n_dev"], "epochs": cfg["epochs"], "seeds": cfg["seeds"],
        "precision": cfg["precision"], "runs": runs, "speedup": t["trained"] / t["frozen"],
        "metric_diff_points": 100 * (m["frozen"] - m["trained"]),
        "trainable_params": {k: v[0]["trainable_params"] for k, v in runs.items()}}
    rows = [[k, fmt(runs[k][0]["trainable_params"], ",d"), fmt(t[k]), fmt(t["trained"] / t[k], ".2f"),
             fmt(m[k], ".3f"), fmt(100 * (m[k] - m["trained"]), "+.1f")] for k in variants]
    bench.tables.append(
        f"(f) full fine-tuning, embedding table trained vs frozen, on {bench.p['task']} ({cfg['n_train']} "
        f"train, {cfg['n_dev']} dev, {cfg['epochs']} epoch(s), {cfg['precision']}, seeds {cfg['seeds']}; "
        "metric = mean over seeds)\n"
        + table(["embeddings", "trainable", "s/epoch", "speed-up", "metric", "diff (pts)"], rows))


def precision_section(bench: Any) -> None:
    """(e) bf16 vs fp32: epoch time and quality per method, alternating runs."""
    from recommender.tasks import load_task
    from recommender.training.precision import cpu_supports_bf16

    cfg = bench.p["precision"]
    if bench.device == "cpu" and not cpu_supports_bf16():
        bench.out["precision"] = {"skipped": "this CPU has no native bf16"}
        bench.tables.append("(e) precision: skipped, this CPU has no native bf16")
        return
    task = load_task(bench.p["task"]).subsample(cfg["n_train"], cfg["n_dev"], seed=0)
    n = int(bench.p["matmul"]["n"])
    peaks = {p: [] for p in ("fp32", "bf16")}  # type: dict[str, list[float]]
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    for method in cfg["methods"]:
        for seed in cfg["seeds"]:
            for prec in ("fp32", "bf16"):
                peaks[prec].append(matmul_gflops(n, 0.5, prec))
                log(f"precision: {method} seed {seed} {prec} (load {load_avg()})")
                runs.setdefault(method, {}).setdefault(prec, []).append(
                    timed_run(task, method, cfg, bench.device, seed, prec))
    peak = {p: statistics.median(v) * 1e9 for p, v in peaks.items()}
    rows, out = [], {}
    for method, by in runs.items():
        t32 = statistics.median(x["epoch_seconds"] for x in by["fp32"])
        t16 = statistics.median(x["epoch_seconds"] for x in by["bf16"])
        m32 = statistics.fmean(x["metric"] for x in by["fp32"])
        m16 = statistics.fmean(x["metric"] for x in by["bf16"])
        f32 = statistics.median(x["useful_flops_per_second"] for x in by["fp32"]) / peak["fp32"]
        f16 = statistics.median(x["useful_flops_per_second"] for x in by["bf16"]) / peak["bf16"]
        out[method] = {"runs": by, "epoch_seconds_fp32": t32, "epoch_seconds_bf16": t16,
                       "speedup": t32 / t16, "metric_fp32": m32, "metric_bf16": m16,
                       "metric_diff_points": 100 * (m16 - m32), "within_one_point": abs(m16 - m32) <= 0.01,
                       "flops_vs_peak_fp32": f32, "flops_vs_peak_bf16": f16}
        rows.append([method, fmt(t32), fmt(t16), fmt(t32 / t16, ".2f"), fmt(m32, ".3f"), fmt(m16, ".3f"),
                     fmt(100 * (m16 - m32), "+.1f"), fmt(f32, ".2f"), fmt(f16, ".2f")])
    bench.out["precision"] = {"n_train": cfg["n_train"], "n_dev": cfg["n_dev"], "epochs": cfg["epochs"],
                              "seeds": cfg["seeds"], "matmul_peak_gflops": {k: v / 1e9 for k, v in peak.items()},
                              "methods": out}
    headers = ["method", "fp32 s/epoch", "bf16 s/epoch", "speed-up", "fp32 metric", "bf16 metric",
               "diff (pts)", "FLOP/s / fp32 peak", "FLOP/s / bf16 peak"]
    bench.tables.append(
        f"(e) precision on {bench.p['task']} ({cfg['n_train']} train, {cfg['n_dev']} dev, {cfg['epochs']} "
        f"epoch(s), seeds {cfg['seeds']}; metric = mean over seeds; matmul peak fp32 "
        f"{peak['fp32'] / 1e9:.0f} / bf16 {peak['bf16'] / 1e9:.0f} GFLOP/s)\n" + table(headers, rows))


def mergeable_by_design(name: str) -> bool:
    """The method implements a merge (adapter methods declare a ``not_mergeable_reason`` otherwise)."""
    from recommender.methods.base import get_method_class

    cls = get_method_class(name)
    return cls().merge_supported and getattr(cls, "not_mergeable_reason", None) is None


# -- main ------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    params = build_params(args)
    importlib.import_module("recommender")  # before torch: the library's OpenMP settings (passive waits)
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
            section = {"precision": precision_section, "embeddings": embeddings_section}.get(name)
            section(bench) if section else getattr(bench, name)()
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
    if args.only and args.out.exists():
        # a partial run (--only) updates its sections and keeps the others' last results
        previous = json.loads(args.out.read_text(encoding="utf-8"))
        kept = {k: v for k, v in previous.get("results", {}).items() if k not in bench.out}
        record["results"] = {**kept, **bench.out}
        record["sections_from_earlier_runs"] = {k: previous.get("created") for k in kept}
    args.out.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
