"""Describe and calibrate the machine a run happens on."""

from __future__ import annotations

import os
import platform
import time
from functools import lru_cache
from importlib import metadata
from typing import Any

from recommender.types import Environment

PACKAGES = ("torch", "transformers", "adapters", "optuna", "scikit-learn", "datasets", "numpy")


def resolve_device(device: str = "auto") -> str:
    """``auto`` picks CUDA when available, else CPU; an explicit ``cuda`` without a GPU fails."""
    import torch

    from recommender.errors import ConfigError

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device='cuda' was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"device={device!r}; expected 'auto', 'cpu' or 'cuda[:N]'")
    return device


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _package_versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def cpu_load() -> float | None:
    """1-minute load average divided by the core count (1.0 = every core busy)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return None


def _matmul_gflops(device: str, dtype: Any) -> float:
    import torch

    n = 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.25:
        a @ b
        repeats += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


@lru_cache(maxsize=4)
def calibrate(device: str = "cpu") -> dict[str, float]:
    """A short speed reading: matmul GFLOP/s on ``device`` in fp32 (``matmul_gflops``) and,
    where ``auto`` precision trains in bf16 or fp16, in that precision too
    (``matmul_gflops_bf16`` / ``_fp16``); about 0.3 s each.

    Stored with every run so costs can be converted between machines
    (:func:`~recommender.metamodel.calibration.peak_gflops`).
    """
    import torch

    from recommender.training.precision import resolve_precision

    out = {"matmul_gflops": _matmul_gflops(device, torch.float32)}
    low = resolve_precision("auto", device)
    if low != "fp32":
        out[f"matmul_gflops_{low}"] = _matmul_gflops(device, torch.bfloat16 if low == "bf16" else torch.float16)
    return out


def describe_environment(device: str = "cpu", *, with_calibration: bool = True) -> Environment:
    import torch

    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    return Environment(
        device=device, cpu=_cpu_name(), gpu=gpu, threads=torch.get_num_threads(),
        platform=platform.platform(), python=platform.python_version(),
        packages=_package_versions(),
        calibration=calibrate(device) if with_calibration else {}, cpu_load=cpu_load(),
    )
