"""Peak memory of a run: RSS sampled in a thread on CPU, the allocator's peak on CUDA."""

from __future__ import annotations

import threading


class PeakMemory:
    """Context manager measuring peak memory in MB while its block runs.

    >>> with PeakMemory("cpu") as mem:      # doctest: +SKIP
    ...     train()
    >>> mem.peak_mb                          # doctest: +SKIP
    """

    def __init__(self, device: str = "cpu", interval: float = 0.05) -> None:
        self.device = device
        self.interval = interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        import psutil

        process = psutil.Process()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, process.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.startswith("cuda"):
            import torch

            self.peak_mb = torch.cuda.max_memory_allocated() / 2**20
        else:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
