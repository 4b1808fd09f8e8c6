"""The shared per-Gaussian feature-field trainer used by every method (only the objective differs).

Each Gaussian carries a low-dimensional feature f_i that is alpha-composited like a colour,
F(p) = sum_i f_i a_i prod_{j<i} (1 - a_j) (3DGS Eq. 3 with features in place of colours, zero
background), and the rendered map of a train view is handed to an objective together with that
view's 2D masks. Geometry is either frozen (the OpenGaussian reference detaches the pre-trained
Gaussians and learns only f) or optimised jointly, with 3DGS densification until ``densify_stop_iter``
(the LERF setting). With ``photometric_weight`` > 0 every step also renders the view's colours and adds the
3DGS reconstruction loss (joint RGB + feature training, as Proto-SaGa's Eq. 8). An objective that is a
``torch.nn.Module`` is optimised too (its parameters, e.g. per-view classifiers, at its ``lr``). The loop,
optimisers, densification and resumable checkpoints are those of ``GaussianTrainer``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.cli import config_from_params
from stages.lib.gaussians import PARAM_KEYS, activated, save_gaussians
from stages.lib.gs_trainer import (
    DensifyConfig,
    GaussianTrainer,
    GSTrainConfig,
    scene_extent,
)
from stages.lib.image_metrics import ssim
from stages.lib.render import render
from stages.lib.scene import SceneData
from stages.lib.store import read_store

log = logging.getLogger(__name__)

FEATURE_KEY = "features"
GEOMETRY_KEYS = ("means", "quats", "scales", "opacities")
FEATURE_PARAM_KEYS = (*PARAM_KEYS, FEATURE_KEY)


class FeatureObjective(Protocol):
    """A feature-field loss on one rendered train view.

    ``rendered`` [H,W,D] is the view's feature rendering, ``masks`` [M,H,W] bool its 2D masks at the chosen
    level, ``step`` the optimisation step and ``view`` the view's index in the scene (objectives with per-view
    targets, such as the pseudo ground truth of Eq. 7, look them up by it). Returns the loss and detached
    scalar tensors to log.
    """

    def __call__(self, rendered: Tensor, masks: Tensor, step: int, view: int) -> tuple[Tensor, dict[str, Tensor]]:
        ...


@dataclass
class FeatureFieldConfig:
    """Feature-field training knobs.

    Defaults follow the OpenGaussian reference: 6-d features learnt with Adam at lr 1e-3 for 10k steps
    (its LERF schedule; 20k on ScanNet), one view per step, features initialised uniformly in [0, 1).
    ``geometry="optimise"`` trains means/quats/scales/opacities with the 3DGS learning rates and densifies
    until ``densify_stop_iter``; SH colours are never touched. Masks smaller than ``min_mask_pixels``
    are ignored (the reference drops masks under 50 pixels at full resolution). ``photometric_weight`` w adds
    w * L_REC, the 3DGS loss (1 - lambda) L1 + lambda (1 - SSIM) of the rendered colours (needs optimised geometry;
    the SH colours are then trained at the 3DGS rates too).
    """

    feature_dim: int = 6
    iterations: int = 10_000
    lr_features: float = 1e-3
    geometry: str = "frozen"
    densify_stop_iter: int = DensifyConfig.refine_stop_iter
    views_per_step: int = 1
    min_mask_pixels: int = 0
    seed: int = 0
    checkpoint_every: int = 2000
    photometric_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.geometry not in ("frozen", "optimise"):
            raise ValueError(f"geometry must be 'frozen' or 'optimise', got {self.geometry!r}")
        if self.photometric_weight < 0 or (self.photometric_weight > 0 and self.geometry == "frozen"):
            raise ValueError(f"photometric_weight must be >= 0, and > 0 only with geometry 'optimise': {self}")
        if self.feature_dim < 1 or self.iterations < 0 or self.views_per_step < 1:
            raise ValueError(f"feature_dim and views_per_step must be >= 1 and iterations >= 0: {self}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureFieldConfig:
        """Build from stage parameters, rejecting unknown keys by name."""
        return config_from_params(cls, d, "feature-field")


class ViewCameras:
    """A scene's cameras on one device; renders per-Gaussian features for a list of view indices."""

    def __init__(self, scene: SceneData, device: torch.device) -> None:
        self.viewmats = torch.from_numpy(scene.world_to_camera).float().to(device)
        self.Ks = torch.from_numpy(scene.intrinsics).float().to(device)
        self.width, self.height = scene.width, scene.height

    def render(self, params: Mapping[str, Tensor], features: Tensor,
               views: Sequence[int]) -> tuple[Tensor, dict[str, Any]]:
        """Feature maps [C,H,W,D] of the given views on a zero background, plus gsplat's ``info``."""
        a = activated({k: params[k] for k in PARAM_KEYS})
        idx = torch.as_tensor(list(views), dtype=torch.long, device=self.viewmats.device)
        out, _, info = render(a["means"], a["quats"], a["scales"], a["opacities"], features,
                              self.viewmats[idx], self.Ks[idx], self.width, self.height, sh_degree=None)
        return out, info

    def blending_weights(self, params: Mapping[str, Tensor], views: Sequence[int]) -> Tensor:
        """Per Gaussian, its summed compositing weight over the pixels of ``views``: sum_p a_i(p) T_i(p), the factor
        that multiplies f_i in F(p) (3DGS Eq. 3), so how strongly those views constrain its feature. Computed as the
        gradient of the summed render of a constant one-channel feature; over all Gaussians it sums to the rendered
        alpha of those views."""
        n = params["means"].shape[0]
        ones = torch.ones(n, 1, device=self.viewmats.device, requires_grad=True)
        total = torch.zeros(n, device=self.viewmats.device)
        geometry = {k: params[k].detach() for k in PARAM_KEYS}
        for view in views:
            rendered, _ = self.render(geometry, ones, [view])
            (grad,) = torch.autograd.grad(rendered.sum(), ones)
            total += grad[:, 0]
        return total

    def render_with_colours(self, params: Mapping[str, Tensor], features: Tensor, views: Sequence[int],
                            background: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Colours [C,H,W,3] on ``background`` and features [C,H,W,D] on zero, composited in one pass.

        The SH colours are evaluated per camera (gsplat's SH, as its rasteriser does) and rendered as extra channels.
        """
        from gsplat.cuda._torch_impl import _spherical_harmonics

        a = activated({k: params[k] for k in PARAM_KEYS})
        idx = torch.as_tensor(list(views), dtype=torch.long, device=self.viewmats.device)
        campos = torch.linalg.inv(self.viewmats[idx])[:, :3, 3]
        dirs = a["means"][None] - campos[:, None]
        coeffs = a["colors"][None].expand(len(idx), *a["colors"].shape)
        degree = int(round(math.sqrt(a["colors"].shape[1]))) - 1
        rgb = torch.clamp_min(_spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
        channels = torch.cat([rgb, features[None].expand(len(idx), *features.shape)], dim=-1)
        bg = torch.cat([background, background.new_zeros(features.shape[1])])[None].expand(len(idx), -1)
        out, _, info = render(a["means"], a["quats"], a["scales"], a["opacities"], channels, self.viewmats[idx],
                              self.Ks[idx], self.width, self.height, sh_degree=None, backgrounds=bg)
        return out[..., :3], out[..., 3:], info


def view_mask_ids(labels: Tensor, min_pixels: int = 0) -> Tensor:
    """The ids of a label map [H,W] (-1 = no mask) that ``label_masks`` turns into masks, ascending."""
    ids, counts = torch.unique(labels, return_counts=True)
    return ids[(ids >= 0) & (counts >= max(min_pixels, 1))]


def label_masks(labels: Tensor, min_pixels: int = 0) -> Tensor:
    """Boolean masks [M,H,W] of a label map [H,W] (-1 = no mask), dropping masks under ``min_pixels``."""
    ids = view_mask_ids(labels, min_pixels)
    return labels[None] == ids[:, None, None]


def _learning_rates(cfg: FeatureFieldConfig, extent: float) -> dict[str, float]:
    """Features at ``lr_features``; geometry at the 3DGS rates when optimised, else untouched.

    When optimised, the SH colours get an optimiser as well, because gsplat's densification requires one for every
    trainable parameter; they receive gradients only from the photometric term (``photometric_weight`` > 0).
    """
    lrs = {FEATURE_KEY: cfg.lr_features}
    if cfg.geometry == "optimise":
        gs = GSTrainConfig()
        lrs.update(means=gs.lr_means * extent, quats=gs.lr_quats, scales=gs.lr_scales, opacities=gs.lr_opacities,
                   sh0=gs.lr_sh0, shN=gs.lr_shN)
    return lrs


def _densify_config(cfg: FeatureFieldConfig) -> DensifyConfig | None:
    if cfg.geometry == "frozen" or cfg.densify_stop_iter <= 0:
        return None
    return DensifyConfig(refine_stop_iter=cfg.densify_stop_iter)


def _freeze_untrained(trainer: GaussianTrainer) -> None:
    """Parameters without an optimiser take no gradient (and gsplat's densification requires that)."""
    for key, param in trainer.params.items():
        param.requires_grad_(key in trainer.optimizers)


def _initial_features(n: int, cfg: FeatureFieldConfig, init_features: Tensor | None) -> Tensor:
    if init_features is None:
        return torch.rand((n, cfg.feature_dim), generator=torch.Generator().manual_seed(cfg.seed))
    if tuple(init_features.shape) != (n, cfg.feature_dim):
        raise ValueError(f"init_features has shape {tuple(init_features.shape)}, expected {(n, cfg.feature_dim)}")
    return init_features.detach().float().cpu().clone()


def _views_of_step(train_ids: np.ndarray, cfg: FeatureFieldConfig, step: int) -> np.ndarray:
    """The train views of one step, a function of (seed, step) only, so a resumed run sees the same views."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng.choice(train_ids, size=min(cfg.views_per_step, len(train_ids)), replace=False)


def _photometric_loss(colours: Tensor, images: Tensor, views: Sequence[int]) -> Tensor:
    """3DGS reconstruction loss (1 - lambda) L1 + lambda (1 - SSIM) of rendered colours [C,H,W,3] (uint8 targets)."""
    lam = GSTrainConfig().ssim_lambda
    target = images[torch.as_tensor(list(views), dtype=torch.long, device=images.device)].float() / 255.0
    return (1 - lam) * torch.abs(colours - target).mean() + lam * (1 - ssim(colours, target))


def _prepare_objective(objective: FeatureObjective, trainer: GaussianTrainer, labels: Tensor | None,
                       train_ids: np.ndarray, cfg: FeatureFieldConfig, num_views: int) -> None:
    """An objective with parameters of its own (a ``torch.nn.Module``) is sized from the masks the trainer will hand
    it (``prepare(view_mask_ids, feature_dim)``, if defined) and optimised at its ``lr``."""
    if not isinstance(objective, torch.nn.Module):
        return
    prepare = getattr(objective, "prepare", None)
    if prepare is not None:
        train = set(int(v) for v in train_ids)
        prepare([view_mask_ids(labels[v], cfg.min_mask_pixels) if labels is not None and v in train else None
                 for v in range(num_views)], cfg.feature_dim)
    trainer.add_module("objective", objective, float(getattr(objective, "lr", cfg.lr_features)))


def _features_to_render(objective: FeatureObjective, params: Mapping[str, Tensor]) -> Tensor:
    """The per-Gaussian features to render: ``objective.render_features(features, means)`` where the objective
    transforms them (SAGA: KNN smoothing and unit norm, Eq. 10), else the features themselves; an objective with
    ``output_features(features, means)`` also transforms the returned features (SAGA saves the smoothed ones)."""
    transform = getattr(objective, "render_features", None)
    features = params[FEATURE_KEY]
    return features if transform is None else transform(features, params["means"])


def _batch_loss(objective: FeatureObjective, rendered: Tensor, masks: Sequence[Tensor], views: Sequence[int],
                step: int) -> tuple[Tensor, dict[str, Tensor]]:
    """The objective averaged over the views of one step (loss and logged values)."""
    losses, logs = [], {}
    for c, view in enumerate(views):
        loss_c, logs_c = objective(rendered[c], masks[c], step, int(view))
        losses.append(loss_c)
        for key, value in logs_c.items():
            logs[key] = logs.get(key, 0.0) + value / len(views)
    return torch.stack(losses).mean(), logs


def train_feature_field(gaussians_params: Mapping[str, Tensor], scene: SceneData, mask_labels: np.ndarray | None,
                        objective: FeatureObjective, cfg: FeatureFieldConfig, device: torch.device,
                        init_features: Tensor | None = None, checkpoint: Path | None = None, fingerprint: str = "",
                        progress: bool = True,
                        on_step: Callable[[int, GaussianTrainer], None] | None = None) -> dict[str, Tensor]:
    """Train per-Gaussian features on the scene's train views; returns the Gaussian params plus ``features`` [N,D].

    ``mask_labels`` [V,H,W] int32 is the label map of every scene view at the chosen mask level (-1 none);
    ``None`` hands the objective no masks. ``on_step(step, trainer)`` runs after every step.
    """
    if mask_labels is not None and mask_labels.shape != (scene.num_views, scene.height, scene.width):
        raise ValueError(f"mask labels have shape {mask_labels.shape}, the scene has "
                         f"{(scene.num_views, scene.height, scene.width)} (views, height, width)")
    torch.manual_seed(cfg.seed)
    extent = scene_extent(scene.world_to_camera)
    params = {k: gaussians_params[k].detach().float().cpu().clone() for k in PARAM_KEYS}  # never update the input
    params[FEATURE_KEY] = _initial_features(len(params["means"]), cfg, init_features)
    trainer = GaussianTrainer(params, _learning_rates(cfg, extent), _densify_config(cfg), extent, device)
    train_ids = np.where(~scene.is_test)[0]
    labels = None if mask_labels is None else torch.from_numpy(np.ascontiguousarray(mask_labels)).to(device)
    _prepare_objective(objective, trainer, labels, train_ids, cfg, scene.num_views)
    if checkpoint is not None:
        trainer.try_resume(checkpoint, fingerprint)
    _freeze_untrained(trainer)

    cameras = ViewCameras(scene, device)
    photometric = cfg.photometric_weight > 0
    if photometric:
        images = torch.from_numpy(scene.images).to(device)
        background = torch.tensor(scene.background, dtype=torch.float32, device=device)
    no_masks = torch.zeros((0, scene.height, scene.width), dtype=torch.bool, device=device)
    log_every = max(1, cfg.iterations // 10)
    bar = tqdm(range(trainer.step, cfg.iterations), initial=trainer.step, total=cfg.iterations,
               disable=not progress, desc="feature field", mininterval=5)
    for step in bar:
        views = _views_of_step(train_ids, cfg, step)
        features = _features_to_render(objective, trainer.params)
        if photometric:
            colours, rendered, info = cameras.render_with_colours(trainer.params, features, views, background)
        else:
            rendered, info = cameras.render(trainer.params, features, views)
        view_masks = [no_masks if labels is None else label_masks(labels[v], cfg.min_mask_pixels) for v in views]
        loss, logs = _batch_loss(objective, rendered, view_masks, views, step)
        if photometric:
            rec = _photometric_loss(colours, images, views)
            loss = loss + cfg.photometric_weight * rec
            logs["L_REC"] = rec.detach()
        trainer.optimise(loss, info)
        if on_step is not None:
            on_step(step + 1, trainer)
        if step % log_every == 0 or step + 1 == cfg.iterations:
            shown = {"loss": loss.item(), **{k: float(v) for k, v in logs.items()}}
            bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, n=len(trainer.params["means"]))
            log.info("step %d/%d %s", step + 1, cfg.iterations, " ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        if checkpoint is not None and cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 \
                and step + 1 < cfg.iterations:
            trainer.save_checkpoint(checkpoint, fingerprint)
    trainer.check_finite(f"end of feature-field training ({cfg.iterations} iterations)")
    result = {k: trainer.params[k].detach() for k in FEATURE_PARAM_KEYS}
    output = getattr(objective, "output_features", None)
    if output is not None:
        with torch.no_grad():
            result[FEATURE_KEY] = output(result[FEATURE_KEY], result["means"]).detach()
    return result


# ----------------------------------------------------------------------------------------------
# ``feature_gaussians`` store I/O
# ----------------------------------------------------------------------------------------------
def save_feature_gaussians(path: str | Path, params: Mapping[str, Tensor], stage: str, run_params: Mapping[str, Any],
                           inputs: Mapping[str, str | Path], attrs: Mapping[str, Any]) -> None:
    """Write a ``feature_gaussians`` store (Gaussian params plus ``features``, and ``objective_state`` if given)
    atomically."""
    keys = FEATURE_PARAM_KEYS + (("objective_state",) if "objective_state" in params else ())
    save_gaussians(path, params, stage, run_params, inputs, {**attrs, "feature_dim": int(params[FEATURE_KEY].shape[1])},
                   kind="feature_gaussians", keys=keys)


def load_feature_gaussians(path: str | Path, device: str | torch.device = "cpu"
                           ) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a ``feature_gaussians`` store as tensors (``PARAM_KEYS`` plus ``features``) and its attributes."""
    store = read_store("feature_gaussians", path)
    return {k: torch.from_numpy(store.load(k)).to(device) for k in FEATURE_PARAM_KEYS}, store.attrs
