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
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.feature_field import load_feature_gaussians
from stages.lib.kmeans import TwoLevelCodebook, normalise_xyz, two_level_codebook
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

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CodebookConfig:
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown codebook parameters {unknown}; known: {[f.name for f in fields(cls)]}")
        return cls(**d)


@dataclass
class CodebookResult:
    """Store-ready codebook: coarse centres in the Eq. 5 space, leaf centres in feature space, ids per Gaussian."""

    coarse_centres: Tensor  # [k_coarse, 3 + D]
    fine_centres: Tensor    # [k_coarse * k_fine, D], zero rows for unused leaves
    coarse_id: Tensor       # [N], -1 unassigned
    leaf_id: Tensor         # [N], -1 unassigned


def coarse_space(xyz: Tensor, features: Tensor, xyz_weight: float) -> Tensor:
    """The Eq. 5 clustering space [xyz_weight * normalised xyz, feature]."""
    return torch.cat([xyz_weight * normalise_xyz(xyz), features], dim=1)


def build_codebook(xyz: Tensor, features: Tensor, keep: Tensor, cfg: CodebookConfig) -> CodebookResult:
    """Run Eq. 5-6 on the kept Gaussians.

    ``two_level_codebook`` clusters [normalised xyz, f]; k-means is invariant to a uniform scaling of its input,
    so clustering [normalised xyz, f / w] and scaling the leaf centres back by w is the same as clustering
    [w * normalised xyz, f].
    """
    w = cfg.xyz_weight
    cb: TwoLevelCodebook = two_level_codebook(xyz[keep], features[keep] / w, cfg.k_coarse, cfg.k_fine, cfg.iters,
                                              cfg.seed)
    space = coarse_space(xyz[keep], features[keep], w)
    sums = torch.zeros(cfg.k_coarse, space.shape[1], device=space.device).index_add_(0, cb.coarse, space)
    counts = torch.bincount(cb.coarse, minlength=cfg.k_coarse).clamp_min(1)[:, None]
    n = len(xyz)
    coarse_id = torch.full((n,), -1, dtype=torch.long, device=xyz.device)
    leaf_id = torch.full((n,), -1, dtype=torch.long, device=xyz.device)
    coarse_id[keep], leaf_id[keep] = cb.coarse, cb.fine
    return CodebookResult(coarse_centres=sums / counts, fine_centres=cb.codebook * w, coarse_id=coarse_id,
                          leaf_id=leaf_id)


def main(args: argparse.Namespace) -> None:
    cfg = CodebookConfig.from_dict(args.params)
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
