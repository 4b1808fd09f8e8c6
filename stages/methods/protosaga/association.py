"""Proto-SaGa's mask association (Sec. 3.2), registered as the ``association`` rule ``protosaga_memory_bank``.

Reads the trained ``feature_gaussians`` (centres, features, per-view classifiers) and the ``masks``; visits the train
views in index order and writes a ``tracks`` store: the consistent instance id of every train-view mask of the
chosen level (-1: test views, other levels, masks without a projected Gaussian), comparable with SAM2 / oracle
tracks. ``semantic: false`` is the Gaga association (depth set only, Eq. 10); ``depth: false`` keeps the probability
set alone (Eq. 15; Table 3, middle row).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from stages.lib.cli import StageCall, config_from_params
from stages.lib.gaussians import PARAM_KEYS, activated
from stages.lib.mask_store import load_masks
from stages.lib.rendered_depth import Camera, rendered_depth
from stages.lib.store import read_store, write_store
from stages.methods import register
from stages.methods.protosaga.memory_bank import BankConfig, associate_views
from stages.methods.protosaga.objective import stored_classifiers

log = logging.getLogger(__name__)


@dataclass
class MemoryBankOptions(BankConfig):
    """``BankConfig`` plus the masks level whose masks are associated (index into the store's levels)."""

    level: int = 0


def mask_track_ids(masks, views: np.ndarray, level: int, per_view: list[torch.Tensor]) -> np.ndarray:
    """track_id [M] aligned with the mask table from the consistent id of every mask id of each view."""
    track = np.full(masks.num_masks, -1, np.int32)
    for v, ids in zip(views, per_view):
        rows = masks.rows(int(v), level)
        mid = masks.table["mask_id"][rows]
        ids = ids.cpu().numpy()
        track[rows] = np.where(mid < len(ids), ids[np.clip(mid, 0, max(len(ids) - 1, 0))], -1)
    return track


def association_source(cfg: BankConfig) -> str:
    """The tracks store's ``source``: which criteria built the bank (the report's Table 3 marks come from it)."""
    if not cfg.semantic:
        return "gaga_memory_bank"
    return "protosaga_memory_bank" if cfg.depth else "probability_memory_bank"


@register("association", "protosaga_memory_bank")
def run_memory_bank(call: StageCall) -> None:
    """Eq. 9-16 over the train views; writes the ``tracks`` store at ``call.out``."""
    cfg = config_from_params(MemoryBankOptions, call.options, "protosaga_memory_bank association")
    scene_path, gaussians_path, masks_path = call.require("scene", "gaussians", "masks")
    device = call.device
    scene = read_store("scene", scene_path)
    masks = load_masks(masks_path, (scene.sizes["V"], scene.sizes["H"], scene.sizes["W"]))
    store = read_store("feature_gaussians", gaussians_path)
    geometry = {k: v.to(device) for k, v in activated({k: torch.from_numpy(store.load(k)) for k in PARAM_KEYS}).items()}
    means = geometry["means"]
    train = np.nonzero(~scene.load("is_test"))[0]
    bank_cfg = BankConfig(**{k: v for k, v in vars(cfg).items() if k != "level"})
    features = classifiers = None
    if bank_cfg.semantic:
        features = torch.from_numpy(store.load("features")).to(device)
        classifiers = stored_classifiers(store, train.tolist(), device)
    labels = torch.from_numpy(masks.labels[train, cfg.level]).to(device)
    viewmats = torch.from_numpy(scene.load("world_to_camera")[train]).to(device)
    Ks = torch.from_numpy(scene.load("intrinsics")[train]).to(device)
    depth_maps = None
    if bank_cfg.visible_margin is not None:  # the views' rendered depths decide which Gaussians are visible
        w2c, intr = scene.load("world_to_camera"), scene.load("intrinsics")
        depth_maps = torch.stack([rendered_depth(geometry, Camera(w2c[v], intr[v], scene.sizes["W"], scene.sizes["H"]))
                                  for v in train])
    with torch.no_grad():
        per_view, bank = associate_views(means, viewmats, Ks, scene.sizes["W"], scene.sizes["H"], labels, bank_cfg,
                                         features, classifiers, depth_maps=depth_maps)
    track = mask_track_ids(masks, train, cfg.level, per_view)
    log.info("%s: %d train-view masks into %d instances", association_source(bank_cfg), int((track >= 0).sum()),
             bank.size)
    with write_store("tracks", call.out, "associate", call.params, call.inputs) as w:
        w.write("track_id", track)
        w.attrs.update(source=association_source(bank_cfg),
                       oracle=bool(masks.attrs.get("oracle", False)), num_tracks=bank.size,
                       levels=[masks.levels[cfg.level]], semantic=bank_cfg.semantic, depth=bank_cfg.depth,
                       matched_fraction=float((track >= 0).mean()) if track.size else 0.0)
