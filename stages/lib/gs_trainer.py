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
from typing import Any, Callable, Literal, Mapping, get_args

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.gaussians import PARAM_KEYS, activated, init_from_points, rgb_to_sh0
from stages.lib.grouped_optimizer import shared_adam
from stages.lib.image_metrics import SSIMMethod, ssim
from stages.lib.render import CudaOnlyError, RasterizeMode, render
from stages.lib.resolution_schedule import level_at, resolution_levels
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

    def strategy_knobs(self) -> dict[str, Any]:
        """Keyword arguments of gsplat's ``DefaultStrategy``.

        ``reset_every`` is passed on because gsplat also uses it to start the size-based pruning (3DGS: Gaussians
        larger than ``prune_scale3d`` x extent in world space are pruned from the first opacity reset on); its own
        reset never fires (see ``is_opacity_reset_step``), so the trainer's reset is the only one. ``reset_every: 0``
        (no resets) also means no size-based pruning.
        """
        knobs = {k: v for k, v in asdict(self).items() if k not in ("enabled", "opacity_reset_at")}
        knobs["reset_every"] = self.reset_every if self.reset_every > 0 else 2**62
        return knobs

    def is_opacity_reset_step(self, step: int) -> bool:
        """3DGS opacity reset schedule: every ``reset_every`` steps while densifying, plus the extra steps.

        Applied by ``GaussianTrainer`` itself: gsplat 1.5.3's DefaultStrategy tests ``step % reset_every == 0 &
        step > 0``, which Python parses as ``... == (0 & step) > 0``, so its own periodic reset never fires.
        """
        periodic = self.reset_every > 0 and 0 < step < self.refine_stop_iter and step % self.reset_every == 0
        return periodic or step in self.opacity_reset_at


@dataclass
class MCMCConfig:
    """gsplat ``MCMCStrategy`` knobs (3DGS as Markov Chain Monte Carlo, Kheradmand et al. 2024): relocation of dead
    Gaussians and growth up to ``cap_max`` instead of clone / split / prune; ``opacity_reg`` and ``scale_reg`` weight
    the L1 regularisers of the activated opacities and scales that the method adds to the loss (gsplat's
    simple_trainer defaults). CUDA only (gsplat's relocation kernel)."""

    cap_max: int = 1_000_000
    noise_lr: float = 5e5
    refine_start_iter: int = 500
    refine_stop_iter: int = 25_000
    refine_every: int = 100
    min_opacity: float = 0.005
    opacity_reg: float = 0.01
    scale_reg: float = 0.01

    def strategy_knobs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("opacity_reg", "scale_reg")}


@dataclass
class GSTrainConfig:
    """RGB 3DGS training: L = (1 - lambda) L1 + lambda (1 - SSIM) (3DGS Eq. 7), learning rates as in 3DGS.

    ``fixed_points``: the OpenInsGaussian / OpenGaussian ScanNet setting (supplement B.2: "keep point cloud
    coordinates fixed and disable 3DGS densification"): one Gaussian per scene point, whose centre is never updated
    (no optimiser for the means) and no densification, so Gaussian i is point i of the scan throughout.

    Options beyond the 3DGS recipe (README, "RGB Gaussians"): ``strategy`` ``default`` (3DGS adaptive density
    control, ``densify``) or ``mcmc`` (``mcmc``); ``rasterize_mode`` ``antialiased``; ``packed`` (gsplat's packed
    CUDA layout); ``tile_size`` (gsplat's CUDA tile side in pixels; the same render, speed only);
    ``densify.absgrad``. ``lr_means_steps``: steps of the exponential position-lr decay (3DGS: 30000 whatever the
    iteration count; 0 = ``iterations``). ``init_rotation``: ``identity`` (3DGS) or ``random`` (gsplat's
    trainer); ``init_color``: ``points`` (the scene's point colours) or ``grey`` (what 3DGS's random-cube
    initialisation amounts to: its SH colours in [0, 1/255] go through an 8-bit PLY, so every point reads back
    as 127/255), or ``auto``: grey where the scene's point colours are random (``SceneData.random_point_colours``:
    NeRF-synthetic, a COLMAP model without points), the points' colours where they were seen in the images, which
    is what the 3DGS reference does on each kind of scene. ``view_order``: ``random`` (a uniformly drawn train view
    per step) or ``epoch`` (3DGS: every train view once per epoch, in a fresh random order). ``ssim_method``: how the
    SSIM window is applied (``conv``, ``separable``, ``fft``, ``shifted``: ``image_metrics.ssim``; the same SSIM,
    speed only). ``fused_adam``: torch's fused Adam kernel (one launch per parameter tensor instead of the per-op
    foreach path; the same update up to float rounding; speed only).
    ``compile_loss``: the photometric loss (L1 + SSIM, forward and backward) compiled by ``torch.compile``, once per
    run before the first step (its element-wise kernels fused; same value up to float rounding; speed only);
    ``compile_mode`` ``reduce-overhead`` also replays its kernels as CUDA graphs (one launch per pass instead of one
    per kernel; CUDA only, the CPU path runs it as ``default``). With ``fused_adam`` all tensors share one fused Adam
    (``stages/lib/grouped_optimizer.py``): one optimiser step per training step instead of six.
    ``downscale_schedule``: ``[[until_step, factor], ...]`` trains the steps before each ``until_step`` at 1/factor
    of the resolution (``stages/lib/resolution_schedule.py``; empty: full resolution throughout).
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
    lr_means_steps: int = 0
    init_rotation: Literal["random", "identity"] = "random"
    init_color: Literal["points", "grey", "auto"] = "points"
    view_order: Literal["random", "epoch"] = "random"
    rasterize_mode: RasterizeMode = "classic"
    packed: bool = False
    tile_size: int = 16
    strategy: Literal["default", "mcmc"] = "default"
    ssim_method: SSIMMethod = "conv"
    fused_adam: bool = False
    compile_loss: bool = False
    compile_mode: Literal["default", "reduce-overhead"] = "default"
    downscale_schedule: tuple[tuple[int, int], ...] = ()
    densify: DensifyConfig = field(default_factory=DensifyConfig)
    mcmc: MCMCConfig = field(default_factory=MCMCConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GSTrainConfig":
        d = dict(d)
        densify_d = dict(d.pop("densify", {}))
        densify_d["opacity_reset_at"] = tuple(densify_d.get("opacity_reset_at", ()))
        densify = DensifyConfig(**densify_d)
        mcmc = MCMCConfig(**d.pop("mcmc", {}))
        d["downscale_schedule"] = tuple(tuple(pair) for pair in d.get("downscale_schedule", ()))
        cfg = cls(**d, densify=densify, mcmc=mcmc)
        cfg.check_choices()
        return cfg

    def check_choices(self) -> None:
        """Stop with one line naming the parameter if a choice is not one of its values."""
        choices = {"init_rotation": ("random", "identity"), "init_color": ("points", "grey", "auto"),
                   "view_order": ("random", "epoch"), "rasterize_mode": ("classic", "antialiased"),
                   "strategy": ("default", "mcmc"),
                   "ssim_method": get_args(SSIMMethod), "compile_mode": ("default", "reduce-overhead")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"train_gs: {key} must be one of {list(allowed)}, got {getattr(self, key)!r}")
        if self.tile_size not in (8, 16, 32):
            raise ValueError(f"train_gs: tile_size must be 8, 16 or 32 pixels, got {self.tile_size!r}")
        if self.strategy == "mcmc" and self.fixed_points:
            raise ValueError("train_gs: strategy 'mcmc' moves and relocates Gaussians; it cannot be combined with "
                             "fixed_points")

    def cuda_only_options(self) -> list[str]:
        """The options set here that only gsplat's CUDA kernels implement (the CPU path stops on them)."""
        needs = []
        if self.strategy == "mcmc":
            needs.append("strategy: mcmc (gsplat's relocation and noise kernels)")
        if self.strategy == "default" and self.densify.absgrad:
            needs.append("densify.absgrad (absolute 2D-mean gradients from the CUDA backward)")
        return needs

    def check_device(self, device: torch.device) -> None:
        """Raise ``CudaOnlyError`` naming every CUDA-only option when training would run on the CPU path."""
        needs = self.cuda_only_options()
        if device.type != "cuda" and needs:
            raise CudaOnlyError(f"train_gs: {'; '.join(needs)} need(s) CUDA, but the device is {device.type}: "
                                f"run on a GPU or drop the option")

    def means_lr_factor(self, step: int) -> float:
        """3DGS's exponential position-lr schedule: lr(t) = lr_init^(1-t) lr_final^t, t = step / steps (clamped)."""
        steps = self.lr_means_steps or self.iterations
        t = min(step / max(steps, 1), 1.0)
        return math.exp(math.log(self.lr_means_final / self.lr_means) * t)


def scene_extent(world_to_camera: np.ndarray) -> float:
    """3DGS camera extent: 1.1 x the largest camera-centre distance from their mean."""
    centres = np.linalg.inv(world_to_camera.astype(np.float64))[:, :3, 3]
    return float(1.1 * np.linalg.norm(centres - centres.mean(0), axis=1).max())


class GaussianTrainer:
    """Owns Gaussian parameters, their optimisers and the densification strategy state."""

    def __init__(self, params: Mapping[str, Tensor], lrs: Mapping[str, float], densify: DensifyConfig | None,
                 extent: float, device: torch.device, mcmc: MCMCConfig | None = None,
                 fused_adam: bool = False) -> None:
        self.device = device
        self.params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.to(device).contiguous()) for k, v in params.items()})
        self.shared_optimizer: torch.optim.Adam | None = None
        self.optimizers: dict[str, Any]
        if fused_adam:  # one fused Adam over every tensor, gsplat's strategies see one view per tensor
            self.shared_optimizer, self.optimizers = shared_adam(self.params, lrs, fused=True)
        else:
            self.optimizers = {k: torch.optim.Adam([{"params": self.params[k], "lr": lrs[k], "name": k}], eps=1e-15)
                               for k in self.params if lrs.get(k, 0.0) > 0}
        self.strategy = None
        self.strategy_state: dict[str, Any] = {}
        self.densify = None if mcmc is not None else densify
        if mcmc is not None:
            from gsplat.strategy import MCMCStrategy

            self.strategy = MCMCStrategy(**mcmc.strategy_knobs())
            self.strategy.check_sanity(self.params, self.optimizers)
            self.strategy_state = self.strategy.initialize_state()
        elif densify is not None and densify.enabled:
            from stages.lib.densify_stats import SyncFreeDefaultStrategy

            self.strategy = SyncFreeDefaultStrategy(**densify.strategy_knobs())
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
        if self.densify is not None and self.strategy is not None:
            self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, self.step, info)
        loss.backward()
        for opt in (*self.steppers(), *self.module_optimizers.values()):
            opt.step()
            opt.zero_grad(set_to_none=True)
        if self.densify is None and self.strategy is not None:  # MCMC: its noise scales with the position lr
            self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, self.step, info,
                                             lr=self.optimizers["means"].param_groups[0]["lr"])
        elif self.strategy is not None:
            self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, self.step, info,
                                             packed=bool(info.get("packed", False)))
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

    def steppers(self) -> list[torch.optim.Optimizer]:
        """The optimisers to step: the shared one (``fused_adam``) or one per parameter tensor."""
        return [self.shared_optimizer] if self.shared_optimizer is not None else list(self.optimizers.values())

    def set_lr(self, key: str, lr: float) -> None:
        for group in self.optimizers[key].param_groups:
            group["lr"] = lr

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "params": {k: v.detach().cpu() for k, v in self.params.items()},
                "optimizers": ({"shared": self.shared_optimizer.state_dict()} if self.shared_optimizer is not None
                               else {k: o.state_dict() for k, o in self.optimizers.items()}),
                "strategy_state": {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in self.strategy_state.items()},
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "module_optimizers": {k: o.state_dict() for k, o in self.module_optimizers.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, v in state["params"].items():
            self.params[k] = torch.nn.Parameter(v.to(self.device))
        for k, opt in self.optimizers.items():
            opt.param_groups[0]["params"] = [self.params[k]]
            if self.shared_optimizer is None:
                opt.load_state_dict(state["optimizers"][k])
        if self.shared_optimizer is not None:
            self.shared_optimizer.load_state_dict(state["optimizers"]["shared"])
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


REFERENCE_GREY = 127 / 255  # 3DGS's random-cube colours after its 8-bit PLY round trip (GSTrainConfig.init_color)


def initial_gaussians(scene: SceneData, cfg: GSTrainConfig) -> dict[str, Tensor]:
    """The scene's points as Gaussians (``init_from_points``), with 3DGS's identity rotations and grey colours when
    ``init_rotation`` / ``init_color`` ask for them (``auto``: grey for random points, the points' colours else)."""
    init = init_from_points(scene.points_xyz, scene.points_rgb, cfg.sh_degree, cfg.init_opacity, cfg.init_scale,
                            cfg.seed)
    n = init["means"].shape[0]
    if cfg.init_rotation == "identity":
        init["quats"] = torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1)
    if cfg.init_color == "grey" or (cfg.init_color == "auto" and scene.random_point_colours):
        init["sh0"] = rgb_to_sh0(torch.full((n, 1, 3), REFERENCE_GREY))
    return init


def photometric_loss(render: Tensor, target_u8: Tensor, ssim_lambda: float, ssim_method: SSIMMethod = "conv") -> Tensor:
    """3DGS Eq. 7: (1 - lambda) L1 + lambda (1 - SSIM) against the 8-bit target image."""
    target = target_u8.float() / 255.0
    l1 = torch.abs(render - target).mean()
    return (1 - ssim_lambda) * l1 + ssim_lambda * (1 - ssim(render, target, method=ssim_method))


def loss_function(cfg: GSTrainConfig, shape: tuple[int, ...], device: torch.device) -> Callable[[Tensor, Tensor], Tensor]:
    """The photometric loss of ``cfg``; with ``compile_loss`` compiled for images of ``shape`` [1,H,W,3] and run once
    (forward and backward) here, so that compilation is part of set-up, not of the first training step."""
    def loss(render: Tensor, target_u8: Tensor) -> Tensor:
        return photometric_loss(render, target_u8, cfg.ssim_lambda, cfg.ssim_method)

    if not cfg.compile_loss:
        return loss
    mode = cfg.compile_mode if device.type == "cuda" else "default"
    compiled = torch.compile(loss, dynamic=False, fullgraph=True, mode=mode)
    probe = torch.rand(shape, device=device, requires_grad=True)
    for _ in range(3 if mode == "reduce-overhead" else 1):  # CUDA graphs are recorded after a warm-up call
        compiled(probe, torch.zeros(shape, dtype=torch.uint8, device=device)).backward()
    return compiled


def view_schedule(num_views: int, order: str, rng: np.random.Generator):
    """Endless train-view indices: uniform draws (``random``) or 3DGS's epochs, each a fresh permutation (``epoch``)."""
    while True:
        if order == "epoch":
            yield from (int(i) for i in rng.permutation(num_views))
        else:
            yield int(rng.integers(num_views))


def train_rgb(scene: SceneData, cfg: GSTrainConfig, device: torch.device, checkpoint: Path | None = None,
              fingerprint: str = "", progress: bool = True,
              on_step: Callable[[int, "GaussianTrainer"], None] | None = None,
              on_start: Callable[["GaussianTrainer"], None] | None = None) -> dict[str, Tensor]:
    """Train RGB Gaussians on the scene's train views; returns the final raw parameters.

    ``on_step(step, trainer)`` runs after every optimisation step (benchmarks evaluate intermediate models);
    ``on_start(trainer)`` once set-up is done, right before the first step (benchmarks start their clock there).
    """
    cfg.check_choices()
    cfg.check_device(device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    extent = scene_extent(scene.world_to_camera[~scene.is_test])
    init = initial_gaussians(scene, cfg)
    lrs = {"means": cfg.lr_means * extent, "quats": cfg.lr_quats, "scales": cfg.lr_scales,
           "opacities": cfg.lr_opacities, "sh0": cfg.lr_sh0, "shN": cfg.lr_shN}
    densify = replace(cfg.densify, enabled=False) if cfg.fixed_points else cfg.densify
    if cfg.fixed_points:
        lrs["means"] = 0.0  # no optimiser: the centres stay the scan's points, bit for bit
    if min(scene.background) >= 0.99:  # 3DGS also resets opacity when densification starts on white backgrounds
        densify = replace(densify, opacity_reset_at=(*densify.opacity_reset_at, densify.refine_start_iter))
    mcmc = cfg.mcmc if cfg.strategy == "mcmc" else None
    trainer = GaussianTrainer(init, lrs, densify, extent, device, mcmc=mcmc, fused_adam=cfg.fused_adam)
    if checkpoint is not None:
        trainer.try_resume(checkpoint, fingerprint)

    train_ids = np.where(~scene.is_test)[0]
    images = torch.from_numpy(scene.images[train_ids]).to(device)  # uint8 on device, converted per step
    viewmats = torch.from_numpy(scene.world_to_camera[train_ids]).float().to(device)
    Ks = torch.from_numpy(scene.intrinsics[train_ids]).float().to(device)
    levels = resolution_levels(images, Ks, scene.width, scene.height, cfg.downscale_schedule, cfg.iterations)
    bg_fixed = torch.tensor(scene.background, dtype=torch.float32, device=device)[None]
    views = view_schedule(len(train_ids), cfg.view_order, rng)
    photometric = {(lv.height, lv.width): loss_function(cfg, (1, lv.height, lv.width, 3), device) for lv in levels}
    if on_start is not None:
        on_start(trainer)

    bar = tqdm(range(trainer.step, cfg.iterations), initial=trainer.step, total=cfg.iterations,
               disable=not progress, desc="train_gs", mininterval=5)
    for step in bar:
        i = next(views)
        sh = min(step // cfg.sh_increase_every, cfg.sh_degree)
        lv = level_at(levels, step)
        out, _, info = render_params(trainer.params, viewmats[i:i + 1], lv.Ks[i:i + 1], lv.width, lv.height,
                                     sh, backgrounds=bg_fixed,
                                     absgrad=cfg.strategy == "default" and cfg.densify.absgrad,
                                     rasterize_mode=cfg.rasterize_mode, packed=cfg.packed,
                                     tile_size=cfg.tile_size)
        loss = photometric[lv.height, lv.width](out, lv.images[i:i + 1])
        if mcmc is not None:  # MCMC's regularisers of the activated opacities and scales
            loss = loss + mcmc.opacity_reg * torch.sigmoid(trainer.params["opacities"]).mean() \
                + mcmc.scale_reg * torch.exp(trainer.params["scales"]).mean()
        trainer.optimise(loss, info)
        if not cfg.fixed_points:
            trainer.set_lr("means", cfg.lr_means * extent * cfg.means_lr_factor(step))
        if on_step is not None:
            on_step(step + 1, trainer)
        if step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", n=len(trainer.params["means"]))
        if checkpoint is not None and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 \
                and step + 1 < cfg.iterations:
            trainer.save_checkpoint(checkpoint, fingerprint)
    trainer.check_finite(f"end of training ({cfg.iterations} iterations)")
    return {k: trainer.params[k].detach() for k in PARAM_KEYS}
