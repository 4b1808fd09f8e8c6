"""Point-prompt 3D segmentation of a SAGA field (Sec. 3.5): positive / negative pixels on a view and a scale in
[0, 1] select Gaussians; their mask is rendered on a target view and written as a PNG.

Example: python -m stages.prompt --gaussians results/synthetic/demo_room/train_features/saga_demo.zarr \
  --scene results/synthetic/demo_room/scene.zarr --view 0 --positive 30,20 --negative 5,5 --scale 0.5 \
  --target-view 8 --out selection.png
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
from PIL import Image

from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.scene import load_scene
from stages.methods.saga.evaluation import camera
from stages.methods.saga.field import SagaField
from stages.methods.saga.prompt import PointPrompt, PromptError

log = logging.getLogger(__name__)


def point(text: str) -> tuple[float, float]:
    """``x,y`` in pixels."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"a point is x,y in pixels, got {text!r}") from exc
    return x, y


def main(args: argparse.Namespace) -> None:
    scene = load_scene(args.scene)
    saga = SagaField.load(args.gaussians, pick_device(args.device))
    prompt = PointPrompt(args.view, args.positive, args.scale, args.negative)
    prompt.check(scene.width, scene.height, scene.num_views)
    if not 0 <= args.target_view < scene.num_views:
        raise PromptError(f"target view {args.target_view} is not a view of {args.scene} (0..{scene.num_views - 1})")
    start = time.perf_counter()
    selected = saga.segment(prompt, camera(scene, args.view), args.threshold)
    log.info("selected %d of %d Gaussians in %.1f ms", int(selected.sum()), len(saga),
             (time.perf_counter() - start) * 1e3)
    mask = saga.render_selection(selected, camera(scene, args.target_view)).cpu().numpy()
    Image.fromarray((mask * 255).astype(np.uint8)).save(args.out)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("prompt", __doc__)
    p.add_argument("--gaussians", required=True, help="feature_gaussians store trained with the saga objective")
    p.add_argument("--scene", required=True, help="scene store (cameras)")
    p.add_argument("--view", type=int, required=True, help="the view the points are given on")
    p.add_argument("--positive", type=point, nargs="+", required=True, help="x,y pixels on the target")
    p.add_argument("--negative", type=point, nargs="*", default=[], help="x,y pixels off the target")
    p.add_argument("--scale", type=float, default=0.5, help="normalised scale in [0, 1] (0 finest, 1 coarsest)")
    p.add_argument("--threshold", type=float, default=0.75, help="cosine-similarity threshold")
    p.add_argument("--target-view", type=int, required=True, help="view to render the selection on")
    p.add_argument("--out", required=True, help="output PNG (selection mask)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
