"""Oracle prior stages give the same stores, byte for byte, as before their speed-ups (digests pinned from the
per-mask implementation on the same tiny room, seeds and params)."""

import hashlib
import json
from pathlib import Path

import numpy as np

from stages import features, masks, track
from stages.lib.cli import run_stage
from stages.lib.store import read_store
from stages.lib.synthetic import SyntheticConfig, make_scene

MODERATE = {"under_segment": 0.1, "over_segment": 0.1, "boundary_jitter": 1, "dropout": 0.1}
STRONG = {"under_segment": 0.3, "over_segment": 0.3, "boundary_jitter": 2, "dropout": 0.25}
MASKS = {
    "ccl": {"source": "oracle", "levels": {"subpart+part": ["subpart", "part"], "whole+part": ["whole", "part"]},
            "corruption": MODERATE, "seed": 1},
    "saga": {"source": "oracle", "levels": {"all": ["subpart", "part", "whole"]}, "keep_all": True,
             "corruption": STRONG},
    "shuffled": {"source": "oracle", "levels": {"whole": ["whole"]}, "shuffle_ids": True, "corruption": STRONG},
}
TRACK = {"source": "oracle", "corruption": {"swap_rate": 0.2, "loss_rate": 0.1}, "reseed_after": 2, "seed": 2}
FEATURES = {"source": "oracle", "alpha": 0.4, "oracle": {"dim": 64, "context_stride": 8},
            "corruption": {"noise": 0.5, "confusion": 0.1, "context_noise": 0.3}, "seed": 3}
ARRAYS = {"masks": ["labels", "mask_view", "mask_level", "mask_id", "mask_area", "mask_bbox"],
          "tracks": ["track_id", "propagated"],
          "features": ["mask_features", "crop_features", "context_features", "text_features"]}
PINNED = {"ccl/masks": "066aa4ba47001d2b", "ccl/features": "fa51c010bd151cd3", "ccl/track": "a6c520e73b7d3476",
          "saga/masks": "4005489b2b12bc09", "saga/features": "30ae4cd9a026f2dc",
          "shuffled/masks": "c258a5c86c201d51", "shuffled/features": "d7c70d2d5fdc3713"}


def digest(kind: str, path: Path) -> str:
    store = read_store(kind, path)
    names = ARRAYS[kind] + (["mask_pixels"] if kind == "masks" and store.attrs.get("keep_all") else [])
    h = hashlib.sha256()
    for name in names:
        h.update(np.ascontiguousarray(store.load(name)).tobytes())
    return h.hexdigest()[:16]


def stage_digests(tmp: Path) -> dict[str, str]:
    """Masks of every variant, features of each, tracks of the CCL masks, on a 6-view 64x48 room."""
    scene = tmp / "scene.zarr"
    make_scene(SyntheticConfig(seed=3, num_views=6, width=64, height=48, num_points=3000)).write(
        scene, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    out = {}
    for name, params in MASKS.items():
        m, f = tmp / f"{name}_masks.zarr", tmp / f"{name}_features.zarr"
        run_stage(masks.main, masks.parser(), ["--scene", str(scene), "--out", str(m), "--params", json.dumps(params)])
        run_stage(features.main, features.parser(), ["--scene", str(scene), "--masks", str(m), "--out", str(f),
                                                     "--params", json.dumps(FEATURES)])
        out[f"{name}/masks"], out[f"{name}/features"] = digest("masks", m), digest("features", f)
    t = tmp / "tracks.zarr"
    run_stage(track.main, track.parser(), ["--scene", str(scene), "--masks", str(tmp / "ccl_masks.zarr"),
                                           "--out", str(t), "--params", json.dumps(TRACK)])
    out["ccl/track"] = digest("tracks", t)
    return out


def test_oracle_stores_match_pinned_digests(tmp_path):
    assert stage_digests(tmp_path) == PINNED
