"""HDBSCAN clustering (the ``hdbscan`` package) for point features and for precomputed distance matrices.

Large point sets are clustered on a uniform subsample and every point is then assigned to the nearest cluster
centroid of the subsample (SAGA clusters 1 % of the Gaussians, Sec. 3.5 footnote 2); points may stay noise (-1)
only in the subsample itself, so with subsampling every point gets a cluster whenever one is found.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class HDBSCANConfig:
    """HDBSCAN knobs (``hdbscan.HDBSCAN`` names) and the subsample size above which points are subsampled."""

    min_cluster_size: int = 10
    min_samples: int | None = None
    cluster_selection_epsilon: float = 0.0
    max_points: int = 20_000
    seed: int = 0
    jobs: int = 2

    def __post_init__(self) -> None:
        if self.min_cluster_size < 2 or self.max_points < self.min_cluster_size:
            raise ValueError(f"min_cluster_size must be >= 2 and max_points >= min_cluster_size: {self}")


def _hdbscan(x: np.ndarray, cfg: HDBSCANConfig, metric: str) -> np.ndarray:
    import hdbscan

    model = hdbscan.HDBSCAN(min_cluster_size=cfg.min_cluster_size, min_samples=cfg.min_samples,
                            cluster_selection_epsilon=cfg.cluster_selection_epsilon, metric=metric,
                            core_dist_n_jobs=cfg.jobs)
    return model.fit_predict(x).astype(np.int64)


def cluster_points(x: np.ndarray | torch.Tensor, cfg: HDBSCANConfig) -> np.ndarray:
    """HDBSCAN labels [N] (-1 noise) of points [N,D] under the Euclidean metric.

    At most ``cfg.max_points`` points are clustered (uniform subsample, ``cfg.seed``); when subsampled, every point
    takes the label of its nearest subsample-cluster centroid (``assign_to_centroids``).
    """
    points = torch.as_tensor(x).float()
    if points.ndim != 2 or len(points) == 0:
        raise ValueError(f"cluster_points needs a non-empty [N, D] array, got shape {tuple(points.shape)}")
    n = len(points)
    if n <= cfg.max_points:
        return _hdbscan(points.cpu().numpy(), cfg, "euclidean")
    rng = np.random.default_rng(cfg.seed)
    sample = np.sort(rng.choice(n, size=cfg.max_points, replace=False))
    labels = _hdbscan(points[torch.from_numpy(sample).to(points.device)].cpu().numpy(), cfg, "euclidean")
    if labels.max() < 0:
        return np.full(n, -1, dtype=np.int64)
    centroids = cluster_centroids(points[torch.from_numpy(sample).to(points.device)], labels)
    return assign_to_centroids(points, centroids)


def cluster_precomputed(distance: np.ndarray, cfg: HDBSCANConfig) -> np.ndarray:
    """HDBSCAN labels [M] (-1 noise) from a symmetric distance matrix [M,M] (no subsampling)."""
    d = np.asarray(distance, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"cluster_precomputed needs a square distance matrix, got shape {d.shape}")
    if len(d) < cfg.min_cluster_size:
        return np.full(len(d), -1, dtype=np.int64)
    return _hdbscan(d, cfg, "precomputed")


def cluster_centroids(points: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """Mean point of every cluster 0..max(labels) [K,D] (noise ignored)."""
    lab = torch.as_tensor(labels, device=points.device)
    keep = lab >= 0
    k = int(lab.max()) + 1
    sums = points.new_zeros(k, points.shape[1]).index_add_(0, lab[keep], points[keep])
    counts = torch.bincount(lab[keep], minlength=k).clamp_min(1)
    return sums / counts[:, None].to(points.dtype)


def assign_to_centroids(points: torch.Tensor, centroids: torch.Tensor, chunk: int = 262_144) -> np.ndarray:
    """Index of the nearest centroid (Euclidean) of every point, in chunks (a matrix product per chunk)."""
    c2 = (centroids**2).sum(1)
    out = []
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        out.append(torch.argmin(c2[None] - 2.0 * p @ centroids.T, dim=1))
    return torch.cat(out).cpu().numpy().astype(np.int64)
