"""Oracle priors: ground-truth pieces are view-consistent, and every corruption knob produces the rate it promises."""

import numpy as np
import pytest
import torch

from stages.lib.oracle import embedding
from stages.lib.oracle.masks import MaskCorruption, clean_masks, corrupt_masks
from stages.lib.oracle.pieces import instance_axes, piece_ids
from stages.lib.oracle.tracks import TrackCorruption, oracle_propagator
from stages.lib.synthetic import SyntheticConfig, make_scene


@pytest.fixture(scope="module")
def scene():
    return make_scene(SyntheticConfig(seed=3, num_views=12, width=64, height=48, num_points=6000, num_objects=10))


@pytest.fixture(scope="module")
def clean(scene):
    axes = instance_axes(scene)
    return [clean_masks(scene, v, "part", axes) for v in range(scene.num_views)]


def test_pieces_nest_and_split_instances(scene):
    axes = instance_axes(scene)
    whole, part, sub = (piece_ids(scene, 0, lv, axes) for lv in ("whole", "part", "subpart"))
    inst = scene.gt_instance[0]
    assert ((whole // 8) == inst).all() and ((part // 8) == inst).all() and ((sub // 8) == inst).all()
    # over all views, every instance shows its 2 parts and 4 subparts (one view may see only some of them)
    all_parts = np.stack([piece_ids(scene, v, "part", axes) for v in range(scene.num_views)])
    all_subs = np.stack([piece_ids(scene, v, "subpart", axes) for v in range(scene.num_views)])
    for i in np.unique(scene.gt_instance):
        assert np.unique(all_parts[scene.gt_instance == i]).size == 2
        assert np.unique(all_subs[scene.gt_instance == i]).size == 4


def test_pieces_are_consistent_across_views(scene):
    """The same world point carries the same piece id in neighbouring views (split in 3D, not per image)."""
    axes = instance_axes(scene)
    from stages.lib.oracle.pieces import backproject

    a, b = 0, 1
    xyz = backproject(scene, a).reshape(-1, 3)
    w2c = scene.world_to_camera[b].astype(np.float64)
    cam = xyz @ w2c[:3, :3].T + w2c[:3, 3]
    K = scene.intrinsics[b]
    u = (cam[:, 0] / cam[:, 2] * K[0, 0] + K[0, 2]).astype(int)
    v = (cam[:, 1] / cam[:, 2] * K[1, 1] + K[1, 2]).astype(int)
    ok = (u >= 0) & (u < scene.width) & (v >= 0) & (v < scene.height) & (cam[:, 2] > 0)
    z_b = scene.depth[b][v[ok], u[ok]]
    visible = np.abs(z_b - cam[ok, 2]) < 0.02 * cam[ok, 2]
    pa = piece_ids(scene, a, "subpart", axes).reshape(-1)[ok][visible]
    pb = piece_ids(scene, b, "subpart", axes)[v[ok][visible], u[ok][visible]]
    assert (pa == pb).mean() > 0.97


def count(masks_per_view):
    return sum(len(m) for m in masks_per_view)


def test_dropout_rate(clean):
    rng = np.random.default_rng(0)
    out = [corrupt_masks(m, MaskCorruption(dropout=0.3, min_area=1), rng) for m in clean]
    assert 1 - count(out) / count(clean) == pytest.approx(0.3, abs=0.06)


def test_over_segmentation_rate(clean):
    rng = np.random.default_rng(1)
    out = [corrupt_masks(m, MaskCorruption(over_segment=0.25, min_area=1), rng) for m in clean]
    assert count(out) / count(clean) - 1 == pytest.approx(0.25, abs=0.06)
    area_in = sum(m.area for ms in clean for m in ms)
    assert sum(m.area for ms in out for m in ms) == area_in, "splits conserve pixels"


def test_under_segmentation_rate(clean):
    rng = np.random.default_rng(2)
    out = [corrupt_masks(m, MaskCorruption(under_segment=0.3, min_area=1), rng) for m in clean]
    merged_fraction = 2 * (count(clean) - count(out)) / count(clean)
    assert merged_fraction == pytest.approx(0.3, abs=0.06)


def test_boundary_jitter_moves_only_boundary_pixels(clean):
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for r in (1, 2):
        changed_masks = 0
        for m in clean[0]:
            j = corrupt_masks([m], MaskCorruption(boundary_jitter=r, min_area=1), rng)[0]
            diff = j.segmentation ^ m.segmentation
            band = ndimage.binary_dilation(m.segmentation, iterations=r) & ~ndimage.binary_erosion(
                m.segmentation, iterations=r)
            assert not (diff & ~band).any(), "jitter stays within r pixels of the boundary"
            changed_masks += diff.any()
        assert changed_masks >= 0.9 * len(clean[0])


def test_track_swap_and_loss_rates(scene):
    clean_ids = scene.gt_instance.astype(np.int32)
    seeds = {int(i): scene.gt_instance[0] == i for i in np.unique(scene.gt_instance[0])}
    rng = np.random.default_rng(4)
    prop = oracle_propagator(clean_ids, TrackCorruption(swap_rate=0.2), rng)(0, seeds)
    wrong, total = 0, 0
    for t in range(1, scene.num_views):
        for obj in np.unique(prop[t][prop[t] >= 0]):
            truth = np.bincount(clean_ids[t][prop[t] == obj]).argmax()
            wrong += truth != obj
            total += 1
    assert wrong / total == pytest.approx(0.2, abs=0.07)
    clean_prop = oracle_propagator(clean_ids, TrackCorruption(), rng)(0, seeds)
    assert ((clean_prop == clean_ids) | (clean_prop == -1)).all() and (clean_prop[0] == clean_ids[0]).all()
    lost = oracle_propagator(clean_ids, TrackCorruption(loss_rate=0.15), np.random.default_rng(5))
    run = lost(0, seeds)
    alive = [np.unique(run[t][run[t] >= 0]).size for t in (0, scene.num_views - 1)]
    visible_last = np.intersect1d(list(seeds), np.unique(clean_ids[-1])).size
    expected = visible_last * 0.85 ** (scene.num_views - 1)
    assert alive[0] == len(seeds) and abs(alive[1] - expected) <= 3


def test_feature_confusion_and_noise_rates():
    vocab = [f"class{i}" for i in range(12)]
    cats = np.repeat(np.arange(12), 100)
    rng = np.random.default_rng(6)
    text = embedding.encode_names(vocab, 64).numpy()
    f = embedding.crop_features(cats, vocab, vocab, 64, embedding.FeatureCorruption(confusion=0.25), rng)
    assert (np.argmax(f @ text.T, 1) != cats).mean() == pytest.approx(0.25, abs=0.04)
    f = embedding.crop_features(cats, vocab, vocab, 64, embedding.FeatureCorruption(noise=0.5), rng)
    cos = (f * text[cats]).sum(1)
    assert cos.mean() == pytest.approx(1 / np.sqrt(1 + 0.5 ** 2), abs=0.02)
    assert np.allclose(np.linalg.norm(f, axis=1), 1, atol=1e-5)


def test_oracle_text_encoder_is_the_image_embedding_space():
    v = embedding.encode_names(["chair", "table", "chair"], 32)
    assert torch.allclose(v[0], v[2]) and abs(float(v[0] @ v[1])) < 0.6
    assert torch.allclose(v.norm(dim=1), torch.ones(3))
