"""SAS Sec. 3.4-3.5 training of the 3D network on one scan: distillation from the fused 2D point features, then
temporal-ensembling self-distillation in the last epochs.

Schedule (Sec. 3.5): ``epochs`` in all (paper 100), TESD added in the last ``tesd_epochs`` (paper 30);
``distillation: point`` is OpenScene's pixel-point distillation (Table 3 "3D Pixel-Point Dis."), ``superpoint``
Eq. 10 (L_p against F^2D_SP plus L_sp). Optimiser (supplement Table 7): Adam, weight decay 0, learning rate decaying
linearly from ``lr`` (1e-4) to ``lr_end`` (1e-5) over all steps. The input is the bare point cloud (supplement:
no colour): one constant feature per occupied voxel; each point takes its voxel's output.
Our readings for a per-scan stage: an epoch is ``steps_per_epoch`` steps on the one scan; every step draws a
random isotropic scale in [1 - s, 1 + s] and a random sub-voxel shift of the grid (``augment``), so voxelisations
differ between steps; Eq. 11's ensemble starts as the last distillation epoch's output and takes each TESD epoch's
last output; the final features come from the network in evaluation mode without augmentation.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from stages.lib.sparse_conv import SparseBackend
from stages.lib.sparse_conv.unet import MinkUNet18A
from stages.lib.sparse_conv.voxels import voxelise
from stages.methods.sas.distillation import (
    ema_update,
    point_distillation_loss,
    self_distillation_losses,
    superpoint_distillation_loss,
    superpoint_targets,
)

log = logging.getLogger(__name__)
LOSSES = ("point", "superpoint", "point_self", "superpoint_self")


@dataclass
class DistillSchedule:
    """The training parameters (see the module docstring)."""

    distillation: Literal["point", "superpoint"] = "superpoint"
    epochs: int = 100
    tesd_epochs: int = 30
    steps_per_epoch: int = 1
    lr: float = 1e-4
    lr_end: float = 1e-5
    alpha: float = 0.9
    temperature: float = 0.07
    voxel_size: float = 0.02
    width: float = 1.0
    augment: bool = True
    scale_jitter: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or not 0 <= self.tesd_epochs < self.epochs or self.steps_per_epoch < 1:
            raise ValueError(f"distill: need epochs >= 1, 0 <= tesd_epochs < epochs and steps_per_epoch >= 1; got "
                             f"{self.epochs}, {self.tesd_epochs}, {self.steps_per_epoch}")

    @property
    def name(self) -> str:
        """Table 3's row: point / superpoint distillation, + TESD."""
        row = {"point": "pixel-point distillation", "superpoint": "superpoint distillation"}[self.distillation]
        return row + (" + TESD" if self.tesd_epochs else "")


@dataclass
class DistillTargets:
    """The scan: points [P, 3], fused 2D features [P, C], seen [P], superpoint ids [P] (0..L-1), text [K, C]."""

    points: torch.Tensor
    fused: torch.Tensor
    seen: torch.Tensor
    segment: torch.Tensor
    text: torch.Tensor
    num_segments: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_segments = int(self.segment.max()) + 1 if len(self.segment) else 0


@dataclass
class DistillResult:
    """Final point features [P, C], per-epoch mean losses [E, 4] (``LOSSES``), seconds per epoch, points per second."""

    features: np.ndarray
    losses: np.ndarray
    seconds_per_epoch: float
    points_per_second: float


class PointNetwork:
    """The sparse U-Net applied to points: voxelise, run, take each point's voxel output."""

    def __init__(self, backend: SparseBackend, out_channels: int, cfg: DistillSchedule, device: torch.device):
        self.backend, self.cfg, self.device = backend, cfg, device
        self.net = MinkUNet18A(backend, 1, out_channels, cfg.width).to(device)

    def __call__(self, points: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if generator is not None:
            scale = 1.0 + (torch.rand((), generator=generator).item() * 2 - 1) * self.cfg.scale_jitter
            shift = torch.rand(3, generator=generator).to(points) * self.cfg.voxel_size
            points = points * scale
            vox = voxelise(points, self.cfg.voxel_size, points.min(0).values - shift)
        else:
            vox = voxelise(points, self.cfg.voxel_size)
        ones = torch.ones(len(vox.coords), 1, device=self.device)
        inp = self.backend.tensor(vox.coords.to(self.device), ones)
        return vox.devoxelise(self.backend.input_order(self.net(inp), inp))


def final_features(model: PointNetwork, points: torch.Tensor) -> np.ndarray:
    """The network's point features [P, C] in evaluation mode, without augmentation (training mode restored)."""
    model.net.eval()
    with torch.no_grad():
        features = model(points).float().cpu().numpy()
    model.net.train()
    return features


def train_distillation(targets: DistillTargets, backend: SparseBackend, cfg: DistillSchedule, device: torch.device,
                       monitor: Callable[[int, Callable[[], np.ndarray]], None] | None = None) -> DistillResult:
    """Train the 3D network on one scan with the configured schedule; returns its final point features.
    ``monitor(epoch, features)``, when given, is called after every epoch with a function that returns the network's
    current point features as the final ones are computed (for learning curves; its time counts in the timing)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = PointNetwork(backend, targets.fused.shape[1], cfg, device)
    points = targets.points.to(device)
    fused, seen, text = targets.fused.to(device), targets.seen.to(device), targets.text.to(device)
    segment = targets.segment.to(device)
    superpoint = cfg.distillation == "superpoint"
    sp_means, sp_point, sp_has = superpoint_targets(fused, segment, targets.num_segments, seen)
    optimiser = torch.optim.Adam(model.net.parameters(), lr=cfg.lr, weight_decay=0.0)
    total = cfg.epochs * cfg.steps_per_epoch
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: 1.0 + (cfg.lr_end / cfg.lr - 1.0) * min(step, total) / max(total - 1, 1))
    ensemble: torch.Tensor | None = None
    history = np.zeros((cfg.epochs, len(LOSSES)), np.float32)
    start = time.perf_counter()
    for epoch in tqdm(range(cfg.epochs), desc="distill", unit="epoch", mininterval=5):
        tesd = epoch >= cfg.epochs - cfg.tesd_epochs
        model.net.train()
        for _ in range(cfg.steps_per_epoch):
            out = model(points, gen if cfg.augment else None)
            if superpoint:
                losses = [point_distillation_loss(out, sp_point, sp_has),
                          superpoint_distillation_loss(out, sp_means, segment, targets.num_segments, sp_has)]
            else:
                losses = [point_distillation_loss(out, fused, seen), out.sum() * 0.0]
            if tesd:
                losses += list(self_distillation_losses(out, ensemble, text, segment if superpoint else None,
                                                        targets.num_segments, cfg.temperature))
            else:
                losses += [out.sum() * 0.0, out.sum() * 0.0]
            optimiser.zero_grad(set_to_none=True)
            torch.stack(losses).sum().backward()
            optimiser.step()
            schedule.step()
            history[epoch] += np.array([v.item() for v in losses]) / cfg.steps_per_epoch
        last = F.normalize(out.detach(), dim=-1)
        ensemble = last if ensemble is None or not tesd else ema_update(ensemble, last, cfg.alpha)
        if monitor is not None:
            monitor(epoch, lambda: final_features(model, points))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    features = final_features(model, points)
    log.info("distill (%s, %s): %.2f s per epoch, %.0f points/s; final losses %s", cfg.name, backend.name,
             seconds / cfg.epochs, len(points) * total / seconds,
             ", ".join(f"{n} {v:.3f}" for n, v in zip(LOSSES, history[-1])))
    return DistillResult(features, history, seconds / cfg.epochs, len(points) * total / seconds)
