"""Spatial neighbourhoods of Gaussians: k nearest centres and neighbour means of per-Gaussian values.

Shared by SAGA's local feature smoothing (SAGA Sec. 3.3) and the optional weak-Gaussian smoothing of
OpenInsGaussian's codebook input (``stages.methods.openins.codebook``: ``smooth_k``, ``smooth_gate``,
``smooth_plane_tol``). Neighbours are found on the Gaussian centres with scipy's cKDTree; a Gaussian is its own first
neighbour.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor


def knn_indices(means: np.ndarray | Tensor, k: int, workers: int = -1) -> Tensor:
    """Indices [N,k] of the k nearest centres of every Gaussian (itself first), on the device of ``means``."""
    device = means.device if isinstance(means, Tensor) else torch.device("cpu")
    xyz = means.detach().cpu().numpy() if isinstance(means, Tensor) else np.asarray(means)
    k = min(k, len(xyz))
    _, idx = cKDTree(xyz).query(xyz, k=k, workers=workers)
    return torch.from_numpy(np.asarray(idx, dtype=np.int64).reshape(len(xyz), k)).to(device)


def weighted_neighbour_mean(values: Tensor, neighbours: Tensor, weights: Tensor,
                            admit: Tensor | None = None) -> Tensor:
    """v_i <- sum_{j in KNN(i)} a_ij w_j v_j / sum_{j in KNN(i)} a_ij w_j for values [N,D], neighbour indices [N,K],
    non-negative weights [N] and optional admitted neighbours a [N,K] (bool, default all); where every admitted
    neighbour's weight is zero, the plain mean of the admitted neighbours."""
    a = torch.ones_like(neighbours, dtype=values.dtype) if admit is None else admit.to(values.dtype)
    w = (weights[neighbours] * a).unsqueeze(-1)  # [N,K,1]
    total = w.sum(1)
    weighted = (values[neighbours] * w).sum(1) / total.clamp_min(torch.finfo(values.dtype).tiny)
    plain = (values[neighbours] * a.unsqueeze(-1)).sum(1) / a.sum(1, keepdim=True).clamp_min(1)
    return torch.where(total > 0, weighted, plain)


def similar_neighbours(values: Tensor, neighbours: Tensor, threshold: float) -> Tensor:
    """[N,K] bool: neighbour j of i is admitted when cos(v_i, v_j) >= ``threshold``; i itself always is."""
    unit = torch.nn.functional.normalize(values, dim=-1)
    cos = (unit[:, None, :] * unit[neighbours]).sum(-1)
    own = neighbours == torch.arange(len(values), device=values.device)[:, None]
    return (cos >= threshold) | own


def local_normals(means: Tensor, neighbours: Tensor) -> Tensor:
    """[N,3] unit normal of every Gaussian's neighbourhood: the least-variance direction of its neighbours' centres
    (principal component analysis over ``neighbours`` [N,K]; the sign is arbitrary)."""
    points = means[neighbours].double()  # [N,K,3]
    centred = points - points.mean(1, keepdim=True)
    _, vectors = torch.linalg.eigh(centred.transpose(1, 2) @ centred)  # eigenvalues ascending
    return vectors[..., 0].to(means.dtype)


def coplanar_neighbours(means: Tensor, neighbours: Tensor, tolerance: float) -> Tensor:
    """[N,K] bool: neighbour j of i is admitted when its centre lies within ``tolerance`` (scene units) of i's local
    tangent plane, |n_i . (x_j - x_i)| <= tolerance with n_i from ``local_normals``; i itself always is. A picture
    2 cm in front of a wall is then no neighbour of the wall behind it, though its centres are as near."""
    normal = local_normals(means, neighbours)
    offset = ((means[neighbours] - means[:, None, :]) * normal[:, None, :]).sum(-1).abs()
    own = neighbours == torch.arange(len(means), device=means.device)[:, None]
    return (offset <= tolerance) | own
