"""bench/sas3d_sweep.py: the crop box, store reuse by recorded options, a tiny cropped run on CPU and a bounds-only
row appended to its CSV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.sas3d_sweep import box_mask, written_with
from stages.ingest import load_source
from stages.lib.store import read_store

REPO = Path(__file__).resolve().parents[1]
TINY_ROOM = {"num_views": 10, "width": 40, "height": 30, "num_points": 1500, "device": "cpu"}
SMALLEST_ROOM = {"num_views": 2, "width": 8, "height": 6, "num_points": 20, "device": "cpu"}
BOX = [[-1.5, -1.0, -1.5], [1.5, 3.0, 1.5]]


def test_box_mask_keeps_points_inside_and_on_faces():
    xyz = np.array([[0.0, 0.0, 0.0], [1.0, 0.5, -1.0], [1.01, 0.0, 0.0], [0.0, -0.2, 0.0], [-1.0, 2.0, 1.0]])
    assert box_mask(xyz, [[-1, 0, -1], [1, 2, 1]]).tolist() == [True, True, False, False, True]
    assert box_mask(xyz, None).all()


def test_written_with_compares_recorded_options(tmp_path):
    path = tmp_path / "scene.zarr"
    assert not written_with(path, "scene", SMALLEST_ROOM)
    load_source("synthetic", None, SMALLEST_ROOM).write(path, "ingest", SMALLEST_ROOM, "synthetic", "t", "synthetic")
    assert written_with(path, "scene", dict(SMALLEST_ROOM))
    assert not written_with(path, "scene", {**SMALLEST_ROOM, "seed": 1})
    assert not written_with(path, "capability", SMALLEST_ROOM)


def test_cropped_run_scores_the_box_points_and_reuses_the_stores(tmp_path):
    out, work = tmp_path / "sweep.csv", tmp_path / "work"
    run = {"epochs": 2, "tesd_epochs": 1, "width": 0.25, "voxel_size": 0.05, "lr": 0.01}
    cmd = [sys.executable, "-m", "bench.sas3d_sweep", "--scene-options", json.dumps(TINY_ROOM), "--crop",
           json.dumps(BOX), "--runs", json.dumps([run]), "--every", "1", "--work", str(work), "--out", str(out),
           "--reuse"]
    stores = [work / "scene.zarr", work / "capability.zarr"]
    subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
    written = [s.stat().st_ino for s in stores]  # a store written again is a new folder moved into place
    subprocess.run([*cmd, "--bounds-only"], cwd=REPO, check=True, capture_output=True)  # no training
    assert [s.stat().st_ino for s in stores] == written
    scene = read_store("scene", stores[0])
    rows = pd.read_csv(out)
    inside = int(box_mask(scene.load("points_xyz"), BOX).sum())
    assert 0 < inside < len(scene.load("points_xyz"))
    assert rows["epoch"].tolist() == [1, 2, 0] and (rows["points"] == inside).all()
    assert set(rows["device"]) == {"cpu"} and (rows["steps"] == rows["epoch"]).all()
    trained = rows[rows["epoch"] > 0]
    assert (trained["seconds_per_epoch"] > 0).all() and trained["miou_3d"].between(0, 100).all()
    assert rows["miou_3d"].isna().tolist() == [False, False, True] and rows["bound_sp"].nunique() == 1
    assert json.loads(rows["room"][0]) == TINY_ROOM and json.loads(rows["crop"][0]) == BOX
