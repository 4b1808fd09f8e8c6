"""Local feature smoothing (SAGA Sec. 3.3): f_g <- mean of the features of the K nearest Gaussians (K = 16, A.2).

Our reading: the neighbourhood includes the Gaussian itself (its nearest neighbour at distance 0), neighbours are
found on the Gaussian centres (``stages.lib.neighbours``) once per geometry (geometry is frozen while features train).
"""

from __future__ import annotations

from torch import Tensor

KNN_K = 16


def smooth_features(features: Tensor, neighbours: Tensor) -> Tensor:
    """f_g <- (1/K) sum_{g' in KNN(g)} f_g' for features [N,D] and neighbour indices [N,K] (differentiable)."""
    return features[neighbours].mean(1)
