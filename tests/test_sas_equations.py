"""Known-answer tests of SAS's 2D-side equations: text alignment (Sec. 3.1), occlusion-aware multi-view fusion,
capability Eq. 3-4, capability-guided fusion Eq. 6-8 with the Table 3 ablations, cross-attention aggregation Eq. 2."""

import numpy as np
import pytest
import torch

from stages.lib.oracle.class_models import OracleClassModel
from stages.methods.sas.alignment import align_by_text, prompts
from stages.methods.sas.attention import aggregate_attention, coarse_mask, prompt_points
from stages.methods.sas.capability import CapabilityAccumulator, filled
from stages.methods.sas.fusion import capability_weights, correctness, fuse, predicted_classes
from stages.methods.sas.projection import PointFeatureFusion, visible_pixels

TEXT = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])  # class 1 unnormalised on purpose


def test_text_alignment_maps_each_pixel_to_its_class_text_feature():
    pred = np.array([[0, 1], [-1, 2]])
    out = align_by_text(pred, TEXT)
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])
    np.testing.assert_allclose(out[0, 1], [0, 1, 0])  # normalised
    np.testing.assert_allclose(out[1, 0], [0, 0, 0])  # unpredicted pixel votes for nothing
    np.testing.assert_allclose(out[1, 1], [0, 0, 1])
    assert prompts(["chair"]) == ["a chair in a scene"]
    with pytest.raises(ValueError, match="class ids"):
        align_by_text(np.array([3]), TEXT)


def camera_looking_down_z(tx: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    k = np.array([[10.0, 0, 5], [0, 10.0, 5], [0, 0, 1]])
    w2c = np.eye(4)
    w2c[0, 3] = tx
    return k, w2c


def test_occlusion_aware_fusion_on_hand_placed_points():
    # Point 0 at depth 2 straight ahead -> pixel (row 5, col 5); point 1 at depth 4 behind it on the same ray.
    points = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 4.0], [100.0, 0.0, 2.0]])  # point 2 projects outside
    k, w2c = camera_looking_down_z()
    depth = np.full((10, 10), 2.0)
    visible, row, col = visible_pixels(points, k, w2c, depth)
    assert visible.tolist() == [True, False, False] and (row[0], col[0]) == (5, 5)
    # |4 - 2| <= 0.25 * 2 fails; a view whose depth at that pixel is 4 sees point 1 and occludes nothing else.
    fusion = PointFeatureFusion(points, dim=2)
    feats_a = np.zeros((10, 10, 2))
    feats_a[5, 5] = [1.0, 0.0]
    fusion.add_view(feats_a, k, w2c, depth)            # sees point 0 only
    feats_b = np.zeros((10, 10, 2))
    feats_b[5, 5] = [0.0, 1.0]
    fusion.add_view(feats_b, k, w2c, np.full((10, 10), 4.0))  # sees point 1; point 0 fails |4 - 2| <= 1
    fusion.add_view(feats_b, k, w2c, np.full((10, 10), 2.2))  # point 0 within 0.55 of 2.2: seen again
    mean = fusion.mean()
    np.testing.assert_allclose(mean[0], [0.5, 0.5])
    np.testing.assert_allclose(mean[1], [0.0, 1.0])
    np.testing.assert_allclose(mean[2], [0.0, 0.0])
    assert fusion.count.tolist() == [2, 1, 0] and fusion.total.shape == (3, 2)  # state independent of view count
    by_class = PointFeatureFusion(points, dim=3)
    pred = np.full((10, 10), -1)
    pred[5, 5] = 2
    by_class.add_view_classes(pred, TEXT, k, w2c, depth)  # the same as add_view of the text-aligned map
    np.testing.assert_allclose(by_class.mean(), [[0, 0, 1], [0, 0, 0], [0, 0, 0]])
    no_depth = visible_pixels(points, k, w2c, np.zeros((10, 10)))[0]
    assert not no_depth.any()


def test_capability_is_the_mean_iou_against_pseudo_masks():
    acc = CapabilityAccumulator(num_models=2, num_classes=3)
    pseudo = np.zeros((2, 4), bool)
    pseudo[:, :2] = True                                # 4 pixels of class 1
    a = np.full((2, 4), -1)
    a[:, :2] = 1                                        # model A exact: IoU 1
    b = np.full((2, 4), -1)
    b[0, :3] = 1                                        # model B: 2 of its 3 pixels right, misses 2: IoU 2/5
    acc.add(1, pseudo, [a, b])
    acc.add(1, pseudo, [np.full((2, 4), 2), a])         # A wrong everywhere: IoU 0; B exact: IoU 1
    table = acc.table()
    np.testing.assert_allclose(table[:, 1], [0.5, (0.4 + 1.0) / 2])
    assert np.isnan(table[:, 0]).all() and np.isnan(table[:, 2]).all()
    np.testing.assert_allclose(filled(table), [[0.5, 0.5, 0.5], [0.7, 0.7, 0.7]])


def test_capability_guided_fusion_by_hand():
    cap_a = np.array([0.9, 0.2, 0.8])
    cap_b = np.array([0.3, 0.9, 0.6])
    f_a = np.array([[1.0, 0.0, 0.0]])  # A predicts class 0
    f_b = np.array([[0.0, 1.0, 0.0]])  # B predicts class 1
    pa, pb = predicted_classes(f_a, TEXT), predicted_classes(f_b, TEXT)
    assert pa.tolist() == [0] and pb.tolist() == [1]
    p_a, p_b = correctness(cap_a, pa, pb), correctness(cap_b, pa, pb)
    np.testing.assert_allclose([p_a[0], p_b[0]], [0.55, 0.6])  # Eq. 7
    w_a, w_b = capability_weights(p_a, p_b, tau=0.1)
    expected_b = 1.0 / (1.0 + np.exp((0.55 - 0.6) / 0.1))       # Eq. 8
    np.testing.assert_allclose([w_a[0], w_b[0]], [1 - expected_b, expected_b])
    fused = fuse(f_a, f_b, TEXT, "capability", cap_a, cap_b, tau=0.1)
    np.testing.assert_allclose(fused[0], [1 - expected_b, expected_b, 0.0])
    sharp = fuse(f_a, f_b, TEXT, "capability", cap_a, cap_b, tau=1e-4)  # tau -> 0 picks the more capable model
    np.testing.assert_allclose(sharp[0], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(fuse(f_a, f_b, TEXT, "capability", cap_a, cap_b, tau=1e6)[0], [0.5, 0.5, 0], atol=1e-6)
    with pytest.raises(ValueError, match="tau"):
        capability_weights(p_a, p_b, tau=0.0)


def test_add_and_linear_fusion_by_hand():
    f_a = np.array([[0.6, 0.8, 0.0]])  # max cosine to the text 0.8
    f_b = np.array([[0.0, 0.0, 0.5]])  # max cosine 1.0
    np.testing.assert_allclose(fuse(f_a, f_b, TEXT, "add")[0], [0.6, 0.8, 0.5])
    np.testing.assert_allclose(fuse(f_a, f_b, TEXT, "linear")[0],
                               [0.8 / 1.8 * 0.6, 0.8 / 1.8 * 0.8, 1.0 / 1.8 * 0.5])
    with pytest.raises(ValueError, match="unknown fusion"):
        fuse(f_a, f_b, TEXT, "max")  # type: ignore[arg-type]


def test_cross_attention_aggregation_and_threshold():
    m1 = torch.tensor([[0.0, 2.0], [1.0, 4.0]])           # / max 4
    m2 = torch.tensor([[1.0, 1.0], [0.0, 0.5]])           # / max 1
    agg = aggregate_attention([m1, m2])
    np.testing.assert_allclose(agg.numpy(), [[0.5, 0.75], [0.125, 0.75]])  # Eq. 2 mean of normalised maps
    low = torch.ones(1, 1)                                # a 1x1 map upsampled to 2x2 counts as 1 everywhere
    np.testing.assert_allclose(aggregate_attention([m1, low]).numpy(), [[0.5, 0.75], [0.625, 1.0]])
    mask = coarse_mask(agg, threshold=0.5)
    assert mask.tolist() == [[True, True], [False, True]]
    pts = prompt_points(agg, mask, num_points=2)
    np.testing.assert_allclose(pts[0], [1.5, 0.5])  # most attended pixel first (ties: first in row-major order)
    np.testing.assert_allclose(pts[1], [1.5, 1.5])  # farthest from it; the tie at distance 1 goes to more attention
    assert prompt_points(agg, torch.zeros(2, 2, dtype=torch.bool)).shape == (0, 2)


def test_oracle_model_confuses_only_its_classes_at_its_rate():
    vocab = ["wall", "chair", "sofa"]
    semantic = np.array([[0, 1, 1], [0, 2, 2]])
    instance = np.array([[0, 5, 5], [0, 7, 7]])
    always = OracleClassModel("a", confuse={"chair": 1.0}, into={"chair": "sofa"})
    np.testing.assert_array_equal(always.predict(semantic, instance, vocab, key=0), [[0, 2, 2], [0, 2, 2]])
    never = OracleClassModel("b", confuse={"chair": 0.0})
    np.testing.assert_array_equal(never.predict(semantic, instance, vocab, key=0), semantic)
    half = OracleClassModel("c", confuse={"chair": 0.3}, into={"chair": "wall"})
    hits = np.mean([half.predict(semantic, instance, vocab, key=k)[0, 1] == 0 for k in range(2000)])
    assert abs(hits - 0.3) < 0.04
    with pytest.raises(ValueError, match="outside the vocabulary"):
        OracleClassModel("d", confuse={"lamp": 0.5}).predict(semantic, instance, vocab, key=0)


def test_class_votes_give_the_mean_of_the_text_aligned_maps():
    """add_view_classes (votes per class, turned into features at the end) equals add_view of the text-aligned
    per-pixel maps over several views with unpredicted pixels, with or without a shared occlusion test."""
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-1, 1, (200, 2)), rng.uniform(2.0, 3.0, 200)])
    k = np.array([[8.0, 0, 8], [0, 8.0, 8], [0, 0, 1]])
    text = rng.normal(size=(5, 4))
    by_map, by_votes, shared = (PointFeatureFusion(points, dim=4) for _ in range(3))
    for _ in range(4):
        w2c = np.eye(4)
        w2c[:3, 3] = rng.normal(scale=0.1, size=3)
        depth = rng.uniform(1.5, 3.5, (16, 16))
        pred = rng.integers(-1, 5, (16, 16))
        by_map.add_view(align_by_text(pred, text), k, w2c, depth)
        by_votes.add_view_classes(pred, text, k, w2c, depth)
        shared.add_view_classes(pred, text, k, w2c, depth, shared.visibility(k, w2c, depth))
    assert by_map.count.sum() > 0 and (by_map.count == by_votes.count).all()
    np.testing.assert_allclose(by_votes.mean(), by_map.mean(), atol=1e-6)
    np.testing.assert_array_equal(shared.mean(), by_votes.mean())
    with pytest.raises(ValueError, match="class ids"):
        by_votes.add_view_classes(np.full((16, 16), 5), text, k, np.eye(4), depth)
