"""bench/openins_scan.py: the feature-separability measure (known answer) and a CPU smoke run of the whole bench."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench.openins_scan import feature_separability


def test_feature_separability_by_hand():
    features = np.array([[0.0, 0], [0.2, 0], [1.0, 0], [1.2, 0], [0.1, 0], [5, 5]])
    instance = np.array([0, 0, 1, 1, 1, -1])
    # means: instance 0 at (0.1, 0), instance 1 at (0.7667, 0); the point (0.1, 0) of instance 1 is nearer to 0's
    assert feature_separability(features, instance) == pytest.approx(4 / 5)


@pytest.mark.slow
def test_smoke_run_writes_rows_with_purity_and_per_class_iou(tmp_path):
    out = tmp_path / "rows.csv"
    options = '{"num_views": 8, "width": 32, "height": 24, "num_points": 3000}'
    schedules = '{"train_features": {"iterations": 40}, "pseudo_gt": {"iterations": 20}, "train_gs": {"iterations": 10}}'
    res = subprocess.run([sys.executable, "-m", "bench.openins_scan", "--smoke", "--seeds", "1", "--levels", "clean",
                          "--scene-options", options, "--stage-params", schedules, "--work", str(tmp_path / "w"),
                          "--out", str(out)], capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = pd.read_csv(out)
    total = rows[rows["stage"] == "method_total"].iloc[0]
    assert total["points_protocol"] == "scan_points"
    assert 0 < total["codebook_purity"] <= 1 and 0 <= total["miou_3d"] <= 1
    assert any(c.startswith("iou3d_") for c in rows.columns) and any(c.startswith("iou2d_") for c in rows.columns)
    assert {"export_scannet", "ingest", "train_gs", "codebook", "evaluate_semantic"} <= set(rows["stage"])
    assert 0 <= total["separability_q1"] <= 1 and 0 <= total["label_acc_q4"] <= 1 and total["blend_weight_median"] > 0
    # a second setting on the same room: the RGB Gaussians are reused, the levels go to their own folder
    again = tmp_path / "again.csv"
    res = subprocess.run([sys.executable, "-m", "bench.openins_scan", "--smoke", "--seeds", "1", "--levels", "clean",
                          "--scene-options", options, "--stage-params", schedules, "--work", str(tmp_path / "w"),
                          "--reuse-gaussians", "--run-name", "xyz2", "--out", str(again)],
                         capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = pd.read_csv(again)
    assert rows.loc[rows["stage"] == "train_gs", "note"].tolist() == ["reused"]
    assert "export_scannet" not in set(rows["stage"]) and (tmp_path / "w/seed1/xyz2/clean/semantic.zarr").exists()
