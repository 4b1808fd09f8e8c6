"""The shared Gaussian trainer: parameters, per-key Adam optimisers, gsplat densification, checkpoints.

Each training objective (RGB reconstruction here; feature fields in the method stages) is a loss
function plugged into ``GaussianTrainer.optimise``; the loop, densification and resumable
checkpoints are written once.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.gaussians import PARAM_KEYS, activated, init_from_points
from stages.lib.image_metrics import ssim
from stages.lib.render import render
from stages.lib.scene import SceneData

log = logging.getLogger(__name__)
FINITE_CHECK_EVERY = 100  # steps between checks of every parameter for NaN / inf (plus every densification step)


class NonFiniteError(RuntimeError):
    """Training produced a NaN / inf loss or parameter; raised at the step where it was found."""


@dataclass
class DensifyConfig:
    """gsplat ``DefaultStrategy`` knobs (3DGS adaptive density control); ``enabled=False`` freezes the count."""

    enabled: bool = True
    prune_opa: float = 0.005
    grow_grad2d: float = 0.0002
    grow_scale3d: float = 0.01
    grow_scale2d: float = 0.05
    prune_scale3d: float = 0.1
    prune_scale2d: float = 0.15
    refine_scale2d_stop_iter: int = 0
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    reset_every: int = 3000
    refine_every: int = 100
    absgrad: bool = False
    opacity_reset_at: tuple[int, ...] = ()  # extra resets; train_rgb adds refine_start_iter on white backgrounds

    def is_opacity_reset_step(self, step: int) -> bool:
        """3DGS opacity reset schedule: every ``reset_every`` steps while densifying, plus the extra steps.

        Applied by ``GaussianTrainer`` itself: gsplat 1.5.3's DefaultStrategy tests ``step % reset_every == 0 &
        step > 0``, which Python parses as ``... == (0 & step) > 0``, so its own periodic reset never fires.
        """
        periodic = self.reset_every > 0 and 0 < step < self.refine_stop_iter and step % self.reset_every == 0
        return periodic or step in self.opacity_reset_at


@dataclass
class GSTrainConfig:
    """RGB 3DGS training: L = (1 - lambda) L1 + lambda (1 - SSIM) (3DGS Eq. 7), learning rates as in 3DGS.

    ``fixed_points``: the OpenInsGaussian / OpenGaussian ScanNet setting (supplement B.2: "keep point cloud
    coordinates fixed and disable 3DGS densification"): one Gaussian per scene point, whose centre is never updated
    (no optimiser for the means) and no densification, so Gaussian i is point i of the scan throughout.
    """

    iterations: int = 30_000
    sh_degree: int = 3
    sh_increase_every: int = 1000
    ssim_lambda: float = 0.2
    lr_means: float = 1.6e-4
    lr_means_final: float = 1.6e-6
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_shN: float = 2.5e-3 / 20
    init_opacity: float = 0.1
    init_scale: float = 1.0
    checkpoint_every: int = 2000
    seed: int = 0
    fixed_points: bool = False
    densify: DensifyConfig = field(default_factory=DensifyConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GSTrainConfig":
        d = dict(d)
        densify_d = dict(d.pop("densify", {}))
        densify_d["opacity_reset_at"] = tuple(densify_d.get("opacity_reset_at", ()))
        densify = DensifyConfig(**densify_d)
        return cls(**d, densify=densify)


def scene_extent(world_to_camera: np.ndarray) -> float:
    """3DGS camera extent: 1.1 x the largest camera-centre distance from their mean."""
    centres = np.linalg.inv(world_to_camera.astype(np.float64))[:, :3, 3]
    return float(1.1 * np.linalg.norm(centres - centres.mean(0), axis=1).max())


class GaussianTrainer:
    """Owns Gaussian parameters, their optimisers and the densification strategy state."""

    def __init__(self, params: Mapping[str, Tensor], lrs: Mapping[str, float], densify: DensifyConfig | None,
                 extent: float, device: torch.device) -> None:
        self.device = device
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device).contiguous()) for k, v in params.items()})
        self.optimizers = {k: torch.optim.Adam([{"params": self.params[k], "lr": lrs[k], "name": k}], eps=1e-15)
                           for k in self.params if lrs.get(k, 0.0) > 0}
        self.strategy = None
        self.strategy_state: dict[str, Any] = {}
        self.densify = densify
        if densify is not None and densify.enabled:
            from gsplat.strategy import DefaultStrategy

            knobs = {k: v for k, v in asdict(densify).items() if k not in ("enabled", "opacity_reset_at")}
            knobs["reset_every"] = 2**62  # resets are scheduled here (DensifyConfig.is_opacity_reset_step)
            self.strategy = DefaultStrategy(**knobs)
            self.strategy.check_sanity(self.params, self.optimizers)
            self.strategy_state = self.strategy.initialize_state(scene_scale=extent)
        self.modules: dict[str, torch.nn.Module] = {}
        self.module_optimizers: dict[str, torch.optim.Optimizer] = {}
        self.step = 0

    def add_module(self, name: str, module: torch.nn.Module, lr: float) -> None:
        """Optimise a module's parameters (e.g. an objective's classifiers) with Adam at ``lr`` alongside the
        Gaussians; they are stepped and checkpointed with them but never densified."""
        module.to(self.device)
        self.modules[name] = module
        params = [p for p in module.parameters() if p.requires_grad]
        if params:
            self.module_optimizers[name] = torch.optim.Adam(params, lr=lr)

    def optimise(self, loss: Tensor, info: dict[str, Any]) -> None:
        """One optimisation step with gsplat's pre/post-backward densification hooks.

        Every ``FINITE_CHECK_EVERY`` steps and after every densification step the loss and all parameters are
        checked for NaN / inf (``check_finite``), so a broken Gaussian stops training where it appeared.
        """
        densifying = self.strategy is not None and self.strategy.refine_start_iter < self.step \
            < self.strategy.refine_stop_iter and self.step % self.strategy.refine_every == 0
        if self.step % FINITE_CHECK_EVERY == 0 or densifying:
            if not torch.isfinite(loss.detach()).all():
                raise NonFiniteError(f"step {self.step}: the loss is {loss.item()} "
                                     f"({len(self.params['means'])} Gaussians)")
        if self.strategy is not None:
            self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, self.step, info)
        loss.backward()
        for opt in (*self.optimizers.values(), *self.module_optimizers.values()):
            opt.step()
            opt.zero_grad(set_to_none=True)
        if self.strategy is not None:
            self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, self.step, info,
                                             packed=False)
            if self.densify.is_opacity_reset_step(self.step):
                from gsplat.strategy.ops import reset_opa

                reset_opa(self.params, self.optimizers, self.strategy_state, value=self.strategy.prune_opa * 2.0)
        self.step += 1
        if self.step % FINITE_CHECK_EVERY == 0 or densifying:
            self.check_finite(f"after step {self.step}")

    def check_finite(self, when: str) -> None:
        """Raise ``NonFiniteError`` naming ``when``, the Gaussian count, the bad keys and the first bad Gaussians.

        Neither the 3DGS reference nor gsplat checks for or removes such Gaussians; a NaN Gaussian is never drawn,
        so the loss stays finite and the damage only shows downstream. We stop instead of silently dropping them.
        """
        with torch.no_grad():
            bad = {k: ~torch.isfinite(v).reshape(len(v), -1).all(1) for k, v in self.params.items()}
            rows = torch.zeros(len(self.params["means"]), dtype=torch.bool, device=self.device)
            for b in bad.values():
                rows |= b
            if rows.any():
                keys = [k for k, b in bad.items() if b.any()]
                first = torch.nonzero(rows).squeeze(1)[:5].tolist()
                raise NonFiniteError(f"{when}: {int(rows.sum())} of {len(rows)} Gaussians have non-finite {keys} "
                                     f"(first: {first})")

    def set_lr(self, key: str, lr: float) -> None:
        for group in self.optimizers[key].param_groups:
            group["lr"] = lr

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "params": {k: v.detach().cpu() for k, v in self.params.items()},
                "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "strategy_state": {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in self.strategy_state.items()},
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "module_optimizers": {k: o.state_dict() for k, o in self.module_optimizers.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, v in state["params"].items():
            self.params[k] = torch.nn.Parameter(v.to(self.device))
        for k, opt in self.optimizers.items():
            opt.param_groups[0]["params"] = [self.params[k]]
            opt.load_state_dict(state["optimizers"][k])
        self.strategy_state.update({k: (v.to(self.device) if isinstance(v, Tensor) else v)
                                    for k, v in state["strategy_state"].items()})
        for k, module in self.modules.items():
            module.load_state_dict(state["modules"][k])
        for k, opt in self.module_optimizers.items():
            opt.load_state_dict(state["module_optimizers"][k])
        self.step = int(state["step"])

    def save_checkpoint(self, path: Path, fingerprint: str) -> None:
        tmp = path.with_name(path.name + ".partial")
        torch.save({"fingerprint": fingerprint, **self.state_dict()}, tmp)
        os.replace(tmp, path)

    def try_resume(self, path: Path, fingerprint: str) -> bool:
        """Resume from a checkpoint written by a run with identical parameters and inputs."""
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != fingerprint:
            log.info("ignoring checkpoint %s: written for other parameters or inputs", path)
            return False
        self.load_state_dict(state)
        log.info("resumed from %s at step %d", path, self.step)
        return True


def render_params(params: Mapping[str, Tensor], viewmats: Tensor, Ks: Tensor, width: int, height: int,
                  sh_degree: int | None, backgrounds: Tensor | None = None, **kw: Any):
    """Render the current parameters (activated) for a batch of cameras."""
    a = activated(params)
    return render(a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], viewmats, Ks, width, height,
                  sh_degree=sh_degree, backgrounds=backgrounds, **kw)


def train_rgb(scene: SceneData, cfg: GSTrainConfig, device: torch.device, checkpoint: Path | None = None,
              fingerprint: str = "", progress: bool = True,
              on_step: Callable[[int, "GaussianTrainer"], None] | None = None) -> dict[str, Tensor]:
    """Train RGB Gaussians on the scene's train views; returns the final raw parameters.

    ``on_step(step, trainer)`` runs after every optimisation step (benchmarks evaluate intermediate models).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    extent = scene_extent(scene.world_to_camera[~scene.is_test])
    init = init_from_points(scene.points_xyz, scene.points_rgb, cfg.sh_degree, cfg.init_opacity, cfg.init_scale,
                            cfg.seed)
    lrs = {"means": cfg.lr_means * extent, "quats": cfg.lr_quats, "scales": cfg.lr_scales,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
    densify = replace(cfg.densify, enabled=False) if cfg.fixed_points else cfg.densify
    if cfg.fixed_points:
        lrs["means"] = 0.0  # no optimiser: the centres stay the scan's points, bit for bit
    if min(scene.background) >= 0.99:  # 3DGS also resets opacity when densification starts on white backgrounds
        densify = replace(densify, opacity_reset_at=(*densify.opacity_reset_at, densify.refine_start_iter))
    trainer = GaussianTrainer(init, lrs, densify, extent, device)
    if checkpoint is not None:
        trainer.try_resume(checkpoint, fingerprint)

    train_ids = np.where(~scene.is_test)[0]
    images = torch.from_numpy(scene.images[train_ids]).to(device)  # uint8 on device, converted per step
    viewmats = torch.from_numpy(scene.world_to_camera[train_ids]).float().to(device)
    Ks = torch.from_numpy(scene.intrinsics[train_ids]).float().to(device)
    bg_fixed = torch.tensor(scene.background, dtype=torch.float32, device=device)[None]
    decay = math.log(cfg.lr_means_final / cfg.lr_means)

    bar = tqdm(range(trainer.step, cfg.iterations), initial=trainer.step, total=cfg.iterations,
               disable=not progress, desc="train_gs", mininterval=5)
    for step in bar:
        i = int(rng.integers(len(train_ids)))
        sh = min(step // cfg.sh_increase_every, cfg.sh_degree)
        out, _, info = render_params(trainer.params, viewmats[i:i + 1], Ks[i:i + 1], scene.width, scene.height,
                                     sh, backgrounds=bg_fixed, absgrad=cfg.densify.absgrad)
        target = images[i:i + 1].float() / 255.0
        l1 = torch.abs(out - target).mean()
        loss = (1 - cfg.ssim_lambda) * l1 + cfg.ssim_lambda * (1 - ssim(out, target))
        trainer.optimise(loss, info)
        if not cfg.fixed_points:
            trainer.set_lr("means", cfg.lr_means * extent * math.exp(decay * min(step / max(cfg.iterations, 1), 1.0)))
        if on_step is not None:
            on_step(step + 1, trainer)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", n=len(trainer.params["means"]))
        if checkpoint is not None and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 \
                and step + 1 < cfg.iterations:
            trainer.save_checkpoint(checkpoint, fingerprint)
    trainer.check_finite(f"end of training ({cfg.iterations} iterations)")
    return {k: trainer.params[k].detach() for k in PARAM_KEYS}
