"""Stores built from a synthetic scene's ground truth, shared by the stage tests.

Two constructions: the feature-field inputs (scene, point Gaussians, GT-instance masks) of the
train_features / codebook / pseudo_gt tests, and the association oracle of the associate / query /
evaluate_semantic tests: one opaque Gaussian at every ground-truth point with a one-hot feature of its
GT instance (leaf id = GT instance), the GT instance maps as masks and one-hot category vectors as
their CLIP features.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from stages.associate import main as associate_main
from stages.associate import parser as associate_parser
from stages.lib.gaussians import init_from_points, save_gaussians
from stages.lib.instance_gaussians import Cameras, InstanceGaussians
from stages.lib.scene import SceneData
from stages.lib.semantic_metrics import SCANNET19
from stages.lib.store import write_store
from stages.lib.synthetic import SyntheticConfig, make_scene

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
CEILING_DIM = len(SCANNET19)  # mask features of the unlabelled ceiling point along a non-vocabulary axis


def run_cli(module: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


# ----------------------------------------------------------------------------------------------
# Feature-field inputs
# ----------------------------------------------------------------------------------------------
def tiny_scene() -> SceneData:
    return make_scene(SyntheticConfig(num_views=8, width=32, height=24, num_points=1500, num_objects=8))


def point_gaussians(scene: SceneData) -> dict[str, torch.Tensor]:
    """One Gaussian per scene point (so Gaussian i has the GT instance ``points_instance[i]``)."""
    return init_from_points(scene.points_xyz, scene.points_rgb, sh_degree=0, init_opacity=0.5)


def write_inputs(tmp: Path, scene: SceneData, gaussians: dict[str, torch.Tensor]) -> dict[str, Path]:
    """Scene, gaussians and GT-instance masks stores under ``tmp``."""
    paths = {"scene": tmp / "scene.zarr", "gaussians": tmp / "gaussians.zarr", "masks": tmp / "masks.zarr"}
    scene.write(paths["scene"], "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    save_gaussians(paths["gaussians"], gaussians, "test", {}, {},
                   {"sh_degree": 0, "background": [0.0, 0.0, 0.0], "iterations": 0})
    write_gt_masks(paths["masks"], scene.gt_instance)
    return paths


def write_gt_masks(path: Path, instance: np.ndarray, level: str = "whole") -> np.ndarray:
    """A ``masks`` store with one level: per view, the GT instances renumbered 0..n-1, and the mask table.

    Returns the GT instance id of every mask, in mask-table order.
    """
    labels = np.full((instance.shape[0], 1, *instance.shape[1:]), -1, np.int32)
    table: dict[str, list] = {k: [] for k in ("mask_view", "mask_id", "mask_area", "mask_bbox", "instance")}
    for v, inst in enumerate(instance):
        ids, local = np.unique(inst, return_inverse=True)
        labels[v, 0] = local.reshape(inst.shape)
        for m in range(len(ids)):
            ys, xs = np.nonzero(labels[v, 0] == m)
            table["mask_view"].append(v)
            table["mask_id"].append(m)
            table["mask_area"].append(len(xs))
            table["mask_bbox"].append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
            table["instance"].append(int(ids[m]))
    m = len(table["mask_view"])
    with write_store("masks", path, "test", {}) as w:
        w.write("labels", labels)
        for key in ("mask_view", "mask_id", "mask_area"):
            w.write(key, np.asarray(table[key], np.int32))
        w.write("mask_level", np.zeros(m, np.int32))
        w.write("mask_bbox", np.asarray(table["mask_bbox"], np.float32))
        w.write("mask_pred_iou", np.ones(m, np.float32))
        w.write("mask_stability", np.ones(m, np.float32))
        w.attrs.update(levels=[level], source="ground truth", oracle=True)
    return np.asarray(table["instance"], np.int64)


# ----------------------------------------------------------------------------------------------
# Association oracle
# ----------------------------------------------------------------------------------------------
def oracle_scene() -> SceneData:
    return make_scene(SyntheticConfig(seed=0, num_views=8, width=32, height=24, test_every=4, num_points=3000))


def instance_codes(num_instances: int) -> np.ndarray:
    """Unit one-hot instance features (OpenGaussian normalises every Gaussian's feature): two instances are 2 apart
    in L1, so Eq. 8's feature term of a mask of another instance clips to 0."""
    return np.eye(num_instances, dtype=np.float32)


def write_oracle_gaussians(scene: SceneData, path: Path, leaf: np.ndarray, num_instances: int) -> None:
    """One Gaussian per GT point (half the 3-NN scale, opacity 0.95), feature = the code of its GT instance."""
    p = init_from_points(scene.points_xyz, scene.points_rgb, sh_degree=0, init_scale=0.5)
    p["opacities"] = torch.logit(torch.full_like(p["opacities"], 0.95))
    with write_store("feature_gaussians", path, "test", {}) as w:
        for key, value in p.items():
            w.write(key, value.float().numpy())
        w.write("features", instance_codes(num_instances)[leaf])
        w.attrs.update(sh_degree=0, background=[0, 0, 0], iterations=0, feature_dim=num_instances)


def write_oracle_codebook(path: Path, leaf: np.ndarray, num_instances: int) -> None:
    with write_store("codebook", path, "test", {}) as w:
        w.write("coarse_centres", np.zeros((1, 3), np.float32))
        w.write("fine_centres", instance_codes(num_instances))
        w.write("coarse_id", np.zeros(len(leaf), np.int32))
        w.write("leaf_id", leaf.astype(np.int32))
        w.attrs.update(k_coarse=1, k_fine=num_instances)


def write_oracle_masks_features(scene: SceneData, masks_path: Path, features_path: Path) -> None:
    """GT instance maps as masks (one level); mask features = one-hot GT category."""
    instance = write_gt_masks(masks_path, scene.gt_instance, level="instance")
    category = np.array(scene.extra_attrs["instance_categories"])[instance]
    feats = np.eye(CEILING_DIM + 1, dtype=np.float16)[np.where(category < 0, CEILING_DIM, category)]
    with write_store("features", features_path, "test", {}) as w:
        w.write("mask_features", feats)
        w.write("crop_features", feats)
        w.write("text_features", np.eye(len(SCANNET19), CEILING_DIM + 1, dtype=np.float16))
        w.attrs.update(source="ground truth", oracle=True, vocabulary=list(SCANNET19), templates=[], alpha=1.0)


def write_oracle_association(path: Path, instance_categories: np.ndarray) -> None:
    """Instance language = one-hot GT category (the ceiling, -1, left unseen), as association ideally gives."""
    seen = instance_categories >= 0
    language = np.zeros((len(instance_categories), CEILING_DIM + 1), np.float16)
    language[np.nonzero(seen)[0], instance_categories[seen]] = 1
    with write_store("association", path, "test", {}) as w:
        w.write("instance_language", language)
        w.write("instance_views", seen.astype(np.int32))
        w.write("instance_label", np.where(seen, instance_categories, -1).astype(np.int32))
        w.write("text_features", np.eye(len(SCANNET19), CEILING_DIM + 1, dtype=np.float16))
        w.attrs.update(vocabulary=list(SCANNET19))


def build_oracle(root: Path) -> dict[str, Path]:
    """Scene, feature_gaussians, codebook, masks and features stores of the oracle construction."""
    scene = oracle_scene()
    paths = {k: root / f"{k}.zarr" for k in ("scene", "gaussians", "codebook", "masks", "features")}
    scene.write(paths["scene"], "test", {}, "synthetic", "oracle", "synthetic")
    leaf = scene.points_instance
    k = len(scene.extra_attrs["instance_categories"])
    write_oracle_gaussians(scene, paths["gaussians"], leaf, k)
    write_oracle_codebook(paths["codebook"], leaf, k)
    write_oracle_masks_features(scene, paths["masks"], paths["features"])
    return paths


def stage_args(paths: dict[str, Path], out: Path, params: str = "{}") -> list[str]:
    return ["--scene", str(paths["scene"]), "--gaussians", str(paths["gaussians"]), "--codebook",
            str(paths["codebook"]), "--masks", str(paths["masks"]), "--features", str(paths["features"]),
            "--out", str(out), "--params", params, "--device", "cpu"]


def associated_oracle(root: Path) -> dict[str, Path]:
    """:func:`build_oracle` plus the association store the associate stage makes from it."""
    paths = build_oracle(root)
    paths["association"] = root / "association.zarr"
    associate_main(associate_parser().parse_args(stage_args(paths, paths["association"])))
    return paths


def two_gaussians_on_axis() -> tuple[InstanceGaussians, Cameras]:
    """Instance 0: an opaque wide Gaussian in front; instance 1: a smaller one behind it, on the optical axis."""
    g = InstanceGaussians(means=torch.tensor([[0.0, 0.0, 2.0], [0.0, 0.0, 5.0]]),
                          quats=torch.tensor([[1.0, 0, 0, 0]] * 2), scales=torch.tensor([[0.5] * 3, [0.3] * 3]),
                          opacities=torch.tensor([0.99, 0.99]), features=torch.eye(2), leaf_id=torch.tensor([0, 1]),
                          num_instances=2)
    K = torch.tensor([[[40.0, 0, 16], [0, 40.0, 12], [0, 0, 1]]])
    return g, Cameras(torch.eye(4)[None], K, 32, 24)


def check_query_masks(scene_path: Path, metrics_path: Path) -> dict[str, tuple[int, np.ndarray]]:
    """The contract of an evaluate_semantic store's query masks: one per text query (attrs['queries']), binary, of the
    scene's image size, on the first test view whose ground truth shows the query. Returns {query: (view, mask)}."""
    from stages.lib.store import read_store

    scene, metrics = read_store("scene", scene_path), read_store("semantic_metrics", metrics_path)
    queries, categories = metrics.attrs["queries"], list(scene.attrs["categories"])
    views, masks = metrics.load("query_views_2d"), metrics.load("query_masks_2d")
    gt = scene.load("gt_semantic")
    test = np.nonzero(scene.load("is_test"))[0]
    assert masks.shape == (len(queries), *gt.shape[1:]) and set(np.unique(masks)) <= {0, 1}
    first = [int(test[np.argmax([(gt[v] == categories.index(q)).any() for v in test])]) for q in queries]
    assert views.tolist() == first
    return {q: (int(v), m.astype(bool)) for q, v, m in zip(queries, views, masks)}


def tiny_diffusion_capability(models: list[dict]) -> dict:
    """Capability-stage parameters of the diffusion source with random-weight tiny Stable Diffusion and SAM ViT-B on
    one 32x32 image per class of ["chair", "sofa"] (the code path only)."""
    return {"source": "diffusion", "models": models, "vocabulary": ["chair", "sofa"],
            "options": {"images_per_class": 1, "width": 32, "height": 32, "steps": 2,
                        "diffusion": {"random_weights": True}, "sam": {"model": "sam_vit_b", "random_weights": True}}}
