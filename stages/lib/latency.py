"""Wall-clock latency of a call on CPU or GPU: synchronised, warm-up calls dropped, median and 95th percentile."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch


def latency_ms(run: Callable[[int], Any], device: str | torch.device, repeats: int = 200,
               warmup: int = 20) -> tuple[float, float]:
    """(median, p95) milliseconds of ``run(i)`` over ``repeats`` calls after ``warmup`` calls, CUDA-synchronised."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + repeats):
        sync()
        start = time.perf_counter()
        run(i)
        sync()
        times.append(time.perf_counter() - start)
    ms = np.array(times[warmup:]) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 95))
