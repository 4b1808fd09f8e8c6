"""Superpoints of a point cloud (SAS Sec. 3.5 / supplement: a graph-based segmentation [Felzenszwalb and
Huttenlocher 2004] on normals, as ScanNet's mesh segmentator that produced ``*.segs.json``).

A scan that ships its over-segmentation keeps it (the scene store's ``points_segment``). Otherwise the points get a
k-nearest-neighbour graph (no mesh here), PCA normals of each point's neighbourhood, edge weights 1 - |n_i . n_j|
(the sign of a PCA normal is arbitrary) and Felzenszwalb-Huttenlocher merging: edges in increasing weight join two
components when the weight is at most min(Int(A) + k / |A|, Int(B) + k / |B|) (Int: the largest edge inside a
component), then components smaller than ``min_size`` join their neighbour along the lightest edges. The defaults
are the segmentator's (threshold k = 0.01, at least 20 vertices per segment); no maintained Python package
implements this on point clouds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class GraphSegmentation:
    """neighbours: k of the kNN graph; threshold: Felzenszwalb-Huttenlocher's k; min_size: smallest segment."""

    neighbours: int = 10
    threshold: float = 0.01
    min_size: int = 20


def dense_ids(raw: np.ndarray) -> np.ndarray:
    """A scan's segment id per point (any integers; negative = no segment) as superpoint ids 0..L-1; every point
    without a segment becomes its own superpoint."""
    ids = np.asarray(raw, np.int64).copy()
    none = ids < 0
    ids[none] = ids.max(initial=0) + 1 + np.arange(int(none.sum()))
    return np.unique(ids, return_inverse=True)[1].astype(np.int64)


def point_normals(points: np.ndarray, neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit PCA normals [P, 3], kNN indices [P, k] without the point itself)."""
    k = min(neighbours + 1, len(points))
    _, idx = cKDTree(points).query(points, k=k)
    local = points[idx] - points[idx].mean(1, keepdims=True)
    _, vectors = np.linalg.eigh(np.einsum("pki,pkj->pij", local, local))
    return vectors[:, :, 0], idx[:, 1:]


def find(parent: np.ndarray, i: int) -> int:
    """Union-find root with path halving."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def graph_segments(points: np.ndarray, cfg: GraphSegmentation = GraphSegmentation()) -> np.ndarray:
    """Superpoint id [P] (0..L-1, in order of first appearance) of every point [P, 3]."""
    if len(points) < 2:
        return np.zeros(len(points), np.int64)
    normals, idx = point_normals(np.asarray(points, np.float64), cfg.neighbours)
    src = np.repeat(np.arange(len(points)), idx.shape[1])
    dst = idx.reshape(-1)
    pairs = np.unique(np.sort(np.stack([src, dst], 1), axis=1), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    weight = 1.0 - np.abs(np.einsum("ij,ij->i", normals[pairs[:, 0]], normals[pairs[:, 1]]))
    order = np.argsort(weight, kind="stable")
    pairs, weight = pairs[order].tolist(), weight[order].tolist()
    parent = list(range(len(points)))
    size = [1] * len(points)
    inner = [0.0] * len(points)
    for (a, b), w in zip(pairs, weight):
        ra, rb = find(parent, a), find(parent, b)
        if ra != rb and w <= min(inner[ra] + cfg.threshold / size[ra], inner[rb] + cfg.threshold / size[rb]):
            parent[rb] = ra
            size[ra] += size[rb]
            inner[ra] = w
    for a, b in pairs:
        ra, rb = find(parent, a), find(parent, b)
        if ra != rb and (size[ra] < cfg.min_size or size[rb] < cfg.min_size):
            parent[rb] = ra
            size[ra] += size[rb]
    roots = np.array([find(parent, i) for i in range(len(points))])
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)
