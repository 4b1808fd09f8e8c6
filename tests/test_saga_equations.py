"""Known-answer tests of SAGA's equations (stages.methods.saga) and the promptable-segmentation protocols."""

import math

import numpy as np
import pytest
import torch

from stages.lib.clustering import HDBSCANConfig
from stages.lib.neighbours import knn_indices
from stages.lib.promptable import nvos_prompts, nvos_scribbles, pixel_accuracy, spin_prompts
from stages.lib.semantic_metrics import mask_iou
from stages.methods.saga.gate import ScaleGate, gated_cosine
from stages.methods.saga.losses import (
    PairSelection,
    correspondence_loss,
    feature_correspondence,
    identity_vectors,
    mask_correspondence,
    mean_mask_size,
    norm_loss,
    pair_weights,
    resample_pairs,
    saga_loss,
)
from stages.methods.saga.prompt import PointPrompt, PromptError, PromptIndex, reference_scores
from stages.methods.saga.scales import backproject, mask_scale, normalise_scales, scale_knots, view_mask_scales
from stages.methods.saga.smoothing import smooth_features
from stages.methods.saga.vote import (
    anchor_segments,
    cluster_relevancy,
    gaussian_targets,
    mask_query_features,
    vote_distance,
    vote_graph,
)


# ---------------------------------------------------------------------------------------------- scales (Eq. 2)
def test_mask_scale_eq2():
    assert mask_scale(np.array([[0.0, 0, 0], [2, 0, 0]])) == pytest.approx(2.0)  # std_x = 1
    square = np.array([[0.0, 0, 0], [2, 0, 0], [0, 2, 0], [2, 2, 0]])
    assert mask_scale(square) == pytest.approx(2 * math.sqrt(2))
    assert math.isnan(mask_scale(np.zeros((0, 3))))


def test_backproject_pixel_centre_and_pose():
    k = np.eye(3)
    depth = np.zeros((2, 2))
    depth[0, 0] = 2.0
    w2c = np.eye(4)
    w2c[2, 3] = 1.0  # camera one unit behind the world origin
    pts = backproject(depth, k, w2c, np.ones((2, 2), bool))  # zero depth elsewhere is skipped
    np.testing.assert_allclose(pts, [[1.0, 1.0, 1.0]])  # (0.5 * 2, 0.5 * 2, 2) - (0, 0, 1)
    scales, counts = view_mask_scales(depth, k, w2c, np.array([[[True, False], [False, False]],
                                                               [[False, True], [False, False]]]))
    assert counts.tolist() == [1, 0] and scales[0] == 0.0 and math.isnan(scales[1])


def test_scale_normalisation_is_the_empirical_cdf():
    knots = scale_knots(np.array([3.0, 1, 5, 2, 4, np.nan]), num_knots=5)
    np.testing.assert_allclose(knots, [1, 2, 3, 4, 5])
    out = normalise_scales(np.array([3.0, 2.5, 0.0, 10.0, np.nan]), knots)
    np.testing.assert_allclose(out[:4], [0.5, 0.375, 0.0, 1.0])
    assert math.isnan(out[4])
    with pytest.raises(ValueError, match="no mask has a finite"):
        scale_knots(np.array([np.nan]))


# ---------------------------------------------------------------------------------------------- gate (Eq. 3, 5)
def test_scale_gate_shape_range_and_round_trip():
    gate = ScaleGate(32)
    g = gate(torch.tensor([0.0, 0.25, 1.0]))
    assert g.shape == (3, 32) and bool((g > 0).all() and (g < 1).all())
    w, b = gate.arrays()
    again = ScaleGate.from_arrays(w, b)
    torch.testing.assert_close(again(torch.tensor([0.7])), gate(torch.tensor([0.7])))


def test_gated_cosine_matches_direct_computation():
    torch.manual_seed(0)
    f, gates, q = torch.randn(50, 8), torch.rand(3, 8), torch.randn(3, 8)
    direct = torch.nn.functional.cosine_similarity((gates[None] * f[:, None]), q[None], dim=-1)
    torch.testing.assert_close(gated_cosine(f, gates, q, chunk=7), direct, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------- Eq. 6-9, 11
# Four pixels; masks A (whole, all pixels, scale 0.9), B ({p0, p1}, 0.5), C ({p2, p3}, 0.5), D ({p0}, 0.1).
MEMBER = torch.tensor([[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]], dtype=torch.bool)
MASK_SCALES = torch.tensor([0.9, 0.5, 0.5, 0.1])


def test_identity_vectors_nested_masks():
    v = identity_vectors(MEMBER, MASK_SCALES, torch.tensor([0.05, 0.3, 0.7, 0.95])).int().tolist()
    assert v[0] == [[0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]  # only the smallest covering mask
    assert v[1] == [[0, 1, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 0]]  # D < s counts as is
    assert v[2] == [[1, 1, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]]
    assert v[3] == MEMBER.int().tolist()


def test_mask_correspondence_eq7():
    corr = mask_correspondence(identity_vectors(MEMBER, MASK_SCALES, torch.tensor([0.05, 0.3, 0.7])))
    assert corr[0, 0, 1].item() is False and corr[0, 2, 3].item() is True    # parts differ at the finest scale
    assert corr[1, 0, 1].item() is True and corr[1, 1, 2].item() is False    # same part at s = 0.3
    assert corr[2, 0, 2].item() is True                                       # same whole at s = 0.7
    assert bool(corr.diagonal(dim1=1, dim2=2).all())


def test_feature_correspondence_eq8():
    f = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    corr = feature_correspondence(f, torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))
    assert corr[0, 0, 1].item() == pytest.approx(1 / math.sqrt(2))
    assert corr[1, 0, 1].item() == pytest.approx(1.0)   # the gate closes the channel where they differ
    assert corr[2, 0, 1].item() == pytest.approx(0.0)   # p1's gated feature vanishes


def test_correspondence_loss_eq9():
    corr_m = torch.tensor([True, False, False, True])
    corr_f = torch.tensor([0.6, 0.6, -0.3, -0.3])
    torch.testing.assert_close(correspondence_loss(corr_m, corr_f), torch.tensor([-0.6, 0.6, 0.0, 0.0]))


def test_norm_loss_eq11():
    torch.testing.assert_close(norm_loss(torch.tensor([[0.6, 0.8], [0.3, 0.4]])), torch.tensor([0.0, 0.5]))


# ---------------------------------------------------------------------------------------------- A.1
def test_reweighting_by_mean_mask_size():
    member = torch.tensor([[1, 1], [0, 1], [1, 0]], dtype=torch.bool)
    m = mean_mask_size(member, torch.tensor([4.0, 2.0]))
    torch.testing.assert_close(m, torch.tensor([3.0, 2.0, 4.0]))
    w = pair_weights(m)
    assert w[1, 1].item() == pytest.approx(10.0) and w[2, 2].item() == pytest.approx(1.0)
    assert w[0, 1].item() == pytest.approx(6.0)  # 1 + 9 (1/6 - 1/16) / (1/4 - 1/16)
    assert bool((pair_weights(torch.tensor([2.0, 2.0])) == 1).all())


def test_resampling_keeps_inconsistent_balanced_and_hard_pairs():
    p = 4
    corr_m = torch.zeros(2, p, p, dtype=torch.bool)
    corr_m[:, range(p), range(p)] = True
    corr_m[0, 0, 1] = corr_m[0, 1, 0] = True          # (0, 1): positive at one scale only
    corr_m[:, 2, 3] = corr_m[:, 3, 2] = True           # (2, 3): always positive
    corr_f = torch.zeros(2, p, p)
    corr_f[:, 2, 3] = corr_f[:, 3, 2] = 0.9            # an easy positive
    corr_f[1, 0, 2] = 0.7                               # a hard negative at the second scale
    sel = resample_pairs(corr_m, corr_f, torch.Generator().manual_seed(0))
    for s in (0, 1):
        assert sel.positive[s, 0, 1] and sel.negative[s, 1, 0]     # inconsistent pairs in both terms
        assert not sel.positive[s].diagonal().any() and not sel.negative[s].diagonal().any()
    assert int(sel.positive[0].sum()) == 3   # 2 inconsistent + floor(2 / 2) consistent positive
    assert bool(sel.negative[1, 0, 2]) and int(sel.negative[0].sum()) == 3
    assert int(sel.negative[1].sum()) in (3, 4)  # + the hard negative unless it was the random pick


def test_total_loss_eq13():
    pair_loss = torch.tensor([[[0.0, -0.5], [0.4, 0.0]]])
    weights = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    sel = PairSelection(positive=torch.tensor([[[False, True], [False, False]]]),
                        negative=torch.tensor([[[False, False], [True, False]]]))
    loss = saga_loss(pair_loss, weights, sel, torch.tensor([[0.0, 0.5], [0.5, 0.0]]))
    assert loss.item() == pytest.approx(2 * -0.5 + 3 * 0.4 + 0.25)


# ---------------------------------------------------------------------------------------------- smoothing
def test_knn_smoothing_dilutes_a_planted_outlier():
    xyz = np.array([[x, 0.0, 0.0] for x in (0, 1, 2, 3, 4, 100, 101, 102)])
    feats = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 3)
    feats[2] = torch.tensor([0.0, 1.0])  # outlier inside the first group
    idx = knn_indices(xyz, k=3)
    assert idx[:, 0].tolist() == list(range(8))  # itself first
    smooth = smooth_features(feats, idx)
    torch.testing.assert_close(smooth[2], torch.tensor([2 / 3, 1 / 3]))
    torch.testing.assert_close(smooth[6], torch.tensor([0.0, 1.0]))  # the far group is untouched


# ---------------------------------------------------------------------------------------------- prompts
FEATURE_MAP = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # 1 x 2 image: left pixel [1, 0], right pixel [0, 1]


def constant_gate(values):
    return lambda scale: torch.tensor(values)


def test_point_prompt_selects_by_gated_cosine():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.6, 0.8]])
    index = PromptIndex(feats, constant_gate([1.0, 1.0]))
    prompt = PointPrompt(view=0, positive=[(0.5, 0.5)], scale=0.5)
    assert index.select(FEATURE_MAP, prompt, threshold=0.5).tolist() == [True, False, True, True]
    prompt.negative = [(1.5, 0.5)]  # [0.6, 0.8] is closer to the negative query
    assert index.select(FEATURE_MAP, prompt, 0.5).tolist() == [True, False, True, False]
    closed = PromptIndex(feats, constant_gate([1.0, 0.0])).select(FEATURE_MAP, PointPrompt(0, [(0.5, 0.5)], 0.5), 0.5)
    assert closed.tolist() == [True, False, True, True]  # the gate closes the second channel


def test_prompt_index_scores_known_answer():
    # f = [3, 4] (norm ignored), gate [1, 0.5]: S * f = [3, 2]; query F(p) = [0, 1] -> S * q = [0, 0.5]
    index = PromptIndex(torch.tensor([[3.0, 4.0]]), constant_gate([1.0, 0.5]))
    pos, neg = index.scores(torch.tensor([[[0.0, 1.0]]]), PointPrompt(0, [(0.5, 0.5)], 0.3))
    torch.testing.assert_close(pos, torch.tensor([2.0 / math.sqrt(13.0)]))
    assert neg is None


def test_prompt_index_equals_eq3_written_out_on_random_data():
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(20_000, 32, generator=gen) * torch.rand(20_000, 1, generator=gen) * 5
    fmap = torch.randn(24, 40, 32, generator=gen)
    torch.manual_seed(0)
    gate = ScaleGate(32)
    index = PromptIndex(feats, gate.at)
    for scale, n_neg in ((0.0, 0), (0.37, 1), (1.0, 4)):
        xy = torch.rand(3 + n_neg, 2, generator=gen) * torch.tensor([40.0, 24.0])
        points = [(float(x), float(y)) for x, y in xy]
        prompt = PointPrompt(0, points[:3], scale, points[3:])
        torch.testing.assert_close(gate.at(scale), gate(torch.tensor([scale]))[0].detach())
        pos, neg = index.scores(fmap, prompt)
        ref_pos, ref_neg = reference_scores(feats, gate(torch.tensor([scale]))[0].detach(), fmap, prompt)
        torch.testing.assert_close(pos, ref_pos, atol=1e-5, rtol=0)
        if n_neg:
            torch.testing.assert_close(neg, ref_neg, atol=1e-5, rtol=0)
        else:
            assert neg is None and bool(torch.isinf(ref_neg).all())
        threshold = float(ref_pos.quantile(0.8))  # a fifth of the Gaussians pass: a real split
        expected = (ref_pos > threshold) & (ref_pos >= ref_neg)
        clear = ((ref_pos - threshold).abs() > 1e-5) & ((ref_pos - ref_neg).abs() > 1e-5)
        selected = index.select(fmap, prompt, threshold)
        assert torch.equal(selected[clear], expected[clear]) and 0 < int(expected.sum()) < len(feats)


@pytest.mark.parametrize("prompt, message", [
    (PointPrompt(0, [(2.0, 0.5)], 0.5), "outside the 2x1 image"),
    (PointPrompt(0, [(0.5, 0.5)], 0.5, negative=[(0.5, -1.0)]), "negative point"),
    (PointPrompt(0, [(0.5, 0.5)], 1.5), "outside \\[0, 1\\]"),
    (PointPrompt(0, [], 0.5), "no positive point"),
    (PointPrompt(3, [(0.5, 0.5)], 0.5), "not a view"),
])
def test_bad_prompts_get_clear_errors(prompt, message):
    with pytest.raises(PromptError, match=message):
        prompt.check(width=2, height=1, num_views=1)


# ---------------------------------------------------------------------------------------------- vote (A.3)
def test_mask_query_feature_eq14():
    f = mask_query_features(FEATURE_MAP, torch.ones(1, 1, 2, dtype=torch.bool), torch.tensor([[1.0, 2.0]]))
    torch.testing.assert_close(f, torch.tensor([[0.5, 1.0]]))


def test_anchor_segments_and_vote_distance():
    anchors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    seg = anchor_segments(anchors, torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.ones(2, 2), tau=0.8)
    assert seg.tolist() == [[True, True, False], [False, False, True]]
    d = vote_distance(torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool))
    assert d[0, 1].item() == pytest.approx(1 / 3) and d[0, 2].item() == 1.0 and d[3, 3].item() == 1.0


def test_vote_graph_groups_masks_of_one_target():
    rows = [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1]]
    labels = vote_graph(torch.tensor(rows, dtype=torch.bool), HDBSCANConfig(min_cluster_size=2))
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3] and labels[0] >= 0


def test_cluster_relevancy_eq15():
    r = cluster_relevancy(np.array([0, 0, 1, -1]), torch.tensor([[1.0, 0], [0.5, 0.5], [0, 1], [9, 9]]), 2)
    torch.testing.assert_close(r, torch.tensor([[0.75, 0.25], [0.0, 1.0]]))


def test_gaussian_targets_by_vote_fraction():
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    queries = torch.tensor([[1.0, 0.0], [1.0, 0.2], [0.0, 1.0]])
    targets = gaussian_targets(feats, queries, torch.ones(3, 2), np.array([0, 0, 1]), tau=0.9)
    assert targets.tolist() == [0, 1, -1]


# ---------------------------------------------------------------------------------------------- protocols
def test_iou_and_pixel_accuracy():
    pred, gt = np.array([1, 1, 0, 0], bool), np.array([1, 0, 0, 0], bool)
    assert mask_iou(pred, gt) == 0.5 and pixel_accuracy(pred, gt) == 0.75


def test_nvos_scribbles_and_prompts():
    mask = np.zeros((21, 21), bool)
    mask[6:15, 6:15] = True
    pos, neg = nvos_scribbles(mask)
    assert pos[10, 10] and not pos[6, 6] and not (neg & mask).any() and neg[10, 2] and not neg[10, 5]
    a = nvos_prompts(mask, 3, 4, np.random.default_rng(0))
    assert a == nvos_prompts(mask, 3, 4, np.random.default_rng(0))  # fixed seed, fixed prompts
    assert len(a[0]) == 3 and all(pos[int(y), int(x)] for x, y in a[0]) and all(neg[int(y), int(x)] for x, y in a[1])


def test_spin_prompts_inside_and_outside():
    mask = np.zeros((10, 10), bool)
    mask[2:5, 2:5] = True
    inside, outside = spin_prompts(mask, 5, 5, np.random.default_rng(1))
    assert all(mask[int(y), int(x)] for x, y in inside) and not any(mask[int(y), int(x)] for x, y in outside)
    with pytest.raises(ValueError, match="empty object mask"):
        spin_prompts(np.zeros((3, 3), bool), 1, 1, np.random.default_rng(0))


def test_view_mask_scales_match_eq2_on_the_points():
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, size=(6, 8))
    depth[0, 0] = 0.0
    k = np.array([[4.0, 0, 4], [0, 4.0, 3], [0, 0, 1]])
    w2c = np.eye(4)
    w2c[:3, 3] = [0.3, -0.2, 1.0]
    masks = rng.random((3, 6, 8)) > 0.5
    scales, counts = view_mask_scales(depth, k, w2c, masks)
    for m, s, c in zip(masks, scales, counts):
        pts = backproject(depth, k, w2c, m)
        assert c == len(pts) and s == pytest.approx(mask_scale(pts), rel=1e-9)
