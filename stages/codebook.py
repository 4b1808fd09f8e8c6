"""Codebook stage: the two-level instance codebook (OpenInsGaussian Eq. 5-6) of a ``feature_gaussians`` store.

Eq. 5 clusters the Gaussians into ``k_coarse`` groups on [xyz_weight * normalised xyz, feature]; Eq. 6 splits
every coarse group into at most ``k_fine`` leaves on the feature alone. A Gaussian's leaf is its 3D instance.
Parameters (JSON): ``k_coarse`` (64), ``k_fine`` (10), ``xyz_weight`` (1.0; the OpenGaussian reference uses 1.0
on ScanNet and 0.5 on most LERF scenes), ``iters`` (50 Lloyd iterations), ``seed`` (0), ``min_opacity`` (0.0:
Gaussians below this opacity are left unassigned, -1).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.feature_field import load_feature_gaussians
from stages.lib.kmeans import two_level_codebook
from stages.lib.store import write_store

log = logging.getLogger(__name__)


@dataclass
class CodebookConfig:
    """The codebook stage's parameters (see the module docstring)."""

    k_coarse: int = 64
    k_fine: int = 10
    xyz_weight: float = 1.0
    iters: int = 50
    seed: int = 0
    min_opacity: float = 0.0

    def __post_init__(self) -> None:
        if self.k_coarse < 1 or self.k_fine < 1 or self.xyz_weight <= 0:
            raise ValueError(f"k_coarse and k_fine must be >= 1 and xyz_weight > 0: {self}")

@dataclass
class CodebookResult:
    """Store-ready codebook: coarse centres in the Eq. 5 space, leaf centres in feature space, ids per Gaussian."""

    coarse_centres: Tensor  # [k_coarse, 3 + D]
    fine_centres: Tensor    # [k_coarse * k_fine, D], zero rows for unused leaves
    coarse_id: Tensor       # [N], -1 unassigned
    leaf_id: Tensor         # [N], -1 unassigned


def build_codebook(xyz: Tensor, features: Tensor, keep: Tensor, cfg: CodebookConfig) -> CodebookResult:
    """Run Eq. 5-6 on the kept Gaussians; the others get id -1."""
    cb = two_level_codebook(xyz[keep], features[keep], cfg.k_coarse, cfg.k_fine, cfg.iters, cfg.seed, cfg.xyz_weight)
    n = len(xyz)
    coarse_id = torch.full((n,), -1, dtype=torch.long, device=xyz.device)
    leaf_id = torch.full((n,), -1, dtype=torch.long, device=xyz.device)
    coarse_id[keep], leaf_id[keep] = cb.coarse, cb.fine
    return CodebookResult(coarse_centres=cb.coarse_centres, fine_centres=cb.codebook, coarse_id=coarse_id,
                          leaf_id=leaf_id)


def main(args: argparse.Namespace) -> None:
    cfg = config_from_params(CodebookConfig, args.params, "codebook")
    device = pick_device(args.device)
    params, _ = load_feature_gaussians(args.gaussians, device)
    keep = torch.sigmoid(params["opacities"]) >= cfg.min_opacity
    if not keep.any():
        raise ValueError(f"no Gaussian of {args.gaussians} has opacity >= min_opacity={cfg.min_opacity}")
    result = build_codebook(params["means"], params["features"], keep, cfg)
    used = int(torch.unique(result.leaf_id[keep]).numel())
    log.info("%d of %d Gaussians assigned to %d leaves", int(keep.sum()), len(keep), used)
    with write_store("codebook", args.out, "codebook", args.params, {"gaussians": args.gaussians}) as w:
        w.write("coarse_centres", result.coarse_centres.float().cpu().numpy())
        w.write("fine_centres", result.fine_centres.float().cpu().numpy())
        w.write("coarse_id", result.coarse_id.int().cpu().numpy())
        w.write("leaf_id", result.leaf_id.int().cpu().numpy())
        w.attrs.update(k_coarse=cfg.k_coarse, k_fine=cfg.k_fine, xyz_weight=cfg.xyz_weight,
                       min_opacity=cfg.min_opacity, num_assigned=int(keep.sum()), num_leaves_used=used)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("codebook", __doc__)
    p.add_argument("--gaussians", required=True, help="input feature_gaussians store")
    p.add_argument("--out", required=True, help="output codebook store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
