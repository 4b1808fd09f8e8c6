"""Replica (Gaga's instance protocol), NVOS and SPIn-NeRF (promptable protocol): fixtures in the published layouts
round-trip through the scene store, the pixel conventions convert, the protocols score hand-computed masks, bad input
stops ingest with one line naming the file and no store, and each dataset runs through the DAG to the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from prompt_instance_fixtures import write_nvos, write_replica, write_spin_nerf
from workflow_runner import REPO, planned_jobs, snakemake

from stages import ingest
from stages.lib.annotations import QueryAnnotations
from stages.lib.cli import run_stage
from stages.lib.instance_metrics import instance_scores
from stages.lib.models.sam_masks import TINY_IMAGE_SIZE, build_sam, generate_masks
from stages.lib.promptable import dataset_tasks, score_mask
from stages.lib.readers import read_scene
from stages.lib.readers.images import downscale_nearest, project
from stages.lib.readers.llff_annotations import annotation_mask
from stages.lib.scene import load_scene
from stages.lib.store import read_store

REPLICA_FRAMES = [0, 2, 5, 7, 10, 12, 15, 17]  # of 20 frames: train 0, 5, 10, 15 and test 2, 7, 12, 17 (Gaga's rule)


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    root = tmp_path_factory.mktemp("replica")
    scene_dir, room = write_replica(root)
    return scene_dir, room


@pytest.fixture(scope="module")
def nvos(tmp_path_factory):
    return write_nvos(tmp_path_factory.mktemp("nvos"), num_views=8, width=48, height=36, reference=2, target=5)


@pytest.fixture(scope="module")
def spin(tmp_path_factory):
    return write_spin_nerf(tmp_path_factory.mktemp("spin"), num_views=8, width=48, height=36, annotated=(1, 3, 5, 6))


def round_trip(scene, tmp_path: Path, reader: str):
    out = tmp_path / "scene.zarr"
    scene.write(out, stage="ingest", params={}, dataset="d", scene="s", reader=reader)
    return load_scene(out)


# ----------------------------------------------------------------------------------------------
# Round trips and pixel conventions
# ----------------------------------------------------------------------------------------------
def test_replica_round_trip_split_and_ground_truth(replica, tmp_path):
    scene_dir, room = replica
    loaded = round_trip(read_scene("replica", scene_dir), tmp_path, "replica")
    assert loaded.image_names == [f"rgb_{f}.png" for f in REPLICA_FRAMES]
    np.testing.assert_array_equal(loaded.is_test, np.isin(REPLICA_FRAMES, [2, 7, 12, 17]))
    np.testing.assert_array_equal(loaded.images, room.images[REPLICA_FRAMES])
    np.testing.assert_allclose(loaded.world_to_camera, room.world_to_camera[REPLICA_FRAMES], atol=1e-5)
    w, h = room.width, room.height
    np.testing.assert_allclose(loaded.intrinsics[0], [[w / 2, 0, w / 2], [0, w / 2, h / 2], [0, 0, 1]])
    np.testing.assert_allclose(loaded.depth, room.depth[REPLICA_FRAMES], atol=5e-4)  # millimetre PNG
    np.testing.assert_array_equal(loaded.gt_instance, room.gt_instance[REPLICA_FRAMES])  # ids kept, 0 included
    np.testing.assert_array_equal(loaded.gt_semantic, room.gt_semantic[REPLICA_FRAMES])  # class - 1, void -> -1
    assert loaded.points_instance is not None and set(np.unique(loaded.points_instance)) <= set(
        np.unique(room.gt_instance))


def test_replica_pixel_convention(replica):
    """A point on the ray Semantic-NeRF casts through integer pixel (i, j) (principal point ((W-1)/2, (H-1)/2),
    f = W/2, camera-to-world from traj_w_c.txt) projects to (i + 0.5, j + 0.5) in our convention."""
    scene_dir, room = replica
    scene = read_scene("replica", scene_dir)
    c2w = np.loadtxt(scene_dir / "Sequence_1/traj_w_c.txt").reshape(-1, 4, 4)[REPLICA_FRAMES[1]]
    w, h = room.width, room.height
    i, j, z = 5, 17, 2.5
    cam = np.array([(i - (w - 1) / 2) / (w / 2) * z, (j - (h - 1) / 2) / (w / 2) * z, z])
    uv, depth = project((c2w[:3, :3] @ cam + c2w[:3, 3])[None], scene.intrinsics[1], scene.world_to_camera[1])
    np.testing.assert_allclose(uv[0], [i + 0.5, j + 0.5], atol=1e-4)
    np.testing.assert_allclose(depth[0], z, atol=1e-6)


def test_nvos_round_trip_annotations_and_split(nvos, tmp_path):
    scene_dir, tree, truth = nvos
    loaded = round_trip(read_scene("nvos", scene_dir, annotations=str(tree), factor=2), tmp_path, "nvos")
    room = truth["room"]
    np.testing.assert_allclose(loaded.world_to_camera, room.world_to_camera, atol=1e-5)
    np.testing.assert_allclose(loaded.intrinsics[:, 0, 0], room.intrinsics[:, 0, 0] / 2, rtol=1e-6)
    np.testing.assert_allclose(loaded.intrinsics[0, :2, 2], [room.width / 4, room.height / 4])
    ref, target = truth["reference"], truth["target"]
    assert not loaded.is_test[ref] and loaded.is_test[target]
    notes = loaded.annotations
    assert notes.protocol == "nvos" and notes.queries == ["object", "positive scribble", "negative scribble"]
    np.testing.assert_array_equal(notes.view, [target, ref, ref])
    np.testing.assert_array_equal(notes.masks[0], downscale_nearest(truth["target_mask"], 2))
    for mask, stroke in zip(notes.masks[1:], (truth["positive"], truth["negative"])):  # any pixel of a 2x2 block
        np.testing.assert_array_equal(mask, stroke.reshape(mask.shape[0], 2, mask.shape[1], 2).any(axis=(1, 3)))


def test_spin_round_trip_reference_and_scored_views(spin, tmp_path):
    scene_dir, folder, truth = spin
    loaded = round_trip(read_scene("spin_nerf", scene_dir, masks=str(folder), factor=2, max_views=5), tmp_path,
                        "spin_nerf")
    notes = loaded.annotations
    kept = [loaded.image_names.index(f"image{v:03d}.png") for v in (1, 3, 5, 6)]  # max_views keeps annotated views
    np.testing.assert_array_equal(notes.view, kept)
    np.testing.assert_array_equal(notes.query, [0, 1, 1, 1])
    for mask, view in zip(notes.masks, (1, 3, 5, 6)):
        np.testing.assert_array_equal(mask, truth["masks"][view])
    assert not loaded.is_test[kept[0]] and loaded.is_test[kept[1:]].all()


def test_annotation_masks_binarise_and_downscale(tmp_path):
    """0/255 and 0/1 masks read alike; a full-resolution scribble keeps every 2x2 block it touches."""
    mask = np.zeros((4, 6), bool)
    mask[1:3, 2:5] = True
    for scale, name in ((255, "a.png"), (1, "b.png")):
        Image.fromarray(mask.astype(np.uint8) * scale).save(tmp_path / name)
        np.testing.assert_array_equal(annotation_mask(tmp_path / name, 4, 6), mask)
    stroke = np.zeros((8, 12, 3), np.uint8)
    stroke[3, 1:4] = (0, 255, 0)
    Image.fromarray(stroke).save(tmp_path / "pos.png")
    expected = np.zeros((4, 6), bool)
    expected[1, 0:2] = True
    np.testing.assert_array_equal(annotation_mask(tmp_path / "pos.png", 4, 6, scribble=True), expected)


# ----------------------------------------------------------------------------------------------
# Protocols on hand-computed masks
# ----------------------------------------------------------------------------------------------
def test_gaga_protocol_counts_replica_id_zero():
    """Gaga's eval.py scores every GT id, 0 included: gt 0 vs pred 1 = 4/5, gt 5 vs pred 2 = 3/4."""
    gt = np.array([[[0, 0, 5, 5], [0, 0, 5, 5]]])
    pred = np.array([[[1, 1, 1, 2], [1, 1, 2, 2]]])
    s = instance_scores(pred, gt, boundary=False)
    np.testing.assert_array_equal(s.gt_ids, [0, 5])
    np.testing.assert_allclose(s.matched_iou, [0.8, 0.75])
    assert s.miou == pytest.approx(0.775) and s.precision == 1.0 and s.recall == 1.0


def test_prompt_tasks_and_scores_from_annotations():
    h, w = 4, 6
    obj = np.zeros((h, w), bool)
    obj[1:3, 1:4] = True  # 6 pixels
    pos, neg = np.zeros_like(obj), np.zeros_like(obj)
    pos[2, 2], neg[0, 5] = True, True
    nvos = QueryAnnotations("nvos", ["object", "positive scribble", "negative scribble"], np.array([3, 1, 1]),
                            np.array([0, 1, 2]), np.stack([obj, pos, neg]))
    (task,) = dataset_tasks(nvos)
    assert task.protocol == "nvos" and task.reference_view == 1 and [v for v, _ in task.targets] == [3]
    assert task.points(5, 5, np.random.default_rng(0)) == ([(2.5, 2.5)], [(5.5, 0.5)])  # pixel centres
    spin = QueryAnnotations("spin_nerf", ["reference object", "object"], np.array([0, 2, 4]), np.array([0, 1, 1]),
                            np.stack([obj, obj, ~obj]))
    (task,) = dataset_tasks(spin)
    assert task.reference_view == 0 and [v for v, _ in task.targets] == [2, 4]
    np.testing.assert_array_equal(task.negative, ~obj)
    pred = np.zeros((h, w), bool)
    pred[1:3, 2:5] = True  # 6 pixels, 4 shared with obj
    iou, acc = score_mask(pred, obj)
    assert iou == pytest.approx(4 / 8) and acc == pytest.approx((24 - 4) / 24)
    with pytest.raises(ValueError, match="hold no prompts"):
        dataset_tasks(QueryAnnotations("lerf_mask", ["cup"], np.array([0]), np.array([0]), obj[None]))


def test_tiny_random_sam_masks_cover_the_image_grid():
    """The shrunken random-weight SAM the DAG tests use: 64-px inputs, masks on the image grid; never with weights."""
    sam = build_sam("vit_b", None, "cpu", random_weights=True, tiny=True)
    assert sam.image_encoder.img_size == TINY_IMAGE_SIZE
    image = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    masks = generate_masks(sam, image, {"points_per_side": 2, "pred_iou_thresh": 0, "stability_score_thresh": 0})
    assert masks and all(m.segmentation.shape == (24, 32) for m in masks)
    with pytest.raises(ValueError, match="random_weights=True"):
        build_sam("vit_b", Path("sam.pth"), "cpu", tiny=True)


# ----------------------------------------------------------------------------------------------
# Bad input: one line naming the file, exit status 1, no store
# ----------------------------------------------------------------------------------------------
def ingest_error(tmp_path: Path, reader: str, path: Path, options: dict) -> str:
    out = tmp_path / "out" / "scene.zarr"
    argv = ["--reader", reader, "--path", str(path), "--dataset", "d", "--scene", "s", "--out", str(out),
            "--params", json.dumps(options)]
    with pytest.raises(SystemExit) as exc:
        run_stage(ingest.main, ingest.parser(), argv)
    message = str(exc.value.code)
    assert message.startswith("error: ") and "\n" not in message and "Traceback" not in message
    assert not out.parent.exists() or not any(out.parent.iterdir())
    return message


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def replica_case(root: Path, case: str) -> tuple[Path, str]:
    seq = root / "Sequence_1"
    inst = root.parent / "Replica_Instance_Segmentation" / root.name / "Sequence_1" / "semantic_instance"
    if case == "8-bit depth":
        Image.fromarray(np.full((24, 32), 7, np.uint8)).save(seq / "depth/depth_5.png")
        return seq / "depth/depth_5.png", "16-bit"
    if case == "missing instance map":
        (inst / "semantic_instance_12.png").unlink()
        return inst / "semantic_instance_12.png", "does not exist"
    if case == "short trajectory line":
        lines = (seq / "traj_w_c.txt").read_text().splitlines()
        lines[3] = " ".join(lines[3].split()[:15])
        (seq / "traj_w_c.txt").write_text("\n".join(lines))
        return seq / "traj_w_c.txt", "line 4"
    if case == "non-rigid pose":
        lines = (seq / "traj_w_c.txt").read_text().splitlines()
        lines[6] = " ".join(["2.0"] + lines[6].split()[1:])
        (seq / "traj_w_c.txt").write_text("\n".join(lines))
        return seq / "traj_w_c.txt", "line 7"
    if case == "image without pose":
        shutil.copy(seq / "rgb/rgb_0.png", seq / "rgb/rgb_20.png")
        return seq / "traj_w_c.txt", "20 poses"
    if case == "class map of another size":
        Image.fromarray(np.zeros((12, 16), np.uint8)).save(seq / "semantic_class/semantic_class_7.png")
        return seq / "semantic_class/semantic_class_7.png", "16x12"
    if case == "colour instance map":
        Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(inst / "semantic_instance_0.png")
        return inst / "semantic_instance_0.png", "single-channel"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["8-bit depth", "missing instance map", "short trajectory line", "non-rigid pose",
                                  "image without pose", "class map of another size", "colour instance map"])
def test_replica_bad_input(replica, tmp_path, case):
    scene_dir, _ = replica
    root = copy_tree(scene_dir.parent, tmp_path / "Replica_Dataset") / scene_dir.name
    file, words = replica_case(root, case)
    message = ingest_error(tmp_path, "replica", root, {})
    assert str(file) in message and words in message, message


def nvos_case(tree: Path, scene_dir: Path, case: str) -> tuple[Path, str]:
    if case == "unknown task":
        return tree / "masks" / "trex", "does not exist"
    if case == "reference not in the scene":
        ref = next((tree / "reference_image/fern").iterdir())
        ref.rename(ref.with_name("IMG_9999.JPG"))
        return ref.with_name("IMG_9999.JPG"), "not among the scene's images"
    if case == "two positive scribbles":
        pos = next((tree / "scribbles/fern").glob("pos_*"))
        shutil.copy(pos, pos.with_name("pos_extra.png"))
        return tree / "scribbles/fern", "exactly one positive"
    if case == "mask of another size":
        mask = next((tree / "masks/fern").glob("*_mask.png"))
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask)
        return mask, "10x10"
    if case == "empty scribble":
        neg = next((tree / "scribbles/fern").glob("neg_*"))
        Image.fromarray(np.zeros((36, 48, 3), np.uint8)).save(neg)
        return neg, "empty"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["unknown task", "reference not in the scene", "two positive scribbles",
                                  "mask of another size", "empty scribble"])
def test_nvos_bad_input(nvos, tmp_path, case):
    scene_dir, tree, _ = nvos
    tree = copy_tree(tree, tmp_path / "nvos")
    file, words = nvos_case(tree, scene_dir, case)
    options = {"annotations": str(tree), "factor": 2, **({"task": "trex"} if case == "unknown task" else {})}
    message = ingest_error(tmp_path, "nvos", scene_dir, options)
    assert str(file) in message and words in message, message


@pytest.mark.parametrize("case", ["unknown image", "one mask", "empty mask"])
def test_spin_bad_input(spin, tmp_path, case):
    scene_dir, folder, _ = spin
    folder = copy_tree(folder, tmp_path / "spin")
    if case == "unknown image":
        file, words = folder / "IMG_1.png", "not among the scene's images"
        shutil.copy(folder / "image001.png", file)
    elif case == "one mask":
        for f in folder.glob("image00[356].png"):
            f.unlink()
        file, words = folder, "at least one scored mask"
    else:
        file, words = folder / "image003.png", "empty"
        Image.fromarray(np.zeros((18, 24), np.uint8)).save(file)
    message = ingest_error(tmp_path, "spin_nerf", scene_dir, {"masks": str(folder), "factor": 2})
    assert str(file) in message and words in message, message


# ----------------------------------------------------------------------------------------------
# Through the DAG to the report
# ----------------------------------------------------------------------------------------------
def config_with_paths(name: str, paths: dict[str, Path], out: Path) -> Path:
    text = (REPO / "tests/config" / name).read_text()
    for key, value in paths.items():
        text = text.replace(key, str(value))
    out.write_text(text)
    return out


# Each DAG run costs about 1.5 CPU-minutes (measured: 2 passed in 15.5 min wall on a 2-core machine at load 16), so
# they run with the slow end-to-end tests (make test-slow / -m slow).
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_replica_dag_reports_gaga_instance_protocol(replica, tmp_path):
    scene_dir, _ = replica
    config = config_with_paths("replica_tiny.yaml", {"REPLICA_PATH": scene_dir}, tmp_path / "config.yaml")
    snakemake(tmp_path / "results", configfile=config, timeout=1200)
    table = pd.read_csv(tmp_path / "results/replica/office_0/evaluate_instances/replica_tiny.csv")
    test = table[table["protocol"] == "test"].iloc[0]
    assert test["dataset"] == "replica" and test["gt_instances"] > 1 and 0 <= test["mIoU"] <= 100
    scene = read_store("scene", tmp_path / "results/replica/office_0/scene.zarr")
    assert scene.attrs["reader"] == "replica" and scene.sizes["V"] == len(REPLICA_FRAMES)
    report = (tmp_path / "results/report/report.md").read_text()
    assert "protosaga_replica" in report and "office_0" in report


def test_replica_config_plans_oracle_and_sam_recipes(replica, tmp_path):
    """config/datasets/replica.yaml on the fixture scene: a dry run plans Proto-SaGa and Gaga on oracle masks and on
    per-image SAM masks (the paper's setting), each with its instance protocol."""
    scene_dir, _ = replica
    config = yaml.safe_load((REPO / "config/datasets/replica.yaml").read_text())
    config["scenes"] = [{"dataset": "replica", "scene": "office_0", "reader": "replica", "path": str(scene_dir)}]
    configfile = tmp_path / "replica.yaml"
    configfile.write_text(yaml.safe_dump(config))
    jobs = planned_jobs(tmp_path / "results", configfile)
    assert {k: jobs.get(k, 0) for k in ("masks", "train_features", "associate", "codebook", "evaluate_instances")} == {
        "masks": 2, "train_features": 2, "associate": 4, "codebook": 4, "evaluate_instances": 4}, jobs


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_nvos_and_spin_dag_report_promptable_protocols(nvos, spin, tmp_path):
    paths = {"NVOS_SCENE": nvos[0], "NVOS_TREE": nvos[1], "SPIN_SCENE": spin[0], "SPIN_MASKS": spin[1]}
    config = config_with_paths("prompt_datasets_tiny.yaml", paths, tmp_path / "config.yaml")
    snakemake(tmp_path / "results", configfile=config, timeout=1200)
    results = tmp_path / "results"
    nvos_rows = pd.read_csv(results / "nvos/fern/evaluate_prompt/prompt_tiny.csv")
    assert set(nvos_rows["protocol"]) == {"nvos"} and nvos_rows["object"].tolist() == ["mean", "image005.png"]
    spin_rows = pd.read_csv(results / "spin_nerf/fern/evaluate_prompt/prompt_tiny.csv")
    assert set(spin_rows["protocol"]) == {"spin"}
    assert spin_rows["object"].tolist() == ["mean", "image003.png", "image005.png", "image006.png"]
    mean = spin_rows.iloc[0]
    assert mean["objects"] == 3 and mean["mIoU"] == pytest.approx(spin_rows["mIoU"][1:].mean(), abs=0.02)
    masks = read_store("masks", results / "nvos/fern/masks/sam_tiny_random.zarr")
    assert masks.attrs["random_weights"] is True
    report = pd.read_csv(results / "report/prompt_metrics.csv")
    scenes = report[report["dataset"].isin(["nvos", "spin_nerf"])].set_index("dataset")
    assert not np.isnan(scenes.loc["nvos", "NVOS mIoU"]) and not np.isnan(scenes.loc["spin_nerf", "SPIn-NeRF mIoU"])
    assert (report["priors"] == "random weights: plumbing only, not a result").all()  # random SAM: never a result
