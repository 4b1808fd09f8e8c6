"""Instance evaluation stage: class-agnostic 3D instance segmentation by Gaga's protocol (Proto-SaGa Tables 1, 3, 4).

Every inference scheme the variant lists (``schemes``: {registered ``instance_inference`` name: its parameters})
labels the test views; each is scored against the scene's ``gt_instance`` by Hungarian-matched instance mIoU,
precision and recall at IoU 0.5 and boundary mIoU (``stages.lib.instance_metrics``). With a ``tracks`` input (the
associated masks of a memory bank, or SAM2 / oracle tracks) the consistent ids of the train-view masks are scored the
same way against the train views' ground truth (Table 3). Writes an ``instance_metrics`` store and a CSV table.
Parameters: ``schemes``, ``primary`` (the scheme the method reports, default the first), ``level`` (masks level of
the tracks, default 0), ``boundary`` (mBIoU, default true).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.cli import StageCall, pick_device, run_stage, stage_inputs, stage_parser
from stages.lib.instance_metrics import instance_scores
from stages.lib.mask_store import load_masks
from stages.lib.store import StoreError, read_store, write_store
from stages.lib.tables import write_csv_atomic
from stages.methods import lookup

log = logging.getLogger(__name__)
INPUTS = ["scene", "gaussians", "codebook", "masks", "tracks"]
STAGE_KEYS = ("schemes", "primary", "level", "boundary")
COLUMNS = ("mIoU", "precision", "recall", "mBIoU")
PERCENT = 100.0


def associated_scores(masks_path: str, tracks_path: str, scene, level: int, boundary: bool) -> dict[str, float]:
    """Table 3: the train-view masks' consistent ids scored against the train views' GT instances."""
    from stages.methods.protosaga.codebook import consistent_maps

    masks = load_masks(masks_path, (scene.sizes["V"], scene.sizes["H"], scene.sizes["W"]))
    track_id = read_store("tracks", tracks_path).load("track_id")
    if len(track_id) != masks.num_masks:
        raise StoreError(f"{tracks_path}: {len(track_id)} track ids but {masks_path} lists {masks.num_masks} masks")
    train = np.nonzero(~scene.load("is_test"))[0]
    pred = consistent_maps(masks, track_id, train, level)
    return instance_scores(pred, scene.load("gt_instance")[train], boundary).as_dict()


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    unknown = set(params) - set(STAGE_KEYS)
    if unknown:
        raise ValueError(f"unknown evaluate_instances parameters {sorted(unknown)}; known: {list(STAGE_KEYS)}")
    device = pick_device(args.device)
    scene = read_store("scene", args.scene)
    if "gt_instance" not in scene:
        raise StoreError(f"{args.scene}: no 'gt_instance' ground truth to evaluate against")
    inputs = stage_inputs(args, INPUTS)
    boundary = bool(params.get("boundary", True))
    test = np.nonzero(scene.load("is_test"))[0]
    gt = scene.load("gt_instance")[test]
    rows = []
    schemes = params.get("schemes", {})
    primary = params.get("primary", next(iter(schemes), ""))
    if schemes and primary not in schemes:
        raise ValueError(f"evaluate_instances: primary scheme {primary!r} is not among the schemes {sorted(schemes)}")
    for name, options in schemes.items():
        pred = lookup("instance_inference", name)(
            StageCall("evaluate_instances", inputs, params, dict(options or {}), device, Path(args.out)), test)
        rows.append({"protocol": "test", "scheme": name, "primary": name == primary,
                     **instance_scores(pred, gt, boundary).as_dict()})
        log.info("%s: %s", name, {k: round(v, 4) for k, v in rows[-1].items() if k in COLUMNS})
    if args.tracks is not None:
        if args.masks is None:
            raise ValueError("evaluate_instances: scoring the associated masks needs --masks with --tracks")
        rows.append({"protocol": "associated", "scheme": "train-view masks", "primary": False,
                     **associated_scores(args.masks, args.tracks, scene, int(params.get("level", 0)), boundary)})
    if not rows:
        raise ValueError("evaluate_instances: no schemes and no tracks: nothing to evaluate")
    table = pd.DataFrame(rows)
    tracks_attrs = read_store("tracks", args.tracks).attrs if args.tracks else {}
    with write_store("instance_metrics", args.out, "evaluate_instances", params, inputs) as w:
        w.write("scores", table[list(COLUMNS)].to_numpy(np.float32))
        w.attrs.update(rows=table[["protocol", "scheme"]].to_dict("records"), columns=list(COLUMNS),
                       association=tracks_attrs.get("source", ""))
    table[list(COLUMNS)] = table[list(COLUMNS)] * PERCENT
    table.insert(0, "association", tracks_attrs.get("source", ""))
    table.insert(0, "scene", scene.attrs["scene"])
    table.insert(0, "dataset", scene.attrs["dataset"])
    write_csv_atomic(table.round(2), Path(args.table))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("evaluate_instances", __doc__)
    p.add_argument("--scene", required=True, help="scene store with gt_instance")
    p.add_argument("--gaussians", default=None, help="feature_gaussians store (after: train_features or pseudo_gt)")
    p.add_argument("--codebook", default=None, help="codebook store (the method's instances / prototypes)")
    p.add_argument("--masks", default=None, help="masks store (with --tracks: the associated masks)")
    p.add_argument("--tracks", default=None, help="tracks store: consistent ids of the masks (after: associate/track)")
    p.add_argument("--out", required=True, help="output instance_metrics store (.zarr)")
    p.add_argument("--table", required=True, help="CSV table: one row per scheme plus the associated masks")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
