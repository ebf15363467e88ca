"""Numeric precision of training and serving: fp32, or bf16 autocast with fp32 master weights.

``auto`` takes bf16 where the hardware runs it natively -- a CUDA GPU with bf16 (fp16 with
gradient scaling on older GPUs), or a CPU with ``avx512_bf16`` / ``amx_bf16`` -- and fp32
everywhere else: on a CPU without native bf16, autocast is *slower* than fp32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path

from recommender.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True if the CPU computes bf16 natively (Linux: a flag in /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
            break
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def resolve_precision(precision: str, device: str) -> str:
    """The precision a run uses on ``device``: "fp32", "bf16" or (CUDA without bf16) "fp16"."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return "fp32"
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_bf16_supported():
            return "bf16"
        if precision == "bf16":
            raise ConfigError("precision='bf16' but this GPU has no bf16; use auto (fp16) or fp32")
        return "fp16"
    if cpu_supports_bf16():
        return "bf16"
    if precision == "bf16":
        raise ConfigError("precision='bf16' but this CPU has no native bf16 (avx512_bf16 / amx_bf16), "
                          "where it runs slower than fp32; use --precision fp32 or auto")
    return "fp32"


@contextlib.contextmanager
def autocast(device: str, precision: str) -> Iterator[None]:
    """Autocast to ``precision`` ("bf16"/"fp16") on ``device``; a no-op for fp32."""
    import torch

    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast("cuda" if device.startswith("cuda") else "cpu", dtype=dtype):
        yield
