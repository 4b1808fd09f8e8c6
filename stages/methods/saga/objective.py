"""SAGA's feature-field objective (Sec. 3.3-3.4, A.1-A.2) for the shared trainer ``train_feature_field``.

Every step renders the Eq. 10 feature map (unit-norm, KNN-smoothed affinity features, Sec. 3.3), samples
N_p = 1000 pixels covered by at least one mask and N_s = 8 scales uniformly in [0, 1], and returns Eq. 13 on the
view's full (overlapping) masks and their normalised 3D scales. The scale gate (Eq. 3/5) is this module's parameter,
optimised by the trainer and saved with the field. Our reading where the paper is silent: pixels covered by no mask
are not sampled (their mean mask size m_p in A.1 is undefined); masks without a 3D scale (no rendered depth) are left
out; the gate is initialised by PyTorch's default for a 1 -> D linear layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stages.lib.mask_store import load_masks
from stages.lib.neighbours import knn_indices
from stages.lib.store import StoreError, read_store, store_fingerprint
from stages.methods import register
from stages.methods.saga.gate import FEATURE_DIM, ScaleGate
from stages.methods.saga.losses import (
    correspondence_loss,
    feature_correspondence,
    identity_vectors,
    mask_correspondence,
    mean_mask_size,
    norm_loss,
    pair_weights,
    resample_pairs,
    saga_loss,
)
from stages.methods.saga.smoothing import KNN_K, smooth_features

NUM_SCALES = 8      # N_s (A.1, A.2)
NUM_PIXELS = 1000   # N_p (A.1, A.2)


@dataclass
class ViewMasks:
    """One view's usable masks: pixels [m,H*W] bool, normalised scales [m], areas [m], covered pixel indices."""

    pixels: np.ndarray
    scales: np.ndarray
    areas: np.ndarray
    covered: np.ndarray


def masks_of_scales(mask_scales: str) -> str:
    """The masks store a ``mask_scales`` store was computed from (its recorded input, checked by fingerprint)."""
    store = read_store("mask_scales", mask_scales)
    source = store.attrs["provenance"]["inputs"]["masks"]
    if store_fingerprint(source["path"]) != source["fingerprint"]:
        raise StoreError(f"{mask_scales}: its masks store {source['path']} changed since the scales were computed; "
                         "rerun mask_scales")
    return source["path"]


def load_view_masks(masks_path: str, mask_scales: str) -> list[ViewMasks | None]:
    """Per view, the masks with a finite normalised scale (``None`` for a view without any)."""
    masks = load_masks(masks_path)
    if masks.pixels is None:
        raise StoreError(f"{masks_path}: SAGA needs every mask in full (a keep_all masks variant)")
    scales = read_store("mask_scales", mask_scales).load("mask_scale")
    if len(scales) != masks.num_masks:
        raise StoreError(f"{mask_scales}: {len(scales)} scales for the {masks.num_masks} masks of {masks_path}")
    out: list[ViewMasks | None] = []
    for view in range(masks.labels.shape[0]):
        rows = np.nonzero((masks.table["mask_view"] == view) & np.isfinite(scales))[0]
        pixels = masks.pixels[rows].reshape(len(rows), -1)
        covered = np.nonzero(pixels.any(0))[0] if len(rows) else np.zeros(0, np.int64)
        out.append(ViewMasks(pixels, scales[rows].astype(np.float32), pixels.sum(1).astype(np.float32), covered)
                   if len(covered) else None)
    return out


class SagaObjective(torch.nn.Module):
    """Eq. 13 on one rendered view; ``render_features`` gives Eq. 10's unit smoothed features to render and
    ``output_features`` the smoothed features that are saved (Sec. 3.3)."""

    def __init__(self, views: list[ViewMasks | None], feature_dim: int = FEATURE_DIM, num_scales: int = NUM_SCALES,
                 num_pixels: int = NUM_PIXELS, smooth_k: int = KNN_K, lr: float = 1e-3, seed: int = 0) -> None:
        super().__init__()
        if num_scales < 1 or num_pixels < 2 or smooth_k < 1:
            raise ValueError(f"num_scales >= 1, num_pixels >= 2 and smooth_k >= 1 required, got {num_scales}, "
                             f"{num_pixels}, {smooth_k}")
        self.views, self.num_scales, self.num_pixels = views, num_scales, num_pixels
        self.smooth_k, self.lr, self.seed = smooth_k, lr, seed
        self.gate = ScaleGate(feature_dim)
        self._neighbours: Tensor | None = None

    # -- features the trainer renders and saves ------------------------------------------------
    def neighbours(self, means: Tensor) -> Tensor:
        """KNN indices [N,K] of the (frozen) Gaussian centres, computed once per Gaussian count."""
        if self._neighbours is None or len(self._neighbours) != len(means):
            self._neighbours = knn_indices(means, self.smooth_k)
        return self._neighbours

    def output_features(self, features: Tensor, means: Tensor) -> Tensor:
        """Sec. 3.3: the smoothed affinity features (what is saved after training)."""
        return smooth_features(features, self.neighbours(means))

    def render_features(self, features: Tensor, means: Tensor) -> Tensor:
        """Eq. 10: the smoothed features as unit vectors (their rendering F(p) has norm <= 1)."""
        return torch.nn.functional.normalize(self.output_features(features, means), dim=-1)

    # -- the loss --------------------------------------------------------------------------------
    def forward(self, rendered: Tensor, masks: Tensor, step: int, view: int) -> tuple[Tensor, dict[str, Tensor]]:
        l_norm = norm_loss(rendered)
        data = self.views[view] if view < len(self.views) else None
        if data is None:
            return l_norm.mean(), {"L_norm": l_norm.mean().detach()}
        device = rendered.device
        rng = np.random.default_rng([self.seed, step])
        pick = np.sort(rng.choice(data.covered, size=min(self.num_pixels, len(data.covered)), replace=False))
        member = torch.from_numpy(np.ascontiguousarray(data.pixels[:, pick].T)).to(device)
        mask_scales = torch.from_numpy(data.scales).to(device)
        scales = torch.from_numpy(rng.uniform(0.0, 1.0, self.num_scales).astype(np.float32)).to(device)
        feats = rendered.reshape(-1, rendered.shape[-1])[torch.from_numpy(pick).to(device)]
        corr_m = mask_correspondence(identity_vectors(member, mask_scales, scales))
        corr_f = feature_correspondence(feats, self.gate(scales))
        weights = pair_weights(mean_mask_size(member, torch.from_numpy(data.areas).to(device)))
        generator = torch.Generator(device=device).manual_seed(int(rng.integers(2**62)))
        selection = resample_pairs(corr_m, corr_f, generator)
        loss = saga_loss(correspondence_loss(corr_m, corr_f), weights, selection, l_norm)
        return loss, {"L_norm": l_norm.mean().detach(), "pairs": selection.positive.sum().float() / self.num_scales}

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The learnt scale gate (stored with the field)."""
        weight, bias = self.gate.arrays()
        return {"scale_gate_weight": weight.cpu().numpy(), "scale_gate_bias": bias.cpu().numpy()}


@register("objective", "saga")
def saga_objective(mask_scales: str, feature_dim: int = FEATURE_DIM, num_scales: int = NUM_SCALES,
                   num_pixels: int = NUM_PIXELS, smooth_k: int = KNN_K, lr: float = 1e-3,
                   seed: int = 0) -> SagaObjective:
    """Factory for ``train_features``: the views' masks come from the masks store the scales were computed from."""
    views = load_view_masks(masks_of_scales(mask_scales), mask_scales)
    return SagaObjective(views, feature_dim, num_scales, num_pixels, smooth_k, lr, seed)
