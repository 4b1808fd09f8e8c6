"""SAGA's stores: the mask_scales stage on GT-point Gaussians (contract, alignment with the masks, normalisation)."""

import json

import numpy as np
from oracle_stores import point_gaussians, run_cli, tiny_scene

from stages.lib.gaussians import save_gaussians
from stages.lib.store import read_store


def test_mask_scales_store_contract(tmp_path):
    scene = tiny_scene()
    paths = {"scene": tmp_path / "scene.zarr", "gaussians": tmp_path / "gs.zarr", "masks": tmp_path / "masks.zarr"}
    scene.write(paths["scene"], "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    save_gaussians(paths["gaussians"], point_gaussians(scene), "test", {}, {},
                   {"sh_degree": 0, "background": [0.0, 0.0, 0.0], "iterations": 0})
    masks = run_cli("stages.masks", ["--scene", str(paths["scene"]), "--out", str(paths["masks"]), "--params",
                                     json.dumps({"source": "oracle", "levels": {"all": ["subpart", "part", "whole"]},
                                                 "keep_all": True})])
    assert masks.returncode == 0, masks.stderr
    out = tmp_path / "scales.zarr"
    proc = run_cli("stages.mask_scales", ["--scene", str(paths["scene"]), "--gaussians", str(paths["gaussians"]),
                                          "--masks", str(paths["masks"]), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    store = read_store("mask_scales", out)
    num_masks = read_store("masks", paths["masks"]).sizes["M"]
    scale = store.load("mask_scale")
    assert store.sizes["M"] == num_masks and store.attrs["normalisation"] == "empirical_cdf"
    finite = np.isfinite(scale)
    assert finite.mean() > 0.9 and scale[finite].min() >= 0.0 and scale[finite].max() <= 1.0
    assert np.all(np.diff(store.load("scale_knots")) >= 0)
    assert np.all(store.load("mask_scale_metric")[finite] > 0)
    bad = run_cli("stages.mask_scales", ["--scene", str(paths["scene"]), "--gaussians", str(paths["gaussians"]),
                                         "--masks", str(tmp_path / "missing.zarr"), "--out", str(tmp_path / "x.zarr")])
    assert bad.returncode != 0 and "missing.zarr" in bad.stderr and not (tmp_path / "x.zarr").exists()
