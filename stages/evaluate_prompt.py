"""Promptable-segmentation evaluation stage (SAGA Tables 1-2 layout): NVOS and SPIn-NeRF protocols, on the dataset's
own scribbles / masks when the scene has NVOS or SPIn-NeRF annotations, else from its ground-truth instances; point
prompts on a reference train view, IoU and pixel accuracy of the rendered mask on each scored view
(``stages.lib.promptable`` defines the protocols, ``stages.methods.saga.evaluation`` how objects, views, scales and
prompts are chosen). ``protocols`` applies to scenes without annotations. On those, NVOS is scored on two target
views per object, ``nvos_nearest`` and ``nvos_largest``; ``nvos`` is the one ``nvos_target`` names.

Table: one mean row per protocol variant (``nvos``, ``nvos_nearest``, ``nvos_largest``, ``spin``), then one row per
scored (object, target view) with its category (synthetic scenes), reference and target view, the angle between their
optical axes (degrees), precision and recall (%).

Parameters (JSON): the ``PromptEvalConfig`` fields (protocols, num_positive, num_negative, threshold, min_area,
min_instance, max_objects, seed, nvos_target).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.scene import load_scene
from stages.lib.store import StoreError, read_store, write_store
from stages.lib.tables import write_csv_atomic
from stages.methods.saga.evaluation import PromptEvalConfig, evaluate_prompts, protocol_summary
from stages.methods.saga.field import SagaField

log = logging.getLogger(__name__)
PERCENT = 100.0


def main(args: argparse.Namespace) -> None:
    cfg = config_from_params(PromptEvalConfig, args.params, "evaluate_prompt")
    device = pick_device(args.device)
    scene = load_scene(args.scene)
    knots = read_store("mask_scales", args.mask_scales).load("scale_knots")
    rows = evaluate_prompts(SagaField.load(args.gaussians, device), scene, knots, cfg)
    if not rows:
        raise StoreError(f"{args.scene}: no prompt annotations and no object seen by >= {cfg.min_area} pixels in a "
                         f"train and a test view")
    summary = protocol_summary(rows, cfg.nvos_target)
    table = pd.DataFrame(rows)
    with write_store("prompt_metrics", args.out, "evaluate_prompt", args.params,
                     {"scene": args.scene, "gaussians": args.gaussians, "mask_scales": args.mask_scales}) as w:
        for name in ("iou", "accuracy", "view_angle", "precision", "recall"):
            w.write(name, table[name].to_numpy(np.float32))
        for name in ("instance", "reference_view", "target_view"):
            w.write(name, table[name].to_numpy(np.int32))
        w.attrs.update(protocols=list(table["protocol"]), summary=summary)
    scene_attrs = read_store("scene", args.scene).attrs
    out = pd.concat([pd.DataFrame([{"protocol": p, "object": "mean", "mIoU": s["mIoU"] * PERCENT,
                                    "mAcc": s["mAcc"] * PERCENT, "objects": s["objects"]}
                                   for p, s in summary.items()]), object_rows(table, scene_attrs)],
                    ignore_index=True).round(2)
    out.insert(0, "scene", scene_attrs["scene"])
    out.insert(0, "dataset", scene_attrs["dataset"])
    write_csv_atomic(out, Path(args.table))
    for p, s in summary.items():
        log.info("%s protocol: mIoU %.2f, mAcc %.2f over %d objects", p, s["mIoU"] * PERCENT, s["mAcc"] * PERCENT,
                 s["objects"])


def object_rows(table: pd.DataFrame, scene_attrs: dict) -> pd.DataFrame:
    """The table's per-(object, target view) rows; ``category`` from the synthetic scene's instance categories."""
    inst_cat, names = scene_attrs.get("instance_categories"), scene_attrs.get("categories", [])
    category = [names[inst_cat[i]] if inst_cat is not None and 0 <= inst_cat[i] < len(names) else ""
                for i in table["instance"]]
    return pd.DataFrame({"protocol": table["protocol"], "object": table["object"], "mIoU": table["iou"] * PERCENT,
                         "mAcc": table["accuracy"] * PERCENT, "objects": 1, "category": category,
                         "reference_view": table["reference_view"], "target_view": table["target_view"],
                         "view_angle": table["view_angle"], "precision": table["precision"] * PERCENT,
                         "recall": table["recall"] * PERCENT})


def parser() -> argparse.ArgumentParser:
    p = stage_parser("evaluate_prompt", __doc__)
    p.add_argument("--scene", required=True, help="scene store with gt_instance")
    p.add_argument("--gaussians", required=True, help="feature_gaussians store trained with the saga objective")
    p.add_argument("--mask-scales", dest="mask_scales", required=True, help="mask_scales store (the scale normaliser)")
    p.add_argument("--out", required=True, help="output prompt_metrics store (.zarr)")
    p.add_argument("--table", required=True, help="CSV table: mean row per protocol, then one row per object")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
