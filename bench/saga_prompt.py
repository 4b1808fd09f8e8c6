"""Point-prompt latency of SAGA (Sec. 3.5) on random Gaussians: ms per prompt, one CSV row appended to --out.

The timed call is the per-prompt work of ``SagaField.segment`` once the view's feature map (Eq. 10) is rendered and the
scene's prompt index is built: the gate S(s) at the prompt's scale, the query features at the prompt pixels, the gated
cosine of every Gaussian (Eq. 3) to the positive and negative queries, the threshold. ``--prompts`` distinct prompts
(3 positive and 3 negative random pixels, a random scale) are cycled, so nothing prompt-dependent is reused.

CPU:  python -m bench.saga_prompt --device cpu --out bench/results/saga_prompt.csv
GPU:  python -m bench.saga_prompt --device cuda --out bench/results/saga_prompt.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import pandas as pd
import torch

from stages.lib.latency import latency_ms
from stages.methods.saga.gate import ScaleGate
from stages.methods.saga.prompt import PointPrompt, PromptIndex


def random_prompts(count: int, size: int, gen: torch.Generator, n_pos: int = 3, n_neg: int = 3) -> list[PointPrompt]:
    """``count`` prompts with random pixel centres on a size x size view and random scales in [0, 1]."""
    def pts(n: int) -> list[tuple[float, float]]:
        return [(float(x) + 0.5, float(y) + 0.5) for x, y in torch.randint(0, size, (n, 2), generator=gen).tolist()]
    return [PointPrompt(0, pts(n_pos), float(torch.rand(1, generator=gen)), pts(n_neg)) for _ in range(count)]


def prompt_latency(n: int, dim: int, size: int, device: str, repeats: int = 100, warmup: int = 10,
                   prompts: int = 16, threshold: float = 0.75) -> dict[str, float]:
    """(median, p95) ms per prompt of ``PromptIndex.select`` on n random Gaussians, and the one-off index build."""
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(n, dim, generator=gen).to(device)
    fmap = torch.randn(size, size, dim, generator=gen).to(device)
    gate = ScaleGate(dim)
    with torch.no_grad():
        gate.linear.weight.copy_(torch.randn(dim, 1, generator=gen) * 3)
        gate.linear.bias.copy_(torch.randn(dim, generator=gen))
    gate = gate.to(device)
    queue = random_prompts(prompts, size, gen)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    index = PromptIndex(feats, gate.at)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    build = (time.perf_counter() - start) * 1e3
    with torch.no_grad():
        median, p95 = latency_ms(lambda i: index.select(fmap, queue[i % len(queue)], threshold), device, repeats,
                                 warmup)
    return {"latency_ms_median": median, "latency_ms_p95": p95, "index_build_ms": build}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--gaussians", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32, help="affinity feature dimension D (A.2: 32)")
    ap.add_argument("--size", type=int, default=512, help="feature-map side in pixels")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--note", default="", help="free text for the row (load, commit, ...)")
    ap.add_argument("--out", type=Path, required=True, help="CSV to append the row to")
    args = ap.parse_args()

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    row = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), "device": name,
           "torch": torch.__version__, "threads": torch.get_num_threads(), "gaussians": args.gaussians,
           "dim": args.dim, "size": args.size, "repeats": args.repeats,
           **prompt_latency(args.gaussians, args.dim, args.size, args.device, args.repeats, args.warmup),
           "load_1min": os.getloadavg()[0], "note": args.note}
    print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([row]).to_csv(args.out, mode="a", header=not args.out.exists(), index=False)


if __name__ == "__main__":
    main()
