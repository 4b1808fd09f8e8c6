"""Oracle priors: ground-truth pieces are view-consistent, and every corruption knob produces the rate it promises."""

import numpy as np
import pytest
import torch

from stages.lib.oracle import embedding
from stages.lib.oracle.masks import MaskCorruption, PersistentErrors, clean_masks, corrupt_masks
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


def pieces_in(out: list, clean_view: list) -> list[set[int]]:
    """For every corrupted mask of a view, the clean pieces it holds (pixel majority of the piece inside it)."""
    return [{m.source_id for m in clean_view if (c.segmentation & m.segmentation).sum() > m.area / 2} for c in out]


def touching(a, b) -> bool:
    from scipy import ndimage

    return bool((ndimage.binary_dilation(a.segmentation) & b.segmentation).any())


def test_persistent_merges_pair_each_piece_with_one_partner_in_every_view(clean):
    c = MaskCorruption(under_segment=0.6, min_area=1, persistent=True)
    errors = PersistentErrors(c, seed=5)
    rng = np.random.default_rng(0)
    merged_in = [pieces_in(corrupt_masks(ms, c, rng, errors), ms) for ms in clean]
    pairs = {frozenset(s) for view in merged_in for s in view if len(s) == 2}
    assert pairs and all(len(s) <= 2 for view in merged_in for s in view)
    partners: dict[int, set[int]] = {}
    for pair in pairs:
        for piece in pair:
            partners.setdefault(piece, set()).update(pair - {piece})
    assert all(len(p) == 1 for p in partners.values()), "one fixed partner per piece, whatever the view"
    for view, ms in zip(merged_in, clean):
        by_id = {m.source_id: m for m in ms}
        for pair in pairs:
            a, b = sorted(pair)
            if a in by_id and b in by_id and touching(by_id[a], by_id[b]):
                assert pair in {frozenset(s) for s in view}, "a pair is merged wherever both pieces touch"


def test_persistent_cuts_repeat_in_every_view_and_ignore_the_views_generator(clean):
    c = MaskCorruption(over_segment=0.4, min_area=1, persistent=True)

    def cut_pieces(rng_seed: int) -> list[set[int]]:
        errors, rng = PersistentErrors(c, seed=5), np.random.default_rng(rng_seed)
        out = []
        for ms in clean:
            ids = [m.source_id for m in corrupt_masks(ms, c, rng, errors)]
            out.append({i for i in ids if ids.count(i) == 2})
        return out

    first = cut_pieces(0)
    assert first == cut_pieces(1), "cuts are the pieces' own draws, not the views' generator"
    cut = set().union(*first)
    seen = {m.source_id for ms in clean for m in ms}
    assert len(cut) / len(seen) == pytest.approx(0.4, abs=0.2)
    for view, ms in zip(first, clean):
        present = {m.source_id for m in ms if m.area >= 20}
        assert cut & present <= view, "a piece that is cut is cut in every view where it is large enough"


def test_persistent_corruption_needs_the_scene_choices(clean):
    with pytest.raises(ValueError, match="PersistentErrors"):
        corrupt_masks(clean[0], MaskCorruption(under_segment=0.3, persistent=True), np.random.default_rng(0))


def square(y: int, x: int, source_id: int):
    from stages.lib.mask_levels import Mask

    seg = np.zeros((12, 20), bool)
    seg[y:y + 3, x:x + 3] = True
    return Mask(seg, level=1, source_id=source_id)


def test_persistent_merge_known_answer():
    """A-B-C in a row (A touches B, B touches C), D apart; every piece prone. View 1: A takes B (the first free piece
    it touches), C finds no free neighbour, D none. View 2 without A: B stays apart from C (its partner is A)."""
    a, b, c, d = square(0, 0, 0), square(0, 3, 1), square(0, 6, 2), square(8, 15, 3)
    corr = MaskCorruption(under_segment=1.0, min_area=1, persistent=True)
    errors, rng = PersistentErrors(corr, seed=0), np.random.default_rng(0)
    view1 = corrupt_masks([a, b, c, d], corr, rng, errors)
    assert [m.area for m in view1] == [18, 9, 9]
    assert (view1[0].segmentation == (a.segmentation | b.segmentation)).all()
    assert errors.partner == {(1, 0): (1, 1), (1, 1): (1, 0)}
    view2 = corrupt_masks([b, c], corr, rng, errors)
    assert [m.source_id for m in view2] == [1, 2] and [m.area for m in view2] == [9, 9]
    view3 = corrupt_masks([b, square(3, 3, 0)], corr, rng, errors)  # A right below B: touching again
    assert [m.area for m in view3] == [18]
    untouched = MaskCorruption(under_segment=0.0, min_area=1, persistent=True)
    assert len(corrupt_masks([a, b, c, d], untouched, rng, PersistentErrors(untouched, seed=0))) == 4


def test_masks_stage_keeps_one_set_of_persistent_choices_for_the_scene(scene):
    """The masks stage's oracle path draws the persistent merges once for the scene: a merged pair of pieces is
    merged again in every later view where both pieces touch."""
    from stages.masks import oracle_view_masks

    params = {"corruption": {"under_segment": 1.0, "min_area": 1, "persistent": True}, "levels": {"whole": ["whole"]}}
    axes = instance_axes(scene)
    clean = [clean_masks(scene, v, "whole", axes) for v in range(scene.num_views)]
    views = [pieces_in(out, ms) for out, ms in zip(oracle_view_masks(scene, params), clean)]
    pairs = {frozenset(s) for view in views for s in view if len(s) == 2}
    assert pairs
    for view, ms in zip(views, clean):
        by_id = {m.source_id: m for m in ms}
        for pair in pairs:
            a, b = sorted(pair)
            if a in by_id and b in by_id and touching(by_id[a], by_id[b]):
                assert pair in {frozenset(s) for s in view}
