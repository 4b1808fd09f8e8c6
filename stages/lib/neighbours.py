"""Spatial neighbourhoods of Gaussians: k nearest centres and neighbour means of per-Gaussian values.

Shared by SAGA's local feature smoothing (SAGA Sec. 3.3) and the optional weak-Gaussian smoothing of
OpenInsGaussian's codebook input (``stages.methods.openins.codebook``, ``smooth_k``). Neighbours are found on the
Gaussian centres with scipy's cKDTree; a Gaussian is its own first neighbour.
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


def weighted_neighbour_mean(values: Tensor, neighbours: Tensor, weights: Tensor) -> Tensor:
    """v_i <- sum_{j in KNN(i)} w_j v_j / sum_{j in KNN(i)} w_j for values [N,D], neighbour indices [N,K] and
    non-negative weights [N]; where every neighbour's weight is zero, the plain neighbour mean."""
    w = weights[neighbours].unsqueeze(-1)  # [N,K,1]
    total = w.sum(1)
    weighted = (values[neighbours] * w).sum(1) / total.clamp_min(torch.finfo(values.dtype).tiny)
    return torch.where(total > 0, weighted, values[neighbours].mean(1))
