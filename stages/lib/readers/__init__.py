"""Dataset readers: each turns one scene folder into a validated ``SceneData`` (OpenCV cameras).

``read_scene("llff", path, factor=8, downscale=2)`` dispatches on the reader name. Every reader accepts
``downscale`` (integer factor, area filter for images, nearest for masks/depth/labels, intrinsics scaled)
and ``max_views`` (keep that many evenly spaced views, train and test subsampled in proportion), and
raises ``SceneError`` naming the offending file for bad input.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable

from stages.lib.readers.colmap import read_colmap
from stages.lib.readers.idr import read_idr
from stages.lib.readers.lerf_mask import read_lerf_mask
from stages.lib.readers.lerf_ovs import read_lerf_ovs
from stages.lib.readers.llff import read_llff
from stages.lib.readers.nerf_json import read_nerf_json
from stages.lib.readers.nvos import read_nvos
from stages.lib.readers.ovs3d import read_ovs3d
from stages.lib.readers.replica import read_replica
from stages.lib.readers.scannet import read_scannet
from stages.lib.readers.spin_nerf import read_spin_nerf
from stages.lib.scene import SceneData

READERS: dict[str, Callable[..., SceneData]] = {
    "colmap": read_colmap,
    "nerf_json": read_nerf_json,
    "scannet": read_scannet,
    "llff": read_llff,
    "idr": read_idr,
    "lerf_ovs": read_lerf_ovs,
    "3dovs": read_ovs3d,
    "lerf_mask": read_lerf_mask,
    "replica": read_replica,
    "nvos": read_nvos,
    "spin_nerf": read_spin_nerf,
}

__all__ = ["READERS", "read_scene", "reader_options", "read_colmap", "read_nerf_json", "read_scannet", "read_llff",
           "read_idr", "read_lerf_ovs", "read_ovs3d", "read_lerf_mask", "read_replica", "read_nvos",
           "read_spin_nerf"]


def reader_options(reader: str) -> dict[str, Any]:
    """The options a reader accepts, with their defaults."""
    fn = _lookup(reader)
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _lookup(reader: str) -> Callable[..., SceneData]:
    if reader not in READERS:
        raise ValueError(f"unknown reader {reader!r}; known readers: {', '.join(sorted(READERS))}")
    return READERS[reader]


def read_scene(reader: str, path: str | Path, **options: Any) -> SceneData:
    """Read the scene at ``path`` with the named reader and validate it."""
    fn = _lookup(reader)
    accepted = reader_options(reader)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"reader {reader!r} got unknown option(s) {unknown}; it accepts {sorted(accepted)}")
    return fn(Path(path), **options).validate()
