"""3D Gaussian parameters: initialisation from a point cloud, activation, ``gaussians`` store I/O, PLY export."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from stages.lib.store import read_store, write_store

SH_C0 = 0.28209479177387814
PARAM_KEYS = ("means", "quats", "scales", "opacities", "sh0", "shN")


def rgb_to_sh0(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficient whose evaluation (plus 0.5) gives ``rgb``."""
    return (rgb - 0.5) / SH_C0


def init_from_points(xyz: np.ndarray, rgb: np.ndarray, sh_degree: int, init_opacity: float = 0.1,
                     init_scale: float = 1.0, seed: int = 0) -> dict[str, Tensor]:
    """3DGS initialisation: isotropic scales from the mean distance to the 3 nearest neighbours."""
    from scipy.spatial import cKDTree

    xyz = np.asarray(xyz, dtype=np.float32)
    dist, _ = cKDTree(xyz).query(xyz, k=4)
    mean_dist = np.sqrt((dist[:, 1:] ** 2).mean(axis=1)).clip(min=1e-7)
    n = xyz.shape[0]
    gen = torch.Generator().manual_seed(seed)
    quats = torch.rand((n, 4), generator=gen)
    return {
        "means": torch.from_numpy(xyz.copy()),  # never alias (and so train) the caller's point cloud
        "quats": quats,
        "scales": torch.log(torch.from_numpy(mean_dist * init_scale)).float()[:, None].repeat(1, 3),
        "opacities": torch.logit(torch.full((n,), init_opacity)),
        "sh0": rgb_to_sh0(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0))[:, None, :],
        "shN": torch.zeros((n, (sh_degree + 1) ** 2 - 1, 3)),
    }


def activated(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Renderable quantities: unit quaternions, positive scales, opacities in (0,1), SH coefficients."""
    return {
        "means": params["means"],
        "quats": torch.nn.functional.normalize(params["quats"], dim=-1),
        "scales": torch.exp(params["scales"]),
        "opacities": torch.sigmoid(params["opacities"]),
        "colors": torch.cat([params["sh0"], params["shN"]], dim=1),
    }


def save_gaussians(path: str | Path, params: Mapping[str, Tensor], stage: str, run_params: Mapping[str, Any],
                   inputs: Mapping[str, str | Path], attrs: Mapping[str, Any], kind: str = "gaussians",
                   keys: Sequence[str] = PARAM_KEYS) -> None:
    """Write a ``gaussians`` store (or another ``kind`` holding the parameters ``keys``) atomically."""
    with write_store(kind, path, stage, run_params, inputs) as w:
        for key in keys:
            w.write(key, params[key].detach().cpu().float().numpy())
        w.attrs.update(attrs)


def load_gaussians(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a ``gaussians`` store as tensors plus its attributes."""
    store = read_store("gaussians", path)
    return {k: torch.from_numpy(store.load(k)).to(device) for k in PARAM_KEYS}, store.attrs


def export_ply(path: str | Path, params: Mapping[str, Tensor]) -> None:
    """Standard 3DGS PLY layout (x,y,z,nx,ny,nz,f_dc_*,f_rest_*,opacity,scale_*,rot_*) read by common viewers."""
    from plyfile import PlyData, PlyElement

    p = {k: params[k].detach().cpu().float().numpy() for k in PARAM_KEYS}
    n = p["means"].shape[0]
    f_dc = p["sh0"].transpose(0, 2, 1).reshape(n, -1)
    f_rest = p["shN"].transpose(0, 2, 1).reshape(n, -1)  # channel-major, as the 3DGS reference writes
    columns = [("x", p["means"][:, 0]), ("y", p["means"][:, 1]), ("z", p["means"][:, 2])]
    columns += [(f"n{a}", np.zeros(n, np.float32)) for a in "xyz"]
    columns += [(f"f_dc_{i}", f_dc[:, i]) for i in range(f_dc.shape[1])]
    columns += [(f"f_rest_{i}", f_rest[:, i]) for i in range(f_rest.shape[1])]
    columns += [("opacity", p["opacities"])]
    columns += [(f"scale_{i}", p["scales"][:, i]) for i in range(3)]
    columns += [(f"rot_{i}", p["quats"][:, i]) for i in range(4)]
    vertex = np.empty(n, dtype=[(name, "f4") for name, _ in columns])
    for name, values in columns:
        vertex[name] = values
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{path}.partial")
    PlyData([PlyElement.describe(vertex, "vertex")]).write(str(tmp))
    tmp.replace(path)
