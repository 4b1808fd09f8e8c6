"""Voxelisation of a point cloud for a sparse network and de-voxelisation of its output back onto the points."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Voxels:
    """Occupied voxels of a point cloud: ``coords`` [V, 4] (batch, x, y, z) >= 0, ``point_voxel`` [P] the voxel row of
    every point, ``origin`` [3] and ``size`` the grid (voxel (x, y, z) spans origin + [x, x + 1) * size)."""

    coords: torch.Tensor
    point_voxel: torch.Tensor
    origin: torch.Tensor
    size: float

    def centres(self) -> torch.Tensor:
        """[V, 3] voxel centres in the points' frame."""
        return self.origin + (self.coords[:, 1:].to(self.origin.dtype) + 0.5) * self.size

    def pool(self, point_values: torch.Tensor) -> torch.Tensor:
        """Mean of per-point values [P, C] over the points of each voxel -> [V, C]."""
        total = point_values.new_zeros(len(self.coords), point_values.shape[1]).index_add(
            0, self.point_voxel, point_values)
        count = torch.bincount(self.point_voxel, minlength=len(self.coords)).clamp(min=1)
        return total / count[:, None].to(point_values.dtype)

    def devoxelise(self, voxel_values: torch.Tensor) -> torch.Tensor:
        """Per-point values [P, C]: each point takes its voxel's row (OpenScene's de-voxelisation)."""
        return voxel_values[self.point_voxel]


def voxelise(points: torch.Tensor, size: float, origin: torch.Tensor | None = None, batch: int = 0) -> Voxels:
    """Points [P, 3] on a grid of voxel edge ``size`` (origin: the points' minimum unless given)."""
    if size <= 0:
        raise ValueError(f"the voxel size must be > 0, got {size}")
    if len(points) == 0:
        raise ValueError("cannot voxelise an empty point cloud")
    origin = points.min(0).values if origin is None else origin.to(points)
    grid = torch.floor((points - origin) / size).long()
    if (grid < 0).any():
        raise ValueError("points lie below the voxel grid's origin")
    cells, inverse = torch.unique(grid, dim=0, return_inverse=True)
    coords = torch.cat([cells.new_full((len(cells), 1), batch), cells], 1)
    return Voxels(coords, inverse, origin, float(size))
