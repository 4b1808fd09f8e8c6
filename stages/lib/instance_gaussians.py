"""3D instances of a feature-Gaussian scene, cameras, and rendering any subset of Gaussians alone.

A 3D instance is the set of Gaussians sharing a codebook leaf (``leaf_id``), described by the leaf's feature
(``fine_centres[i]``), read from a ``feature_gaussians`` and a ``codebook`` store.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stages.lib.gaussians import PARAM_KEYS, activated
from stages.lib.render import render
from stages.lib.store import Store, StoreError, read_store

SIGMA_EXTENT = 3.0  # a Gaussian's footprint reaches 3 standard deviations, as in gsplat's radius


# ----------------------------------------------------------------------------------------------
# Gaussians grouped into instances, and cameras
# ----------------------------------------------------------------------------------------------
@dataclass
class InstanceGaussians:
    """Activated Gaussians (unit quats, positive scales, opacities in (0,1)) with features and leaf (instance) ids."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    features: Tensor
    leaf_id: Tensor
    num_instances: int

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def take(self, index: Tensor) -> "InstanceGaussians":
        """The Gaussians selected by a boolean mask or an index tensor."""
        per_gaussian = [f.name for f in fields(self) if f.name != "num_instances"]
        return replace(self, **{name: getattr(self, name)[index] for name in per_gaussian})

    def members(self) -> list[Tensor]:
        """Gaussian indices of every instance (one sort, then slices)."""
        order = torch.argsort(self.leaf_id, stable=True)
        valid = self.leaf_id[order] >= 0
        order = order[valid]
        counts = torch.bincount(self.leaf_id[order], minlength=self.num_instances).tolist()
        return list(torch.split(order, counts))


def load_instance_gaussians(gaussians: str | Path, codebook: str | Path,
                            device: str | torch.device = "cpu") -> tuple[InstanceGaussians, Tensor]:
    """Read a ``feature_gaussians`` and a ``codebook`` store; returns the instances and the leaf features [K,D].

    Raises ``StoreError`` naming the codebook when its Gaussian count or feature size does not match.
    """
    g_store = read_store("feature_gaussians", gaussians)
    cb = read_store("codebook", codebook)
    check_codebook(g_store, cb)
    params = {k: torch.from_numpy(g_store.load(k)).to(device) for k in PARAM_KEYS}
    a = activated(params)
    centres = torch.from_numpy(cb.load("fine_centres")).to(device)
    inst = InstanceGaussians(a["means"], a["quats"], a["scales"], a["opacities"],
                             torch.from_numpy(g_store.load("features")).to(device),
                             torch.from_numpy(cb.load("leaf_id")).long().to(device), int(centres.shape[0]))
    return inst, centres


def check_codebook(gaussians: Store, codebook: Store) -> None:
    """The codebook must label exactly the store's Gaussians with leaves of the Gaussians' feature size."""
    n, d = gaussians.sizes["N"], gaussians.sizes["D"]
    if codebook.sizes["N"] != n:
        raise StoreError(f"{codebook.path}: codebook labels {codebook.sizes['N']} Gaussians but "
                         f"{gaussians.path} holds {n}")
    if codebook.sizes["D"] != d:
        raise StoreError(f"{codebook.path}: leaf features have {codebook.sizes['D']} dims but the Gaussian "
                         f"features of {gaussians.path} have {d}")
    leaf = codebook.load("leaf_id")
    if leaf.size and (leaf.max() >= codebook.sizes["K"] or leaf.min() < -1):
        raise StoreError(f"{codebook.path}: leaf_id outside [-1, {codebook.sizes['K']})")


@dataclass
class Cameras:
    """A batch of pinhole cameras (OpenCV, world-to-camera) sharing one image size."""

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    def __getitem__(self, index: Tensor | slice | list[int]) -> "Cameras":
        return replace(self, viewmats=self.viewmats[index], Ks=self.Ks[index])

    @classmethod
    def from_scene(cls, scene: Store, views: np.ndarray, device: str | torch.device = "cpu") -> "Cameras":
        """The cameras of the given views of a ``scene`` store."""
        views = np.asarray(views, dtype=np.int64)
        return cls(torch.from_numpy(scene.load("world_to_camera")[views]).to(device),
                   torch.from_numpy(scene.load("intrinsics")[views]).to(device), scene.sizes["W"], scene.sizes["H"])


def render_channels(g: InstanceGaussians, values: Tensor, cams: Cameras) -> tuple[Tensor, Tensor]:
    """Composite per-Gaussian values [N,Q] (3DGS Eq. 3, no background): ([C,H,W,Q], alpha [C,H,W])."""
    out, alpha, _ = render(g.means, g.quats, g.scales, g.opacities, values, cams.viewmats, cams.Ks,
                           cams.width, cams.height)
    return out, alpha[..., 0]


def rendered_class_map(weights: Tensor) -> np.ndarray:
    """Class per pixel [...] from rendered one-hot labels [..., C] (w_c = sum_g [label_g = c] a_g T_g): the argmax
    over c; -1 (a miss) where no labelled Gaussian contributes (every w_c = 0)."""
    best = weights.argmax(-1)
    return torch.where(weights.amax(-1) > 0, best, torch.full_like(best, -1)).cpu().numpy()


def render_alpha(g: InstanceGaussians, cams: Cameras) -> Tensor:
    """Accumulated opacity of ``g`` rendered alone, [C,H,W]: 1 - prod_i (1 - a_i) over its Gaussians only."""
    return render_channels(g, g.means.new_zeros(len(g), 1), cams)[1]


def instance_visibility(g: InstanceGaussians, cams: Cameras, near: float = 0.01, chunk: int = 8) -> Tensor:
    """[K,C] bool: some Gaussian of instance k projects into camera c (mean in front, 3-sigma disc meets the image).

    A cheap, conservative test used to skip rendering instances a view cannot see.
    """
    seen = torch.zeros(g.num_instances, len(cams), dtype=torch.bool, device=g.device)
    valid = g.leaf_id >= 0
    leaf, means = g.leaf_id[valid], g.means[valid]
    radius = SIGMA_EXTENT * g.scales[valid].amax(-1)
    for start in range(0, len(cams), chunk):
        c = cams[start:start + chunk]
        cam = torch.einsum("cij,nj->cni", c.viewmats[:, :3, :3], means) + c.viewmats[:, None, :3, 3]
        z = cam[..., 2]
        zs = z.clamp_min(near)
        fx, fy = c.Ks[:, 0, 0, None], c.Ks[:, 1, 1, None]
        u = fx * cam[..., 0] / zs + c.Ks[:, 0, 2, None]
        v = fy * cam[..., 1] / zs + c.Ks[:, 1, 2, None]
        r = radius[None] * torch.maximum(fx, fy) / zs
        inside = (z > near) & (u + r >= 0) & (u - r < c.width) & (v + r >= 0) & (v - r < c.height)
        hits = torch.zeros(g.num_instances, len(c), device=g.device).index_add_(0, leaf, inside.T.float())
        seen[:, start:start + len(c)] = hits > 0
    return seen
