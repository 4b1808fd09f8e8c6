"""The long-tail K-class 3D protocol (SAS Table 2): the K = 40 / 80 / 160 vocabularies, known-answer K-class mIoU on
hand-made point features, and the K rows of the ``sas`` / ``sas_distilled`` evaluations' semantic_metrics stores and
tables."""

import json

import numpy as np
import pandas as pd
import pytest
from oracle_stores import run_cli, tiny_scene

from stages.lib.bench_tables import semantic_rows
from stages.lib.oracle.embedding import encode_names
from stages.lib.semantic_metrics import SCANNET19, long_tail_confusions, miou_macc
from stages.lib.store import read_store, write_store
from stages.lib.synthetic import ROOM_CATEGORIES
from stages.lib.synthetic.furniture import TEMPLATES
from stages.lib.synthetic.hard import WALL_DEPTH
from stages.lib.vocabularies import (
    LONG_TAIL,
    LONG_TAIL_NAMES,
    LONG_TAIL_SIZES,
    NYU40,
    NYU40_SYNONYMS,
    SCANNET200,
    SCENE_ALIASES,
    category_lut,
    unmapped,
    vocabulary_name,
)
from stages.report import scannet_table

IDENTITY = np.eye(len(LONG_TAIL_NAMES))  # text feature of entry j: the unit vector e_j


def feature(name: str) -> np.ndarray:
    return IDENTITY[LONG_TAIL_NAMES.index(name)]


# ----------------------------------------------------------------------------------------------
# Vocabularies
# ----------------------------------------------------------------------------------------------
def test_vocabularies_are_nested_unique_and_start_with_nyu40():
    assert LONG_TAIL_SIZES == (40, 80, 160) and len(NYU40) == 40
    for k in LONG_TAIL_SIZES:
        assert len(LONG_TAIL[k]) == k and len(set(LONG_TAIL[k])) == k
        assert LONG_TAIL[k][:40] == NYU40 and LONG_TAIL_NAMES[:k] == LONG_TAIL[k]
    extension = LONG_TAIL_NAMES[40:]
    assert all(n in SCANNET200 for n in extension)
    assert [SCANNET200.index(n) for n in extension] == sorted(SCANNET200.index(n) for n in extension)
    assert not set(extension) & set(NYU40_SYNONYMS) and set(NYU40_SYNONYMS.values()) <= set(NYU40)
    assert LONG_TAIL[80][40:43] == ["office chair", "monitor", "armchair"]  # ScanNet200 order, "couch" / "shelf" skipped


def test_every_synthetic_and_scannet_category_is_an_nyu40_class():
    synthetic = set(SCANNET19) | set(TEMPLATES) | set(WALL_DEPTH) | {c for c in ROOM_CATEGORIES if c}
    assert not unmapped(sorted(synthetic), NYU40)
    assert not unmapped(tiny_scene().categories, NYU40)
    assert set(SCENE_ALIASES.values()) <= set(NYU40)
    assert vocabulary_name("refridgerator") == "refrigerator" and vocabulary_name("chair") == "chair"
    lut = category_lut(["otherprop", "chair", "gizmo"], NYU40)
    assert lut.tolist() == [NYU40.index("other prop"), NYU40.index("chair"), -1, -1]


# ----------------------------------------------------------------------------------------------
# Known-answer K-class mIoU
# ----------------------------------------------------------------------------------------------
CATEGORIES = ["wall", "chair", "sofa"]


def scene_points() -> tuple[np.ndarray, np.ndarray]:
    """10 wall, 10 chair, 10 sofa points with their classes' own text features."""
    gt = np.repeat([0, 1, 2], 10)
    return np.stack([feature(CATEGORIES[c]) for c in gt]), gt


def test_perfect_features_score_100_over_the_classes_present_only():
    feats, gt = scene_points()
    for k, cm in long_tail_confusions(feats, np.ones(len(gt), bool), IDENTITY, gt, CATEGORIES).items():
        miou, macc, iou, _ = miou_macc(cm)
        assert cm.shape == (k, k + 1) and miou == macc == 1.0
        assert np.isfinite(iou).sum() == 3  # the other k - 3 classes have no GT point and are not averaged


def test_a_distractor_absent_from_the_ground_truth_steals_points_only_once_it_is_in_the_vocabulary():
    """4 of the 10 chair points lean to "armchair" (entry 42: in K = 80 and 160, not in K = 40)."""
    feats, gt = scene_points()
    feats[10:14] = 0.6 * feature("chair") + 0.8 * feature("armchair")
    cms = long_tail_confusions(feats, np.ones(len(gt), bool), IDENTITY, gt, CATEGORIES)
    assert miou_macc(cms[40])[0] == 1.0
    for k in (80, 160):
        miou, macc, iou, _ = miou_macc(cms[k])
        assert iou[NYU40.index("chair")] == pytest.approx(0.6) and np.isnan(iou[LONG_TAIL_NAMES.index("armchair")])
        assert miou == pytest.approx((1 + 0.6 + 1) / 3) and macc == pytest.approx((1 + 0.6 + 1) / 3)
        assert cms[k][NYU40.index("chair"), LONG_TAIL_NAMES.index("armchair")] == 4


def test_a_stolen_point_of_a_present_class_costs_both_classes():
    """2 sofa points predicted "chair": sofa IoU 8/10, chair IoU 10/12."""
    feats, gt = scene_points()
    feats[20:22] = feature("chair")
    miou, macc, iou, acc = miou_macc(long_tail_confusions(feats, np.ones(len(gt), bool), IDENTITY, gt,
                                                          CATEGORIES)[40])
    assert iou[NYU40.index("sofa")] == pytest.approx(0.8) and iou[NYU40.index("chair")] == pytest.approx(10 / 12)
    assert miou == pytest.approx((1 + 10 / 12 + 0.8) / 3) and macc == pytest.approx((1 + 1 + 0.8) / 3)


def test_unseen_points_miss_and_unknown_categories_are_ignored():
    feats, gt = scene_points()
    seen = np.ones(len(gt), bool)
    seen[:2] = False
    categories = ["wall", "chair", "gizmo"]  # "gizmo" is in no vocabulary: its 10 points are ignored
    cm = long_tail_confusions(feats, seen, IDENTITY, gt, categories)[40]
    miou, _, iou, _ = miou_macc(cm)
    assert cm.sum() == 20 and cm[0, 40] == 2  # the miss column
    assert iou[0] == pytest.approx(0.8) and miou == pytest.approx((0.8 + 1) / 2)
    with pytest.raises(ValueError, match="160"):
        long_tail_confusions(feats, seen, IDENTITY[:40], gt, categories)


# ----------------------------------------------------------------------------------------------
# Stores and tables
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("long_tail") / "scene.zarr"
    tiny_scene().write(path, "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    return path


def evaluate(scene_path, out_dir, params: dict, **inputs) -> tuple:
    out, table = out_dir / "metrics.zarr", out_dir / "metrics.csv"
    args = ["--scene", str(scene_path), "--out", str(out), "--table", str(table), "--params", json.dumps(params)]
    for name, path in inputs.items():
        args += [f"--{name}", str(path)]
    proc = run_cli("stages.evaluate_semantic", args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_store("semantic_metrics", out), pd.read_csv(table)


def test_sas_evaluation_store_and_table_have_the_k_rows(scene_path, tmp_path):
    """Two perfect oracle models: the oracle text vectors of the extra names are near-orthogonal to every class's, so
    no extra name steals a point and each K-class mIoU equals the 19-class one."""
    capability = tmp_path / "capability.zarr"
    params = {"source": "oracle", "models": [{"name": "a"}, {"name": "b"}],
              "options": {"images_per_class": 2, "width": 24, "height": 16}}
    proc = run_cli("stages.capability", ["--scene", str(scene_path), "--out", str(capability),
                                         "--params", json.dumps(params)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    store, table = evaluate(scene_path, tmp_path, {"evaluation": "sas", "text_dim": 64}, capability=capability)
    assert store.attrs["long_tail_vocabulary"] == LONG_TAIL_NAMES
    cm19 = store.load("confusion_3d")
    for k in LONG_TAIL_SIZES:
        cm = store.load(f"confusion_long_tail_{k}")
        assert cm.shape == (k, k + 1) and cm.sum() == cm19.sum()
        assert cm[:, [NYU40.index(n) for n in NYU40 if n not in SCANNET19]].sum() == 0
        assert cm[:, 40:k].sum() == 0
        assert store.attrs["long_tail_3d"][str(k)]["mIoU"] == pytest.approx(store.attrs["miou_3d"])
    rows = table[table["protocol"] == "long_tail_3d"]
    assert rows["subset"].tolist() == ["K=40", "K=80", "K=160"] and (rows["points"] == "scan_points").all()
    np.testing.assert_allclose(rows["mIoU"], round(100 * store.attrs["miou_3d"], 2), atol=0.011)


def write_distilled(path, scene, long_tail: bool) -> None:
    """A distilled store whose point features are the oracle text vectors of the points' GT classes."""
    categories = list(scene.attrs["categories"])
    semantic = scene.load("points_semantic")
    dim = 32
    feats = encode_names([categories[c] if c >= 0 else "wall" for c in semantic], dim).numpy()
    with write_store("distilled_points", path, "test", {}) as w:
        w.write("point_features", feats)
        w.write("text_features", encode_names(categories, dim).numpy())
        w.write("superpoint", np.arange(len(feats), dtype=np.int32))
        w.write("losses", np.zeros((1, 4), np.float32))
        w.attrs.update(backend="torch", schedule="test", vocabulary=categories, losses=["a", "b", "c", "d"],
                       voxel_size=0.02, superpoint_source="test", num_superpoints=len(feats), seconds_per_epoch=0.0,
                       points_per_second=0.0)
        if long_tail:
            w.write("long_tail_text_features", encode_names(LONG_TAIL_NAMES, dim).numpy())
            w.attrs["long_tail_vocabulary"] = LONG_TAIL_NAMES


def test_sas_distilled_k_rows_known_answer_and_older_stores_without_them(scene_path, tmp_path):
    scene = read_store("scene", scene_path)
    (tmp_path / "new").mkdir()
    write_distilled(tmp_path / "new" / "distilled.zarr", scene, long_tail=True)
    store, table = evaluate(scene_path, tmp_path / "new", {"evaluation": "sas_distilled"},
                            distilled=tmp_path / "new" / "distilled.zarr")
    for k in LONG_TAIL_SIZES:
        assert store.attrs["long_tail_3d"][str(k)] == {"mIoU": 1.0, "mAcc": 1.0}
    assert (table.loc[table["protocol"] == "long_tail_3d", "mIoU"] == 100.0).all()
    (tmp_path / "old").mkdir()
    write_distilled(tmp_path / "old" / "distilled.zarr", scene, long_tail=False)
    store, table = evaluate(scene_path, tmp_path / "old", {"evaluation": "sas_distilled"},
                            distilled=tmp_path / "old" / "distilled.zarr")
    assert "long_tail_3d" not in store.attrs and "confusion_long_tail_40" not in store
    assert "long_tail_3d" not in set(table["protocol"])


def test_report_and_bench_tables_put_the_k_columns_beside_the_subsets():
    rows = [{"protocol": "scannet_3d", "subset": "19 classes", "points": "scan_points", "mIoU": 80.0, "mAcc": 90.0},
            {"protocol": "long_tail_3d", "subset": "K=40", "points": "scan_points", "mIoU": 60.0, "mAcc": 70.0},
            {"protocol": "lerf_2d", "subset": "mean", "mIoU": 50.0, "mAcc@0.25": 1.0, "mAcc@0.5": 1.0}]
    semantic = pd.concat([pd.DataFrame(rows).assign(method="sas", dataset="d", scene="s"),
                          pd.DataFrame(rows[:1] + rows[2:]).assign(method="openins", dataset="d", scene="s")])
    table = scannet_table(semantic).query("dataset == 'd'").set_index("method")
    assert list(table.columns)[3:] == ["19 mIoU", "19 mAcc", "K=40 mIoU", "K=40 mAcc"]
    assert table.loc["sas", "K=40 mIoU"] == 60.0 and np.isnan(table.loc["openins", "K=40 mIoU"])
    long = semantic_rows(pd.DataFrame(rows))
    assert long[long["protocol"] == "scannet_3d"]["metric"].tolist() == [
        "19 mIoU (%)", "19 mAcc (%)", "K=40 mIoU (%)", "K=40 mAcc (%)"]
