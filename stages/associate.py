"""Association stage (OpenInsGaussian supplement A.4): a language feature for every 3D instance.

On every train view each instance (codebook leaf) is rendered alone and binarised, pi(M^i); every 2D mask of the
chosen level is scored by Eq. 8, S_ij = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1), and the best mask per instance and
view is kept. The associated masks' CLIP features are fused across views (``instance_language.fuse_language``) and
the result is written to an ``association`` store with each instance's argmax vocabulary label.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.instance_language import (
    AssociationConfig,
    Associations,
    Cameras,
    associate_instances,
    fuse_language,
    label_instances,
    load_instance_gaussians,
)
from stages.lib.store import Store, StoreError, read_store, write_store

log = logging.getLogger(__name__)


def check_priors(scene: Store, masks: Store, features: Store, level: int) -> None:
    """Masks must cover the scene's views at its image size, features must align with the mask table."""
    for dim in ("V", "H", "W"):
        if masks.sizes[dim] != scene.sizes[dim]:
            raise StoreError(f"{masks.path}: {dim}={masks.sizes[dim]} but the scene {scene.path} has "
                             f"{dim}={scene.sizes[dim]}")
    if features.sizes["M"] != masks.sizes["M"]:
        raise StoreError(f"{features.path}: {features.sizes['M']} mask features but {masks.path} lists "
                         f"{masks.sizes['M']} masks")
    if not 0 <= level < masks.sizes["L"]:
        raise StoreError(f"{masks.path}: level {level} requested but the store has {masks.sizes['L']} levels")


def mask_rows(masks: Store, views: np.ndarray, level: int, num_masks: int) -> np.ndarray:
    """[len(views), J]: the mask-table row of mask id j in each view at ``level``, -1 where none."""
    lut = np.full((masks.sizes["V"], max(num_masks, 1)), -1, dtype=np.int64)
    view, lev, mid = masks.load("mask_view"), masks.load("mask_level"), masks.load("mask_id")
    sel = (lev == level) & (mid < lut.shape[1])
    lut[view[sel], mid[sel]] = np.nonzero(sel)[0]
    return lut[views]


def table_rows(assoc: Associations, lut: np.ndarray, masks: Store) -> np.ndarray:
    """The mask-table row of every association; a label id missing from the table is a broken masks store."""
    rows = lut[assoc.view.cpu().numpy(), assoc.mask.cpu().numpy()]
    if (rows < 0).any():
        raise StoreError(f"{masks.path}: label maps hold mask ids that the mask table does not list")
    return rows


def main(args: argparse.Namespace) -> None:
    cfg = config_from_params(AssociationConfig, args.params)
    device = pick_device(args.device)
    scene = read_store("scene", args.scene)
    masks = read_store("masks", args.masks)
    features = read_store("features", args.features)
    check_priors(scene, masks, features, cfg.level)
    gaussians, centres = load_instance_gaussians(args.gaussians, args.codebook, device)
    train = np.nonzero(~scene.load("is_test"))[0]
    labels = np.stack([masks["labels"][int(v), cfg.level] for v in train])
    with torch.no_grad():
        assoc = associate_instances(gaussians, centres, Cameras.from_scene(scene, train, device),
                                    torch.from_numpy(labels).to(device), cfg)
    rows = table_rows(assoc, mask_rows(masks, train, cfg.level, int(labels.max()) + 1), masks)
    clip = torch.from_numpy(features.load("mask_features")[rows]).to(device)
    language, views = fuse_language(clip, assoc.instance, gaussians.num_instances, cfg.tau,
                                    assoc.score if cfg.score_weighted else None)
    text = features.load("text_features")
    label = label_instances(language, torch.from_numpy(text).to(device))
    log.info("associated %d masks; %d of %d instances have a language feature", len(rows),
             int((views > 0).sum()), gaussians.num_instances)
    inputs = {"scene": args.scene, "gaussians": args.gaussians, "codebook": args.codebook, "masks": args.masks,
              "features": args.features}
    with write_store("association", args.out, "associate", args.params, inputs) as w:
        w.write("instance_language", language.cpu().numpy().astype(np.float16))
        w.write("instance_views", views.cpu().numpy().astype(np.int32))
        w.write("instance_label", label.cpu().numpy().astype(np.int32))
        w.write("text_features", text)
        w.attrs.update(vocabulary=list(features.attrs["vocabulary"]), level=cfg.level, tau=cfg.tau,
                       num_associations=len(rows))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("associate", __doc__)
    p.add_argument("--scene", required=True, help="scene store (cameras, train/test split)")
    p.add_argument("--gaussians", required=True, help="feature_gaussians store")
    p.add_argument("--codebook", required=True, help="codebook store (leaf_id, fine_centres)")
    p.add_argument("--masks", required=True, help="masks store")
    p.add_argument("--features", required=True, help="features store aligned with the masks")
    p.add_argument("--out", required=True, help="output association store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
