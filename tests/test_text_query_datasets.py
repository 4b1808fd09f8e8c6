"""LERF-OVS, 3D-OVS and LERF-Mask: fixture round trips, protocol metrics on hand-computed masks, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from dataset_fixtures import room, save_mask, write_lerf_mask, write_lerf_ovs, write_ovs3d
from PIL import Image

from stages.evaluate_annotations import method_predictor, score_table
from stages.lib.annotation_protocols import lerf_mask_scores, lerf_ovs_scores, ovs3d_scores
from stages.lib.annotations import QueryAnnotations
from stages.lib.cli import StageCall
from stages.lib.gaussians import init_from_points
from stages.lib.instance_gaussians import Cameras, InstanceGaussians
from stages.lib.readers import read_scene
from stages.lib.scene import SceneError, load_scene
from stages.lib.selection import SelectionConfig
from stages.lib.semantic_metrics import localization_hit
from stages.lib.store import StoreError, write_store
from stages.methods import lookup
from stages.methods.openins.query import CodebookSearchPredictions, Query

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_room():
    return room()


def round_trip(scene, tmp_path: Path, reader: str):
    out = tmp_path / "scene.zarr"
    scene.write(out, stage="ingest", params={}, dataset="d", scene="s", reader=reader)
    return load_scene(out)


def assert_same_cameras(loaded, room_scene, views):
    np.testing.assert_allclose(loaded.intrinsics, room_scene.intrinsics[views], atol=1e-4)
    np.testing.assert_allclose(loaded.world_to_camera, room_scene.world_to_camera[views], atol=1e-4)


def annotated_masks(scene) -> dict:
    a = scene.annotations
    return {(int(v), a.queries[q]): m for v, q, m in zip(a.view, a.query, a.masks)}


# ----------------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------------
def test_lerf_ovs_round_trip(tmp_path, synthetic_room):
    expected = write_lerf_ovs(tmp_path / "lerf_ovs", scene=synthetic_room)
    loaded = round_trip(read_scene("lerf_ovs", tmp_path / "lerf_ovs" / "teatime"), tmp_path, "lerf_ovs")
    assert loaded.image_names == expected["names"]
    np.testing.assert_array_equal(loaded.images, expected["images"])
    assert_same_cameras(loaded, synthetic_room, np.arange(8))
    assert loaded.is_test.tolist() == [v in (2, 5) for v in range(8)]
    got = annotated_masks(loaded)
    assert got.keys() == expected["masks"].keys()
    for key, mask in expected["masks"].items():
        np.testing.assert_array_equal(got[key], mask)
    a = loaded.annotations
    assert a.protocol == "lerf_ovs" and loaded.categories == a.queries
    boxes = {}
    for box, m in zip(a.boxes, a.box_mask):
        boxes.setdefault((int(a.view[m]), a.queries[a.query[m]]), []).append(box.tolist())
    assert boxes == expected["boxes"]


def test_lerf_ovs_downscale_and_dataset_split(tmp_path, synthetic_room):
    expected = write_lerf_ovs(tmp_path / "lerf_ovs", scene=synthetic_room)
    scene = read_scene("lerf_ovs", tmp_path / "lerf_ovs" / "teatime", downscale=2, split="dataset", test_every=4)
    assert scene.images.shape == (8, 15, 20, 3)
    assert scene.is_test.tolist() == [v % 4 == 0 for v in range(8)]
    full = read_scene("lerf_ovs", tmp_path / "lerf_ovs" / "teatime")
    np.testing.assert_array_equal(scene.annotations.masks, full.annotations.masks[:, 1::2, 1::2])
    np.testing.assert_allclose(scene.annotations.boxes, np.floor(full.annotations.boxes / 2))  # covering pixels
    assert expected["masks"]


def test_ovs3d_round_trip(tmp_path, synthetic_room):
    expected = write_ovs3d(tmp_path / "3dovs", scene=synthetic_room)
    loaded = round_trip(read_scene("3dovs", tmp_path / "3dovs" / "bed"), tmp_path, "3dovs")
    np.testing.assert_array_equal(loaded.images, expected["images"])
    assert_same_cameras(loaded, synthetic_room, np.arange(8))
    assert loaded.annotations.queries == expected["classes"] == loaded.categories  # sorted, as 3D-OVS sorts them
    assert loaded.is_test.tolist() == [v in (0, 4) for v in range(8)]
    got = annotated_masks(loaded)
    assert got.keys() == expected["masks"].keys()
    for key, mask in expected["masks"].items():
        np.testing.assert_array_equal(got[key], mask)


def test_lerf_mask_round_trip_and_max_views(tmp_path, synthetic_room):
    expected = write_lerf_mask(tmp_path / "lerf_mask", scene=synthetic_room)
    loaded = round_trip(read_scene("lerf_mask", tmp_path / "lerf_mask" / "figurines"), tmp_path, "lerf_mask")
    np.testing.assert_array_equal(loaded.images, expected["images"])
    assert_same_cameras(loaded, synthetic_room, np.arange(8))
    assert loaded.is_test.tolist() == [v in expected["test_views"] for v in range(8)]
    got = annotated_masks(loaded)
    assert got.keys() == expected["masks"].keys()
    for key, mask in expected["masks"].items():
        np.testing.assert_array_equal(got[key], mask)
    small = read_scene("lerf_mask", tmp_path / "lerf_mask" / "figurines", max_views=4, split="annotated")
    assert small.num_views == 4 and small.is_test.sum() == 2  # every annotated view kept
    assert sorted(annotated_masks(small)) == sorted((int(np.nonzero(small.is_test)[0][expected["test_views"].index(v)]),
                                                     q) for v, q in expected["masks"])


# ----------------------------------------------------------------------------------------------
# Protocols on hand-computed masks
# ----------------------------------------------------------------------------------------------
def square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_lerf_ovs_macro_and_query_weighted_means():
    # query "a" on views 0 and 1, query "b" on view 0; 4x4 images
    gt = np.stack([square(4, 4, 0, 2, 0, 2), square(4, 4, 0, 2, 0, 2), square(4, 4, 2, 4, 2, 4)])
    ann = QueryAnnotations("lerf_ovs", ["a", "b"], np.array([0, 1, 0]), np.array([0, 0, 1]), gt,
                           np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3]], np.float32), np.array([0, 1, 2]))
    pred = np.stack([gt[0], square(4, 4, 0, 2, 0, 1), np.zeros((4, 4), bool)])  # IoU 1, 1/2, 0
    rel = np.zeros((3, 4, 4))
    rel[0, 1, 1] = rel[1, 3, 3] = rel[2, 3, 2] = 1.0  # hit (inside), miss, hit (on the box border)
    s = lerf_ovs_scores(ann, pred, rel)
    np.testing.assert_allclose(s["pair_iou"], [1.0, 0.5, 0.0])
    assert s["pair_hit"].tolist() == [1.0, 0.0, 1.0]
    assert s["mIoU (query-weighted)"] == pytest.approx(0.5)  # (1 + 0.5 + 0) / 3
    assert s["mIoU (macro)"] == pytest.approx(0.375)  # ((1 + 0.5) / 2 + 0) / 2
    assert s["loc. acc (query-weighted)"] == pytest.approx(2 / 3)
    assert s["loc. acc (macro)"] == pytest.approx(0.75)  # (0.5 + 1) / 2


def test_localization_hit_with_boxes_and_mask_box():
    rel = np.zeros((5, 5))
    rel[4, 0] = 1.0  # x = 0, y = 4
    assert localization_hit(rel, np.zeros((5, 5), bool), np.array([[3, 3, 4, 4], [0, 4, 1, 4]]))
    assert not localization_hit(rel, np.zeros((5, 5), bool), np.array([[1, 0, 4, 4]]))
    assert localization_hit(rel, square(5, 5, 3, 5, 0, 2))  # no boxes: the mask's tight box
    assert not localization_hit(rel, np.zeros((5, 5), bool))


def test_ovs3d_miou_and_accuracy():
    # 2x2 view, classes a, b, c; "a" = left column, "b" = top-right pixel, bottom-right pixel unannotated, c absent
    gt = np.stack([square(2, 2, 0, 2, 0, 1), square(2, 2, 0, 1, 1, 2), np.zeros((2, 2), bool)])
    ann = QueryAnnotations("3dovs", ["a", "b", "c"], np.zeros(3, int), np.arange(3), gt)
    pred = np.array([[0, 1], [1, 1]])
    s = ovs3d_scores(ann, {0: pred})
    # a: 1/2 (pixel (1,0) predicted b), b: 1/3, c: neither annotated nor predicted -> 0 (sklearn's jaccard_score)
    np.testing.assert_allclose(s["class_iou"], [[0.5, 1 / 3, 0.0]])
    assert s["mIoU"] == pytest.approx((0.5 + 1 / 3) / 3)
    assert s["accuracy"] == pytest.approx(0.5)  # (0,0) and (0,1) right; (1,0) wrong; (1,1) unannotated: wrong
    with pytest.raises(ValueError, match="no predicted class map"):
        ovs3d_scores(ann, {})


def test_lerf_mask_iou_and_boundary_iou():
    gt = square(8, 8, 2, 6, 2, 6)  # 4x4 square: boundary band of width 1 = its 12-pixel ring
    pred = square(8, 8, 2, 6, 2, 5)  # 4x3: ring of 10 pixels, 8 shared with the square's ring
    ann = QueryAnnotations("lerf_mask", ["p", "q"], np.array([0, 1, 0]), np.array([0, 0, 1]), np.stack([gt, gt, gt]))
    s = lerf_mask_scores(ann, np.stack([pred, gt, gt]))
    np.testing.assert_allclose(s["pair_iou"], [0.75, 1.0, 1.0])
    np.testing.assert_allclose(s["pair_biou"], [8 / 14, 1.0, 1.0])
    assert s["mIoU"] == pytest.approx(((0.75 + 1) / 2 + 1) / 2)
    assert s["mBIoU"] == pytest.approx(((8 / 14 + 1) / 2 + 1) / 2)


# ----------------------------------------------------------------------------------------------
# The stages on a fixture: ingest, then the protocol on predictions derived from the annotations
# ----------------------------------------------------------------------------------------------
def run_stage(stage: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def ingest(tmp_path: Path, reader: str, path: Path, out: Path, params: dict | None = None):
    return run_stage("ingest", "--reader", reader, "--path", str(path), "--dataset", "d", "--scene", "s",
                     "--out", str(out), "--params", json.dumps(params or {}))


def assert_one_line_error(proc, name: str, out: Path) -> None:
    assert proc.returncode == 1, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and name in last, last
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not list(out.parent.glob(out.name + "*"))


def side_by_side_query():
    """Two small opaque Gaussians 3 m in front of the camera (fx = 40, 32x24, centre (16, 12)): a chair at x = -0.6 m
    (pixel u = 8) and a table at x = +0.6 m (u = 24), sigma 0.15 m = 2 px; instance language features = the words'
    text features. Camera 1 sits 0.3 m to the left: every Gaussian 4 px further right."""
    g = InstanceGaussians(means=torch.tensor([[-0.6, 0.0, 3.0], [0.6, 0.0, 3.0]]),
                          quats=torch.tensor([[1.0, 0, 0, 0]] * 2), scales=torch.full((2, 3), 0.15),
                          opacities=torch.tensor([0.99, 0.99]), features=torch.eye(2), leaf_id=torch.tensor([0, 1]),
                          num_instances=2)
    viewmats = torch.eye(4).repeat(2, 1, 1)
    viewmats[1, 0, 3] = 0.3
    cams = Cameras(viewmats, torch.tensor([[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]]).repeat(2, 1, 1), 32, 24)
    return Query(torch.eye(2), torch.eye(2), ["chair", "table"], g.leaf_id, g), cams


def disc(u: float, radius2: float = 6.0) -> np.ndarray:
    """Pixels whose centre lies within sqrt(radius2) px of (u, 12): where a 2-px Gaussian of opacity 0.99 composites
    alpha >= 0.5 (0.99 exp(-r^2 / (2 (4 + 0.3))) >= 0.5 for r^2 <= 5.9; no pixel centre lies in 4.5 < r^2 < 6.5)."""
    y, x = np.mgrid[0:24, 0:32] + 0.5
    return (x - u) ** 2 + (y - 12) ** 2 <= radius2


def test_query_predictions_follow_annotation_order():
    """OpenInsGaussian's query as the text-query protocols' predictions: mask m is query[m]'s rendered selection on
    view[m] (scene views 2 and 7 = cameras 0 and 1); 3D-OVS: per annotated view each pixel's class, -1 uncovered."""
    query, cams = side_by_side_query()
    chair0, table0, chair1, table1 = disc(8), disc(24), disc(12), disc(28)
    assert chair0.sum() == 16
    notes = QueryAnnotations("lerf_mask", ["chair", "table"], np.array([7, 2, 7]), np.array([1, 0, 0]),
                             np.stack([table1, chair0, chair1]))
    pred = CodebookSearchPredictions(query, SelectionConfig()).predict(notes, cams)
    np.testing.assert_array_equal(pred["masks"], notes.masks)
    relevance = pred["relevance"]  # r_k a T at a pixel centre 0.5 px^2 from the Gaussian's: 0.99 exp(-0.5 / 8.6)
    near = 0.99 * np.exp(-0.5 / 8.6)
    assert relevance[1][12, 8] == pytest.approx(near, abs=5e-3) and relevance[0][12, 28] == pytest.approx(near, abs=5e-3)
    assert abs(relevance[0][12, 12]) < 1e-6  # "table" on the chair's pixel
    peak = np.unravel_index(relevance[2].argmax(), (24, 32))  # "chair" on view 7: one of the 4 pixels around (12, 12)
    assert peak[0] in (11, 12) and peak[1] in (11, 12)
    assert (score_table(notes, pred, "q")["mIoU"] == 100).all()
    ovs = QueryAnnotations("3dovs", ["chair", "table"], np.array([2, 2, 7]), np.array([0, 1, 1]),
                           np.stack([chair0, table0, table1]))
    maps = CodebookSearchPredictions(query, SelectionConfig()).predict(ovs, cams)["class_maps"]
    assert maps.shape == (2, 24, 32)
    assert maps[0][12, 8] == 0 and maps[0][12, 24] == 1 and maps[1][12, 12] == 0 and maps[1][12, 28] == 1
    assert maps[0][0, 0] == -1 and maps[1][23, 0] == -1  # no Gaussian within 3 sigma: a miss



def write_protosaga_stores(root: Path, track_id: list[int], mask_features: np.ndarray) -> dict[str, str]:
    """The stores Proto-SaGa's text query reads, for the two Gaussians of ``side_by_side_query`` (chair = prototype 0,
    table = 1): feature_gaussians, codebook (the prototype labels), tracks (the memory bank's id of every mask) and
    features (the masks' CLIP features, vocabulary chair / table with unit text features)."""
    query, _ = side_by_side_query()
    g = query.gaussians
    p = init_from_points(g.means.numpy(), np.full((2, 3), 0.5, np.float32), sh_degree=0)
    p["scales"] = torch.log(g.scales)
    p["opacities"] = torch.logit(g.opacities)
    paths = {k: str(root / f"{k}.zarr") for k in ("gaussians", "codebook", "association", "features")}
    with write_store("feature_gaussians", paths["gaussians"], "test", {}) as w:
        for key, value in p.items():
            w.write(key, value.float().numpy())
        w.write("features", np.eye(2, dtype=np.float32))
        w.attrs.update(sh_degree=0, background=[0, 0, 0], iterations=0, feature_dim=2)
    with write_store("codebook", paths["codebook"], "test", {}) as w:
        w.write("coarse_centres", np.zeros((1, 2), np.float32))
        w.write("fine_centres", np.eye(2, dtype=np.float32))
        w.write("coarse_id", np.zeros(2, np.int32))
        w.write("leaf_id", np.array([0, 1], np.int32))
        w.attrs.update(k_coarse=1, k_fine=2)
    with write_store("tracks", paths["association"], "test", {}) as w:
        w.write("track_id", np.array(track_id, np.int32))
        w.attrs.update(source="protosaga_memory_bank", oracle=False, num_tracks=int(max(track_id)) + 1)
    with write_store("features", paths["features"], "test", {}) as w:
        w.write("mask_features", mask_features.astype(np.float16))
        w.write("crop_features", mask_features.astype(np.float16))
        w.write("text_features", np.eye(2, dtype=np.float16))
        w.attrs.update(source="test", oracle=False, vocabulary=["chair", "table"], templates=[], alpha=1.0)
    return paths


def protosaga_call(paths: dict[str, str], options: dict | None = None) -> StageCall:
    return StageCall("evaluate_annotations", paths, {"query": "protosaga_language", **(options or {})}, options or {},
                     torch.device("cpu"), Path("unused"))


def test_protosaga_text_query_fuses_each_instance_masks(tmp_path):
    """Proto-SaGa's text query: each consistent instance's language fuses the CLIP features of the masks the memory
    bank gave its id (masks 0, 2: the chair's, 1, 3: the table's; mask 4 unassociated and pointing at "table" must
    not count), so the queries select the same pixels as OpenInsGaussian's known answer above."""
    features = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.1, 0.9], [0.0, 1.0]])
    paths = write_protosaga_stores(tmp_path, [0, 1, 0, 1, -1], features)
    predictor = lookup("text_query", "protosaga_language")(protosaga_call(paths))
    query = predictor.query
    language = query.language.numpy()
    assert language[0, 0] > 0.95 and language[1, 1] > 0.95  # fused within each instance, unit length
    np.testing.assert_allclose(np.linalg.norm(language, axis=1), 1.0, atol=1e-6)
    assert query.vocabulary == ["chair", "table"] and query.leaf_id.tolist() == [0, 1]
    _, cams = side_by_side_query()
    chair0, chair1, table1 = disc(8), disc(12), disc(28)
    notes = QueryAnnotations("lerf_mask", ["chair", "table"], np.array([7, 2, 7]), np.array([1, 0, 0]),
                             np.stack([table1, chair0, chair1]))
    pred = predictor.predict(notes, cams)
    np.testing.assert_array_equal(pred["masks"], notes.masks)
    swapped = write_protosaga_stores(tmp_path / "swapped", [1, 0, 1, 0, -1], features)  # the bank's ids decide
    pred = lookup("text_query", "protosaga_language")(protosaga_call(swapped)).predict(notes, cams)
    np.testing.assert_array_equal(pred["masks"], np.stack([chair1, disc(24), table1]))


def test_protosaga_text_query_errors_name_the_store(tmp_path):
    features = np.eye(2)[[0, 1, 0]]
    paths = write_protosaga_stores(tmp_path, [0, 1, 0], features)
    build = lookup("text_query", "protosaga_language")
    with pytest.raises(ValueError, match=r"needs the input stores \['features'\]"):
        build(protosaga_call({k: v for k, v in paths.items() if k != "features"}))
    with pytest.raises(ValueError, match="unknown protosaga_language text query parameters \\['tau'\\]"):
        build(protosaga_call(paths, {"tau": 3}))
    short = write_protosaga_stores(tmp_path / "short", [0, 1, 0, 1], np.eye(2)[[0, 1, 0, 1]])
    with pytest.raises(StoreError, match="3 mask features but .* labels 4 masks"):
        build(protosaga_call({**short, "features": paths["features"]}))
    one = write_protosaga_stores(tmp_path / "one", [0, 0, 0], features)
    with pytest.raises(StoreError, match="2 instances but .* has 1 consistent ids"):
        build(protosaga_call(one))


def test_stage_parameters_choose_the_text_query(tmp_path):
    """``query`` names the registered text query (default OpenInsGaussian's); every other parameter is that query's,
    which rejects what it does not know."""
    import argparse

    paths = write_protosaga_stores(tmp_path, [0, 1, 0], np.eye(2)[[0, 1, 0]])

    def args(params: dict) -> argparse.Namespace:
        return argparse.Namespace(**paths, params=params, out=str(tmp_path / "out.csv"))

    predictor = method_predictor(args({"query": "protosaga_language", "fusion_tau": 5.0, "mode": "threshold",
                                       "threshold": 0.4}), torch.device("cpu"))
    assert predictor.selection == SelectionConfig(mode="threshold", threshold=0.4)
    assert predictor.query.vocabulary == ["chair", "table"]
    with pytest.raises(ValueError, match="unknown text_query 'nope'; known text_query names: .*openins_codebook.*"
                                         "protosaga_language"):
        method_predictor(args({"query": "nope"}), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"unknown openins_codebook text query parameters \['fusion_tau'\]"):
        method_predictor(args({"fusion_tau": 5.0}), torch.device("cpu"))

def test_lerf_ovs_protocol_on_an_ingested_fixture(tmp_path, synthetic_room):
    write_lerf_ovs(tmp_path / "lerf_ovs", scene=synthetic_room)
    store = tmp_path / "scene.zarr"
    proc = ingest(tmp_path, "lerf_ovs", tmp_path / "lerf_ovs" / "teatime", store)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ann = load_scene(store).annotations
    pred = ann.masks.copy()
    pred[0] = False  # the first pair scores IoU 0; every other pair is exact
    relevance = ann.masks.astype(np.float32)  # argmax = first annotated pixel: inside the mask's box
    np.savez(tmp_path / "pred.npz", masks=pred, relevance=relevance)
    proc = run_stage("evaluate_annotations", "--scene", str(store), "--predictions", str(tmp_path / "pred.npz"),
                     "--out", str(tmp_path / "t.csv"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "t.csv").set_index("query")
    m = len(ann.view)
    first = ann.queries[ann.query[0]]
    n_first = int((ann.query == ann.query[0]).sum())
    assert table.loc["mean (query-weighted)", "mIoU"] == pytest.approx(100 * (m - 1) / m, abs=0.01)
    assert table.loc[first, "mIoU"] == pytest.approx(100 * (n_first - 1) / n_first, abs=0.01)
    assert table.loc["mean (macro)", "mIoU"] == pytest.approx(table.loc[list(ann.queries), "mIoU"].mean(), abs=0.02)
    assert (table["loc. acc"] == 100).all()
    np.savez(tmp_path / "bad.npz", masks=pred)
    proc = run_stage("evaluate_annotations", "--scene", str(store), "--predictions", str(tmp_path / "bad.npz"),
                     "--out", str(tmp_path / "u.csv"))
    assert_one_line_error(proc, "bad.npz", tmp_path / "u.csv")


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming the file, no store left
# ----------------------------------------------------------------------------------------------
def break_json_key(root: Path) -> Path:
    f = sorted((root / "label" / "teatime").glob("*.json"))[0]
    data = json.loads(f.read_text())
    del data["objects"][0]["segmentation"]
    f.write_text(json.dumps(data))
    return f


def break_json_syntax(root: Path) -> Path:
    f = sorted((root / "label" / "teatime").glob("*.json"))[1]
    f.write_text(f.read_text()[:-5])
    return f


def break_json_image(root: Path) -> Path:
    f = sorted((root / "label" / "teatime").glob("*.json"))[0]
    data = json.loads(f.read_text())
    data["info"]["name"] = "frame_09999.jpg"
    f.write_text(json.dumps(data))
    return f


def break_json_polygon(root: Path) -> Path:
    f = sorted((root / "label" / "teatime").glob("*.json"))[0]
    data = json.loads(f.read_text())
    data["objects"][1]["segmentation"] = [[0, 0], [3, 3]]
    f.write_text(json.dumps(data))
    return f


def break_json_size(root: Path) -> Path:
    f = sorted((root / "label" / "teatime").glob("*.json"))[1]
    data = json.loads(f.read_text())
    data["info"]["width"] = 80
    f.write_text(json.dumps(data))
    return f


def assert_reader_names_the_file(tmp_path, room, reader: str, write, scene: str, breaker) -> None:
    """A broken copy of a fixture stops the reader with one line that starts with the broken file's path."""
    write(tmp_path / reader, scene=room)
    bad = breaker(tmp_path / reader)
    with pytest.raises(SceneError) as err:
        read_scene(reader, tmp_path / reader / scene)
    assert str(err.value).startswith(str(bad)) and "\n" not in str(err.value)


def remove_folder(folder: Path) -> Path:
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    return folder


@pytest.mark.parametrize("breaker", [break_json_key, break_json_syntax, break_json_image, break_json_polygon,
                                     break_json_size])
def test_lerf_ovs_bad_annotations(tmp_path, synthetic_room, breaker):
    assert_reader_names_the_file(tmp_path, synthetic_room, "lerf_ovs", write_lerf_ovs, "teatime", breaker)


def remove_label_folder(root: Path) -> Path:
    return remove_folder(root / "label" / "teatime")


def empty_class_list(root: Path) -> Path:
    f = root / "bed" / "segmentations" / "classes.txt"
    f.write_text("")
    return f


def truncated_prompt_mask(root: Path) -> Path:
    f = sorted((root / "figurines" / "test_mask" / "0").iterdir())[0]
    f.write_bytes(f.read_bytes()[:60])
    return f


@pytest.mark.parametrize("reader, write, scene, breaker", [
    ("lerf_ovs", write_lerf_ovs, "teatime", remove_label_folder),
    ("3dovs", write_ovs3d, "bed", empty_class_list),
    ("lerf_mask", write_lerf_mask, "figurines", truncated_prompt_mask)])
def test_bad_input_through_ingest(tmp_path, synthetic_room, reader, write, scene, breaker):
    write(tmp_path / "data", scene=synthetic_room)
    bad = breaker(tmp_path / "data")
    out = tmp_path / "out" / "scene.zarr"
    out.parent.mkdir()
    proc = ingest(tmp_path, reader, tmp_path / "data" / scene, out)
    assert_one_line_error(proc, str(bad), out)


def ovs3d_missing_class(root: Path) -> Path:
    f = root / "bed" / "segmentations" / "04" / sorted(p.name for p in (root / "bed/segmentations/04").iterdir())[0]
    f.unlink()
    return f


def ovs3d_wrong_size(root: Path) -> Path:
    f = sorted((root / "bed" / "segmentations" / "00").iterdir())[0]
    save_mask(f, np.ones((10, 10), bool))
    return f


def ovs3d_truncated(root: Path) -> Path:
    f = sorted((root / "bed" / "segmentations" / "00").iterdir())[1]
    f.write_bytes(f.read_bytes()[:40])
    return f


def ovs3d_bad_folder(root: Path) -> Path:
    f = root / "bed" / "segmentations" / "front"
    f.mkdir()
    return f


def ovs3d_no_classes(root: Path) -> Path:
    f = root / "bed" / "segmentations" / "classes.txt"
    f.write_text("\n\n")
    return f


@pytest.mark.parametrize("breaker", [ovs3d_missing_class, ovs3d_wrong_size, ovs3d_truncated, ovs3d_bad_folder,
                                     ovs3d_no_classes])
def test_ovs3d_bad_input(tmp_path, synthetic_room, breaker):
    assert_reader_names_the_file(tmp_path, synthetic_room, "3dovs", write_ovs3d, "bed", breaker)


def lerf_mask_no_train_folder(root: Path) -> Path:
    return remove_folder(root / "figurines" / "images_train")


def lerf_mask_unknown_view(root: Path) -> Path:
    folder = root / "figurines" / "test_mask" / "7"
    save_mask(folder / "cup.png", np.ones((30, 40), bool))
    return folder


def lerf_mask_wrong_size(root: Path) -> Path:
    f = sorted((root / "figurines" / "test_mask" / "1").iterdir())[0]
    Image.fromarray(np.zeros((30, 41), np.uint8)).save(f)
    return f


def lerf_mask_train_image_unposed(root: Path) -> Path:
    f = root / "figurines" / "images_train" / "frame_00099.jpg"
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(f)
    return f


@pytest.mark.parametrize("breaker", [lerf_mask_no_train_folder, lerf_mask_unknown_view, lerf_mask_wrong_size,
                                     lerf_mask_train_image_unposed])
def test_lerf_mask_bad_input(tmp_path, synthetic_room, breaker):
    assert_reader_names_the_file(tmp_path, synthetic_room, "lerf_mask", write_lerf_mask, "figurines", breaker)
