"""Scene decomposition (SAGA Sec. 3.5): HDBSCAN on the scale-gated affinity features S(s) * f_g of the Gaussians.

As the paper's footnote 2, a uniform 1 % of the Gaussians is clustered (at least ``min_points``); every Gaussian then
takes the cluster of the nearest centroid (``stages.lib.clustering``). Our reading: features are L2-normalised after
gating, so HDBSCAN's Euclidean distance orders pairs as their cosine similarity does.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from stages.lib.clustering import HDBSCANConfig, cluster_points

SAMPLE_FRACTION = 0.01


def decompose(features: Tensor, gate: Tensor, cfg: HDBSCANConfig, min_points: int = 2000) -> np.ndarray:
    """Cluster id [N] of every Gaussian at the scale whose gate S(s) [D] is given (-1 only if nothing clusters)."""
    gated = torch.nn.functional.normalize(gate * features.float(), dim=-1)
    sample = max(min_points, int(SAMPLE_FRACTION * len(features)))
    return cluster_points(gated, replace(cfg, max_points=min(sample, len(features))))
