"""bench/openins_scan.py: the feature-separability measure (known answer) and a CPU smoke run of the whole bench."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bench.common import load_config, recipe_params
from bench.openins_scan import error_sources, feature_separability, reading_columns, wrong_class_distance
from stages.lib.store import read_store


def test_feature_separability_by_hand():
    features = np.array([[0.0, 0], [0.2, 0], [1.0, 0], [1.2, 0], [0.1, 0], [5, 5]])
    instance = np.array([0, 0, 1, 1, 1, -1])
    # means: instance 0 at (0.1, 0), instance 1 at (0.7667, 0); the point (0.1, 0) of instance 1 is nearer to 0's
    assert feature_separability(features, instance) == pytest.approx(4 / 5)


def test_error_sources_count_each_wrong_point_once():
    right = np.array([True, False, False, False, False, True])
    observed = np.array([True, False, True, True, False, True])
    leaf_right = np.array([True, True, False, True, False, False])
    # point 1 and 4 unobserved, point 2 a wrong leaf, point 3 a right leaf mislabelled
    assert error_sources(right, observed, leaf_right) == pytest.approx(
        {"err_unobserved": 2 / 6, "err_codebook": 1 / 6, "err_label": 1 / 6})


def test_wrong_class_distance_to_the_named_class():
    xyz = np.array([[0.0, 0, 0], [1, 0, 0], [3, 0, 0], [0, 2, 0], [0, 0.5, 0]])
    gt = np.array([0, 1, 1, 0, -1])
    pred = np.array([0, 0, 0, 1, 0])
    # point 1 (class 1 labelled 0) is 1 from point 0, point 2 is 3 from it, point 3 (0 labelled 1) is sqrt(5) from
    # point 1; point 0 is right, point 4 has no GT class
    np.testing.assert_allclose(wrong_class_distance(xyz, gt, pred), [np.nan, 1, 3, np.sqrt(5), np.nan])


def test_rows_name_the_feature_readings_of_the_recipe():
    config = load_config()
    assert reading_columns(recipe_params(config, "openins_scannet")) == {
        "unit_features": True, "feature_distance": "rendered", "min_score": 0.0, "fill_min_views": 1}
    params = recipe_params(config, "openins")
    params["associate"] = {**params["associate"], "feature_distance": "mean", "fill_min_views": 3}
    assert reading_columns(params) == {"unit_features": False, "feature_distance": "mean", "min_score": 0.05,
                                       "fill_min_views": 3}


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
    classes = pd.read_csv(tmp_path / "rows_classes.csv")
    assert {"wall", "floor"} <= set(classes["class"])
    errors = classes[["err_unobserved", "err_codebook", "err_label"]].sum(1)
    assert np.allclose(errors, 1 - classes["acc"])
    assert (classes["wrong_within_5cm"].dropna() <= classes["wrong_within_15cm"].dropna()).all()
    # a second setting on the same room: the RGB Gaussians and the contrastive field are reused, the levels go to
    # their own folder
    again = tmp_path / "again.csv"
    smoothing = schedules[:-1] + (', "codebook": {"smooth_k": 4, "smooth_gate": 0.5, "smooth_weak_quantile": 0.25}, '
                                  '"associate": {"fill_unviewed_k": 4}}')
    res = subprocess.run([sys.executable, "-m", "bench.openins_scan", "--smoke", "--seeds", "1", "--levels", "clean",
                          "--scene-options", options, "--stage-params", smoothing, "--work", str(tmp_path / "w"),
                          "--reuse-gaussians", "--reuse-features", "", "--run-name", "xyz2", "--out", str(again)],
                         capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = pd.read_csv(again)
    assert rows.loc[rows["stage"] == "train_gs", "note"].tolist() == ["reused"]
    assert rows.loc[rows["stage"] == "train_features", "note"].str.startswith("reused").all()
    assert "export_scannet" not in set(rows["stage"]) and (tmp_path / "w/seed1/xyz2/clean/semantic.zarr").exists()
    assert pd.read_csv(tmp_path / "again_classes.csv")["knn_foreign_weight"].between(0, 1).all()
    assert read_store("association", tmp_path / "w/seed1/xyz2/clean/associate.zarr").attrs["fill_unviewed_k"] == 4
