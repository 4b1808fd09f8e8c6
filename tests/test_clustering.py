"""HDBSCAN wrapper: planted clusters are recovered with and without subsampling, and from a distance matrix."""

import numpy as np
import pytest

from stages.lib.clustering import HDBSCANConfig, assign_to_centroids, cluster_points, cluster_precomputed


def blobs(n_per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    truth = np.repeat(np.arange(3), n_per)
    return (centres[truth] + 0.2 * rng.normal(size=(3 * n_per, 3))).astype(np.float32), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal up to a renaming of the cluster ids."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("max_points", [10_000, 300])
def test_planted_blobs_recovered(max_points):
    x, truth = blobs(400)
    labels = cluster_points(x, HDBSCANConfig(min_cluster_size=20, max_points=max_points))
    assert (labels >= 0).mean() > 0.95
    keep = labels >= 0
    assert same_partition(labels[keep], truth[keep])
    if max_points < len(x):
        assert (labels >= 0).all()  # every point is assigned to a subsample centroid


def test_precomputed_two_blocks():
    d = np.ones((30, 30))
    d[:15, :15] = d[15:, 15:] = 0.05
    np.fill_diagonal(d, 0.0)
    labels = cluster_precomputed(d, HDBSCANConfig(min_cluster_size=5))
    assert len(set(labels[:15])) == 1 and len(set(labels[15:])) == 1 and labels[0] != labels[20] and labels[0] >= 0


def test_assign_to_centroids_hand_made():
    import torch

    pts = torch.tensor([[0.1, 0.0], [0.9, 1.0], [2.0, 2.1]])
    cents = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert assign_to_centroids(pts, cents, chunk=2).tolist() == [0, 1, 2]


def test_bad_config():
    with pytest.raises(ValueError, match="min_cluster_size"):
        HDBSCANConfig(min_cluster_size=1)
