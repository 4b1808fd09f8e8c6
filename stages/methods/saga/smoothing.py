"""Local feature smoothing (SAGA Sec. 3.3): f_g <- mean of the features of the K nearest Gaussians (K = 16, A.2).

Our reading: the neighbourhood includes the Gaussian itself (its nearest neighbour at distance 0), neighbours are
found on the Gaussian centres with scipy's cKDTree once per geometry (geometry is frozen while features train).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

KNN_K = 16


def knn_indices(means: np.ndarray | Tensor, k: int = KNN_K, workers: int = -1) -> Tensor:
    """Indices [N,k] of the k nearest centres of every Gaussian (itself first), on the device of ``means``."""
    device = means.device if isinstance(means, Tensor) else torch.device("cpu")
    xyz = means.detach().cpu().numpy() if isinstance(means, Tensor) else np.asarray(means)
    k = min(k, len(xyz))
    _, idx = cKDTree(xyz).query(xyz, k=k, workers=workers)
    return torch.from_numpy(np.asarray(idx, dtype=np.int64).reshape(len(xyz), k)).to(device)


def smooth_features(features: Tensor, neighbours: Tensor) -> Tensor:
    """f_g <- (1/K) sum_{g' in KNN(g)} f_g' for features [N,D] and neighbour indices [N,K] (differentiable)."""
    return features[neighbours].mean(1)
