"""Throughput of the 2D prior models on real architectures with RANDOM weights (no checkpoints needed).

Measures SAM image-encoder images/s (fp32, and bf16 autocast on CUDA), SAM automatic-mask and three-level-mask seconds
per image, SAM2.1 video propagation frames/s (tiny and large) and CLIP crop-embedding crops/s (both registry
backbones). Random weights make the masks garbage, so the mask benchmarks disable the quality thresholds: every
decoded mask goes through the post-processing, which is at least the work real weights cause. Rows are appended
to a CSV with columns date, device, model, metric, value, unit, notes.

  python -m bench.priors                                 # GPU, full sizes -> bench/results/priors.csv
  python -m bench.priors --quick --out /tmp/priors.csv   # smoke test (CPU is fine): tiny sizes, 1 iteration
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import logging
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from stages.lib.weights import load_registry

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "priors.csv"
COLUMNS = ["date", "device", "model", "metric", "value", "unit", "notes"]
PARTS = ("sam_encoder", "sam_masks", "sam2", "clip")
RANDOM_NOTE = "random weights"


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one run (full GPU run or quick smoke test)."""

    sam_model: str = "sam_vit_h"
    encoder_batch: int = 4
    image_hw: tuple[int, int] = (768, 1024)
    points_per_side: int = 32
    sam2_models: tuple[str, ...] = ("sam2.1_hiera_tiny", "sam2.1_hiera_large")
    sam2_image_size: int | None = None  # None: the config's 1024
    video_frames: int = 32
    video_hw: tuple[int, int] = (540, 960)
    video_objects: int = 3
    clip_models: tuple[str, ...] = ("clip_vit_b16_laion2b", "clip_convnext_base")
    clip_tiny: bool = False
    crops: int = 256
    crop_size: int = 224
    iters: int = 5
    warmup: int = 1


QUICK = Sizes(sam_model="sam_vit_b", encoder_batch=1, image_hw=(48, 64), points_per_side=4, sam2_image_size=128,
              video_frames=3, video_hw=(48, 64), video_objects=2, clip_tiny=True, crops=4, iters=1, warmup=0)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], object], device: torch.device, iters: int, warmup: int) -> float:
    """Mean wall seconds of ``fn`` over ``iters`` calls after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def precisions(device: torch.device) -> tuple[tuple[str, torch.dtype | None], ...]:
    """fp32, plus bf16 autocast on CUDA (CPU bf16 autocast is an order of magnitude slower, not worth timing)."""
    return (("fp32", None), ("bf16", torch.bfloat16)) if device.type == "cuda" else (("fp32", None),)


def encode_images(encoder: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> None:
    with torch.inference_mode(), autocast(x.device, dtype):
        encoder(x)


def random_image(hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (*hw, 3), dtype=np.uint8)


Row = tuple[str, str, float, str, str]  # model, metric, value, unit, notes


def bench_sam(sizes: Sizes, device: torch.device, parts: set[str], rng: np.random.Generator) -> Iterator[Row]:
    """SAM image encoder images/s and automatic / level mask seconds per image."""
    from stages.lib.models.sam_masks import (
        build_sam,
        generate_level_masks,
        generate_masks,
    )

    name = sizes.sam_model
    sam = build_sam(load_registry()[name].arch, None, device, random_weights=True)
    if "sam_encoder" in parts:
        size = sam.image_encoder.img_size
        x = torch.randn(sizes.encoder_batch, 3, size, size, device=device)
        for label, dtype in precisions(device):
            s = seconds_per_call(partial(encode_images, sam.image_encoder, x, dtype), device, sizes.iters,
                                 sizes.warmup)
            yield (name, f"encoder_images_per_s_{label}", sizes.encoder_batch / s, "images/s",
                   f"batch {sizes.encoder_batch} at {size}x{size}; {RANDOM_NOTE}")
    if "sam_masks" in parts:
        image = random_image(sizes.image_hw, rng)
        params = {"points_per_side": sizes.points_per_side, "points_per_batch": 64}
        note = (f"{sizes.points_per_side}x{sizes.points_per_side} points, {sizes.image_hw[1]}x{sizes.image_hw[0]} "
                f"image, fp32, incl. image encoder; {RANDOM_NOTE}: SAM's default IoU/stability thresholds drop "
                f"most garbage masks, so per-mask post-processing (a real image keeps ~100) is not included")
        for metric, fn in (("automatic_masks_s_per_image", generate_masks),
                           ("level_masks_s_per_image", generate_level_masks)):
            s = seconds_per_call(partial(fn, sam, image, params), device, sizes.iters, sizes.warmup)
            yield name, metric, s, "s/image", note


def seed_masks(n: int, hw: tuple[int, int]) -> dict[int, np.ndarray]:
    """``n`` disjoint vertical-band masks on the first frame."""
    cols = np.arange(hw[1]) * n // hw[1]
    return {i: np.broadcast_to(cols == i, hw).copy() for i in range(n)}


def bench_sam2(sizes: Sizes, device: torch.device, rng: np.random.Generator) -> Iterator[Row]:
    """SAM2.1 video propagation frames/s (forward and backward pass from a seed frame, as the track stage runs)."""
    from stages.lib.models.sam2_tracker import build_sam2_video, propagate_masks, propagate_staged, staged_video

    frames = np.stack([random_image(sizes.video_hw, rng) for _ in range(sizes.video_frames)])
    seeds = seed_masks(sizes.video_objects, sizes.video_hw)
    registry = load_registry()
    for name in sizes.sam2_models:
        predictor = build_sam2_video(registry[name].arch, None, device, random_weights=True,
                                     image_size=sizes.sam2_image_size)
        s = seconds_per_call(partial(propagate_masks, predictor, frames, seeds), device, sizes.iters, sizes.warmup)
        setup = (f"{sizes.video_frames} frames {sizes.video_hw[1]}x{sizes.video_hw[0]}, {sizes.video_objects} objects, "
                 f"model input {sizes.sam2_image_size or 1024}, {'bf16' if device.type == 'cuda' else 'fp32'}")
        yield (name, "video_frames_per_s", sizes.video_frames / s, "frames/s",
               f"{setup}, incl. JPEG staging and frame loading (CPU); {RANDOM_NOTE}")
        labels = np.full(frames.shape[:3], -1, dtype=np.int32)
        with staged_video(predictor, frames) as state:
            def propagate() -> None:
                predictor.reset_state(state)
                propagate_staged(predictor, state, seeds, 0, labels)
            s = seconds_per_call(propagate, device, sizes.iters, sizes.warmup)
        yield (name, "propagation_frames_per_s", sizes.video_frames / s, "frames/s",
               f"{setup}, propagation only (frames already staged); {RANDOM_NOTE}")


def bench_clip(sizes: Sizes, device: torch.device, rng: np.random.Generator) -> Iterator[Row]:
    """CLIP crop embeddings per second at batch ``sizes.crops``."""
    from stages.lib.models.clip_features import build_clip

    crops = rng.integers(0, 256, (sizes.crops, sizes.crop_size, sizes.crop_size, 3), dtype=np.uint8)
    registry = load_registry()
    for name in sizes.clip_models:
        clip = build_clip(registry[name].arch, None, device, random_weights=True, tiny=sizes.clip_tiny)
        s = seconds_per_call(partial(clip.encode_crops, crops, batch_size=sizes.crops), device, sizes.iters,
                             sizes.warmup)
        note = (f"batch {sizes.crops} crops {sizes.crop_size}x{sizes.crop_size}"
                f"{', tiny towers' if sizes.clip_tiny else ''}; {RANDOM_NOTE}")
        yield name, "crops_per_s", sizes.crops / s, "crops/s", note


def run(sizes: Sizes, device: torch.device, parts: set[str]) -> Iterator[Row]:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    if parts & {"sam_encoder", "sam_masks"}:
        yield from bench_sam(sizes, device, parts, rng)
    if "sam2" in parts:
        yield from bench_sam2(sizes, device, rng)
    if "clip" in parts:
        yield from bench_clip(sizes, device, rng)


def append_row(out: Path, row: dict[str, object]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists() or out.stat().st_size == 0
    with open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 1 iteration (smoke test; needs --out)")
    p.add_argument("--out", type=Path, default=None, help=f"CSV to append to (full runs default: {DEFAULT_OUT})")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--iters", type=int, default=None, help="timed calls per measurement (default 5)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        p.error(f"unknown parts {sorted(parts - set(PARTS))}")
    if args.quick and args.out is None:
        p.error("--quick runs must name --out (quick numbers do not belong in bench/results)")
    out = args.out or DEFAULT_OUT
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    notes_suffix = "; quick smoke-test sizes" if args.quick else ""
    sizes = QUICK if args.quick else Sizes()
    if args.iters:
        sizes = replace(sizes, iters=args.iters)
    for model, metric, value, unit, notes in run(sizes, device, parts):
        row = {"date": dt.date.today().isoformat(), "device": device_name, "model": model, "metric": metric,
               "value": f"{value:.4g}", "unit": unit, "notes": notes + notes_suffix}
        append_row(out, row)
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
