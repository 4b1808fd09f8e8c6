"""Speed of the training loss's SSIM term (forward + backward of 1 - SSIM on one 800x800 RGB render) for each way
of applying the window (``image_metrics.ssim``'s ``method``), eager and compiled by ``torch.compile``. Rows are
printed as they come and appended to ``--out``.

    python -m bench.ssim_speed --out bench/results/ssim_speed.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import time
from pathlib import Path

import pandas as pd
import torch

from stages.lib.image_metrics import ssim

RUNS = (("conv", False), ("fft", False), ("shifted", True), ("separable", False), ("shifted", False), ("fft", True),
        ("conv", True))


def time_ssim(method: str, compiled: bool, size: int, device: torch.device, repeats: int) -> dict[str, float]:
    """Median milliseconds of one forward + backward, and the seconds of the first call (compilation)."""
    fn = functools.partial(ssim, method=method)
    if compiled:
        fn = torch.compile(fn, dynamic=False, fullgraph=True)
    g = torch.Generator(device="cpu").manual_seed(0)
    pred = torch.rand(1, size, size, 3, generator=g).to(device).requires_grad_()
    target = torch.rand(1, size, size, 3, generator=g).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(repeats + 5):
        sync()
        t0 = time.perf_counter()
        (1 - fn(pred, target)).backward()
        sync()
        times.append(time.perf_counter() - t0)
    return {"first_call_seconds": times[0], "ms_forward_backward": 1e3 * float(torch.tensor(times[5:]).median())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    earlier = pd.read_csv(args.out) if Path(args.out).exists() else pd.DataFrame()
    rows = []
    for method, compiled in RUNS:
        row = {"date": dt.date.today().isoformat(), "device": name, "torch": torch.__version__, "size": args.size,
               "method": method, "compiled": compiled}
        try:
            row.update(time_ssim(method, compiled, args.size, device, args.repeats))
        except Exception as exc:  # a failing compile is a result of this benchmark, not the end of it
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(row, flush=True)
        rows.append(row)
        pd.concat([earlier, pd.DataFrame(rows)], ignore_index=True).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
