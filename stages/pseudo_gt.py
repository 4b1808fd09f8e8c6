"""Pseudo-ground-truth stage: refine features with L_p (OpenInsGaussian Eq. 7) against the codebook's rendering.

Every Gaussian's feature is replaced by its codebook leaf centre (unassigned Gaussians by zero); the rendering
of these quantised features is the pseudo ground truth M^c of a view, and the continuous features are trained
to reproduce it, |M^p - M^c|_1, with the geometry frozen. Parameters (JSON): ``objective`` (a registered
``objective`` name, default ``openins_pseudo_gt``; its factory gets ``target``, the view -> M^c callable),
``objective_params`` and the ``FeatureFieldConfig`` fields (``feature_dim`` comes from the input store and
``geometry`` is always ``frozen``).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stages.lib.checkpoints import checkpoint_path, run_fingerprint
from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.feature_field import (
    FeatureFieldConfig,
    ViewCameras,
    load_feature_gaussians,
    save_feature_gaussians,
    train_feature_field,
)
from stages.lib.scene import SceneData, load_scene
from stages.lib.stage_cost import peak_memory
from stages.lib.store import StoreError, read_store
from stages.methods import lookup

log = logging.getLogger(__name__)
OBJECTIVE_KEYS = ("objective", "objective_params")


def quantised_features(path: str | Path, num_gaussians: int, feature_dim: int, device: torch.device) -> Tensor:
    """Each Gaussian's leaf centre [N,D] from a codebook store (zero where unassigned), checked against them."""
    store = read_store("codebook", path)
    leaf = torch.from_numpy(store.load("leaf_id")).long().to(device)
    centres = torch.from_numpy(store.load("fine_centres")).to(device)
    if len(leaf) != num_gaussians or centres.shape[1] != feature_dim:
        raise StoreError(f"{path}: codebook of {len(leaf)} Gaussians with {centres.shape[1]}-d centres does not "
                         f"match the {num_gaussians} Gaussians with {feature_dim}-d features")
    return torch.where(leaf[:, None] >= 0, centres[leaf.clamp_min(0)], torch.zeros_like(centres[:1]))


def pseudo_gt_target(params: Mapping[str, Tensor], quantised: Tensor, scene: SceneData,
                     device: torch.device) -> Callable[[int], Tensor]:
    """M^c of Eq. 7: the rendering [H,W,D] of one view with quantised features (fixed, as the geometry is frozen)."""
    cameras = ViewCameras(scene, device)

    @torch.no_grad()
    def target(view: int) -> Tensor:
        return cameras.render(params, quantised, [view])[0][0]

    return target


def config(params: Mapping[str, Any], feature_dim: int) -> FeatureFieldConfig:
    """The feature-field config of this stage; ``feature_dim`` and ``geometry`` are fixed by the stage."""
    fixed = {"feature_dim": feature_dim, "geometry": "frozen"}
    clash = {k: params[k] for k in fixed if k in params and params[k] != fixed[k]}
    if clash:
        raise ValueError(f"pseudo_gt fixes {fixed}; parameters ask for {clash}")
    return FeatureFieldConfig.from_dict({**params, **fixed})


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    scene = load_scene(args.scene)
    params, attrs = load_feature_gaussians(args.gaussians, device)
    features = params["features"]
    cfg = config({k: v for k, v in args.params.items() if k not in OBJECTIVE_KEYS}, features.shape[1])
    quantised = quantised_features(args.codebook, len(features), features.shape[1], device)
    factory = lookup("objective", args.params.get("objective", "openins_pseudo_gt"))
    objective = factory(target=pseudo_gt_target(params, quantised, scene, device),
                        **args.params.get("objective_params", {}))
    inputs = {"scene": args.scene, "gaussians": args.gaussians, "codebook": args.codebook}
    out = Path(args.out)
    ckpt = checkpoint_path(out)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = train_feature_field(params, scene, None, objective, cfg, device, init_features=features,
                                 checkpoint=ckpt, fingerprint=run_fingerprint(args.params, inputs))
    seconds = time.perf_counter() - start
    log.info("refined features of %d Gaussians against the codebook in %.1f s", len(features), seconds)
    save_feature_gaussians(out, result, "pseudo_gt", args.params, inputs,
                           {"sh_degree": attrs["sh_degree"], "background": attrs["background"],
                            "iterations": cfg.iterations, "geometry": "frozen", "train_seconds": seconds,
                            **peak_memory(), "device": str(device)})
    ckpt.unlink(missing_ok=True)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("pseudo_gt", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--gaussians", required=True, help="input feature_gaussians store")
    p.add_argument("--codebook", required=True, help="input codebook store of those Gaussians")
    p.add_argument("--out", required=True, help="output feature_gaussians store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
