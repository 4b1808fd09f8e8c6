"""Feature-field training stage: per-Gaussian features learnt from 2D masks into a ``feature_gaussians`` store.

Parameters (JSON): ``objective`` (a registered ``objective`` name, default ``openins_instance``),
``objective_params`` (keyword arguments of that objective's factory), ``level`` (a mask level named in the masks
store's ``levels``; may be omitted when the store has one level) and the ``FeatureFieldConfig`` fields. Only train
views are used. Optional inputs (``--codebook``, ``--tracks``, ``--features``: the stores the variant's ``after:``
names besides ``train_gs`` and ``masks``) are passed to the objective's factory as keyword arguments (their paths).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from stages.lib.checkpoints import checkpoint_path, run_fingerprint
from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.feature_field import (
    FeatureFieldConfig,
    save_feature_gaussians,
    train_feature_field,
)
from stages.lib.gaussians import load_gaussians
from stages.lib.objective_state import flatten_state, module_state
from stages.lib.scene import SceneData, load_scene
from stages.lib.stage_cost import peak_memory
from stages.lib.store import StoreError, read_store
from stages.methods import lookup

log = logging.getLogger(__name__)
STAGE_KEYS = ("objective", "objective_params", "level")
OPTIONAL_INPUTS = ("codebook", "tracks", "features", "mask_scales")


def load_level_labels(path: str | Path, level: str | None, scene: SceneData) -> tuple[np.ndarray, str]:
    """The label maps [V,H,W] of one mask level, checked against the scene's views and image size."""
    store = read_store("masks", path)
    levels = list(store.attrs["levels"])
    if level is None:
        if len(levels) != 1:
            raise StoreError(f"{path}: has mask levels {levels}; choose one with the 'level' parameter")
        level = levels[0]
    if level not in levels:
        raise StoreError(f"{path}: no mask level {level!r}; it has {levels}")
    v, _, h, w = store["labels"].shape
    expected = (scene.num_views, scene.height, scene.width)
    if (v, h, w) != expected:
        raise StoreError(f"{path}: labels cover {v} views of {h}x{w} pixels but the scene {scene.source} has "
                         f"{expected[0]} views of {expected[1]}x{expected[2]}")
    return np.asarray(store["labels"][:, levels.index(level)]), level


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    name = params.get("objective", "openins_instance")
    optional = {k: getattr(args, k) for k in OPTIONAL_INPUTS if getattr(args, k) is not None}
    objective = lookup("objective", name)(**params.get("objective_params", {}), **optional)
    cfg = FeatureFieldConfig.from_dict({k: v for k, v in params.items() if k not in STAGE_KEYS})
    device = pick_device(args.device)
    scene = load_scene(args.scene)
    gaussians, gs_attrs = load_gaussians(args.gaussians)
    labels, level = load_level_labels(args.masks, params.get("level"), scene)
    inputs = {"scene": args.scene, "gaussians": args.gaussians, "masks": args.masks, **optional}
    out = Path(args.out)
    ckpt = checkpoint_path(out)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = train_feature_field(gaussians, scene, labels, objective, cfg, device, checkpoint=ckpt,
                                 fingerprint=run_fingerprint(params, inputs))
    seconds = time.perf_counter() - start
    log.info("trained %d-d features of %d Gaussians in %.1f s", cfg.feature_dim, len(result["means"]), seconds)
    state, layout = flatten_state(module_state(objective))
    if layout:  # learnt parameters of the objective (e.g. decoders) are saved with the field
        result = {**result, "objective_state": state}
    save_feature_gaussians(out, result, "train_features", params, inputs,
                           {"sh_degree": gs_attrs["sh_degree"], "background": gs_attrs["background"],
                            "iterations": cfg.iterations, "objective": name, "level": level,
                            "geometry": cfg.geometry, "train_seconds": seconds, **peak_memory(), "device": str(device),
                            **({"objective_state": layout} if layout else {})})
    ckpt.unlink(missing_ok=True)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("train_features", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--gaussians", required=True, help="input gaussians store (RGB-trained)")
    p.add_argument("--masks", required=True, help="input masks store")
    p.add_argument("--codebook", default=None, help="codebook store (optional: after: codebook)")
    p.add_argument("--tracks", default=None, help="tracks store (optional: after: track)")
    p.add_argument("--features", default=None, help="features store (optional: after: features)")
    p.add_argument("--mask-scales", dest="mask_scales", default=None,
                   help="mask_scales store (optional: after: mask_scales)")
    p.add_argument("--out", required=True, help="output feature_gaussians store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
