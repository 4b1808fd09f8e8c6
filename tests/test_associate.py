"""Association (supplement A.4): fusion weights, Eq. 8 on label maps, rendering alone, and an oracle scene.

The oracle scene places one opaque Gaussian at every ground-truth point, gives it a one-hot feature of its GT
instance (leaf id = GT instance), takes the GT instance maps as masks and one-hot category vectors as their CLIP
features; association must then recover every visible instance's category.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from oracle_stores import associated_oracle, run_cli, stage_args, two_gaussians_on_axis, write_oracle_codebook

from stages.lib.instance_gaussians import Cameras, instance_visibility, load_instance_gaussians, render_alpha
from stages.lib.mask_means import mask_means_from_labels
from stages.lib.semantic_metrics import SCANNET19
from stages.lib.store import read_store, write_store
from stages.methods.openins.association import (
    AssociationConfig,
    associate_instances,
    association_scores,
    fuse_language,
    fusion_weights,
    label_map_scores,
)


# ----------------------------------------------------------------------------------------------
# Fusion weights
# ----------------------------------------------------------------------------------------------
def test_fusion_weights_favour_agreeing_views_and_tau_zero_is_the_mean():
    f = torch.tensor([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0]])
    group = torch.zeros(3, dtype=torch.long)
    w = fusion_weights(f, group, 1, tau=5.0)
    assert w.sum().item() == pytest.approx(1.0)
    assert w[2] < w[0] and w[2] < w[1], "the disagreeing view gets the lowest weight"
    # agreement a_v = mean over the other views of cos(f_v, f_u): by hand
    c01 = float(torch.nn.functional.cosine_similarity(f[0], f[1], dim=0))
    c12 = float(torch.nn.functional.cosine_similarity(f[1], f[2], dim=0))
    a = torch.tensor([(c01 + 0.0) / 2, (c01 + c12) / 2, (0.0 + c12) / 2])
    assert torch.allclose(w, torch.softmax(5.0 * a, 0), atol=1e-6)
    assert torch.allclose(fusion_weights(f, group, 1, tau=0.0), torch.full((3,), 1 / 3))
    fused, views = fuse_language(f, group, 1, tau=0.0)
    unit = torch.nn.functional.normalize(f, dim=-1)
    assert torch.allclose(fused[0], torch.nn.functional.normalize(unit.mean(0), dim=0), atol=1e-6)
    assert views.tolist() == [3]


def test_fusion_weights_per_instance_with_scores_and_unseen_rows():
    f = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    group = torch.tensor([0, 0, 2, 0])
    scores = torch.tensor([0.2, 0.6, 0.5, 0.2])
    w = fusion_weights(f, group, 3, tau=0.0, scores=scores)
    assert w[group == 0].tolist() == pytest.approx([0.2, 0.6, 0.2])  # tau = 0: proportional to the score
    assert w[2].item() == pytest.approx(1.0), "an instance seen once takes its only view"
    fused, views = fuse_language(f, group, 3, tau=0.0, scores=scores)
    assert views.tolist() == [3, 0, 1]
    assert fused[1].abs().sum() == 0, "unseen instance: zero row"
    assert fused[0].norm().item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# Eq. 8 on label maps == the dense reference; rendering alone
# ----------------------------------------------------------------------------------------------
def test_label_map_scores_equal_dense_eq8():
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, 5, (2, 6, 7), generator=gen)
    fmap = torch.rand(2, 6, 7, 3, generator=gen)
    alone = torch.rand(2, 6, 7, generator=gen) > 0.5
    feat = torch.rand(3, generator=gen)
    means, areas = mask_means_from_labels(fmap, labels, 5)
    for distance in ("rendered", "unit", "mean"):
        fast = label_map_scores(alone, feat, labels, means, areas, distance)
        for v in range(2):
            dense = torch.stack([labels[v] == j for j in range(5)])
            ref = association_scores(alone[v][None], feat[None], dense, fmap[v], distance)[0]
            assert torch.allclose(fast[v], ref, atol=1e-6)


def test_rendering_alone_gives_the_occluded_instance_its_full_footprint():
    g, cams = two_gaussians_on_axis()
    back_alone = render_alpha(g.take(torch.tensor([1])), cams)[0] > 0.5
    # footprint of the back Gaussian by hand: opacity * exp(-d^2 / (2 var)) > 0.5, var = (f s / z)^2 + 0.3
    var = (40 * 0.3 / 5) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(24) + 0.5, torch.arange(32) + 0.5, indexing="ij")
    d2 = (xs - 16) ** 2 + (ys - 12) ** 2
    expected = 0.99 * torch.exp(-0.5 * d2 / var) > 0.5
    assert back_alone.sum() > 0 and torch.equal(back_alone, expected)
    full = render_alpha(g, cams)[0]
    assert full[12, 16] > 0.99, "rendered together, the front Gaussian hides the back one"


def test_visibility_skips_instances_behind_or_beside_the_camera():
    g, cams = two_gaussians_on_axis()
    assert instance_visibility(g, cams)[:, 0].tolist() == [True, True]
    g.means = torch.tensor([[0.0, 0.0, -2.0], [30.0, 0.0, 5.0]])  # behind the camera; far outside the image
    assert instance_visibility(g, cams)[:, 0].tolist() == [False, False]
    g.means = torch.tensor([[0.0, 0.0, -2.0], [3.0, 0.0, 5.0]])  # 8 px outside the image, radius 7.2 px
    assert instance_visibility(g, cams)[:, 0].tolist() == [False, False]
    g.means[1, 0] = 2.5  # 4 px outside the image: its 3-sigma disc reaches in
    assert instance_visibility(g, cams)[:, 0].tolist() == [False, True]


# ----------------------------------------------------------------------------------------------
# The oracle scene
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def oracle(tmp_path_factory) -> dict[str, Path]:
    return associated_oracle(tmp_path_factory.mktemp("oracle"))


def test_association_recovers_every_visible_instance_category(oracle):
    assoc = read_store("association", oracle["association"])
    scene = read_store("scene", oracle["scene"])
    categories = np.array(scene.attrs["instance_categories"])
    with_points = np.unique(scene.load("points_instance"))
    views = assoc.load("instance_views")
    labels = assoc.load("instance_label")
    labelled = with_points[categories[with_points] >= 0]
    assert (views[with_points] > 0).all(), "every instance with Gaussians is associated in some view"
    assert (labels[labelled] == categories[labelled]).all()
    assert assoc.attrs["vocabulary"] == list(SCANNET19)
    assert assoc.load("instance_language").dtype == np.float16


def test_camera_batching_does_not_change_the_association(oracle):
    g, centres = load_instance_gaussians(oracle["gaussians"], oracle["codebook"])
    scene = read_store("scene", oracle["scene"])
    train = np.nonzero(~scene.load("is_test"))[0][:3]
    labels = torch.from_numpy(np.stack([read_store("masks", oracle["masks"])["labels"][int(v), 0] for v in train]))
    cams = Cameras.from_scene(scene, train)
    a1 = associate_instances(g, centres, cams, labels, AssociationConfig(view_batch=1), progress=False)
    a3 = associate_instances(g, centres, cams, labels, AssociationConfig(view_batch=3), progress=False)
    def triples(a):
        return sorted(zip(a.instance.tolist(), a.view.tolist(), a.mask.tolist()))

    assert len(a3.instance) > 0 and triples(a1) == triples(a3)
    gt = scene.load("gt_instance")[train]
    for k, v in zip(a3.instance.tolist(), a3.view.tolist()):
        assert (gt[v] == k).any(), "an instance is only associated in views that show it"


def test_associate_cli_and_a_mismatched_codebook(oracle, tmp_path):
    out = tmp_path / "association.zarr"
    res = run_cli("stages.associate", stage_args(oracle, out, '{"tau": 0.0, "score_weighted": false}'))
    assert res.returncode == 0, res.stderr
    assert read_store("association", out).attrs["tau"] == 0.0
    ref = read_store("association", oracle["association"]).load("instance_label")
    assert (read_store("association", out).load("instance_label") == ref).all()

    bad = tmp_path / "bad_codebook.zarr"
    write_oracle_codebook(bad, np.zeros(10, np.int64), 3)
    res = run_cli("stages.associate", stage_args({**oracle, "codebook": bad}, tmp_path / "never.zarr"))
    assert res.returncode != 0
    assert str(bad) in res.stderr and "Gaussians" in res.stderr
    assert not (tmp_path / "never.zarr").exists()
    assert not list(tmp_path.glob("never.zarr.partial*"))


def test_masks_without_any_train_view_mask_are_refused_by_name(oracle, tmp_path):
    """A masks store whose train views hold no mask (what an untrained SAM can give) stops with the store named."""
    scene = read_store("scene", oracle["scene"])
    test_views = np.nonzero(scene.load("is_test"))[0]
    src = read_store("masks", oracle["masks"])
    labels = src.load("labels")
    labels[~np.isin(np.arange(len(labels)), test_views)] = -1
    keep = np.isin(src.load("mask_view"), test_views)
    empty = tmp_path / "empty_masks.zarr"
    with write_store("masks", empty, "test", {}) as w:
        w.write("labels", labels)
        for key in ("mask_view", "mask_id", "mask_area", "mask_level", "mask_bbox", "mask_pred_iou", "mask_stability"):
            w.write(key, src.load(key)[keep])
        w.attrs.update({k: src.attrs[k] for k in ("levels", "source", "oracle")})
    feats = read_store("features", oracle["features"])
    features = tmp_path / "features.zarr"
    with write_store("features", features, "test", {}) as w:
        for key in ("mask_features", "crop_features"):
            w.write(key, feats.load(key)[keep])
        w.write("text_features", feats.load("text_features"))
        w.attrs.update({k: feats.attrs[k] for k in ("source", "oracle", "vocabulary", "templates", "alpha")})
    out = tmp_path / "never.zarr"
    res = run_cli("stages.associate", stage_args({**oracle, "masks": empty, "features": features}, out))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert str(empty) in res.stderr and "no mask" in res.stderr
    assert not out.exists() and not list(tmp_path.glob("never.zarr.partial*"))
