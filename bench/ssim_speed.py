"""Speed of the training loss's SSIM term (forward + backward of 1 - SSIM on one 800x800 RGB render): the 2D window
against the separable one, each with cuDNN's algorithm autotuning off and on. Rows appended to ``--out``.

    python -m bench.ssim_speed --out bench/results/ssim_speed.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import pandas as pd
import torch

from stages.lib.image_metrics import ssim


def time_ssim(separable: bool, autotune: bool, size: int, device: torch.device, repeats: int) -> float:
    """Median milliseconds of one forward + backward."""
    torch.backends.cudnn.benchmark = autotune
    g = torch.Generator(device="cpu").manual_seed(0)
    pred = torch.rand(1, size, size, 3, generator=g).to(device).requires_grad_()
    target = torch.rand(1, size, size, 3, generator=g).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(repeats + 5):
        sync()
        t0 = time.perf_counter()
        (1 - ssim(pred, target, separable=separable)).backward()
        sync()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return 1e3 * float(torch.tensor(times).median())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=800)
    ap.add_argument("--repeats", type=int, default=100)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    rows = [{"date": dt.date.today().isoformat(), "device": name, "torch": torch.__version__, "size": args.size,
             "separable": sep, "cudnn_benchmark": tune,
             "ms_forward_backward": time_ssim(sep, tune, args.size, device, args.repeats)}
            for sep in (False, True) for tune in (False, True)]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    table.to_csv(args.out, mode="a", header=not pd.io.common.file_exists(args.out), index=False)


if __name__ == "__main__":
    main()
