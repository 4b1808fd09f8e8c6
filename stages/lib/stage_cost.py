"""Wall time and peak memory of a stage run: measured once around every stage (``stages.lib.cli.run_stage``), written
as one ``stage cost:`` line of JSON to the stage's log (Snakemake's ``log:`` file), and read back by the bench report
(``stages.lib.bench_cost``).

Peak RSS is the kernel's high-water mark of resident memory (``getrusage`` ``ru_maxrss``) of the stage's process and
of its largest waited-for child; peak GPU memory is PyTorch's ``max_memory_allocated`` summed over the devices this
process initialised (0 when it never touched CUDA; the caching allocator may reserve more than that).
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time
from contextlib import contextmanager
from typing import Iterator

import torch

MARKER = "stage cost: "
MB = 2.0**20


def peak_rss_mb() -> float:
    """The larger peak resident set of this process and of its largest terminated child, in MB (2^20 bytes); Linux
    reports ``ru_maxrss`` in KiB, macOS in bytes."""
    unit = 1.0 if sys.platform == "darwin" else 1024.0
    most = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return most * unit / MB


def peak_gpu_mb() -> float:
    """PyTorch's peak allocated CUDA memory of this process in MB, summed over the devices; 0 without CUDA (the call
    does not initialise CUDA)."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return 0.0
    return sum(torch.cuda.max_memory_allocated(d) for d in range(torch.cuda.device_count())) / MB


def peak_memory() -> dict[str, float]:
    """``{"peak_rss_mb": ..., "peak_gpu_mb": ...}`` so far in this process (for a store's attrs beside its seconds)."""
    return {"peak_rss_mb": round(peak_rss_mb(), 1), "peak_gpu_mb": round(peak_gpu_mb(), 1)}


@contextmanager
def logged_cost(log: logging.Logger, stage: str) -> Iterator[None]:
    """Log ``stage cost: {"stage", "wall_s", "peak_rss_mb", "peak_gpu_mb"}`` when the block ends (also on an error)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        log.info("%s%s", MARKER, json.dumps({"stage": stage, "wall_s": round(time.perf_counter() - start, 3),
                                              **peak_memory()}))


def read_stage_cost(log_path: str) -> dict[str, float] | None:
    """The last ``stage cost:`` record of a stage's log (``wall_s``, ``peak_rss_mb``, ``peak_gpu_mb``), None if the log
    is missing or holds none (a job that did not run through ``run_stage``, or a log from before the record)."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line for line in f if MARKER in line]
    except OSError:
        return None
    if not lines:
        return None
    record = json.loads(lines[-1].split(MARKER, 1)[1])
    return {k: float(record[k]) for k in ("wall_s", "peak_rss_mb", "peak_gpu_mb")}
